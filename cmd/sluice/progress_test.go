package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestStatusLineKeepsLogsWhole: a log record printed while the progress line is shown clears the
// line, prints whole, and the line is drawn again under it; after Clear logs pass through as is.
func TestStatusLineKeepsLogsWhole(t *testing.T) {
	var out bytes.Buffer
	s := newStatusLine(&out, 0)
	log := slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	log.Info("before")
	s.Set("[1s] archives 0/2")
	s.Set("[2s] archives 1/2")
	log.Warn("slow", "archive", "a1")
	s.Clear()
	log.Info("after")
	want := "level=INFO msg=before\n" +
		"\r\033[K[1s] archives 0/2" +
		"\r\033[K[2s] archives 1/2" +
		"\r\033[Klevel=WARN msg=slow archive=a1\n[2s] archives 1/2" +
		"\r\033[K" +
		"level=INFO msg=after\n"
	if got := out.String(); got != want {
		t.Fatalf("terminal output\n got %q\nwant %q", got, want)
	}
}

// TestStatusLinePartialWrite: output that does not end a line is not interrupted by a redraw;
// the line comes back once the text is finished.
func TestStatusLinePartialWrite(t *testing.T) {
	var out bytes.Buffer
	s := newStatusLine(&out, 0)
	s.Set("L1")
	s.Write([]byte("part "))
	s.Set("L2") // not drawn in the middle of "part …"
	s.Write([]byte("done\n"))
	if got, want := out.String(), "\r\033[KL1\r\033[Kpart done\nL2"; got != want {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestStatusLineFitsTheTerminal(t *testing.T) {
	var out bytes.Buffer
	s := newStatusLine(&out, 10)
	s.Set("0123456789abc")
	if got := strings.TrimPrefix(out.String(), clearLine); got != "01234567…" {
		t.Fatalf("cut line %q", got)
	}
}

func TestProgressLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    progress
		want string
	}{{
		name: "follow mode: no total, no ETA",
		p:    progress{Elapsed: 83 * time.Second, Done: 3, Total: 5, RowsExtracted: 12345, RowsCommitted: 12000, CSVBytes: 52.4e6, CSVRate: 3.14e6},
		want: "[1m23s] archives 3/5 · rows 12.3k extracted, 12.0k committed · CSV 52.4 MB, 3.1 MB/s",
	}, {
		name: "once: a quarter read, 2.4M of the 10M rows the run will hold committed: 24.5% done in 10s",
		p: progress{Elapsed: 10 * time.Second, Done: 1, Total: 4, Failed: 1, RowsExtracted: 2_500_000, RowsCommitted: 2_400_000,
			CommitRate: 1e6, CSVBytes: 400e6, CSVRate: 40e6, ReadBytes: 100e6, ReadRate: 10e6, WorkBytes: 400e6},
		want: "[10s] archives 1/4 (1 failed, 0 duplicates) · rows 2.50M extracted, 2.40M committed · CSV 400.0 MB, 40.0 MB/s · read 100.0 MB/400.0 MB · ETA 31s",
	}, {
		name: "once: everything read, 6M of 10M rows committed: 80% done in 1m",
		p: progress{Elapsed: time.Minute, Done: 3, Total: 4, RowsExtracted: 10e6, RowsCommitted: 6e6, CommitRate: 100e3,
			ReadBytes: 400e6, ReadRate: 1e6, WorkBytes: 400e6},
		want: "[1m0s] archives 3/4 · rows 10.00M extracted, 6.00M committed · CSV 0.0 MB, 0.0 MB/s · read 400.0 MB/400.0 MB · ETA 15s",
	}, {
		name: "once: half read, nothing committed yet: 25% done in 1m",
		p: progress{Elapsed: time.Minute, Total: 4, RowsExtracted: 1e6, RowsCommitted: 0, CommitRate: 10e3,
			ReadBytes: 100e6, ReadRate: 100e6, WorkBytes: 200e6},
		want: "[1m0s] archives 0/4 · rows 1.00M extracted, 0 committed · CSV 0.0 MB, 0.0 MB/s · read 100.0 MB/200.0 MB · ETA 3m0s",
	}, {
		name: "once: everything read and committed, summaries left",
		p:    progress{Elapsed: time.Minute, Done: 3, Total: 4, RowsExtracted: 5, RowsCommitted: 5, ReadBytes: 400e6, WorkBytes: 400e6},
		want: "[1m0s] archives 3/4 · rows 5 extracted, 5 committed · CSV 0.0 MB, 0.0 MB/s · read 400.0 MB/400.0 MB · finishing",
	}, {
		name: "once: nothing read yet, no ETA",
		p:    progress{Elapsed: time.Second, Total: 1, WorkBytes: 1e6},
		want: "[1s] archives 0/1 · rows 0 extracted, 0 committed · CSV 0.0 MB, 0.0 MB/s · read 0.0 MB/1.0 MB",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.line(); got != tc.want {
				t.Fatalf("\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestProgressLogAttrs(t *testing.T) {
	p := progress{Elapsed: 2 * time.Second, Done: 1, Total: 2, CSVBytes: 5e6, CSVRate: 2.5e6, ReadBytes: 1e6, ReadRate: 1e6, WorkBytes: 3e6}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("progress", p.attrs()...)
	for _, want := range []string{"archives_done=1", "archives=2", "csv_bytes=5000000", "csv_mb_per_s=2.5", "work_bytes=3000000", "eta=10s"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log line lacks %s: %s", want, buf.String())
		}
	}
}

// TestMeterRate: the rate is over the samples of the last window.
func TestMeterRate(t *testing.T) {
	m := meter{window: 10 * time.Second}
	t0 := time.Unix(0, 0)
	if r := m.add(t0, 0); r != 0 {
		t.Fatalf("first sample rate %v", r)
	}
	for i := 1; i <= 10; i++ {
		m.add(t0.Add(time.Duration(i)*time.Second), float64(i)*100) // 100/s
	}
	if r := m.add(t0.Add(15*time.Second), 1000); r != 50 { // stalled for the last 5s of the window
		t.Fatalf("rate after a 5s stall %v, want 50/s", r)
	}
	if r := m.add(t0.Add(40*time.Second), 1000); r != 0 {
		t.Fatalf("rate after a window of nothing %v, want 0", r)
	}
}
