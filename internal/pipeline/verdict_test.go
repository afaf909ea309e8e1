package pipeline_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/pipeline"
	"github.com/sluice-dev/sluice/summarizer"
)

// TestVerdict: the exit code and findings of a once run, branch by branch, on a fold's status:
// 0 only when every archive found is committed and checked and every summary it touches is
// written, readable in the output and clean; 2 for findings the summaries record; 1 when the
// pipeline cannot vouch for a result.
func TestVerdict(t *testing.T) {
	ctx := context.Background()
	out, err := objstore.Open(ctx, t.TempDir(), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = out.Close() })
	const written = "_summaries/process_date=2025-03-01/summary.json"
	if err := out.Put(ctx, written, strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	good := summarizer.ArchiveStatus{ArchiveID: "a1", Name: "p_20250301_1.tar.gz", State: summarizer.StateCommitted,
		Checked: true, CheckOK: true, Dates: []string{"2025-03-01"}, Tables: 3}
	date := summarizer.DateStatus{Date: "2025-03-01", Written: true, Key: written, Complete: true, CheckOK: true, Quality: "OK"}
	for _, tc := range []struct {
		name    string
		archive func(*summarizer.ArchiveStatus)
		date    func(*summarizer.DateStatus)
		noEvent bool // a1 is not in the fold
		done    bool // a1 was committed by an earlier run
		code    int
		finding string
	}{
		{name: "clean", code: 0},
		{name: "no events", noEvent: true, code: 1, finding: "archive a1: no events (not landed?)"},
		{name: "no events, committed by an earlier run", noEvent: true, done: true, code: 0},
		{name: "pending", archive: func(a *summarizer.ArchiveStatus) { a.State = summarizer.StatePending }, code: 1, finding: "not finished"},
		{name: "check failed", archive: func(a *summarizer.ArchiveStatus) { a.CheckOK, a.Reason = false, "rows in 5 != footer rows 4" },
			code: 1, finding: "check failed: rows in 5 != footer rows 4"},
		{name: "failed", archive: func(a *summarizer.ArchiveStatus) { a.State, a.Reason = summarizer.StateFailed, "corrupt gzip" },
			code: 2, finding: "failed: corrupt gzip"},
		{name: "failed with rows committed", archive: func(a *summarizer.ArchiveStatus) {
			a.State, a.Reason, a.RowsOut = summarizer.StateFailed, "archive not found", 7
		}, code: 2, finding: "failed: archive not found — 7 rows of it were committed all the same"},
		{name: "no table", archive: func(a *summarizer.ArchiveStatus) {
			a.Tables, a.Skipped, a.SkipReasons = 0, 2, []string{"not a table file"}
		},
			code: 2, finding: "no member was taken as a table: 2 members skipped (not a table file)"},
		{name: "quarantined", archive: func(a *summarizer.ArchiveStatus) { a.Quarantined = 7 }, code: 2, finding: "7 rows quarantined"},
		{name: "rejected", archive: func(a *summarizer.ArchiveStatus) { a.Rejected = 1 }, code: 2, finding: "1 members rejected"},
		{name: "summary not written", date: func(d *summarizer.DateStatus) { d.Written = false }, code: 1, finding: "2025-03-01: summary not written"},
		{name: "summary check", date: func(d *summarizer.DateStatus) { d.CheckOK = false }, code: 2, finding: "the summary's check is not OK"},
		{name: "missing sources", date: func(d *summarizer.DateStatus) { d.Missing = []string{"acme"} }, code: 2,
			finding: "expected sources missing after the deadline: acme"},
		{name: "DQ FAIL", date: func(d *summarizer.DateStatus) { d.Quality = "FAIL" }, code: 2, finding: "DQ FAIL"},
		{name: "DQ WARN", date: func(d *summarizer.DateStatus) { d.Quality = "WARN" }, code: 0},
		{name: "summary not readable", date: func(d *summarizer.DateStatus) { d.Key = "_summaries/process_date=2025-03-01/gone.json" },
			code: 1, finding: "summary " + out.URI("_summaries/process_date=2025-03-01/gone.json") + " not readable"},
		// Code 1 wins over code 2, whichever comes first.
		{name: "1 after 2", archive: func(a *summarizer.ArchiveStatus) { a.Quarantined = 1 }, date: func(d *summarizer.DateStatus) { d.Written = false },
			code: 1, finding: "summary not written"},
		{name: "2 after 1", archive: func(a *summarizer.ArchiveStatus) { a.State = summarizer.StatePending }, date: func(d *summarizer.DateStatus) { d.Missing = []string{"acme"} },
			code: 1, finding: "expected sources missing after the deadline: acme"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, d := good, date
			if tc.archive != nil {
				tc.archive(&a)
			}
			if tc.date != nil {
				tc.date(&d)
			}
			st := summarizer.Status{Archives: map[string]summarizer.ArchiveStatus{"a1": a}, Dates: map[string]summarizer.DateStatus{d.Date: d}}
			if tc.noEvent {
				delete(st.Archives, "a1")
			}
			code, findings := pipeline.Verdict(ctx, st, []string{"a1"}, map[string]bool{"a1": tc.done}, out)
			all := strings.Join(findings, "\n")
			if code != tc.code || (tc.finding == "") != (len(findings) == 0) || !strings.Contains(all, tc.finding) {
				t.Fatalf("code %d, findings:\n%s\nwant code %d and a finding saying %q", code, all, tc.code, tc.finding)
			}
		})
	}
}
