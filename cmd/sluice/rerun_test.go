package main

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/gen"
	"github.com/sluice-dev/sluice/internal/ledger"
)

func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	return 1
}

// TestRerunCommands drives replay, reextract and dlq in-process against a shared nats-server:
// flags, wiring and exit codes.
func TestRerunCommands(t *testing.T) {
	b := bustest.New(t)
	dir := t.TempDir()
	landing, out := filepath.Join(dir, "landing"), filepath.Join(dir, "out")
	cfg := gen.DefaultConfig()
	cfg.Out, cfg.Seed, cfg.Days, cfg.Archives, cfg.Tables, cfg.RowsPerMember = landing, 5, 1, 1, 2, 50
	m, err := gen.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	common := []string{"--nats", b.Server.ClientURL(), "--partitions", "4", "--state", filepath.Join(dir, "state"), "--log-level", "warn"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cmdRun(ctx, append([]string{"--landing", landing, "--out", out, "--once", "--progress", "off"}, common...)); exitCode(err) != 0 {
		t.Fatalf("run --once: %v", err)
	}
	var tbl string
	for name := range m.Tables {
		tbl = name
	}
	for _, c := range []struct {
		name string
		run  func(context.Context, []string) error
		args []string
		code int
	}{
		{"replay", cmdReplay, []string{"--table", tbl, "--out", out}, 0},
		{"replay by date", cmdReplay, []string{"--table", tbl, "--out", out, "--process-date", "2025-03-01", "--since", "1h"}, 0},
		{"replay json", cmdReplay, []string{"--table", tbl, "--out", out, "--json", "--from-seq", "1"}, 0},
		{"replay unknown table", cmdReplay, []string{"--table", "no_such_table", "--out", out}, exitUsage},
		{"replay known table, date without batches", cmdReplay, []string{"--table", tbl, "--out", out, "--process-date", "2024-01-01"}, exitFindings},
		{"replay stray word", cmdReplay, []string{"--table", tbl, "oops", "--out", out}, exitUsage},
		{"replay bad level", cmdReplay, []string{"--table", tbl, "--out", out, "--parquet-zstd-level", "99"}, exitUsage},
		{"replay without table", cmdReplay, []string{"--out", out}, exitUsage},
		{"replay bad since", cmdReplay, []string{"--table", tbl, "--out", out, "--since", "yesterday"}, exitUsage},
		{"replay seq and since", cmdReplay, []string{"--table", tbl, "--out", out, "--since", "1h", "--from-seq", "3"}, exitUsage},
		{"dlq list", cmdDLQ, []string{"list"}, 0},
		{"dlq list json", cmdDLQ, []string{"list", "--json"}, 0},
		{"dlq show missing", cmdDLQ, []string{"show", "42"}, 1},
		{"dlq retry nothing", cmdDLQ, []string{"retry", "--all", "--out", out}, 0},
		{"dlq retry without seq", cmdDLQ, []string{"retry"}, exitUsage},
		{"dlq bad action", cmdDLQ, []string{"purge"}, exitUsage},
		{"dlq bad seq", cmdDLQ, []string{"show", "x"}, exitUsage},
		{"reextract unknown", cmdReextract, []string{"ffffffffffffffffffff"}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			if c.name != "dlq bad action" {
				args = append(append([]string{}, c.args...), common...)
			}
			if got := exitCode(c.run(ctx, args)); got != c.code {
				t.Fatalf("exit code %d, want %d", got, c.code)
			}
		})
	}
	kv, err := b.Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := ledger.New(kv, nil).List(ctx)
	if err != nil || len(recs) != 1 || recs[0].Replays < 3 {
		t.Fatalf("ledger: %+v %v", recs, err)
	}
	if err := cmdReextract(ctx, append(common, recs[0].ArchiveID)); err != nil {
		t.Fatalf("reextract: %v", err)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2025, 3, 2, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2025-03-01T10:00:00Z": time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC),
		"2025-03-01":           time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC),
		"90m":                  now.Add(-90 * time.Minute),
	} {
		if got, err := parseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1h", "tomorrow"} {
		if _, err := parseSince(bad, now); err == nil {
			t.Errorf("parseSince(%q): no error", bad)
		}
	}
}
