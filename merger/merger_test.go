package merger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/table"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// TestMerger is the shared suite, run against a directory and an S3 (versitygw) sink.
func TestMerger(t *testing.T) {
	for _, sk := range sinks {
		t.Run(sk.name, func(t *testing.T) {
			t.Run("SchemaDriftQuarantineHeaderOnly", func(t *testing.T) { testSchemaDrift(t, sk) })
			t.Run("CountMismatch", func(t *testing.T) { testCountMismatch(t, sk) })
			t.Run("Abort", func(t *testing.T) { testAbort(t, sk) })
			t.Run("RestartByteIdentical", func(t *testing.T) { testRestart(t, sk) })
			t.Run("TwoMergers", func(t *testing.T) { testTwoMergers(t, sk) })
			t.Run("JoinMidStream", func(t *testing.T) { testJoinMidStream(t, sk) })
			t.Run("BudgetInterleaved", func(t *testing.T) { testBudget(t, sk, false) })
			t.Run("BudgetInterleavedWrittenEarly", func(t *testing.T) { testBudget(t, sk, true) })
			t.Run("StaleSweep", func(t *testing.T) { testStaleSweep(t, sk) })
		})
	}
}

// testStaleSweep: a running merger aborts what a killed writer left in the output after it
// started (an S3 multipart upload with a part, a temporary file) once it is older than
// StaleSweepAge, without a restart; the abandoned writer can no longer commit.
func testStaleSweep(t *testing.T, sk sink) {
	e := newEnv(t, sk)
	cfg := testConfig("m1")
	cfg.StaleSweep, cfg.StaleSweepAge = 50*time.Millisecond, time.Second
	r := e.start(cfg, nil, nil)
	if got := r.metric(t, "sluice_merger_stale_uploads_aborted_total"); got != 0 {
		t.Fatalf("%v uploads aborted at start-up in an empty output", got)
	}
	ctx := t.Context()
	w, err := e.out.Create(ctx, "t/process_date=2025-01-01/batch_id=1/part-killed.parquet")
	if err != nil {
		t.Fatal(err)
	}
	// More than a 5 MiB part (s3test's part size): S3 has started a multipart upload.
	if _, err := w.Write(make([]byte, objstore.MinPartSize+10)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the abandoned upload aborted by the sweep", func() bool {
		return r.metric(t, "sluice_merger_stale_uploads_aborted_total") == 1
	})
	if err := w.Commit(ctx); err == nil {
		t.Fatal("the abandoned writer committed after the sweep aborted its upload")
	}
	if n := e.leftoverUploads(); n != 0 {
		t.Fatalf("%d unfinished uploads left", n)
	}
	if keys := e.keys(""); len(keys) != 0 {
		t.Fatalf("objects %v", keys)
	}
}

func ordersPartners(t *testing.T) *config.File {
	t.Helper()
	f := &config.File{Partners: []config.Partner{{
		Name: "default",
		Tables: map[string]config.TableConfig{
			"orders": {Overrides: map[string]string{"qty": "int64"}},
		},
	}}}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	return f
}

func testSchemaDrift(t *testing.T, sk sink) {
	e := newEnv(t, sk)
	ev := e.committedEvents()
	r := e.start(testConfig("m1"), nil, ordersPartners(t))

	// Batch 1: quoted newline, CRLF, a strict override violation, a ragged row, and a
	// header-only member of another batch id.
	b1 := tbatch{archive: "a1000000000000000001", table: "orders", members: []tmember{
		{name: "orders_20250101_b1.csv", date: "2025-01-01", batch: "b1", header: "id,name,amount,qty", records: []string{
			"1,alice,10,1\n",            // line 2
			"2,\"bob\nsmith\",20,2\r\n", // lines 3-4
			"3,carol,30,abc\n",          // line 5: qty is strictly int64
			"4,dave,40\n",               // line 6: ragged
			"5,\"eve, e\",50,5\r\n",     // line 7
		}},
		{name: "orders_20250102_b2.csv", date: "2025-01-02", batch: "b2", header: "id,name,amount,qty"},
	}}
	mk := e.publishBatch(b1)
	bc := ev.nextCommitted(t, 30*time.Second)
	if bc.ArchiveId != b1.archive || bc.Table != "orders" || bc.RowsIn != mk.Rows || bc.RowsOut != 3 || bc.Quarantined != 2 ||
		bc.SchemaVersion != 1 || len(bc.Objects) != 2 || bc.Merger != "m1" || len(bc.SchemaChanges) == 0 {
		t.Fatalf("committed event: %v", bc)
	}
	if len(bc.QuarantineReasons) != 2 || bc.QuarantineReasons[0].Reason != table.KindRagged || bc.QuarantineReasons[1].Reason != table.KindType {
		t.Fatalf("quarantine reasons: %v", bc.QuarantineReasons)
	}
	k1 := "orders/process_date=2025-01-01/batch_id=b1/part-a1000000000000000001.parquet"
	k0 := "orders/process_date=2025-01-02/batch_id=b2/part-a1000000000000000001.parquet"
	if bc.Objects[0].Key != k1 || bc.Objects[0].Rows != 3 || bc.Objects[1].Key != k0 || bc.Objects[1].Rows != 0 {
		t.Fatalf("objects: %v", bc.Objects)
	}
	td := e.readParquet(k1)
	if !slices.Equal(td.names, []string{"id", "name", "amount", "qty"}) {
		t.Fatalf("columns %v", td.names)
	}
	wantRows := [][]string{{"1", "alice", "10", "1"}, {"2", "bob\nsmith", "20", "2"}, {"5", "eve, e", "50", "5"}}
	if fmt.Sprint(td.rows) != fmt.Sprint(wantRows) {
		t.Fatalf("rows %q, want %q", td.rows, wantRows)
	}
	if _, typ, _ := td.column("amount"); typ.ID() != arrow.INT64 {
		t.Fatalf("amount is %s", typ)
	}
	zero := e.readParquet(k0)
	if len(zero.rows) != 0 || !slices.Equal(zero.names, []string{"id", "name", "amount", "qty"}) ||
		zero.types[0].ID() != arrow.INT64 || zero.types[1].ID() != arrow.STRING {
		t.Fatalf("header-only object: %v %v %d rows", zero.names, zero.types, len(zero.rows))
	}
	if bc.QuarantineKey != "_quarantine/orders/process_date=2025-01-01/batch_id=b1/part-a1000000000000000001.jsonl" {
		t.Fatalf("quarantine key %q", bc.QuarantineKey)
	}
	q := e.quarantineLines(bc.QuarantineKey)
	if len(q) != 2 || q[0].Line != 5 || q[0].Kind != table.KindType || q[0].Raw != "3,carol,30,abc" ||
		q[1].Line != 6 || q[1].Kind != table.KindRagged || q[1].Raw != "4,dave,40" ||
		q[0].Member != "orders_20250101_b1.csv" || q[0].Table != "orders" || q[0].ArchiveID != b1.archive {
		t.Fatalf("quarantine lines: %+v", q)
	}

	// Batch 2: columns reordered, one dropped, one added, a duplicate header name, and amount
	// gains text: it widens to string in schema v2 while the first object keeps int64.
	b2 := tbatch{archive: "a2000000000000000002", table: "orders", members: []tmember{
		{name: "orders_20250101_b1.csv", date: "2025-01-01", batch: "b1", header: "amount,id,note,note", records: []string{
			"12 kg,6,hello,x\n",
			"7,7,\"multi\r\nline\",y\r\n",
		}},
	}}
	e.publishBatch(b2)
	bc = ev.nextCommitted(t, 30*time.Second)
	if bc.SchemaVersion != 2 || bc.RowsOut != 2 || bc.Quarantined != 0 {
		t.Fatalf("committed event 2: %v", bc)
	}
	td2 := e.readParquet("orders/process_date=2025-01-01/batch_id=b1/part-a2000000000000000002.parquet")
	if !slices.Equal(td2.names, []string{"id", "name", "amount", "qty", "note", "note_2"}) { // every v2 column
		t.Fatalf("columns v2 %v", td2.names)
	}
	want2 := [][]string{{"6", nullCell, "12 kg", nullCell, "hello", "x"}, {"7", nullCell, "7", nullCell, "multi\r\nline", "y"}} // quoted bytes kept
	if fmt.Sprint(td2.rows) != fmt.Sprint(want2) {
		t.Fatalf("rows v2 %q want %q", td2.rows, want2)
	}
	if _, typ, _ := td2.column("amount"); typ.ID() != arrow.STRING {
		t.Fatalf("amount v2 is %s", typ)
	}
	if _, typ, _ := e.readParquet(k1).column("amount"); typ.ID() != arrow.INT64 {
		t.Fatalf("old object's amount became %s", typ)
	}
	var s2 table.Schema
	if err := json.Unmarshal(e.get("_schemas/orders/v2.json"), &s2); err != nil {
		t.Fatal(err)
	}
	if s2.Version != 2 || len(s2.Columns) != 6 || s2.Columns[2].Name != "amount" || s2.Columns[2].Type != table.String {
		t.Fatalf("schema v2: %+v", s2)
	}
	if !e.exists("_schemas/orders/v1.json") {
		t.Fatal("_schemas/orders/v1.json missing")
	}

	// A table name with '/' is path-escaped.
	b3 := tbatch{archive: "a3000000000000000003", table: "dept/sales", members: []tmember{
		{name: "x.csv", date: "2025-01-03", batch: "7", header: "k", records: []string{"1\n"}},
	}}
	e.publishBatch(b3)
	bc = ev.nextCommitted(t, 30*time.Second)
	if len(bc.Objects) != 1 || bc.Objects[0].Key != "dept%2Fsales/process_date=2025-01-03/batch_id=7/part-a3000000000000000003.parquet" {
		t.Fatalf("escaped key: %v", bc.Objects)
	}
	if !e.exists("_schemas/dept%2Fsales/v1.json") {
		t.Fatal("escaped schema doc missing")
	}
	for p := range uint32(4) {
		eventually(t, 10*time.Second, "acks", func() bool { return e.ackPending(p) == 0 })
	}
	// The metrics are counted after the acks (which the loop above waits for): wait for them too.
	eventually(t, 10*time.Second, "committed metric 3", func() bool {
		return r.metric(t, "sluice_merger_batches_committed_total") == 3
	})
	eventually(t, 10*time.Second, "quarantined metric 2", func() bool {
		return r.metric(t, "sluice_merger_quarantined_rows_total") == 2
	})
}

func testCountMismatch(t *testing.T, sk sink) {
	e := newEnv(t, sk)
	ev := e.committedEvents()
	dlq := e.watch(e.bus.Subjects.DLQStream(), e.bus.Subjects.DLQ("merger"))
	failed := e.watch(e.bus.Subjects.EventsStream(), e.bus.Subjects.Failed())
	cfg := testConfig("m1")
	cfg.MaxDeliver = 3
	cfg.RetryDelay = 1100 * time.Millisecond
	r := e.start(cfg, nil, nil)

	// X misses chunk 1 for good: redelivered MaxDeliver times, then dead-lettered.
	x := tbatch{archive: "ab000000000000000001", table: "t", per: 1, members: []tmember{
		{name: "t_20250101_1.csv", date: "2025-01-01", batch: "1", header: "a", records: csvRows(3, func(i int) string { return fmt.Sprint(i) })},
	}}
	chunks, marker, _ := x.msgs(e.bus.Subjects)
	e.publish(chunks[0], chunks[2], marker)
	var dl sluicev1.DeadLetter
	dlq.next(t, &dl, 30*time.Second)
	if dl.Stage != "merger" || dl.ArchiveId != x.archive || dl.Table != "t" || !strings.Contains(dl.Reason, "missing 1 of 3 chunks (1)") ||
		dl.Deliveries != 3 || len(dl.Payload) == 0 {
		t.Fatalf("dead letter: %v", &dl)
	}
	var mk sluicev1.BatchComplete
	if err := proto.Unmarshal(dl.Payload, &mk); err != nil || mk.Chunks != 3 {
		t.Fatalf("dead letter payload: %v %v", err, &mk)
	}
	p := bus.Partition(x.archive, "t", 4)
	eventually(t, 10*time.Second, "terminated", func() bool { return e.ackPending(p) == 0 })
	if ks := e.keys("t/"); len(ks) != 0 {
		t.Fatalf("objects of a dead-lettered batch: %v", ks)
	}
	// the summarizer learns the archive will not complete
	var af sluicev1.ArchiveFailed
	failed.next(t, &af, 10*time.Second)
	if af.ArchiveId != x.archive || !strings.Contains(af.Reason, "dead-lettered") || len(af.TablesAborted) != 1 {
		t.Fatalf("archive failed event: %v", &af)
	}
	if af.Origin != sluicev1.Stage_STAGE_MERGER {
		t.Fatalf("archive failed event origin %v", af.Origin)
	}

	// Y's chunk 1 arrives after its marker's first delivery: the redelivered marker commits.
	y := tbatch{archive: "ab000000000000000002", table: "t", per: 1, members: []tmember{
		{name: "t_20250101_2.csv", date: "2025-01-01", batch: "2", header: "a", records: csvRows(2, func(i int) string { return fmt.Sprint(i) })},
	}}
	chunks, marker, _ = y.msgs(e.bus.Subjects)
	naks := e.watchNaks(bus.Partition(y.archive, "t", 4))
	e.publish(chunks[0])
	mseq := e.publish(marker)
	eventually(t, 10*time.Second, "Y's marker handed back on its first delivery", func() bool { return naks.naks(mseq) > 0 })
	e.publish(chunks[1])
	bc := ev.nextCommitted(t, 30*time.Second)
	if bc.ArchiveId != y.archive || bc.RowsOut != 2 {
		t.Fatalf("committed: %v", bc)
	}
	if got := r.metric(t, "sluice_merger_batches_dead_lettered_total"); got != 1 {
		t.Fatalf("dead-lettered metric %v", got)
	}
}

func testAbort(t *testing.T, sk sink) {
	e := newEnv(t, sk)
	ev := e.committedEvents()
	r := e.start(testConfig("m1"), nil, nil)
	tb := tbatch{archive: "ac000000000000000001", table: "t", members: []tmember{
		{name: "t_20250101_1.csv", date: "2025-01-01", batch: "1", header: "a,b", records: csvRows(9, func(i int) string { return fmt.Sprintf("%d,x", i) })},
	}}
	chunks, _, _ := tb.msgs(e.bus.Subjects)
	e.publish(chunks...)
	e.publish(tb.abortMsg(e.bus.Subjects, "member 2 is a symlink"))
	p := bus.Partition(tb.archive, "t", 4)
	eventually(t, 10*time.Second, "abort", func() bool { return r.metric(t, "sluice_merger_batches_aborted_total") == 1 })
	eventually(t, 10*time.Second, "acks", func() bool { return e.ackPending(p) == 0 })
	eventually(t, 10*time.Second, "state released", func() bool {
		return r.metric(t, "sluice_merger_held_messages") == 0 && r.metric(t, "sluice_merger_memory_bytes") == 0
	})
	if ks := e.keys(""); len(ks) != 0 {
		t.Fatalf("objects after abort: %v", ks)
	}
	// Nothing was committed of the aborted batch: a batch published after the abort, on the same
	// partition (so handled after it), is the first commit.
	next := tbatch{archive: archiveOn("acf", "t", p, 4), table: "t", members: []tmember{
		{name: "t_20250101_1.csv", date: "2025-01-01", batch: "1", header: "a,b", records: csvRows(3, func(i int) string { return fmt.Sprintf("%d,y", i) })},
	}}
	e.publishBatch(next)
	if bc := ev.nextCommitted(t, 30*time.Second); bc.ArchiveId != next.archive {
		t.Fatalf("first commit after the abort: %v", bc)
	}
	for _, k := range e.keys("") {
		if strings.Contains(k, tb.archive) {
			t.Fatalf("object of the aborted batch: %s", k)
		}
	}
}

// restartBatch is a batch large enough for several row groups and objects.
func restartBatch() tbatch {
	recs := csvRows(4000, func(i int) string {
		return fmt.Sprintf("%d,name %d,%d.5,2025-01-%02d,\"q, %d\"", i, i%97, i, 1+i%28, i)
	})
	recs = append(recs, "oops\n") // ragged: quarantined
	return tbatch{archive: "ad000000000000000001", table: "r", per: 250, members: []tmember{
		{name: "r_20250101_1.csv", date: "2025-01-01", batch: "1", header: "id,name,price,day,note", records: recs[:2000]},
		{name: "r_20250102_1.csv", date: "2025-01-02", batch: "1", header: "id,name,price,day,note", records: recs[2000:]},
	}}
}

func restartConfig(instance string) Config {
	cfg := testConfig(instance)
	cfg.RowGroupBytes = 16 << 10
	cfg.MaxObjectBytes = 4 << 10 // small enough that each date group rotates (len(Objects) >= 4)
	return cfg
}

func testRestart(t *testing.T, sk sink) {
	tb := restartBatch()

	// Interrupted: the first merger holds every chunk and stops before the marker.
	e := newEnv(t, sk)
	ev := e.committedEvents()
	chunks, marker, _ := tb.msgs(e.bus.Subjects)
	r1 := e.start(restartConfig("m1"), nil, nil)
	e.publish(chunks...)
	p := bus.Partition(tb.archive, tb.table, 4)
	eventually(t, 20*time.Second, "chunks held", func() bool { return r1.metric(t, "sluice_merger_held_messages") == float64(len(chunks)) })
	var naks atomic.Int64
	sub, err := e.bus.NC.Subscribe(fmt.Sprintf("$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.%s.merger-p%d", e.bus.Subjects.RowsStream(), p),
		func(*nats.Msg) { naks.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := e.bus.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	r1.stop()
	if ks := e.keys(""); len(ks) != 0 {
		t.Fatalf("visible after a stop before the marker: %v", ks)
	}
	eventually(t, 5*time.Second, "hand back", func() bool { return naks.Load() == int64(len(chunks)) })
	e.start(restartConfig("m2"), nil, nil)
	e.publish(marker)
	bc := ev.nextCommitted(t, 60*time.Second)
	if len(bc.Objects) < 4 || bc.RowsOut != 4000 || bc.Quarantined != 1 {
		t.Fatalf("restart commit: %v", bc)
	}

	// Uninterrupted, in a fresh world.
	e2 := newEnv(t, sk)
	ev2 := e2.committedEvents()
	e2.start(restartConfig("m3"), nil, nil)
	e2.publishBatch(tb)
	bc2 := ev2.nextCommitted(t, 60*time.Second)
	if len(bc2.Objects) != len(bc.Objects) {
		t.Fatalf("objects %d vs %d", len(bc2.Objects), len(bc.Objects))
	}
	for i, o := range bc.Objects {
		if o.Key != bc2.Objects[i].Key || o.Bytes != bc2.Objects[i].Bytes || o.Rows != bc2.Objects[i].Rows {
			t.Fatalf("object %d: %v vs %v", i, o, bc2.Objects[i])
		}
		if !bytes.Equal(e.get(o.Key), e2.get(o.Key)) {
			t.Fatalf("%s differs between the restarted and the uninterrupted run", o.Key)
		}
	}
	if !bytes.Equal(e.get(bc.QuarantineKey), e2.get(bc2.QuarantineKey)) {
		t.Fatal("quarantine differs")
	}
	// Rows read back equal the input.
	n := 0
	for _, o := range bc.Objects {
		td := e.readParquet(o.Key)
		for _, row := range td.rows {
			want := fmt.Sprintf("%s,name %d,%s.5,", row[0], atoi(row[0])%97, row[0])
			if got := strings.Join(row[:3], ",") + ","; got != want {
				t.Fatalf("row %v", row)
			}
			n++
		}
		if typ := td.types[3]; typ.ID() != arrow.DATE32 {
			t.Fatalf("day is %s", typ)
		}
	}
	if n != 4000 {
		t.Fatalf("%d rows read back", n)
	}
}

func atoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}

func testTwoMergers(t *testing.T, sk sink) {
	e := newEnv(t, sk)
	ev := e.committedEvents()
	ra := e.start(testConfig("ma"), bustest.Connect(t, e.bus), nil)
	rb := e.start(testConfig("mb"), bustest.Connect(t, e.bus), nil)
	eventually(t, 10*time.Second, "presence", func() bool { return ra.m.live.Load() == 2 && rb.m.live.Load() == 2 })
	// A pull request either merger sent on the other's partitions before it counted both would
	// take their pins with the first messages; wait until those requests are over.
	eventually(t, 10*time.Second, "pulls on the other merger's partitions over", func() bool {
		return pullsElsewhereOver(ra) && pullsElsewhereOver(rb)
	})

	const archives, perBatch = 16, 30
	var batches []tbatch
	for a := range archives {
		for _, tbl := range []string{"t1", "t2"} {
			batches = append(batches, tbatch{archive: fmt.Sprintf("ae%018d", a), table: tbl, per: 7, members: []tmember{
				{name: tbl + ".csv", date: "2025-01-01", batch: "1", header: "id,v", records: csvRows(perBatch, func(i int) string {
					return fmt.Sprintf("%d,%d", a*1000+i, i)
				})},
			}})
		}
	}
	// Interleave the batches' chunks as concurrent extractions would.
	var all [][]*nats.Msg
	var markers []*nats.Msg
	for _, tb := range batches {
		c, m, _ := tb.msgs(e.bus.Subjects)
		all = append(all, c)
		markers = append(markers, m)
	}
	for i := 0; ; i++ {
		any := false
		for _, c := range all {
			if i < len(c) {
				e.publish(c[i])
				any = true
			}
		}
		if !any {
			break
		}
	}
	e.publish(markers...)
	by := map[string]int{}
	for range batches {
		bc := ev.nextCommitted(t, 60*time.Second)
		by[bc.Merger]++
	}
	t.Logf("commits by merger: %v", by)
	for _, tbl := range []string{"t1", "t2"} {
		seen := map[string]int{}
		for _, k := range e.keys(tbl + "/") {
			for _, row := range e.readParquet(k).rows {
				seen[row[0]]++
			}
		}
		if len(seen) != archives*perBatch {
			t.Fatalf("%s: %d distinct ids, want %d", tbl, len(seen), archives*perBatch)
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("%s: id %s seen %d times", tbl, id, n)
			}
		}
	}
	if by["ma"] == 0 || by["mb"] == 0 {
		t.Errorf("one merger did all the work: %v", by)
	}
	for p := range uint32(4) {
		eventually(t, 10*time.Second, "acks", func() bool { return e.ackPending(p) == 0 })
	}
}

// pullsElsewhereOver reports whether every pull request r sent on a partition it does not prefer
// has expired on the server. The server does not tell when a request ends, so this goes by r's
// own record of its last request there: a request lives pollWait from when the server got it,
// and another pollWait covers the way there. r sends none on such a partition while nothing
// waits on it (mayAcquire).
func pullsElsewhereOver(r *running) bool {
	for _, p := range r.m.parts {
		if !r.m.preferred(p) && time.Since(time.Unix(0, p.lastPull.Load())) < 2*r.m.pollWait {
			return false
		}
	}
	return true
}

func testBudget(t *testing.T, sk sink, early bool) {
	e := newEnv(t, sk)
	ev := e.committedEvents()
	cfg := testConfig("m1")
	cfg.MemoryBudget = 2 << 20
	cfg.RowGroupBytes = 256 << 10
	cfg.ParseLimit = 64 << 20 // rows parsed on arrival are bounded by the budget alone: relieve drops them
	cfg.EarlyGroups = -1
	if early {
		// Every batch is written early, with open segments that fill the budget between them: the
		// writers and, as a last resort, dropping their rows keep the merger going.
		cfg.EarlyGroups = 4
	}
	r := e.start(cfg, nil, nil)

	const archives, rows = 4, 16000
	pad := strings.Repeat("x", 100)
	var all [][]*nats.Msg
	var markers []*nats.Msg
	var total int64
	for a := range archives {
		id := archiveOn(fmt.Sprintf("af%d", a), "big", 0, 4)
		tb := tbatch{archive: id, table: "big", per: 300, members: []tmember{
			{name: "big.csv", date: "2025-01-01", batch: "1", header: "id,archive,pad", records: csvRows(rows, func(i int) string {
				return fmt.Sprintf("%d,%d,%s", i, a, pad)
			})},
		}}
		c, m, mk := tb.msgs(e.bus.Subjects)
		all = append(all, c)
		markers = append(markers, m)
		total += mk.Bytes
	}
	if total < 3*cfg.MemoryBudget {
		t.Fatalf("test data %d bytes does not exceed the budget enough", total)
	}
	for i := 0; ; i++ {
		any := false
		for _, c := range all {
			if i < len(c) {
				e.publish(c[i])
				any = true
			}
		}
		if !any {
			break
		}
	}
	e.publish(markers...)
	for range archives {
		if bc := ev.nextCommitted(t, 120*time.Second); bc.RowsOut != rows {
			t.Fatalf("committed %v", bc)
		}
	}
	if got := r.metric(t, "sluice_merger_released_bytes_total"); got == 0 {
		t.Fatal("no chunk released")
	}
	if got := r.metric(t, "sluice_merger_refetched_bytes_total"); got == 0 && !early {
		t.Fatal("no released chunk was fetched back from the stream for a group parsed at commit")
	}
	if got := r.metricLabel(t, "sluice_merger_groups_parsed_total", "when", "commit"); got == 0 && !early {
		t.Fatal("no rows parsed on arrival were dropped for the budget")
	}
	if got := r.metricLabel(t, "sluice_merger_groups_parsed_total", "when", "early"); (got == 0) == early {
		t.Fatalf("%v groups written early", got)
	}
	counts := map[string]int{}
	for _, k := range e.keys("big/") {
		td := e.readParquet(k)
		ids, _, _ := td.column("id")
		arch, _, _ := td.column("archive")
		for i := range ids {
			if ids[i] != fmt.Sprint(counts[arch[i]]) {
				t.Fatalf("%s: row %d of archive %s has id %s", k, counts[arch[i]], arch[i], ids[i])
			}
			counts[arch[i]]++
		}
	}
	for a := range archives {
		if counts[fmt.Sprint(a)] != rows {
			t.Fatalf("archive %d: %d rows", a, counts[fmt.Sprint(a)])
		}
	}
	// The commit's event is published before its memory is released (ledger, acks, then the
	// drop): wait for the drop.
	eventually(t, 10*time.Second, "the memory released after the commits", func() bool {
		return r.metric(t, "sluice_merger_memory_bytes") == 0
	})
}

// TestAckPendingDeadlock: with MaxAckPending below what two interleaved batches need, the
// merger moves the younger batch to the tail of the stream so the older one can finish, then
// both commit. The moved chunks keep their place in their member: a ragged row is quarantined
// with its line number in both batches.
func TestAckPendingDeadlock(t *testing.T) {
	e := newEnv(t, sinks[0])
	ev := e.committedEvents()
	cfg := testConfig("m1")
	cfg.MaxAckPending = 6
	r := e.start(cfg, nil, nil)
	var all [][]*nats.Msg
	var markers []*nats.Msg
	for a := range 2 {
		tb := tbatch{archive: archiveOn(fmt.Sprintf("b%d", a), "d", 1, 4), table: "d", per: 1, members: []tmember{
			{name: "d.csv", date: "2025-01-01", batch: "1", header: "x", records: csvRows(5, func(i int) string {
				if i == 3 {
					return "3,ragged" // line 5 (the header is line 1)
				}
				return fmt.Sprint(i)
			})},
		}}
		c, m, _ := tb.msgs(e.bus.Subjects)
		all = append(all, c)
		markers = append(markers, m)
	}
	for i := range 5 {
		e.publish(all[0][i], all[1][i])
	}
	e.publish(markers...)
	for range 2 {
		bc := ev.nextCommitted(t, 60*time.Second)
		if bc.RowsOut != 4 || bc.Quarantined != 1 {
			t.Fatalf("committed %v", bc)
		}
		var q quarantineLine
		if err := json.Unmarshal(bytes.TrimSpace(e.get(bc.QuarantineKey)), &q); err != nil || q.Line != 5 || q.Member != "d.csv" || q.Raw != "3,ragged" {
			t.Fatalf("archive %s quarantined %+v (%v), want line 5 of d.csv", bc.ArchiveId, q, err)
		}
	}
	if n := r.metric(t, "sluice_merger_batches_handed_back_total"); n < 1 {
		t.Fatalf("%v batches moved to the tail, want at least 1", n)
	}
}

// TestHeldMessagesKeptAlive: the chunks of a batch whose marker has not come are held longer
// than AckWait without being redelivered: the merger sends InProgress for every held message
// every AckWait/3. Counted on the wire (the +WPI acks) and on the consumer (nothing redelivered).
func TestHeldMessagesKeptAlive(t *testing.T) {
	e := newEnv(t, sinks[0])
	ev := e.committedEvents()
	cfg := testConfig("m1")
	cfg.AckWait, cfg.RetryDelay = 3*time.Second, time.Second // (MaxDeliver-1)×RetryDelay > AckWait
	r := e.start(cfg, nil, nil)
	tb := tbatch{archive: archiveOn("k1", "k", 1, 4), table: "k", per: 2, members: []tmember{
		{name: "k.csv", date: "2025-01-01", batch: "1", header: "x", records: csvRows(6, func(i int) string { return fmt.Sprint(i) })},
	}}
	chunks, marker, _ := tb.msgs(e.bus.Subjects)
	wpi := bustest.CountAcks(t, e.bus.NC, "+WPI")
	e.publish(chunks...)
	eventually(t, 10*time.Second, "chunks held", func() bool { return r.metric(t, "sluice_merger_held_messages") == float64(len(chunks)) })
	// Five rounds of InProgress span more than AckWait (every AckWait/3).
	eventually(t, 20*time.Second, "held messages kept alive", func() bool { return wpi.Load() >= int64(5*len(chunks)) })
	if ci := e.consumerInfo(1); ci.NumRedelivered != 0 || ci.NumAckPending != len(chunks) {
		t.Fatalf("consumer while the chunks are held: %d redelivered, %d pending", ci.NumRedelivered, ci.NumAckPending)
	}
	e.publish(marker)
	if bc := ev.nextCommitted(t, 30*time.Second); bc.RowsOut != 6 {
		t.Fatalf("committed %v", bc)
	}
}

// TestConcurrentSchemaEvolution: two mergers evolving one table at once never lose a column.
func TestConcurrentSchemaEvolution(t *testing.T) {
	e := newEnv(t, sinks[0])
	ctx := context.Background()
	var ms []*Merger
	for i := range 2 {
		m, err := New(testConfig(fmt.Sprintf("m%d", i)), Deps{Bus: bustest.Connect(t, e.bus), Out: e.out})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.commit.open(ctx); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			cols := []table.ColumnType{{Name: "id", Type: table.Int64}, {Name: fmt.Sprintf("c%d", i), Type: table.String}}
			if _, _, err := ms[i%2].commit.evolve(ctx, "shared", cols, table.Options{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	s, _, err := ms[0].commit.loadSchema(ctx, schemaRegistryKey("shared"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Columns) != 21 {
		t.Fatalf("%d columns after concurrent evolution: %+v", len(s.Columns), s.Columns)
	}
}

// testJoinMidStream: a second merger joins while the first holds every partition with batches
// half received; partitions are rebalanced (handed back, unpinned, taken over) and every row is
// still committed exactly once, with no dead letter.
func testJoinMidStream(t *testing.T, sk sink) {
	e := newEnv(t, sk)
	ev := e.committedEvents()
	ra := e.start(testConfig("ma"), bustest.Connect(t, e.bus), nil)

	const archives, perBatch = 12, 40
	var all [][]*nats.Msg
	var markers []*nats.Msg
	for a := range archives {
		for _, tbl := range []string{"j1", "j2"} {
			tb := tbatch{archive: fmt.Sprintf("aj%018d", a), table: tbl, per: 4, members: []tmember{
				{name: tbl + ".csv", date: "2025-01-01", batch: "1", header: "id,v", records: csvRows(perBatch, func(i int) string {
					return fmt.Sprintf("%d,%d", a*1000+i, i)
				})},
			}}
			c, m, _ := tb.msgs(e.bus.Subjects)
			all = append(all, c)
			markers = append(markers, m)
		}
	}
	publishRound := func(from, to int) {
		for i := from; i < to; i++ {
			for _, c := range all {
				if i < len(c) {
					e.publish(c[i])
				}
			}
		}
	}
	publishRound(0, 5)
	eventually(t, 20*time.Second, "first merger owns every partition", func() bool { return ra.m.pinnedCount() == 4 })
	rb := e.start(testConfig("mb"), bustest.Connect(t, e.bus), nil)
	eventually(t, 20*time.Second, "rebalanced", func() bool { return ra.m.pinnedCount() == 2 && rb.m.pinnedCount() == 2 })
	publishRound(5, 10)
	e.publish(markers...)
	by := map[string]int{}
	for range all {
		by[ev.nextCommitted(t, 60*time.Second).Merger]++
	}
	t.Logf("commits by merger: %v", by)
	// No dead letter: a merger stores one before it terminates the batch's messages, and once
	// every message is acked none can be delivered (and dead-lettered) again.
	for p := range uint32(4) {
		eventually(t, 10*time.Second, "acks", func() bool { return e.ackPending(p) == 0 })
	}
	if n := e.streamMsgs(e.bus.Subjects.DLQStream()); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
	for _, tbl := range []string{"j1", "j2"} {
		seen := map[string]int{}
		for _, k := range e.keys(tbl + "/") {
			for _, row := range e.readParquet(k).rows {
				seen[row[0]]++
			}
		}
		if len(seen) != archives*perBatch {
			t.Fatalf("%s: %d distinct ids, want %d", tbl, len(seen), archives*perBatch)
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("%s: id %s seen %d times", tbl, id, n)
			}
		}
	}
	if by["mb"] == 0 {
		t.Errorf("the second merger took nothing over: %v", by)
	}
}

// slowBucket delays every Commit, as a slow S3 multipart completion would.
type slowBucket struct {
	objstore.Bucket
	delay time.Duration
}

type slowWriter struct {
	objstore.Writer
	delay time.Duration
}

func (b slowBucket) Create(ctx context.Context, key string) (objstore.Writer, error) {
	w, err := b.Bucket.Create(ctx, key)
	if err != nil {
		return nil, err
	}
	return slowWriter{Writer: w, delay: b.delay}, nil
}

func (w slowWriter) Commit(ctx context.Context) error {
	// The slowness is what is under test: the commit must outlast PinnedTTL, a timer of the
	// server that no injected clock reaches.
	time.Sleep(w.delay)
	return w.Writer.Commit(ctx)
}

// TestSlowCommitKeepsPin: a commit far longer than PinnedTTL does not lose the partition (the
// keeper renews the pin) and a standby merger takes nothing.
func TestSlowCommitKeepsPin(t *testing.T) {
	e := newEnv(t, sinks[0])
	e.out = slowBucket{Bucket: e.out, delay: 5 * time.Second} // 2.5 pin TTLs
	ev := e.committedEvents()
	tb := tbatch{archive: "ba000000000000000001", table: "slow", members: []tmember{
		{name: "s.csv", date: "2025-01-01", batch: "1", header: "a", records: csvRows(10, func(i int) string { return fmt.Sprint(i) })},
	}}
	p := bus.Partition(tb.archive, tb.table, 4)
	var unpinned atomic.Int64
	sub, err := e.bus.NC.Subscribe(fmt.Sprintf("$JS.EVENT.ADVISORY.CONSUMER.UNPINNED.%s.merger-p%d", e.bus.Subjects.RowsStream(), p),
		func(*nats.Msg) { unpinned.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	// Pin TTL 2 s (renewed every 500 ms) and AckWait 6 s: a stall of the renewals under -race on
	// a loaded machine is not what this test is about.
	cfg := testConfig("m1")
	cfg.PinnedTTL, cfg.AckWait, cfg.RetryDelay = 2*time.Second, 6*time.Second, 2*time.Second
	cfg.Partitions = []int{int(p)}
	r1 := e.start(cfg, nil, nil)
	standby := testConfig("m2")
	standby.PinnedTTL, standby.AckWait, standby.RetryDelay = 2*time.Second, 6*time.Second, 2*time.Second
	standby.Partitions = []int{int(p)}
	r2 := e.start(standby, bustest.Connect(t, e.bus), nil)
	// The batch must go to the merger that prefers p. A pull request the other one sent before it
	// counted both would take p's pin with the first message, and the rebalance after the commit
	// would then unpin p (a release, not the lapse this test is about).
	eventually(t, 10*time.Second, "presence", func() bool { return r1.m.live.Load() == 2 && r2.m.live.Load() == 2 })
	eventually(t, 10*time.Second, "pulls on the other merger's partition over", func() bool {
		return pullsElsewhereOver(r1) && pullsElsewhereOver(r2)
	})
	mk := e.publishBatch(tb)
	bc := ev.nextCommitted(t, 30*time.Second)
	if bc.Merger != "m1" && bc.Merger != "m2" || bc.RowsOut != 10 {
		t.Fatalf("committed %v", bc)
	}
	if n := unpinned.Load(); n != 0 {
		t.Fatalf("partition unpinned %d times during a slow commit", n)
	}
	// Nobody commits the batch a second time: each of its messages was delivered once, to the
	// merger that committed it, and is acked, so none can reach the other merger.
	eventually(t, 10*time.Second, "acks", func() bool { return e.ackPending(p) == 0 })
	if info, n := e.consumerInfo(p), uint64(mk.Chunks)+1; info.Delivered.Consumer != n || info.AckFloor.Consumer != n || info.NumPending != 0 {
		t.Fatalf("%d messages: delivered %d, ack floor %d, pending %d", n, info.Delivered.Consumer, info.AckFloor.Consumer, info.NumPending)
	}
}

// TestOwnerDies: the owner of a partition dies holding part of a batch; after the pin TTL the
// standby takes the partition over, receives the dead owner's chunks when their AckWait runs out
// and commits the batch.
func TestOwnerDies(t *testing.T) {
	e := newEnv(t, sinks[0])
	ev := e.committedEvents()
	tb := tbatch{archive: "bb000000000000000001", table: "die", per: 1, members: []tmember{
		{name: "d.csv", date: "2025-01-01", batch: "1", header: "a", records: csvRows(6, func(i int) string { return fmt.Sprint(i) })},
	}}
	p := bus.Partition(tb.archive, tb.table, 4)
	cfg := testConfig("owner")
	cfg.Partitions = []int{int(p)}
	conn := bustest.Connect(t, e.bus)
	owner := e.start(cfg, conn, nil)
	chunks, marker, _ := tb.msgs(e.bus.Subjects)
	e.publish(chunks[:3]...)
	eventually(t, 10*time.Second, "owner holds chunks", func() bool { return owner.metric(t, "sluice_merger_held_messages") == 3 })
	sb := testConfig("standby")
	sb.Partitions = []int{int(p)}
	standby := e.start(sb, bustest.Connect(t, e.bus), nil)
	conn.NC.Close() // the owner's process dies: no Nak, no unpin
	e.publish(chunks[3:]...)
	e.publish(marker)
	bc := ev.nextCommitted(t, 30*time.Second)
	if bc.Merger != "standby" || bc.RowsOut != 6 {
		t.Fatalf("committed %v", bc)
	}
	_ = standby
}
