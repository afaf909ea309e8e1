package merger

import (
	"fmt"
	"testing"
	"time"
)

// TestShutdownDoesNotWaitOutIdlePulls: stopping a merger whose partitions sit in idle pull
// requests returns at once instead of after the pull's expiry (pollWait, 2 s here), and a
// merger started afterwards still commits a new batch: nothing was left pending on the server.
func TestShutdownDoesNotWaitOutIdlePulls(t *testing.T) {
	e := newEnv(t, sinks[0])
	ev := e.committedEvents()
	cfg := testConfig("quick")
	cfg.PinnedTTL = 12 * time.Second // pollWait = min(12s/4, 2s) = 2s
	r := e.start(cfg, nil, nil)
	if r.m.pollWait != 2*time.Second {
		t.Fatalf("pollWait %v, want 2s", r.m.pollWait)
	}
	e.publishBatch(tbatch{archive: "a00000000000000000001", table: "q", per: 2, members: []tmember{
		{name: "q.csv", date: "2025-01-01", batch: "1", header: "id,v", records: csvRows(10, func(i int) string { return fmt.Sprintf("%d,%d", i, i) })},
	}})
	if bc := ev.nextCommitted(t, 30*time.Second); bc.RowsOut != 10 {
		t.Fatalf("rows out %d, want 10", bc.RowsOut)
	}
	time.Sleep(300 * time.Millisecond) // every partition is now inside an idle pull
	start := time.Now()
	r.stop()
	if took := time.Since(start); took > time.Second {
		t.Errorf("Run took %v to return after cancel; want well under the 2s pull expiry", took)
	}

	r2 := e.start(testConfig("after"), nil, nil)
	defer r2.stop()
	e.publishBatch(tbatch{archive: "a00000000000000000002", table: "q", per: 2, members: []tmember{
		{name: "q.csv", date: "2025-01-02", batch: "1", header: "id,v", records: csvRows(7, func(i int) string { return fmt.Sprintf("%d,%d", i, i) })},
	}})
	bc := ev.nextCommitted(t, 30*time.Second)
	if bc.RowsOut != 7 || bc.Merger != "after" {
		t.Fatalf("after restart: committed %d rows by %q, want 7 by after", bc.RowsOut, bc.Merger)
	}
}
