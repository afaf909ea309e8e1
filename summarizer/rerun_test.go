package summarizer_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/ledger"
	sluicev1 "github.com/sluice-dev/sluice/proto/sluicev1"
	"github.com/sluice-dev/sluice/summarizer"
)

// pubFailed publishes an ArchiveFailed, as the merger does when it dead-letters a batch (its
// message id ends with ".merger-failed") or as the extractor does.
func (e *env) pubFailed(t *testing.T, ev *sluicev1.ArchiveFailed, msgID string) uint64 {
	t.Helper()
	data, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(e.b.Subjects.Failed())
	m.Data = data
	m.Header.Set(nats.MsgIdHdr, msgID)
	ack, err := e.b.JS.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// TestDeadLetteredTableCommittedLater: an archive failed only because the merger dead-lettered
// one table's batch is committed once that table commits after all (`sluice dlq retry`
// re-merges it, or `sluice replay`), and the summary marks the table as re-run; a failure from
// the extractor stays, whatever commits afterwards.
func TestDeadLetteredTableCommittedLater(t *testing.T) {
	e := newEnv(t, nil)
	s, _ := e.start(t)
	sub := e.b.Subjects
	f := goodArchive("a0000000000000000031", "acme_20250102_1.tar.gz")
	if _, _, err := e.led.Create(context.Background(), ledger.Record{ArchiveID: f.id, Name: f.name, URI: "file:///landing/" + f.name}); err != nil {
		t.Fatal(err)
	}
	e.pub(t, sub.Landed(), f.landed())
	e.pub(t, sub.Extracted(), f.extracted())
	last := f.tables[len(f.tables)-1].name
	for _, tb := range f.tables[:len(f.tables)-1] {
		e.pub(t, sub.Committed(), e.commit(t, f, tb.name))
	}
	e.pubFailed(t, &sluicev1.ArchiveFailed{ArchiveId: f.id, Reason: "table " + last + " dead-lettered by the merger: missing 1 of 3 chunks",
		TablesAborted: []string{last}, FailedUnixMs: t0.UnixMilli()}, f.id+".0."+last+".merger-failed")
	st := waitFor(t, s, f.id)
	if a := st.Archives[f.id]; a.State != summarizer.StateFailed || !strings.Contains(a.Reason, "dead-lettered") {
		t.Fatalf("after the dead letter: %+v", a)
	}
	// The dead-lettered table is never committed, so never checked: it does not leave the date's
	// check PENDING (with nothing pending) once the committed tables are checked.
	waitStatus(t, s, func(st summarizer.Status) bool { return st.Dates[day].Written && st.Dates[day].CheckOK })
	if doc, _ := e.summary(t, day); doc.Check != summarizer.CheckOK || len(doc.Failed) != 1 {
		t.Errorf("summary after the dead letter: check %s, failed %+v", doc.Check, doc.Failed)
	}

	c := e.commit(t, f, last)
	c.Replay = true
	seq := e.pub(t, sub.Committed(), c)
	st = waitStatus(t, s, func(st summarizer.Status) bool {
		a := st.Archives[f.id]
		return st.Seq >= seq && a.State == summarizer.StateCommitted && a.CheckOK && st.Dates[day].Written
	})
	rec, _, _ := e.led.Get(context.Background(), f.id)
	if rec.State != ledger.Committed {
		t.Fatalf("ledger after the re-merge %+v", rec)
	}
	doc, txt := e.summary(t, day)
	if len(doc.Failed) != 0 || doc.Totals.Committed != 1 {
		t.Fatalf("summary after the re-merge: failed %+v totals %+v", doc.Failed, doc.Totals)
	}
	for _, x := range doc.Archives[0].Tables {
		if x.Replayed != (x.Table == last) {
			t.Errorf("table %s replayed %v", x.Table, x.Replayed)
		}
	}
	if !strings.Contains(txt, "RE-RUN") {
		t.Errorf("summary.txt lacks the re-run section:\n%s", txt)
	}

	// An extraction failure is not undone by commits.
	g := goodArchive("a0000000000000000032", "acme_20250102_2.tar.gz")
	e.pub(t, sub.Landed(), g.landed())
	e.pub(t, sub.Extracted(), g.extracted())
	e.pubFailed(t, &sluicev1.ArchiveFailed{ArchiveId: g.id, Name: g.name, Reason: "gzip: unexpected EOF",
		TablesAborted: []string{g.tables[0].name}, FailedUnixMs: t0.UnixMilli()}, g.id+".0.failed")
	e.pubFailed(t, &sluicev1.ArchiveFailed{ArchiveId: g.id, Reason: "table x dead-lettered by the merger",
		TablesAborted: []string{g.tables[0].name}, FailedUnixMs: t0.UnixMilli()}, g.id+".0."+g.tables[0].name+".merger-failed")
	for _, tb := range g.tables {
		seq = e.pub(t, sub.Committed(), e.commit(t, g, tb.name))
	}
	st = waitSeq(t, s, seq)
	if a := st.Archives[g.id]; a.State != summarizer.StateFailed || a.Reason != "gzip: unexpected EOF" {
		t.Fatalf("extraction failure undone: %+v", a)
	}
}
