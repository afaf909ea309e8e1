package merger

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/internal/objstore"
)

func TestReplay(t *testing.T) {
	for _, sk := range sinks {
		t.Run(sk.name, func(t *testing.T) {
			t.Run("ByteIdenticalAndProcessDate", func(t *testing.T) { testReplayByteIdentical(t, sk) })
			t.Run("FewerPartsRemovesStale", func(t *testing.T) { testReplayFewerParts(t, sk) })
		})
	}
	dir := sinks[0]
	t.Run("HintChange", func(t *testing.T) { testReplayHintChange(t, dir) })
	t.Run("AttemptsAbortsRanges", func(t *testing.T) { testReplayAttempts(t, dir) })
	t.Run("WhileMerging", func(t *testing.T) { testReplayWhileMerging(t, dir) })
	t.Run("OverBudget", func(t *testing.T) { testReplayOverBudget(t, dir) })
}

// testReplayFewerParts: a batch committed again in fewer objects (a replay with a larger
// MaxObjectBytes) removes the objects of the earlier commit past its own count: they hold the
// same rows, which the table would otherwise hold twice.
func testReplayFewerParts(t *testing.T, sk sink) {
	e := newEnv(t, sk)
	ev := e.committedEvents()
	e.start(restartConfig("m1"), nil, nil)
	tb := restartBatch()
	e.publishBatch(tb)
	bc := ev.nextCommitted(t, 60*time.Second)
	e.allAcked()
	perDate := map[string]int{}
	for _, o := range bc.Objects {
		perDate[o.GetProcessDate()]++
	}
	if perDate["2025-01-01"] < 2 || perDate["2025-01-02"] < 2 || bc.RowsOut != 4000 {
		t.Fatalf("first commit: %d rows in objects per date %v; want several per date", bc.RowsOut, perDate)
	}
	before := e.keys("r/")

	res := e.replay(ReplaySpec{Table: "r"}, nil, nil, func(c *Config) { c.MaxObjectBytes = 64 << 20 })
	if got := committedArchives(res); !slices.Equal(got, []string{tb.archive + "/0"}) {
		t.Fatalf("replay committed %v", got)
	}
	rb := ev.nextCommitted(t, 10*time.Second)
	var want []string
	for _, o := range rb.Objects {
		want = append(want, o.GetKey())
	}
	slices.Sort(want)
	if len(want) != 2 || !slices.Contains(before, want[0]) || !slices.Contains(before, want[1]) {
		t.Fatalf("replay objects %v; want the first part of each date's group, among %v", want, before)
	}
	if got := e.keys("r/"); !slices.Equal(got, want) {
		t.Fatalf("after the replay the table holds %v, want only the replay's %v", got, want)
	}
	n := 0
	for _, k := range want {
		n += len(e.readParquet(k).rows)
	}
	if n != 4000 {
		t.Fatalf("%d rows read back, want 4000", n)
	}
}

// testReplayOverBudget: a replay whose budget holds a fraction of the batch releases its chunks
// as they arrive and gives up their parsed rows; the commit fetches every chunk back from the
// rows stream and parses it. The rows read back are the merger's, in the same order.
func testReplayOverBudget(t *testing.T, sk sink) {
	e := newEnv(t, sk)
	ev := e.committedEvents()
	e.start(testConfig("m1"), nil, nil)
	const rows = 100000
	rng := rand.New(rand.NewPCG(1, 2))
	tb := tbatch{archive: archiveOn("rb", "big", 0, 4), table: "big", per: 400, members: []tmember{
		{name: "big.csv", date: "2025-01-01", batch: "1", header: "id,v,pad", records: csvRows(rows, func(i int) string {
			return fmt.Sprintf("%d,%d,%x", i, rng.Int64(), rng.Uint64())
		})},
	}}
	e.publishBatch(tb)
	ev.nextCommitted(t, 60*time.Second)
	e.allAcked()
	read := func() (ids, vs []string) {
		for _, k := range e.keys("big/") {
			td := e.readParquet(k)
			i, _, _ := td.column("id")
			v, _, _ := td.column("v")
			ids, vs = append(ids, i...), append(vs, v...)
		}
		return ids, vs
	}
	ids, vs := read()
	if len(ids) != rows {
		t.Fatalf("merger wrote %d rows", len(ids))
	}
	res := e.replay(ReplaySpec{Table: "big"}, nil, nil, func(c *Config) { c.MemoryBudget, c.RowGroupBytes = 1<<20, 256<<10 })
	if got := committedArchives(res); !slices.Equal(got, []string{tb.archive + "/0"}) {
		t.Fatalf("replay committed %v", got)
	}
	if res.RefetchedBytes == 0 {
		t.Fatal("no released chunk was fetched back from the stream")
	}
	if bc := ev.nextCommitted(t, 10*time.Second); !bc.Replay || bc.RowsOut != rows {
		t.Fatalf("replay event %v", bc)
	}
	if rids, rvs := read(); !slices.Equal(rids, ids) || !slices.Equal(rvs, vs) {
		t.Fatalf("replay over the budget read back %d rows, not the merger's %d", len(rids), len(ids))
	}
}

// ordersBatch is one member of table orders for date: id (string), zip and score (int64), note.
func ordersBatch(archive string, attempt uint32, date string, n int) tbatch {
	return tbatch{archive: archive, attempt: attempt, table: "orders", per: 3, members: []tmember{{
		name: "orders_" + strings.ReplaceAll(date, "-", "") + "_1.csv", date: date, batch: "1", header: "id,zip,score,note",
		records: csvRows(n, func(i int) string { return fmt.Sprintf("%s-%d,%d,%d,n%d", archive[:6], i, 10000+i, i%7, i) }),
	}}}
}

// replay runs Replay against the env's bus and bucket with a checked allocator of its own.
func (e *env) replay(spec ReplaySpec, partners *config.File, led *ledger.Ledger, mutate ...func(*Config)) ReplayResult {
	e.t.Helper()
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	cfg := testConfig("replay")
	cfg.SpillDir = e.t.TempDir()
	for _, m := range mutate {
		m(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Replay(ctx, cfg, Deps{Bus: e.bus, Out: e.out, Partners: partners, Log: e.log.With("merger", "replay"),
		Alloc: alloc, Ledger: led}, spec)
	if err != nil {
		e.t.Fatalf("replay %+v: %v", spec, err)
	}
	alloc.AssertSize(e.t, 0)
	return res
}

// durable is what a replay must leave untouched on a merger consumer.
type durable struct {
	delivered, ackFloor     uint64
	ackPending, redelivered int
	pending                 uint64
}

func (e *env) durables() map[string]durable {
	e.t.Helper()
	out := map[string]durable{}
	for p := range e.bus.Subjects.Partitions {
		name := fmt.Sprintf("merger-p%d", p)
		c, err := e.bus.JS.Consumer(context.Background(), e.bus.Subjects.RowsStream(), name)
		if err != nil {
			e.t.Fatal(err)
		}
		info, err := c.Info(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		out[name] = durable{info.Delivered.Stream, info.AckFloor.Stream, info.NumAckPending, info.NumRedelivered, info.NumPending}
	}
	return out
}

func (e *env) snapshot(prefix string) map[string][]byte {
	e.t.Helper()
	out := map[string][]byte{}
	for _, k := range e.keys(prefix) {
		out[k] = e.get(k)
	}
	return out
}

// writes records the keys of the objects written through a bucket (committed, or Put).
type writes struct {
	objstore.Bucket
	mu   sync.Mutex
	keys map[string]bool
}

func recordWrites(b objstore.Bucket) *writes { return &writes{Bucket: b, keys: map[string]bool{}} }

func (w *writes) add(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.keys[key] = true
}

func (w *writes) wrote(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.keys[key]
}

func (w *writes) Create(ctx context.Context, key string) (objstore.Writer, error) {
	ow, err := w.Bucket.Create(ctx, key)
	if err != nil {
		return nil, err
	}
	return &recordedWriter{Writer: ow, w: w, key: key}, nil
}

func (w *writes) Put(ctx context.Context, key string, r io.Reader) error {
	err := w.Bucket.Put(ctx, key, r)
	if err == nil {
		w.add(key)
	}
	return err
}

type recordedWriter struct {
	objstore.Writer
	w   *writes
	key string
}

func (rw *recordedWriter) Commit(ctx context.Context) error {
	err := rw.Writer.Commit(ctx)
	if err == nil {
		rw.w.add(rw.key)
	}
	return err
}

func (e *env) lastSeq() uint64 {
	e.t.Helper()
	s, err := e.bus.JS.Stream(context.Background(), e.bus.Subjects.RowsStream())
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.LastSeq
}

func (e *env) allAcked() {
	e.t.Helper()
	for p := range uint32(e.bus.Subjects.Partitions) {
		eventually(e.t, 20*time.Second, "acks", func() bool { return e.ackPending(p) == 0 })
	}
}

func committedArchives(res ReplayResult) []string {
	var out []string
	for _, c := range res.Committed {
		out = append(out, fmt.Sprintf("%s/%d", c.Archive, c.Attempt))
	}
	return out
}

func skipped(bs []SkippedBatch) []string {
	var out []string
	for _, b := range bs {
		out = append(out, fmt.Sprintf("%s/%d", b.Archive, b.Attempt))
	}
	return out
}

// testReplayByteIdentical: replaying committed data rewrites byte-identical objects, publishes
// replay events and leaves the durable consumers as they were; --process-date rewrites only
// the batches of that date.
func testReplayByteIdentical(t *testing.T, sk sink) {
	e := newEnv(t, sk)
	ev := e.committedEvents()
	e.start(testConfig("m1"), nil, nil)
	a := ordersBatch("ra0000000000000000a1", 0, "2025-01-01", 20)
	b := ordersBatch("ra0000000000000000b2", 0, "2025-01-02", 11)
	other := tbatch{archive: a.archive, table: "other", members: []tmember{
		{name: "other_20250101_1.csv", date: "2025-01-01", batch: "1", header: "k,v", records: csvRows(4, func(i int) string { return fmt.Sprintf("%d,x", i) })},
	}}
	for _, tb := range []tbatch{a, b, other} {
		e.publishBatch(tb)
	}
	for range 3 {
		if bc := ev.nextCommitted(t, 30*time.Second); bc.Replay {
			t.Fatalf("normal commit says replay: %v", bc)
		}
	}
	e.allAcked()
	before := e.snapshot("")
	cons := e.durables()

	res := e.replay(ReplaySpec{Table: "orders"}, nil, nil)
	if got := committedArchives(res); !slices.Equal(got, []string{a.archive + "/0", b.archive + "/0"}) || res.Skipped() {
		t.Fatalf("replay committed %v, result %+v", got, res)
	}
	if res.FirstSeq != 1 || res.LastSeq != e.lastSeq() {
		t.Fatalf("range %d..%d, stream last %d", res.FirstSeq, res.LastSeq, e.lastSeq())
	}
	for range 2 {
		bc := ev.nextCommitted(t, 10*time.Second)
		if !bc.Replay || bc.Merger != "replay" || bc.Table != "orders" || bc.RowsOut != bc.RowsIn {
			t.Fatalf("replay event: %v", bc)
		}
	}
	after := e.snapshot("")
	if len(after) != len(before) {
		t.Fatalf("objects before %d, after %d", len(before), len(after))
	}
	for k, v := range before {
		if !bytes.Equal(after[k], v) {
			t.Errorf("%s changed on replay", k)
		}
	}
	if got := e.durables(); !mapsEqual(got, cons) {
		t.Fatalf("durable consumers changed by the replay:\nbefore %+v\nafter  %+v", cons, got)
	}

	// --process-date 2025-01-02: only b's object is rewritten (seen by recording the replay's
	// writes, not by modification times, which S3 keeps to the second).
	rec := recordWrites(e.out)
	e.out = rec
	res = e.replay(ReplaySpec{Table: "orders", ProcessDate: "2025-01-02"}, nil, nil)
	e.out = rec.Bucket
	if got := committedArchives(res); !slices.Equal(got, []string{b.archive + "/0"}) {
		t.Fatalf("process-date replay committed %v", got)
	}
	if d := res.Committed[0].ProcessDates; !slices.Equal(d, []string{"2025-01-02"}) {
		t.Fatalf("dates %v", d)
	}
	for _, k := range e.keys("") {
		rewritten := rec.wrote(k)
		want := strings.HasPrefix(k, "orders/process_date=2025-01-02/") || // the data, and its profiles and results
			strings.HasPrefix(k, "_dq/profiles/orders/process_date=2025-01-02/") || strings.HasPrefix(k, "_dq/results/orders/process_date=2025-01-02/")
		if rewritten != want {
			t.Errorf("%s: rewritten %v, want %v", k, rewritten, want)
		}
		if !bytes.Equal(e.get(k), before[k]) {
			t.Errorf("%s changed on the process-date replay", k)
		}
	}
	if got := e.durables(); !mapsEqual(got, cons) {
		t.Fatalf("durable consumers changed by the replay:\nbefore %+v\nafter  %+v", cons, got)
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// testReplayHintChange: a replay after a hint (may widen) and an override (strict) were added
// to the partner config evolves the schema and rewrites the objects with the new types.
func testReplayHintChange(t *testing.T, sk sink) {
	e := newEnv(t, sk)
	ev := e.committedEvents()
	e.start(testConfig("m1"), nil, nil)
	a := ordersBatch("rh0000000000000000a1", 0, "2025-02-01", 9)
	e.publishBatch(a)
	bc := ev.nextCommitted(t, 30*time.Second)
	key := bc.Objects[0].Key
	td := e.readParquet(key)
	for col, want := range map[string]arrow.DataType{"zip": arrow.PrimitiveTypes.Int64, "score": arrow.PrimitiveTypes.Int64} {
		if _, typ, _ := td.column(col); !arrow.TypeEqual(typ, want) {
			t.Fatalf("before: %s is %v, want %v", col, typ, want)
		}
	}
	e.allAcked()

	partners := &config.File{Partners: []config.Partner{{Name: "default", Tables: map[string]config.TableConfig{
		"orders": {Hints: map[string]string{"zip": "string"}, Overrides: map[string]string{"score": "float64"}},
	}}}}
	if err := partners.Validate(); err != nil {
		t.Fatal(err)
	}
	res := e.replay(ReplaySpec{Table: "orders", Archive: a.archive}, partners, nil)
	if len(res.Committed) != 1 || res.Committed[0].SchemaVersion != 2 || len(res.Committed[0].SchemaChanges) != 2 {
		t.Fatalf("replay: %+v", res)
	}
	td2 := e.readParquet(key)
	zip, zt, _ := td2.column("zip")
	score, st, _ := td2.column("score")
	if !arrow.TypeEqual(zt, arrow.BinaryTypes.String) || !arrow.TypeEqual(st, arrow.PrimitiveTypes.Float64) {
		t.Fatalf("after: zip %v score %v", zt, st)
	}
	zip0, _, _ := td.column("zip")
	score0, _, _ := td.column("score")
	if !slices.Equal(zip, zip0) || !slices.Equal(score, score0) || len(td2.rows) != 9 {
		t.Fatalf("values changed: zip %v / %v, score %v / %v", zip0, zip, score0, score)
	}
	if !e.exists("_schemas/orders/v2.json") {
		t.Fatal("schema v2 document missing")
	}
	bc = ev.nextCommitted(t, 10*time.Second)
	if !bc.Replay || bc.SchemaVersion != 2 || len(bc.SchemaChanges) != 2 {
		t.Fatalf("replay event: %v", bc)
	}
}

// testReplayAttempts: the latest attempt of an archive wins; an aborted latest attempt is
// skipped and reported; a late chunk completes a batch; ranges by sequence, time and archive;
// the ledger counts replays. No merger runs: the replay alone reads the stream.
func testReplayAttempts(t *testing.T, sk sink) {
	e := newEnv(t, sk)
	ev := e.committedEvents()
	kv, err := e.bus.Ledger(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	led := ledger.New(kv, nil)

	a0 := ordersBatch("rt0000000000000000a1", 0, "2025-03-01", 5)
	a1 := a0
	a1.attempt = 1
	b0 := ordersBatch("rt0000000000000000b2", 0, "2025-03-01", 7)
	b1 := b0
	b1.attempt = 1
	e.publishBatch(a0)
	e.publishBatch(b0)
	chunks, _, _ := a1.msgs(e.bus.Subjects)
	e.publish(chunks[0])
	e.publish(a1.abortMsg(e.bus.Subjects, "member 3 is a symlink"))
	b1First := e.lastSeq() + 1
	e.publishBatch(b1)

	// The stream stamps messages with the server's wall clock, which the test cannot inject:
	// these pauses are the gap in time that the Since range under test selects on, not a wait
	// for anything, so that every message before has an earlier and every one after a later
	// timestamp whatever the clock's resolution.
	time.Sleep(20 * time.Millisecond)
	since := time.Now()
	time.Sleep(20 * time.Millisecond)
	late := ordersBatch("rt0000000000000000c3", 0, "2025-03-02", 9) // chunks 0,1,2: chunk 1 after the marker
	lc, lm, _ := late.msgs(e.bus.Subjects)
	e.publish(lc[0], lc[2], lm)
	missing := ordersBatch("rt0000000000000000d4", 0, "2025-03-02", 6) // chunk 1 never comes
	mc, mm, _ := missing.msgs(e.bus.Subjects)
	e.publish(mc[0], mm)
	e.publish(lc[1])
	for _, id := range []string{b0.archive, late.archive} {
		if _, _, err := led.Create(context.Background(), ledger.Record{ArchiveID: id, Name: id + ".tar.gz"}); err != nil {
			t.Fatal(err)
		}
	}

	res := e.replay(ReplaySpec{Table: "orders"}, nil, led)
	if got, want := committedArchives(res), []string{b1.archive + "/1", late.archive + "/0"}; !slices.Equal(got, want) {
		t.Fatalf("committed %v, want %v (%+v)", got, want, res)
	}
	if got, want := skipped(res.Superseded), []string{a0.archive + "/0", b0.archive + "/0"}; !slices.Equal(got, want) {
		t.Fatalf("superseded %v, want %v", got, want)
	}
	if got := skipped(res.Aborted); !slices.Equal(got, []string{a1.archive + "/1"}) || !strings.Contains(res.Aborted[0].Reason, "symlink") {
		t.Fatalf("aborted %+v", res.Aborted)
	}
	if got := skipped(res.Incomplete); !slices.Equal(got, []string{missing.archive + "/0"}) || !strings.Contains(res.Incomplete[0].Reason, "missing 1 of 2 chunks") {
		t.Fatalf("incomplete %+v", res.Incomplete)
	}
	if len(res.Failed) != 0 {
		t.Fatalf("failed %+v", res.Failed)
	}
	for range 2 {
		if bc := ev.nextCommitted(t, 10*time.Second); !bc.Replay {
			t.Fatalf("event %v", bc)
		}
	}
	if n := len(e.readParquet("orders/process_date=2025-03-02/batch_id=1/part-" + late.archive + ".parquet").rows); n != 9 {
		t.Fatalf("late batch rows %d", n)
	}
	if e.exists("orders/process_date=2025-03-01/batch_id=1/part-" + a0.archive + ".parquet") {
		t.Fatal("an archive whose latest attempt was aborted was written")
	}
	for id, want := range map[string]int{b0.archive: 1, late.archive: 1} {
		rec, _, err := led.Get(context.Background(), id)
		if err != nil || rec.Replays != want {
			t.Fatalf("ledger %s: replays %d (%v), want %d", id, rec.Replays, err, want)
		}
	}

	// From the second message of b1: its first chunk is outside the range.
	res = e.replay(ReplaySpec{Table: "orders", Archive: b1.archive, FromSeq: b1First + 1}, nil, nil)
	if len(res.Committed) != 0 || !slices.Equal(skipped(res.Incomplete), []string{b1.archive + "/1"}) || res.FirstSeq != b1First+1 {
		t.Fatalf("from-seq replay: %+v", res)
	}
	// From b1's first message: complete, and b0 is not in the range.
	res = e.replay(ReplaySpec{Table: "orders", Archive: b1.archive, FromSeq: b1First}, nil, nil)
	if !slices.Equal(committedArchives(res), []string{b1.archive + "/1"}) || len(res.Superseded) != 0 {
		t.Fatalf("from-seq replay: %+v", res)
	}
	// Since a time: only the late and the missing batch are in range.
	res = e.replay(ReplaySpec{Table: "orders", Since: since}, nil, led)
	if !slices.Equal(committedArchives(res), []string{late.archive + "/0"}) || len(res.Incomplete) != 1 || len(res.Superseded) != 0 {
		t.Fatalf("since replay: %+v", res)
	}
	// Beyond the end, and a table with nothing: empty results.
	if res := e.replay(ReplaySpec{Table: "orders", FromSeq: e.lastSeq() + 10}, nil, nil); len(res.Committed) != 0 || res.FirstSeq != 0 {
		t.Fatalf("beyond the end: %+v", res)
	}
	if res := e.replay(ReplaySpec{Table: "nothing"}, nil, nil); len(res.Committed)+len(res.Superseded) != 0 {
		t.Fatalf("empty table: %+v", res)
	}
	rec, _, _ := led.Get(context.Background(), late.archive)
	if rec.Replays != 2 {
		t.Fatalf("late archive replays %d, want 2", rec.Replays)
	}
	if err := (ReplaySpec{Table: "x", FromSeq: 3, Since: time.Now(), ProcessDate: "2025-13-01"}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "exclusive") || !strings.Contains(err.Error(), "YYYY-MM-DD") {
		t.Fatalf("validate: %v", err)
	}
}

// testReplayWhileMerging: replays running while a merger ingests the same table leave every row
// exactly once, one object per batch, and the durable consumers fully acked and never redelivered.
func testReplayWhileMerging(t *testing.T, sk sink) {
	e := newEnv(t, sk)
	e.start(testConfig("m1"), nil, nil)
	const batches = 24
	dates := []string{"2025-04-01", "2025-04-02", "2025-04-03"}
	want := map[string]bool{}
	var tbs []tbatch
	for i := range batches {
		tb := ordersBatch(fmt.Sprintf("rw%018d", i), 0, dates[i%len(dates)], 10+i)
		tb.members[0].records = csvRows(10+i, func(r int) string { return fmt.Sprintf("b%d-%d,%d,%d,n", i, r, 10000+r, r%7) })
		tbs = append(tbs, tb)
		for r := range 10 + i {
			want[fmt.Sprintf("b%d-%d", i, r)] = true
		}
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, tb := range tbs {
			e.publishBatch(tb)
			// Pacing, not synchronisation: spreads the batches over the replays below so that
			// they overlap ingestion; no assertion depends on how they interleave.
			time.Sleep(15 * time.Millisecond)
		}
	}()
	replays := 0
	for replays < 3 {
		res := e.replay(ReplaySpec{Table: "orders"}, nil, nil)
		if len(res.Failed) != 0 {
			t.Fatalf("replay failed: %+v", res.Failed)
		}
		replays++
	}
	wg.Wait()
	res := e.replay(ReplaySpec{Table: "orders", ProcessDate: "2025-04-02"}, nil, nil)
	if len(res.Committed) != batches/len(dates) {
		t.Fatalf("final date replay committed %d batches", len(res.Committed))
	}
	eventually(t, 60*time.Second, "every batch committed", func() bool { return len(e.keys("orders/")) == batches })
	e.allAcked()

	got := map[string]int{}
	for _, k := range e.keys("orders/") {
		td := e.readParquet(k)
		ids, _, _ := td.column("id")
		for _, id := range ids {
			got[id]++
		}
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("row %s found %d times", id, got[id])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("rows %d, want %d", len(got), len(want))
	}
	for name, d := range e.durables() {
		if d.ackPending != 0 || d.redelivered != 0 || d.pending != 0 || d.ackFloor != d.delivered {
			t.Errorf("%s: %+v", name, d)
		}
	}
	// Only the merger's durable consumers remain (ordered consumers are ephemeral).
	s, _ := e.bus.JS.Stream(context.Background(), e.bus.Subjects.RowsStream())
	names := s.ConsumerNames(context.Background())
	for n := range names.Name() {
		if !strings.HasPrefix(n, "merger-p") && !strings.HasPrefix(n, "sluice-replay") {
			t.Errorf("unexpected consumer %s", n)
		}
	}
}
