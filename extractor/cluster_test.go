package extractor

import (
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/bus/bustest"
)

// TestRunRetriesStartWithoutQuorum: an extractor that starts while its cluster cannot answer (two
// of three nodes down: its consumer cannot be created) retries instead of returning, and
// extracts once the nodes are back. Returning stopped `sluice run` on that node.
func TestRunRetriesStartWithoutQuorum(t *testing.T) {
	c, b := bustest.NewClusterBus(t)
	c.Stop(1)
	c.Stop(2)

	var logs bustest.Logs
	e, err := New(Config{}, Deps{Bus: b, Log: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	v := &env{b: b, e: e}
	r := bustest.Start(t, e.Run)
	r.WaitLog(t, &logs, "the start failing", "extractor start failing; retrying with backoff until it recovers", time.Minute)
	c.StartNodes(1, 2)
	r.WaitLog(t, &logs, "the consumer started", "consuming landed archives", 2*time.Minute)
	ev := landArchive(t, "a.tar.gz", tarGz(t, file("t_20250101_b1.csv", "a,b\n1,2\n")))
	publishLanded(t, v, ev)
	r.WaitLog(t, &logs, "the archive extracted", "msg=extracted", time.Minute)
	if evs := extractedEvents(t, v); len(evs) != 1 || evs[0].ArchiveId != ev.ArchiveId {
		t.Fatalf("extracted events %v", evs)
	}
}
