package merger

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/table"
)

// gateBucket holds every Put until want of them have started, so that writes made one after the
// other never get through it (they fail after a bound instead), and records which Puts finished
// before each Parquet object was committed.
type gateBucket struct {
	objstore.Bucket
	want int

	mu       sync.Mutex
	started  int
	all      chan struct{} // closed when want Puts have started
	done     map[string]bool
	serial   []string // Puts that waited out the bound: not written together
	early    []string // Parquet objects committed before a Put of their batch finished
	putsSeen []string
}

func (g *gateBucket) Put(ctx context.Context, key string, r io.Reader) error {
	g.mu.Lock()
	g.started++
	g.putsSeen = append(g.putsSeen, key)
	if g.started == g.want {
		close(g.all)
	}
	g.mu.Unlock()
	select {
	case <-g.all:
	case <-time.After(10 * time.Second):
		g.mu.Lock()
		g.serial = append(g.serial, key)
		g.mu.Unlock()
	}
	err := g.Bucket.Put(ctx, key, r)
	if err == nil {
		g.mu.Lock()
		g.done[key] = true
		g.mu.Unlock()
	}
	return err
}

func (g *gateBucket) Create(ctx context.Context, key string) (objstore.Writer, error) {
	w, err := g.Bucket.Create(ctx, key)
	if err != nil {
		return nil, err
	}
	return &gateWriter{Writer: w, g: g, key: key}, nil
}

type gateWriter struct {
	objstore.Writer
	g   *gateBucket
	key string
}

func (w *gateWriter) Commit(ctx context.Context) error {
	w.g.mu.Lock()
	if len(w.g.done) < w.g.want {
		w.g.early = append(w.g.early, fmt.Sprintf("%s (finished before it: %v)", w.key, w.g.done))
	}
	w.g.mu.Unlock()
	return w.Writer.Commit(ctx)
}

// TestCommitWritesItsObjectsTogether: a batch's schema document, data-quality results and
// profiles are written at the same time (one wait for their durability, not three in a row), and
// its Parquet object is committed only after all of them are stored.
func TestCommitWritesItsObjectsTogether(t *testing.T) {
	e := newEnv(t, sinks[0])
	g := &gateBucket{Bucket: e.out, want: 3, all: make(chan struct{}), done: map[string]bool{}}
	e.out = g
	ev := e.committedEvents()
	partners := &config.File{Partners: []config.Partner{{Name: "default", Tables: map[string]config.TableConfig{
		"together": {Quality: &config.Quality{Columns: map[string]*config.ColumnRules{"b": {Regex: "^x[0-9]+$"}}}},
	}}}}
	e.start(testConfig("m1"), nil, partners)
	e.publishBatch(tbatch{archive: "bc000000000000000001", table: "together", members: []tmember{
		{name: "t.csv", date: "2025-01-01", batch: "1", header: "a,b", records: csvRows(20, func(i int) string { return fmt.Sprintf("%d,x%d", i, i) })},
	}})
	bc := ev.nextCommitted(t, 30*time.Second)
	if bc.RowsOut != 20 || len(bc.Objects) != 1 {
		t.Fatalf("committed %v", bc)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.putsSeen) != 3 || !g.done["_schemas/together/v1.json"] {
		t.Fatalf("puts %v, want the schema document, the results and the profiles", g.putsSeen)
	}
	if len(g.serial) > 0 {
		t.Errorf("written one after the other: %v", g.serial)
	}
	if len(g.early) > 0 {
		t.Errorf("Parquet committed before its batch's other objects: %v", g.early)
	}
	if !g.done[strings.Replace(bc.Objects[0].Key, "together/", "_dq/results/together/", 1)] ||
		!g.done[strings.Replace(bc.Objects[0].Key, "together/", "_dq/profiles/together/", 1)] {
		t.Errorf("object %s: results or profiles missing among %v", bc.Objects[0].Key, g.done)
	}
}

// TestQuarantineKeepsRawBytes: a record quarantined for invalid UTF-8 keeps its exact bytes
// (raw_base64) next to the readable text, so the partner's bytes can be recovered.
func TestQuarantineKeepsRawBytes(t *testing.T) {
	e := newEnv(t, sinks[0])
	ev := e.committedEvents()
	e.start(testConfig("m1"), nil, nil)
	e.publishBatch(tbatch{archive: "bd000000000000000001", table: "bytes", members: []tmember{
		{name: "b.csv", date: "2025-01-01", batch: "1", header: "id,name", records: []string{"1,ok\n", "2,caf\xe9\n"}},
	}})
	bc := ev.nextCommitted(t, 30*time.Second)
	if bc.RowsOut != 1 || bc.Quarantined != 1 {
		t.Fatalf("committed %v", bc)
	}
	q := e.quarantineLines(bc.QuarantineKey)
	raw, err := base64.StdEncoding.DecodeString(q[0].RawBase64)
	if len(q) != 1 || q[0].Kind != table.KindInvalidUTF8 || err != nil || string(raw) != "2,caf\xe9" || q[0].Raw != "2,caf\uFFFD" {
		t.Fatalf("quarantine lines %+v (%v)", q, err)
	}
}

// refusingBucket refuses every new object at once, as a full or read-only output would.
type refusingBucket struct{ objstore.Bucket }

func (refusingBucket) Create(context.Context, string) (objstore.Writer, error) {
	return nil, errors.New("create refused")
}

// TestCommitFailingEarlyOnOneCPU (a review): a commit that fails before anything blocks (the output
// refuses the object at once) returns before the schema document's goroutine has run — always so
// with one CPU, as in a container limited to one. That goroutine read the commit's result, nil by
// then: the merger crashed. Now the commit is retried, as any failed write is.
func TestCommitFailingEarlyOnOneCPU(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	e := newEnv(t, sinks[0])
	e.out = refusingBucket{Bucket: e.out}
	cfg := testConfig("m1")
	r := e.start(cfg, nil, nil)
	e.publishBatch(tbatch{archive: "bf000000000000000001", table: "early", members: []tmember{
		{name: "t.csv", date: "2025-01-01", batch: "1", header: "a,b", records: csvRows(5, func(i int) string { return fmt.Sprintf("%d,x%d", i, i) })},
	}})
	eventually(t, 30*time.Second, "commit retried", func() bool { return r.metric(t, "sluice_merger_commit_retries_total") >= 2 })
}
