package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluice-dev/sluice/merger"
)

// cmdReplay re-merges one table from the rows stream (merger.Replay) and rewrites the same
// deterministic objects. Exit 0: every selected batch committed; 2: something was skipped
// (aborted, incomplete) or nothing matched; 1: a failure.
func cmdReplay(ctx context.Context, args []string) error {
	c := newCommon("replay")
	var s stageFlags
	s.register(c.fs, "out")
	var spec merger.ReplaySpec
	var since string
	var asJSON bool
	memoryBudget := int64(merger.DefaultMemoryBudget)
	c.fs.StringVar(&spec.Table, "table", "", "table to replay (required)")
	c.fs.StringVar(&spec.Archive, "archive", "", "only this archive id")
	c.fs.StringVar(&spec.ProcessDate, "process-date", "", "only batches holding rows of this date (YYYY-MM-DD)")
	c.fs.Uint64Var(&spec.FromSeq, "from-seq", 0, "start at this rows-stream sequence (default: the stream's first)")
	c.fs.StringVar(&since, "since", "", "start at this time: RFC 3339, YYYY-MM-DD (UTC), or a duration ago (e.g. 6h)")
	c.fs.Var(sizeValue{&memoryBudget}, "memory-budget", "memory budget for buffered chunks and builders (chunks are released beyond: fetched back from the stream), bytes or with a unit: 256MiB")
	zstdLevel := merger.DefaultZstdLevel
	c.fs.IntVar(&zstdLevel, "parquet-zstd-level", zstdLevel, "zstd level of the rewritten Parquet objects (use the mergers' level for byte-identical rewrites)")
	c.fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	c.fs.BoolVar(&spec.Force, "force", false, "commit batches although a data-quality fail rule rejects them (recorded)")
	if err := c.parse(args); err != nil {
		return err
	}
	if spec.Table == "" || s.out == "" {
		return &exitError{code: exitUsage, err: errors.New("usage: sluice replay --table T --out OUT [--archive A] [--process-date D] [--from-seq N | --since TIME]")}
	}
	if since != "" {
		t, err := parseSince(since, time.Now())
		if err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		spec.Since = t
	}
	if err := spec.Validate(); err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	if err := checkMergeValues(memoryBudget, zstdLevel); err != nil {
		return err
	}
	o, err := s.options(c)
	if err != nil {
		return err
	}
	c.mergersConfig = true
	e, closeAll, err := c.setup(ctx, "replay")
	if err != nil {
		return err
	}
	defer closeAll()
	if err := c.bindOut(ctx, e, s.out, false); err != nil {
		return err
	}
	out, err := e.Bucket(ctx, s.out, o.S3)
	if err != nil {
		return err
	}
	res, err := merger.Replay(ctx, merger.Config{MemoryBudget: memoryBudget, ZstdLevel: zstdLevel, SpillDir: filepath.Join(c.state, "spill")},
		merger.Deps{Bus: e.Bus, Out: out, Partners: e.Partners, Ledger: e.Ledger, Log: e.Log.With("stage", "replay")}, spec)
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	} else {
		printReplay(os.Stdout, res)
	}
	switch {
	case err != nil:
		return &exitError{code: exitFailure, err: err}
	case len(res.Committed) == 0 && !res.Skipped():
		// Nothing matched: a table no batch was ever merged into is a wrong name (a usage error, not
		// a finding a scheduler could wait out).
		if known, kerr := merger.KnownTables(ctx, e.Bus); kerr == nil && !slices.Contains(known, spec.Table) {
			if len(known) > 12 {
				known = append(known[:12], "…")
			}
			return &exitError{code: exitUsage, err: fmt.Errorf("table %q: no batch of it was ever merged (tables: %s)", spec.Table, strings.Join(known, ", "))}
		}
		return &exitError{code: exitFindings}
	case res.Skipped():
		return &exitError{code: exitFindings}
	}
	return nil
}

// parseSince reads an RFC 3339 time, a date (midnight UTC) or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want RFC 3339 (2025-01-02T15:04:05Z), a date (2025-01-02) or a duration ago (6h)", s)
}

func printReplay(w io.Writer, res merger.ReplayResult) {
	fmt.Fprintf(w, "replay %s of table %s: rows stream sequences %d..%d\n", res.ID, res.Table, res.FirstSeq, res.LastSeq)
	if len(res.Committed) == 0 && !res.Skipped() {
		fmt.Fprintln(w, "no batch matched (wrong table name, or outside the stream's retention?)")
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	if len(res.Committed) > 0 {
		fmt.Fprintln(tw, "COMMITTED\tATTEMPT\tMARKER SEQ\tDATES\tOBJECTS\tROWS IN\tROWS OUT\tQUARANTINED\tSCHEMA")
		for _, b := range res.Committed {
			schema := fmt.Sprintf("v%d", b.SchemaVersion)
			if len(b.SchemaChanges) > 0 {
				schema += " (" + strings.Join(b.SchemaChanges, "; ") + ")"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%s\n", b.Archive, b.Attempt, b.MarkerSeq, strings.Join(b.ProcessDates, ","),
				len(b.Objects), b.RowsIn, b.RowsOut, b.Quarantined, schema)
		}
		_ = tw.Flush()
	}
	for _, g := range []struct {
		what string
		bs   []merger.SkippedBatch
	}{{"ABORTED", res.Aborted}, {"INCOMPLETE", res.Incomplete}, {"FAILED", res.Failed}, {"SUPERSEDED", res.Superseded}} {
		if len(g.bs) == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\tATTEMPT\tSEQ\tREASON\n", g.what)
		for _, b := range g.bs {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", b.Archive, b.Attempt, b.Seq, b.Reason)
		}
		_ = tw.Flush()
	}
}
