package summarizer_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/proto/sluicev1"
	"github.com/sluice-dev/sluice/summarizer"
)

// TestStartRetriesWithoutQuorum: a summarizer that starts while its cluster cannot answer (two
// of three nodes down: the events stream cannot be read) retries instead of returning, and
// folds the stream once the nodes are back. Returning stopped `sluice run` on that node.
func TestStartRetriesWithoutQuorum(t *testing.T) {
	c, b := bustest.NewClusterBus(t)
	e := &env{b: b}
	const id = "a0000000000000000001"
	e.pub(t, b.Subjects.Landed(), &sluicev1.ArchiveLanded{ArchiveId: id, Uri: "file:///l/acme_20250102_1.tar.gz", Name: "acme_20250102_1.tar.gz"})
	out, err := objstore.Open(context.Background(), t.TempDir(), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c.Stop(1)
	c.Stop(2)

	var logs bustest.Logs
	s, err := summarizer.New(summarizer.Config{CheckEvery: 20 * time.Millisecond}, summarizer.Deps{Bus: b, Out: out,
		Log: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	r := bustest.Start(t, s.Run)
	r.WaitLog(t, &logs, "the start failing", "summarizer start failing; retrying with backoff until it recovers", time.Minute)
	c.StartNodes(1, 2)
	r.WaitLog(t, &logs, "the stream folded", "summarizer caught up", 2*time.Minute)
	// The line is logged as the fold catches up; the snapshot Status reads is published by the
	// settle that follows it.
	waitStatus(t, s, func(st summarizer.Status) bool {
		return st.CaughtUp && st.Archives[id].Name == "acme_20250102_1.tar.gz"
	})
}
