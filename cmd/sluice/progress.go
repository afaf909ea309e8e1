package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/summarizer"
)

// statusLine is a progress line kept at the bottom of a terminal while logs scroll above it.
// Logs are written through it (Write): a record clears the line, is printed, and the line is
// drawn again under it, so neither tears the other.
type statusLine struct {
	mu    sync.Mutex // guards line, shown, partial and every write to w
	w     io.Writer
	width int    // columns of the terminal (0: unknown); the line is cut to fit, or it would wrap
	line  string // what is drawn
	shown bool   // the line is on screen (Set since the last Clear)
	// partial: the last log write did not end a line; the status line waits for its end.
	partial bool
}

const clearLine = "\r\033[K"

func newStatusLine(w io.Writer, width int) *statusLine { return &statusLine{w: w, width: width} }

// Write prints log output above the status line.
func (s *statusLine) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.shown {
		return s.w.Write(p)
	}
	var b bytes.Buffer
	if !s.partial {
		b.WriteString(clearLine)
	}
	b.Write(p)
	s.partial = len(p) > 0 && p[len(p)-1] != '\n'
	if !s.partial {
		b.WriteString(s.line)
	}
	if _, err := s.w.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Set draws line in place of the previous one.
func (s *statusLine) Set(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.line, s.shown = fit(line, s.width), true
	if !s.partial {
		io.WriteString(s.w, clearLine+s.line)
	}
}

// Clear erases the line; later writes go straight through.
func (s *statusLine) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shown && !s.partial {
		io.WriteString(s.w, clearLine)
	}
	s.line, s.shown = "", false
}

// fit cuts line to width-1 runes (the last column would make some terminals wrap).
func fit(line string, width int) string {
	if width <= 1 || utf8.RuneCountInString(line) < width {
		return line
	}
	r := []rune(line)
	return string(r[:width-2]) + "…"
}

// progress is one sample of what a run has done. Archives come from the summarizer's fold;
// bytes and rows from this process's extractor and merger counters, as they grow.
type progress struct {
	Elapsed            time.Duration
	Done, Total        int // archives terminal / known (of this once run when WorkBytes is known)
	Failed, Duplicates int
	RowsExtracted      float64 // CSV records published by the extractor
	RowsCommitted      float64 // rows written to Parquet by the merger
	CommitRate         float64 // rows/s committed over the last window
	CSVBytes           float64 // decoded CSV published by the extractor
	CSVRate            float64 // bytes/s over the last window
	ReadBytes          float64 // archive bytes read by the extractor
	ReadRate           float64 // bytes/s over the last window
	WorkBytes          int64   // bytes of the archives a once run waits for (0: not a once run, or not known yet)
}

// ETA is the time a once run still needs, from bytes. The work done is the mean of two
// fractions: the archive bytes read of the run's bytes, and the rows committed of the rows the
// whole run will hold (the rows per byte read so far, times the run's bytes). The time left is the
// elapsed time scaled by what is left of that: ETA = elapsed × (1 − done) / done. Averages over the
// whole run, not the last window's rates: the merger commits in bursts (a batch at its marker),
// and a window rate would swing the estimate from seconds to minutes between two bursts. ok is
// false when it cannot be told (no total, nothing read yet) or nothing is left but the summaries.
func (p progress) ETA() (time.Duration, bool) {
	w := float64(p.WorkBytes)
	if w <= 0 || p.ReadBytes <= 0 || p.Elapsed <= 0 {
		return 0, false
	}
	read := min(p.ReadBytes/w, 1)
	committed := 0.0
	if rows := p.RowsExtracted / read; rows > 0 {
		committed = min(p.RowsCommitted/rows, 1)
	}
	done := (read + committed) / 2
	if done >= 1 {
		return 0, false
	}
	secs := p.Elapsed.Seconds() * (1 - done) / done
	return max(time.Duration(secs*float64(time.Second)).Round(time.Second), time.Second), true
}

// line renders p for a terminal.
func (p progress) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] archives %d/%d", p.Elapsed.Round(time.Second), p.Done, p.Total)
	if p.Failed > 0 || p.Duplicates > 0 {
		fmt.Fprintf(&b, " (%d failed, %d duplicates)", p.Failed, p.Duplicates)
	}
	fmt.Fprintf(&b, " · rows %s extracted, %s committed · CSV %s, %s/s", short(p.RowsExtracted), short(p.RowsCommitted),
		mb(p.CSVBytes), mb(p.CSVRate))
	if p.WorkBytes > 0 {
		fmt.Fprintf(&b, " · read %s/%s", mb(p.ReadBytes), mb(float64(p.WorkBytes)))
		if eta, ok := p.ETA(); ok {
			fmt.Fprintf(&b, " · ETA %s", eta)
		} else if p.ReadBytes >= float64(p.WorkBytes) {
			b.WriteString(" · finishing")
		}
	}
	return b.String()
}

// attrs renders p for a log line.
func (p progress) attrs() []any {
	a := []any{"archives_done", p.Done, "archives", p.Total, "failed", p.Failed,
		"rows_extracted", int64(p.RowsExtracted), "rows_committed", int64(p.RowsCommitted),
		"csv_bytes", int64(p.CSVBytes), "csv_mb_per_s", fmt.Sprintf("%.1f", p.CSVRate/1e6)}
	if p.WorkBytes > 0 {
		a = append(a, "read_bytes", int64(p.ReadBytes), "work_bytes", p.WorkBytes)
		if eta, ok := p.ETA(); ok {
			a = append(a, "eta", eta.String())
		}
	}
	return a
}

// mb is n bytes in MB (10^6), one decimal.
func mb(n float64) string { return fmt.Sprintf("%.1f MB", n/1e6) }

// short is n with a k/M/G suffix.
func short(n float64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fG", n/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", n/1e6)
	case n >= 1e4:
		return fmt.Sprintf("%.1fk", n/1e3)
	}
	return fmt.Sprintf("%.0f", n)
}

// meter turns samples of a growing count into a rate over the last window.
type meter struct {
	window  time.Duration
	samples []sample
}

type sample struct {
	at time.Time
	v  float64
}

// add records v at t and returns the rate (per second) since the oldest sample in the window.
func (m *meter) add(t time.Time, v float64) float64 {
	m.samples = append(m.samples, sample{t, v})
	for len(m.samples) > 2 && t.Sub(m.samples[1].at) >= m.window {
		m.samples = m.samples[1:]
	}
	first := m.samples[0]
	if d := t.Sub(first.at).Seconds(); d > 0 {
		return (v - first.v) / d
	}
	return 0
}

// progressSource samples a run: the summarizer's fold for archives and rows, the extractor's
// counters (read from the process's registry) for bytes.
type progressSource struct {
	sum    *summarizer.Summarizer
	reg    prometheus.Gatherer
	start  time.Time
	csv    meter
	read   meter
	commit meter
	workMu sync.Mutex // guards work, workBytes (set by the once run's OnWork)
	work   []string
	wbytes int64
}

func newProgressSource(sum *summarizer.Summarizer, reg prometheus.Gatherer, start time.Time) *progressSource {
	ps := &progressSource{sum: sum, reg: reg, start: start}
	for _, m := range []*meter{&ps.csv, &ps.read, &ps.commit} {
		m.window = 10 * time.Second
		m.add(start, 0) // the counters of this process start at 0 with it
	}
	return ps
}

// setWork records what a once run waits for.
func (ps *progressSource) setWork(ids []string, bytes int64) {
	ps.workMu.Lock()
	ps.work, ps.wbytes = ids, bytes
	ps.workMu.Unlock()
}

func (ps *progressSource) sample(now time.Time) progress {
	st := ps.sum.Status()
	t := st.Totals
	p := progress{Elapsed: now.Sub(ps.start), Done: t.Committed + t.Failed, Total: t.Archives, Failed: t.Failed, Duplicates: t.Duplicates}
	ps.workMu.Lock()
	work, wbytes := ps.work, ps.wbytes
	ps.workMu.Unlock()
	if work != nil { // a once run: count its archives only, not the stream's history
		p.Done, p.Total, p.Failed, p.Duplicates, p.WorkBytes = 0, len(work), 0, 0, wbytes
		for _, id := range work {
			a := st.Archives[id]
			if a.Terminal() {
				p.Done++
			}
			if a.State == summarizer.StateFailed {
				p.Failed++
			}
		}
	}
	if mfs, err := ps.reg.Gather(); err == nil {
		for _, mf := range mfs {
			var v float64
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
			switch mf.GetName() {
			case "sluice_extractor_csv_bytes_total":
				p.CSVBytes = v
			case "sluice_extractor_bytes_in_total":
				p.ReadBytes = v
			case "sluice_extractor_rows_total":
				p.RowsExtracted = v
			case "sluice_merger_rows_out_total":
				p.RowsCommitted = v
			}
		}
	}
	p.CSVRate = ps.csv.add(now, p.CSVBytes)
	p.ReadRate = ps.read.add(now, p.ReadBytes)
	p.CommitRate = ps.commit.add(now, p.RowsCommitted)
	return p
}

// progressLoop draws the progress line every 250ms until ctx ends, then erases it.
func progressLoop(ctx context.Context, ps *progressSource, line *statusLine) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	defer line.Clear()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			line.Set(ps.sample(now).line())
		}
	}
}

// logLoop logs a progress line every interval (stderr is not a terminal).
func logLoop(ctx context.Context, ps *progressSource, log *slog.Logger, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			log.Info("progress", ps.sample(now).attrs()...)
		}
	}
}
