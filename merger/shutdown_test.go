package merger

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/objstore"
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
	// Every partition is now inside an idle pull: the server holds a pull request on each.
	eventually(t, 10*time.Second, "idle pulls on every partition", func() bool {
		for p := range uint32(e.bus.Subjects.Partitions) {
			if e.consumerInfo(p).NumWaiting == 0 {
				return false
			}
		}
		return true
	})
	start := time.Now()
	r.stop()
	// Waiting out the pulls would take the longest remaining expiry of eight pulls sent at
	// random moments of their 2 s: 1.5 s or more in 9 runs of 10. The shutdown's own round trips
	// (unpin, presence, flush) take a few ms, more on a loaded machine under -race.
	if took := time.Since(start); took > 1500*time.Millisecond {
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

// TestPartialServerDoesNotStrandPartitions: a merger serving every partition and one serving only
// partition 0 share the work without leaving a partition unserved: balancing counts, per
// partition, only the mergers that serve it. (Counting every live merger made the first release
// half its partitions to a merger that could not take them, and nobody served them again.)
func TestPartialServerDoesNotStrandPartitions(t *testing.T) {
	e := newEnv(t, sinks[0])
	ev := e.committedEvents()
	a := e.start(testConfig("all"), nil, nil)
	cfgB := testConfig("only0")
	cfgB.Partitions = []int{0}
	b := e.start(cfgB, bustest.Connect(t, e.bus), nil)
	eventually(t, 20*time.Second, "both mergers counted", func() bool { return a.m.live.Load() == 2 && b.m.live.Load() == 2 })
	if got := a.m.target(); got < 3 {
		t.Fatalf("merger serving all 4 partitions has target %d; partitions 1-3 have no other server", got)
	}
	// Four batches on every partition.
	perPart := map[uint32]int{}
	tables := 0
	for i := 0; len(perPart) < 4 || slices.Min(slices.Collect(maps.Values(perPart))) < 4; i++ {
		tb := tbatch{archive: fmt.Sprintf("ap%018d", i), table: fmt.Sprintf("table_%d", i), members: []tmember{
			{name: "t.csv", date: "2025-01-01", batch: "1", header: "id,v", records: csvRows(5, func(j int) string { return fmt.Sprintf("%d,%d", j, j) })},
		}}
		n := bus.Partition(tb.archive, tb.table, e.bus.Subjects.Partitions)
		if perPart[n] >= 4 {
			continue
		}
		perPart[n]++
		tables++
		e.publishBatch(tb)
	}
	rows := int64(0)
	for range tables {
		rows += ev.nextCommitted(t, 30*time.Second).RowsOut
	}
	if rows != int64(tables)*5 {
		t.Fatalf("committed %d rows, want %d", rows, tables*5)
	}
}

// failSecondPart fails the first Create of every object's second part (…-0001.parquet): a
// transient S3 error in the middle of a rotated, multi-row-group commit.
type failSecondPart struct {
	objstore.Bucket
	failed sync.Map
}

func (b *failSecondPart) Create(ctx context.Context, key string) (objstore.Writer, error) {
	if strings.HasSuffix(key, "-0001.parquet") {
		if _, again := b.failed.LoadOrStore(key, true); !again {
			return nil, errors.New("injected: 503 slow down")
		}
	}
	return b.Bucket.Create(ctx, key)
}

// TestPipelinedRowGroupsFailAndRetry: row groups are encoded on a goroutine of their own while the
// next is parsed. A part that cannot be created half-way fails the attempt without leaking Arrow
// memory or budget, and the retry commits every row exactly once across the rotated parts.
func TestPipelinedRowGroupsFailAndRetry(t *testing.T) {
	e := newEnv(t, sinks[0])
	fb := &failSecondPart{Bucket: e.out}
	e.out = fb
	ev := e.committedEvents()
	cfg := testConfig("pipe")
	cfg.RowGroupBytes = 2 << 10  // many row groups
	cfg.MaxObjectBytes = 8 << 10 // several parts
	r := e.start(cfg, nil, nil)
	const rows = 3000
	e.publishBatch(tbatch{archive: "pp000000000000000001", table: "pipe", per: 100, members: []tmember{
		{name: "p.csv", date: "2025-01-01", batch: "1", header: "id,v,s", records: csvRows(rows, func(i int) string { return fmt.Sprintf("%d,%d.5,text-%d", i, i, i%97) })},
	}})
	bc := ev.nextCommitted(t, 60*time.Second)
	if bc.RowsOut != rows || len(bc.Objects) < 2 {
		t.Fatalf("committed %d rows in %d objects; want %d rows in several", bc.RowsOut, len(bc.Objects), rows)
	}
	if _, ok := fb.failed.Load(bc.Objects[1].Key); !ok {
		t.Fatalf("the injected failure never happened (second part %s)", bc.Objects[1].Key)
	}
	seen := map[string]int{}
	for _, k := range e.keys("pipe/") {
		for _, row := range e.readParquet(k).rows {
			seen[row[0]]++
		}
	}
	if len(seen) != rows {
		t.Fatalf("%d distinct ids read back, want %d", len(seen), rows)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("id %s read %d times", id, n)
		}
	}
	eventually(t, 10*time.Second, "budget back to zero", func() bool { return r.m.mem.used.Load() == 0 })
}
