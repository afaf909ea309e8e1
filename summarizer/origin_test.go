package summarizer_test

import (
	"testing"

	sluicev1 "github.com/sluice-dev/sluice/proto/sluicev1"
	"github.com/sluice-dev/sluice/summarizer"
)

// TestFailureOrigin: the summarizer tells a merger failure (undone once the dead-lettered table
// commits) from an extraction failure (final) by ArchiveFailed.origin, whatever the message id
// says; the ".merger-failed" id suffix is read only for events without an origin
// (TestDeadLetteredTableCommittedLater).
func TestFailureOrigin(t *testing.T) {
	e := newEnv(t, nil)
	s, _ := e.start(t)
	for _, c := range []struct {
		name, id, file, idSuffix string
		origin                   sluicev1.Stage
		want                     summarizer.ArchiveState
	}{
		{"merger origin, another id", "a0000000000000000041", "acme_20250102_1.tar.gz", ".retried", sluicev1.Stage_STAGE_MERGER, summarizer.StateCommitted},
		{"extractor origin, the merger's id", "a0000000000000000042", "acme_20250102_2.tar.gz", ".merger-failed", sluicev1.Stage_STAGE_EXTRACTOR, summarizer.StateFailed},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := goodArchive(c.id, c.file)
			tbl := f.tables[0].name
			e.pub(t, e.b.Subjects.Landed(), f.landed())
			e.pub(t, e.b.Subjects.Extracted(), f.extracted())
			e.pubFailed(t, &sluicev1.ArchiveFailed{ArchiveId: f.id, Reason: "table " + tbl + " failed", TablesAborted: []string{tbl},
				FailedUnixMs: t0.UnixMilli(), Origin: c.origin}, f.id+".0."+tbl+c.idSuffix)
			var seq uint64
			for _, tb := range f.tables { // the failed table committed after all (a retried dead letter)
				seq = e.pub(t, e.b.Subjects.Committed(), e.commit(t, f, tb.name))
			}
			waitStatus(t, s, func(st summarizer.Status) bool { return st.Seq >= seq && st.Archives[f.id].State == c.want })
		})
	}
}
