package summarizer_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/objstore/s3test"
	sluicev1 "github.com/sluice-dev/sluice/proto/sluicev1"
	"github.com/sluice-dev/sluice/summarizer"
)

const day = "2025-01-02"

var t0 = time.Date(2025, 1, 2, 10, 0, 0, 0, time.UTC)

// env is one embedded nats-server, a directory bucket, a ledger and a fake clock.
type env struct {
	b        *bus.Bus
	led      *ledger.Ledger
	out      objstore.Bucket
	partners *config.File
	reg      *prometheus.Registry
	nowMs    atomic.Int64
	// checkEvery is the started summarizer's tick (default 20 ms: deadlines and retries at once).
	checkEvery time.Duration
	// held, while set, makes the summarizer's clock reads wait until it is closed (each read
	// that waits first sends on blocked, when it can).
	held    atomic.Pointer[chan struct{}]
	blocked chan struct{}
}

// newEnv uses a directory bucket; newEnvOn takes any bucket (S3 in TestSummaryOnS3).
func newEnv(t *testing.T, partners *config.File) *env {
	t.Helper()
	out, err := objstore.Open(context.Background(), t.TempDir(), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = out.Close() })
	return newEnvOn(t, partners, out)
}

func newEnvOn(t *testing.T, partners *config.File, out objstore.Bucket) *env {
	t.Helper()
	ctx := context.Background()
	b := bustest.New(t)
	kv, err := b.Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if partners != nil {
		if err := partners.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{b: b, out: out, partners: partners, reg: prometheus.NewRegistry()}
	e.nowMs.Store(t0.UnixMilli())
	e.led = ledger.New(kv, e.now)
	return e
}

func (e *env) now() time.Time { return time.UnixMilli(e.nowMs.Load()).UTC() }

// summarizerNow is the started summarizer's clock: e.now, once held is released.
func (e *env) summarizerNow() time.Time {
	if g := e.held.Load(); g != nil {
		select {
		case e.blocked <- struct{}{}:
		default:
		}
		<-*g
	}
	return e.now()
}
func (e *env) setNow(tm time.Time) { e.nowMs.Store(tm.UnixMilli()) }

// start runs a new summarizer until the returned stop (also run at cleanup) is called.
func (e *env) start(t *testing.T) (*summarizer.Summarizer, func()) {
	t.Helper()
	s, err := summarizer.New(summarizer.Config{CheckEvery: cmp.Or(e.checkEvery, 20*time.Millisecond)}, summarizer.Deps{
		Bus: e.b, Ledger: e.led, Out: e.out, Partners: e.partners, Metrics: e.reg, Now: e.summarizerNow,
		Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return s, stop
}

func (e *env) pub(t *testing.T, subject string, m proto.Message) uint64 {
	t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := e.b.JS.Publish(context.Background(), subject, data)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// waitSeq waits until s has folded the event at seq and settled.
func waitSeq(t *testing.T, s *summarizer.Summarizer, seq uint64) summarizer.Status {
	t.Helper()
	return waitStatus(t, s, func(st summarizer.Status) bool { return st.CaughtUp && st.Seq >= seq })
}

func waitStatus(t *testing.T, s *summarizer.Summarizer, ok func(summarizer.Status) bool) summarizer.Status {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := s.Status()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met; status %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// settledAfter returns a status that s computed after everything the test did before the call
// (the injected clock set, for one): it publishes an event the fold ignores (a landed event
// without an archive id) and waits until s has folded it and settled.
func (e *env) settledAfter(t *testing.T, s *summarizer.Summarizer) summarizer.Status {
	t.Helper()
	return waitSeq(t, s, e.pub(t, e.b.Subjects.Landed(), &sluicev1.ArchiveLanded{}))
}

func waitFor(t *testing.T, s *summarizer.Summarizer, ids ...string) summarizer.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	st, err := s.WaitFor(ctx, ids)
	if err != nil {
		t.Fatalf("wait for %v: %v (status %+v)", ids, err, st)
	}
	return st
}

// parquetFile writes a real Parquet object with rows rows at key and returns its size.
func (e *env) parquetFile(t *testing.T, key string, rows int) int64 {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "name", Type: arrow.BinaryTypes.String}}, nil)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	bld := array.NewRecordBuilder(mem, schema)
	defer bld.Release()
	for i := range rows {
		bld.Field(0).(*array.Int64Builder).Append(int64(i))
		bld.Field(1).(*array.StringBuilder).Append("row")
	}
	rec := bld.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	w, err := pqarrow.NewFileWriter(schema, &buf, parquet.NewWriterProperties(parquet.WithAllocator(mem)), pqarrow.NewArrowWriterProperties(pqarrow.WithAllocator(mem)))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	size := int64(buf.Len())
	if err := e.out.Put(context.Background(), key, &buf); err != nil {
		t.Fatal(err)
	}
	return size
}

// fixture is one archive: what the extractor counted and what the merger committed.
type fixture struct {
	id, name string
	tables   []tbl
	rejected []*sluicev1.RejectedMember
}

// tbl is one table: rows per process date as the extractor counted them, and per date the
// rows committed (CommittedObject.rows) and the rows really in the Parquet footer.
type tbl struct {
	name        string
	in          map[string]int64
	committed   map[string]int64
	footer      map[string]int
	quarantined int64
	reason      string
}

func (f fixture) landed() *sluicev1.ArchiveLanded {
	return &sluicev1.ArchiveLanded{ArchiveId: f.id, Name: f.name, Uri: "file:///landing/" + f.name, Partner: "acme", LandedUnixMs: t0.UnixMilli()}
}

func (f fixture) extracted() *sluicev1.ArchiveExtracted {
	ev := &sluicev1.ArchiveExtracted{ArchiveId: f.id, Name: f.name, Uri: "file:///landing/" + f.name, Partner: "acme",
		Rejected: f.rejected, DurationMs: 1500, ExtractedUnixMs: t0.UnixMilli()}
	for _, t := range f.tables {
		tc := &sluicev1.TableCount{Table: t.name}
		for _, d := range sortedDates(t.in) {
			compact := strings.ReplaceAll(d, "-", "")
			tc.Rows += t.in[d]
			tc.Members = append(tc.Members, &sluicev1.MemberInfo{Name: t.name + "_" + compact + "_b1.csv", ProcessDate: d,
				BatchId: "b1", Rows: t.in[d], HeaderOnly: t.in[d] == 0})
		}
		ev.Tables = append(ev.Tables, tc)
	}
	return ev
}

// commit writes the table's Parquet objects and returns its BatchCommitted.
func (e *env) commit(t *testing.T, f fixture, table string) *sluicev1.BatchCommitted {
	t.Helper()
	for _, tb := range f.tables {
		if tb.name != table {
			continue
		}
		ev := &sluicev1.BatchCommitted{ArchiveId: f.id, Table: table, SchemaVersion: 2, SchemaChanges: []string{"added column name"},
			Quarantined: tb.quarantined, DurationMs: 250, CommittedUnixMs: t0.Add(time.Minute).UnixMilli()}
		for _, d := range sortedDates(tb.committed) {
			key := table + "/process_date=" + d + "/batch_id=b1/part-" + f.id + ".parquet"
			size := e.parquetFile(t, key, tb.footer[d])
			ev.Objects = append(ev.Objects, &sluicev1.CommittedObject{Key: key, ProcessDate: d, BatchId: "b1", Rows: tb.committed[d], Bytes: size})
			ev.RowsOut += tb.committed[d]
			ev.Bytes += size
		}
		for _, n := range tb.in {
			ev.RowsIn += n
		}
		if tb.quarantined > 0 {
			ev.QuarantineReasons = []*sluicev1.QuarantineCount{{Reason: tb.reason, Rows: tb.quarantined}}
			ev.QuarantineKey = "_quarantine/" + table + "/process_date=" + day + "/batch_id=b1/part-" + f.id + ".jsonl"
		}
		return ev
	}
	t.Fatalf("no table %s", table)
	return nil
}

func sortedDates(m map[string]int64) []string {
	var ds []string
	for d := range m {
		ds = append(ds, d)
	}
	for i := range ds {
		for j := i + 1; j < len(ds); j++ {
			if ds[j] < ds[i] {
				ds[i], ds[j] = ds[j], ds[i]
			}
		}
	}
	return ds
}

// TestDeferredSettleRuns: after a settle whose walk was long the next one an event asks for is
// deferred (settlePace); once due it runs without waiting for another event or the tick (an
// hour here). The walk is made long by holding the summarizer's clock, which a settle reads
// first, while the rest of an archive's events are published: they arrive during that settle,
// and the one they ask for is deferred.
func TestDeferredSettleRuns(t *testing.T) {
	e := newEnv(t, nil)
	e.checkEvery = time.Hour
	s, _ := e.start(t)
	a := goodArchive("a0000000000000000201", "acme_20250102_1.tar.gz")
	e.publishAll(t, a)
	waitFor(t, s, a.id)

	b := goodArchive("a0000000000000000202", "acme_20250102_2.tar.gz")
	gate := make(chan struct{})
	e.blocked = make(chan struct{}, 1)
	e.held.Store(&gate)
	e.publishAll(t, b, func() {
		select { // the settle the landed event asks for waits on the clock
		case <-e.blocked:
		case <-time.After(15 * time.Second):
			t.Fatal("no settle read the clock after the landed event")
		}
	})
	e.held.Store(nil)
	close(gate)
	if st := waitFor(t, s, b.id); st.Archives[b.id].State != summarizer.StateCommitted || !st.Dates[day].Written {
		t.Fatalf("status %+v", st)
	}
	if n, _ := metricValue(t, e.reg, "sluice_summarizer_settle_duration_seconds", nil); n < 2 {
		t.Fatalf("%v settles observed", n)
	}
}

// publishAll publishes landed, extracted and every commit; it returns the last sequence.
// afterLanded, if given, runs once the landed event is published.
func (e *env) publishAll(t *testing.T, f fixture, afterLanded ...func()) uint64 {
	t.Helper()
	if _, _, err := e.led.Create(context.Background(), ledger.Record{ArchiveID: f.id, Name: f.name, URI: "file:///landing/" + f.name}); err != nil {
		t.Fatal(err)
	}
	sub := e.b.Subjects
	e.pub(t, sub.Landed(), f.landed())
	for _, fn := range afterLanded {
		fn()
	}
	seq := e.pub(t, sub.Extracted(), f.extracted())
	for _, tb := range f.tables {
		seq = e.pub(t, sub.Committed(), e.commit(t, f, tb.name))
	}
	return seq
}

func (e *env) summary(t *testing.T, date string) (summarizer.SummaryJSON, string) {
	t.Helper()
	ctx := context.Background()
	read := func(key string) []byte {
		rc, err := e.out.Get(ctx, key)
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var doc summarizer.SummaryJSON
	if err := json.Unmarshal(read(summarizer.SummaryKey(date)), &doc); err != nil {
		t.Fatal(err)
	}
	return doc, string(read(strings.TrimSuffix(summarizer.SummaryKey(date), ".json") + ".txt"))
}

func (e *env) rawSummary(t *testing.T, date string) []byte {
	t.Helper()
	rc, err := e.out.Get(context.Background(), summarizer.SummaryKey(date))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return b
}

// events returns every message on subject, decoded into new(T).
func events[T proto.Message](t *testing.T, e *env, subject string, mk func() T) []T {
	t.Helper()
	ctx := context.Background()
	stream, err := e.b.JS.Stream(ctx, e.b.Subjects.EventsStream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	n := int(info.State.Subjects[subject])
	if n == 0 {
		return nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	for m := range batch.Messages() {
		v := mk()
		if err := proto.Unmarshal(m.Data(), v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if len(out) != n {
		t.Fatalf("read %d of %d messages on %s", len(out), n, subject)
	}
	return out
}

func checkResults(t *testing.T, e *env) []*sluicev1.CheckResult {
	return events(t, e, e.b.Subjects.Checked(), func() *sluicev1.CheckResult { return &sluicev1.CheckResult{} })
}

func summaryEvents(t *testing.T, e *env) []*sluicev1.SummaryWritten {
	return events(t, e, e.b.Subjects.Summary(), func() *sluicev1.SummaryWritten { return &sluicev1.SummaryWritten{} })
}

func tableByName(doc summarizer.SummaryJSON, name string) summarizer.TableJSON {
	for _, t := range doc.Tables {
		if t.Table == name {
			return t
		}
	}
	return summarizer.TableJSON{Table: "<missing " + name + ">"}
}

// goodArchive has three tables: one with a quarantined row, one plain, one with zero rows.
func goodArchive(id, name string) fixture {
	return fixture{id: id, name: name,
		tables: []tbl{
			{name: "orders", in: map[string]int64{day: 5}, committed: map[string]int64{day: 4}, footer: map[string]int{day: 4}, quarantined: 1, reason: "amount: not a decimal"},
			{name: "customers", in: map[string]int64{day: 3}, committed: map[string]int64{day: 3}, footer: map[string]int{day: 3}},
			{name: "refunds", in: map[string]int64{day: 0}},
		},
		rejected: []*sluicev1.RejectedMember{{Member: "README.txt", Kind: "skipped", Reason: "not a table file", Size: 42}},
	}
}

func TestSummaryRowsInAndOut(t *testing.T) {
	e := newEnv(t, nil)
	s, _ := e.start(t)
	f := goodArchive("a0000000000000000001", "acme_20250102_1.tar.gz")
	before := time.Now()
	e.publishAll(t, f)
	st := waitFor(t, s, f.id)
	// The fleet's view: the newest commit of each table (stream time), archives by state.
	for _, table := range []string{"customers", "orders"} {
		v, _ := metricValue(t, e.reg, "sluice_summarizer_last_commit_timestamp_seconds", map[string]string{"table": table})
		if at := time.UnixMilli(int64(math.Round(v * 1e3))); at.Before(before.Truncate(time.Millisecond)) || at.After(time.Now()) {
			t.Errorf("last commit of %s at %v, want between %v and now", table, at, before)
		}
	}
	if v, _ := metricValue(t, e.reg, "sluice_summarizer_archives", map[string]string{"state": "committed"}); v != 1 {
		t.Errorf("archives committed: %v", v)
	}
	if v, _ := metricValue(t, e.reg, "sluice_summarizer_caught_up", nil); v != 1 {
		t.Errorf("caught_up: %v", v)
	}

	a := st.Archives[f.id]
	if a.State != summarizer.StateCommitted || !a.CheckOK || a.RowsIn != 8 || a.RowsOut != 7 || a.Quarantined != 1 || a.Rejected != 0 || a.Skipped != 1 {
		t.Fatalf("archive status %+v", a)
	}
	if d := st.Dates[day]; !d.Written || !d.Complete || !d.CheckOK || d.Archives != 1 {
		t.Fatalf("date status %+v", d)
	}
	doc, txt := e.summary(t, day)
	t.Logf("summary.txt:\n%s", txt)
	for _, want := range []summarizer.TableJSON{
		{Table: "customers", RowsIn: 3, RowsOut: 3, Objects: 1},
		{Table: "orders", RowsIn: 5, RowsOut: 4, Quarantined: 1, Objects: 1},
		{Table: "refunds", RowsIn: 0, RowsOut: 0, Objects: 0},
	} {
		got := tableByName(doc, want.Table)
		if got.RowsIn != want.RowsIn || got.RowsOut != want.RowsOut || got.Quarantined != want.Quarantined || got.Objects != want.Objects || got.Check != summarizer.CheckOK {
			t.Errorf("table %s: got %+v", want.Table, got)
		}
	}
	if o := tableByName(doc, "orders"); o.SchemaVersion != 2 || len(o.SchemaChanges) != 1 || len(o.QuarantineReasons) != 1 || o.Bytes == 0 {
		t.Errorf("orders detail %+v", o)
	}
	if doc.Check != summarizer.CheckOK || !doc.Complete || doc.Totals.RowsIn != 8 || doc.Totals.RowsOut != 7 || doc.Totals.SkippedMembers != 1 {
		t.Errorf("summary header %+v totals %+v", doc.Check, doc.Totals)
	}
	if len(doc.Archives) != 1 || doc.Archives[0].ExtractMs != 1500 || doc.Archives[0].CommitMs != 750 {
		t.Errorf("archives %+v", doc.Archives)
	}
	for _, want := range []string{"check OK", "TABLES", "ARCHIVES", "QUARANTINED ROWS", "amount: not a decimal", "README.txt", "added column name"} {
		if !strings.Contains(txt, want) {
			t.Errorf("summary.txt lacks %q", want)
		}
	}
	assertAligned(t, txt, "TABLES", "rows out")

	checks := checkResults(t, e)
	if len(checks) != 3 {
		t.Fatalf("%d check results, want 3", len(checks))
	}
	for _, c := range checks {
		if !c.GetOk() || c.GetRowsExpected() != c.GetRowsFound() {
			t.Errorf("check %v", c)
		}
	}
	rec, _, err := e.led.Get(context.Background(), f.id)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != ledger.Committed || rec.RowsOut != 7 || rec.RowsIn != 8 || rec.Tables != 3 {
		t.Fatalf("ledger %+v", rec)
	}
	sw := summaryEvents(t, e)
	if len(sw) != 1 || !sw[0].GetComplete() || !sw[0].GetCheckOk() || sw[0].GetKey() != summarizer.SummaryKey(day) {
		t.Fatalf("summary events %v", sw)
	}
}

// assertAligned checks that in the section's table the right-aligned column ends at the same
// position on every line.
func assertAligned(t *testing.T, txt, section, column string) {
	t.Helper()
	_, rest, ok := strings.Cut(txt, "\n"+section+"\n")
	if !ok {
		t.Fatalf("no section %s", section)
	}
	lines := strings.Split(strings.TrimRight(strings.SplitN(rest, "\n\n", 2)[0], "\n"), "\n") // the last section ends the text
	end := strings.Index(lines[0], column) + len(column)
	if end < len(column) {
		t.Fatalf("no column %q in %q", column, lines[0])
	}
	for _, l := range lines[1:] {
		if len(l) < end || l[end-1] == ' ' || (len(l) > end && l[end] != ' ') {
			t.Errorf("column %q not aligned:\n%s\n%s", column, lines[0], l)
		}
	}
}

func TestFooterMismatchFailsCheck(t *testing.T) {
	e := newEnv(t, nil)
	s, _ := e.start(t)
	f := fixture{id: "a0000000000000000002", name: "acme_20250102_2.tar.gz", tables: []tbl{
		{name: "orders", in: map[string]int64{day: 5}, committed: map[string]int64{day: 5}, footer: map[string]int{day: 4}},
		{name: "customers", in: map[string]int64{day: 2}, committed: map[string]int64{day: 2}, footer: map[string]int{day: 2}},
	}}
	e.publishAll(t, f)
	st := waitFor(t, s, f.id)

	if a := st.Archives[f.id]; a.State != summarizer.StateFailed || a.CheckOK || !strings.Contains(a.Reason, "footer has 4 rows, commit says 5") {
		t.Fatalf("archive %+v", a)
	}
	if st.Totals.CheckFailures != 1 || st.Dates[day].CheckOK {
		t.Fatalf("totals %+v date %+v", st.Totals, st.Dates[day])
	}
	var bad *sluicev1.CheckResult
	for _, c := range checkResults(t, e) {
		if c.GetTable() == "orders" {
			bad = c
		} else if !c.GetOk() {
			t.Errorf("customers check %v", c)
		}
	}
	if bad == nil || bad.GetOk() || bad.GetRowsExpected() != 5 || bad.GetRowsFound() != 4 || !strings.Contains(bad.GetDetail(), "rows in 5 != footer rows 4") {
		t.Fatalf("orders check %v", bad)
	}
	rec, _, err := e.led.Get(context.Background(), f.id)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != ledger.Failed || !strings.Contains(rec.Reason, "post-merge check failed") {
		t.Fatalf("ledger %+v", rec)
	}
	doc, txt := e.summary(t, day)
	if doc.Check != summarizer.CheckFail || tableByName(doc, "orders").Check != summarizer.CheckFail || tableByName(doc, "orders").RowsOut != 4 {
		t.Fatalf("summary %+v", doc)
	}
	if !strings.Contains(txt, "check FAIL") || !strings.Contains(txt, "CHECK FAILURES") {
		t.Fatalf("summary.txt:\n%s", txt)
	}
	if sw := summaryEvents(t, e); len(sw) != 1 || sw[0].GetCheckOk() {
		t.Fatalf("summary events %v", sw)
	}
}

func TestFailedArchiveAndDuplicateInSummary(t *testing.T) {
	e := newEnv(t, nil)
	s, _ := e.start(t)
	good := goodArchive("a0000000000000000003", "acme_20250102_1.tar.gz")
	e.publishAll(t, good)
	sub := e.b.Subjects
	e.pub(t, sub.Failed(), &sluicev1.ArchiveFailed{ArchiveId: "b0000000000000000001", Name: "acme_20250102_2.tar.gz",
		Uri: "file:///landing/acme_20250102_2.tar.gz", Reason: "gzip: invalid header", FailedUnixMs: t0.UnixMilli()})
	// No date in its name: the day it failed.
	e.pub(t, sub.Failed(), &sluicev1.ArchiveFailed{ArchiveId: "b0000000000000000002", Name: "garbage.tar.gz",
		Reason: "tar: member escapes root", FailedUnixMs: time.Date(2025, 1, 3, 1, 0, 0, 0, time.UTC).UnixMilli()})
	seq := e.pub(t, sub.Duplicate(), &sluicev1.ArchiveDuplicate{ArchiveId: good.id, Uri: "file:///landing/again/acme_20250102_1.tar.gz",
		FirstUri: "file:///landing/acme_20250102_1.tar.gz", SeenUnixMs: t0.UnixMilli()})
	waitSeq(t, s, seq)
	st := waitFor(t, s, good.id, "b0000000000000000001", "b0000000000000000002")

	if st.Totals.Failed != 2 || st.Totals.Committed != 1 || st.Totals.Duplicates != 1 || len(st.Duplicates) != 1 {
		t.Fatalf("totals %+v dups %+v", st.Totals, st.Duplicates)
	}
	if a := st.Archives["b0000000000000000002"]; len(a.Dates) != 1 || a.Dates[0] != "2025-01-03" {
		t.Fatalf("dateless failed archive %+v", a)
	}
	doc, txt := e.summary(t, day)
	if len(doc.Failed) != 1 || doc.Failed[0].Reason != "gzip: invalid header" || doc.Totals.Failed != 1 || doc.Totals.Committed != 1 {
		t.Fatalf("failed archives %+v totals %+v", doc.Failed, doc.Totals)
	}
	if len(doc.Duplicates) != 1 || doc.Duplicates[0].FirstURI != "file:///landing/acme_20250102_1.tar.gz" || doc.Totals.Duplicates != 1 {
		t.Fatalf("duplicates %+v", doc.Duplicates)
	}
	for _, want := range []string{"FAILED ARCHIVES", "gzip: invalid header", "DUPLICATES SKIPPED", "file:///landing/again/acme_20250102_1.tar.gz"} {
		if !strings.Contains(txt, want) {
			t.Errorf("summary.txt lacks %q:\n%s", want, txt)
		}
	}
	// Extraction failures do not make the post-merge check FAIL.
	if doc.Check != summarizer.CheckOK {
		t.Errorf("check %s", doc.Check)
	}
	doc3, _ := e.summary(t, "2025-01-03")
	if len(doc3.Failed) != 1 || doc3.Failed[0].Name != "garbage.tar.gz" {
		t.Fatalf("2025-01-03 failed %+v", doc3.Failed)
	}
}

func TestArchiveWaitsForEveryTableCommit(t *testing.T) {
	e := newEnv(t, nil)
	s, _ := e.start(t)
	f := goodArchive("a0000000000000000004", "acme_20250102_1.tar.gz")
	sub := e.b.Subjects
	// A commit may arrive before the extractor's event; refunds' commit is held back.
	e.pub(t, sub.Committed(), e.commit(t, f, "orders"))
	e.pub(t, sub.Extracted(), f.extracted())
	seq := e.pub(t, sub.Committed(), e.commit(t, f, "customers"))
	st := waitSeq(t, s, seq)
	if a := st.Archives[f.id]; a.State != summarizer.StatePending || a.Checked {
		t.Fatalf("archive %+v", a)
	}
	if st.Dates[day].Written {
		t.Fatal("summary written before every table was committed")
	}
	if _, err := e.out.Stat(context.Background(), summarizer.SummaryKey(day)); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("summary exists early: %v", err)
	}
	if n := len(checkResults(t, e)); n != 0 {
		t.Fatalf("%d checks before completion", n)
	}
	// WaitFor, called while the archive is pending, returns only with a snapshot in which the
	// last commit (published after the call) is folded.
	type waited struct {
		st  summarizer.Status
		err error
	}
	res := make(chan waited, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		st, err := s.WaitFor(ctx, []string{f.id})
		res <- waited{st, err}
	}()
	last := e.pub(t, sub.Committed(), e.commit(t, f, "refunds"))
	w := <-res
	if w.err != nil {
		t.Fatalf("wait for %s: %v (status %+v)", f.id, w.err, w.st)
	}
	st = w.st
	if st.Seq < last || st.Archives[f.id].State != summarizer.StateCommitted {
		t.Fatalf("WaitFor returned before the last commit was folded: seq %d < %d or archive %+v", st.Seq, last, st.Archives[f.id])
	}
	if doc, _ := e.summary(t, day); len(doc.Tables) != 3 || doc.Totals.RowsOut != 7 {
		t.Fatalf("summary tables %+v", doc.Tables)
	}
}

func TestDuplicatedEventsChangeNothing(t *testing.T) {
	e := newEnv(t, nil)
	s, _ := e.start(t)
	f := goodArchive("a0000000000000000005", "acme_20250102_1.tar.gz")
	sub := e.b.Subjects
	if _, _, err := e.led.Create(context.Background(), ledger.Record{ArchiveID: f.id, Name: f.name}); err != nil {
		t.Fatal(err)
	}
	commits := map[string]*sluicev1.BatchCommitted{}
	for _, tb := range f.tables {
		commits[tb.name] = e.commit(t, f, tb.name)
	}
	for range 2 {
		e.pub(t, sub.Landed(), f.landed())
		e.pub(t, sub.Extracted(), f.extracted())
		for _, tb := range f.tables {
			e.pub(t, sub.Committed(), commits[tb.name])
			e.pub(t, sub.Committed(), commits[tb.name]) // the same BatchCommitted twice in a row
		}
	}
	waitFor(t, s, f.id)
	before := e.rawSummary(t, day)
	rec0, _, _ := e.led.Get(context.Background(), f.id)

	// And once more after the summary was written.
	seq := e.pub(t, sub.Committed(), commits["orders"])
	e.pub(t, sub.Duplicate(), &sluicev1.ArchiveDuplicate{ArchiveId: f.id, Uri: "file:///x/acme_20250102_1.tar.gz", SeenUnixMs: t0.UnixMilli()})
	seq2 := e.pub(t, sub.Duplicate(), &sluicev1.ArchiveDuplicate{ArchiveId: f.id, Uri: "file:///x/acme_20250102_1.tar.gz", SeenUnixMs: t0.UnixMilli()})
	_ = seq
	st := waitSeq(t, s, seq2)
	if st.Totals.Duplicates != 1 || st.Totals.RowsIn != 8 || st.Totals.RowsOut != 7 || st.Totals.Archives != 1 {
		t.Fatalf("totals %+v", st.Totals)
	}
	if n := len(checkResults(t, e)); n != 3 {
		t.Fatalf("%d check results, want 3", n)
	}
	// One write for the archive, one more for the duplicate; never one per repeated event.
	if sw := summaryEvents(t, e); len(sw) != 2 {
		t.Fatalf("%d summary events, want 2", len(sw))
	}
	doc, _ := e.summary(t, day)
	if doc.Totals.RowsIn != 8 || doc.Totals.RowsOut != 7 || doc.Totals.Duplicates != 1 || len(doc.Archives) != 1 {
		t.Fatalf("summary totals %+v", doc.Totals)
	}
	if bytes.Equal(before, e.rawSummary(t, day)) {
		t.Fatal("duplicate location not added to the summary")
	}
	rec1, _, _ := e.led.Get(context.Background(), f.id)
	if len(rec1.History) != len(rec0.History) || rec1.State != ledger.Committed {
		t.Fatalf("ledger changed: %+v → %+v", rec0.History, rec1.History)
	}
}

func TestRestartRebuildsState(t *testing.T) {
	e := newEnv(t, nil)
	sub := e.b.Subjects
	good := goodArchive("a0000000000000000006", "acme_20250102_1.tar.gz")
	bad := fixture{id: "a0000000000000000007", name: "acme_20250102_2.tar.gz", tables: []tbl{
		{name: "orders", in: map[string]int64{day: 6}, committed: map[string]int64{day: 6}, footer: map[string]int{day: 5}},
	}}
	if _, _, err := e.led.Create(context.Background(), ledger.Record{ArchiveID: good.id, Name: good.name}); err != nil {
		t.Fatal(err)
	}

	// First instance sees the good archive half committed, then stops.
	s1, stop1 := e.start(t)
	e.pub(t, sub.Landed(), good.landed())
	e.pub(t, sub.Extracted(), good.extracted())
	seq := e.pub(t, sub.Committed(), e.commit(t, good, "orders"))
	waitSeq(t, s1, seq)
	stop1()

	// Second instance: the rest arrives; it must remember the first half.
	s2, stop2 := e.start(t)
	e.pub(t, sub.Committed(), e.commit(t, good, "customers"))
	e.pub(t, sub.Committed(), e.commit(t, good, "refunds"))
	e.publishAll(t, bad)
	st2 := waitFor(t, s2, good.id, bad.id)
	if st2.Archives[good.id].State != summarizer.StateCommitted || st2.Archives[bad.id].State != summarizer.StateFailed {
		t.Fatalf("after restart: %+v", st2.Archives)
	}
	doc, _ := e.summary(t, day)
	if doc.Totals.RowsIn != 14 || doc.Totals.RowsOut != 12 || doc.Check != summarizer.CheckFail {
		t.Fatalf("summary totals %+v check %s", doc.Totals, doc.Check)
	}
	stop2()
	before := e.rawSummary(t, day)
	nChecks, nSummaries := len(checkResults(t, e)), len(summaryEvents(t, e))
	recGood, _, _ := e.led.Get(context.Background(), good.id)
	recBad, _, _ := e.led.Get(context.Background(), bad.id)

	// Third instance on an unchanged stream: same state, nothing written or published again.
	s3, _ := e.start(t)
	st3 := waitFor(t, s3, good.id, bad.id)
	if st3.Totals != st2.Totals {
		t.Fatalf("totals after restart %+v, before %+v", st3.Totals, st2.Totals)
	}
	if a := st3.Archives[bad.id]; a.Reason != st2.Archives[bad.id].Reason || a.RowsOut != 5 {
		t.Fatalf("failed archive after restart %+v", a)
	}
	if !bytes.Equal(before, e.rawSummary(t, day)) {
		t.Fatal("restart changed the summary")
	}
	if n, m := len(checkResults(t, e)), len(summaryEvents(t, e)); n != nChecks || m != nSummaries {
		t.Fatalf("restart published again: checks %d→%d summaries %d→%d", nChecks, n, nSummaries, m)
	}
	r1, _, _ := e.led.Get(context.Background(), good.id)
	r2, _, _ := e.led.Get(context.Background(), bad.id)
	if len(r1.History) != len(recGood.History) || len(r2.History) != len(recBad.History) {
		t.Fatal("restart touched the ledger")
	}
}

func TestMissingSourcesAfterDeadline(t *testing.T) {
	partners := &config.File{Partners: []config.Partner{{Name: "acme", Expected: &config.Expected{
		Sources:  []string{"acme_{date}_*.tar.gz", "beta_{date}.tar.gz"},
		Deadline: config.Duration{Duration: 30 * time.Hour},
	}}}}
	e := newEnv(t, partners)
	s, _ := e.start(t)
	f := goodArchive("a0000000000000000008", "acme_20250102_1.tar.gz")
	e.publishAll(t, f)
	st := waitFor(t, s, f.id)
	if d := st.Dates[day]; d.Complete || len(d.Missing) != 0 || !d.Written {
		t.Fatalf("before the deadline: %+v", d)
	}
	doc, _ := e.summary(t, day)
	if len(doc.Sources) != 1 || len(doc.Sources[0].In) != 1 || len(doc.Sources[0].Awaited) != 1 || len(doc.Sources[0].Missing) != 0 || doc.Complete {
		t.Fatalf("sources before the deadline %+v", doc.Sources)
	}
	// Just before the deadline (2025-01-03 06:00 UTC): still not missing.
	e.setNow(time.Date(2025, 1, 3, 5, 59, 0, 0, time.UTC))
	if d := e.settledAfter(t, s).Dates[day]; len(d.Missing) != 0 {
		t.Fatalf("missing reported before the deadline: %+v", d)
	}
	for _, ev := range summaryEvents(t, e) {
		if len(ev.GetMissingSources()) > 0 || ev.GetComplete() {
			t.Fatalf("summary event before the deadline %v", ev)
		}
	}

	if v, ok := metricValue(t, e.reg, "sluice_summarizer_missing_sources", map[string]string{"date": day, "partner": "acme"}); ok {
		t.Fatalf("missing_sources before the deadline: %v", v)
	}

	e.setNow(time.Date(2025, 1, 3, 6, 0, 1, 0, time.UTC))
	st = waitStatus(t, s, func(st summarizer.Status) bool { return len(st.Dates[day].Missing) > 0 && st.Dates[day].Written })
	if m := st.Dates[day].Missing; len(m) != 1 || m[0] != "beta_20250102.tar.gz" {
		t.Fatalf("missing %v", m)
	}
	if v, ok := metricValue(t, e.reg, "sluice_summarizer_missing_sources", map[string]string{"date": day, "partner": "acme"}); v != 1 {
		t.Fatalf("missing_sources after the deadline: %v (present %v), want 1", v, ok)
	}
	doc, txt := e.summary(t, day)
	if doc.Complete || len(doc.Sources[0].Missing) != 1 || !doc.Sources[0].DeadlinePassed || doc.Sources[0].In[0].Archives[0] != f.name {
		t.Fatalf("sources after the deadline %+v", doc.Sources)
	}
	if !strings.Contains(txt, "MISSING") || !strings.Contains(txt, "beta_20250102.tar.gz") {
		t.Fatalf("summary.txt:\n%s", txt)
	}
	sw := summaryEvents(t, e)
	last := sw[len(sw)-1]
	if last.GetComplete() || len(last.GetMissingSources()) != 1 || last.GetMissingSources()[0] != "beta_20250102.tar.gz" || last.GetProcessDate() != day {
		t.Fatalf("summary event %v", last)
	}

	// 2025-01-03 had no archive at all: it is reported once its own deadline passes, not before.
	if _, err := e.out.Stat(context.Background(), summarizer.SummaryKey("2025-01-03")); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("empty date summarized before its deadline: %v", err)
	}
	e.setNow(time.Date(2025, 1, 4, 6, 30, 0, 0, time.UTC))
	waitStatus(t, s, func(st summarizer.Status) bool { return len(st.Dates["2025-01-03"].Missing) == 2 })
	doc3, _ := e.summary(t, "2025-01-03")
	if doc3.Complete || len(doc3.Sources[0].Missing) != 2 || len(doc3.Archives) != 0 {
		t.Fatalf("empty date %+v", doc3)
	}
	if v, _ := metricValue(t, e.reg, "sluice_summarizer_missing_sources", map[string]string{"date": "2025-01-03", "partner": "acme"}); v != 2 {
		t.Fatalf("missing_sources of the empty date: %v, want 2", v)
	}
}

// TestMissingSourcesOfADayBeforeTheStart: a summarizer started after midnight watches the days
// whose longest deadline (over every partner) is still ahead. No archive of 2025-01-01 ever came;
// acme's deadline for it (30 h) is ahead at the start (2025-01-02 05:00), beta's (2 h) is not:
// beta's source is missing at once, acme's once its deadline passes.
func TestMissingSourcesOfADayBeforeTheStart(t *testing.T) {
	partners := &config.File{Partners: []config.Partner{
		{Name: "acme", Expected: &config.Expected{Sources: []string{"acme_{date}.tar.gz"}, Deadline: config.Duration{Duration: 30 * time.Hour}}},
		{Name: "beta", Expected: &config.Expected{Sources: []string{"beta_{date}.tar.gz"}, Deadline: config.Duration{Duration: 2 * time.Hour}}},
	}}
	e := newEnv(t, partners)
	e.setNow(time.Date(2025, 1, 2, 5, 0, 0, 0, time.UTC))
	s, _ := e.start(t)
	// The first settle, at 05:00: beta's sources of 2025-01-02 are already late (deadline 02:00).
	st := waitStatus(t, s, func(st summarizer.Status) bool {
		return st.Dates[day].Written && len(st.Dates[day].Missing) == 1 && st.Dates["2025-01-01"].Written
	})
	if d := st.Dates["2025-01-01"]; !slices.Equal(d.Missing, []string{"beta_20250101.tar.gz"}) {
		t.Fatalf("2025-01-01 at 05:00: %+v, want beta's source missing and acme's awaited", d)
	}
	// 2024-12-31 is still inside the watch window (acme's deadline + 48 h), but it fell due
	// before the events stream was created (now, in 2026): not sluice's to report.
	if d, ok := st.Dates["2024-12-31"]; ok {
		t.Fatalf("2024-12-31, due before sluice existed, is watched: %+v", d)
	}
	e.setNow(time.Date(2025, 1, 2, 6, 0, 1, 0, time.UTC))
	st = waitStatus(t, s, func(st summarizer.Status) bool { return len(st.Dates["2025-01-01"].Missing) == 2 })
	if m := st.Dates["2025-01-01"].Missing; !slices.Equal(m, []string{"acme_20250101.tar.gz", "beta_20250101.tar.gz"}) {
		t.Fatalf("missing %v", m)
	}
}

// TestMissingSourcesAcrossARestart: a date without archives whose deadline passed while no
// summarizer ran is reported by the next one to start, as one running all along would have.
// The dates are relative to when the events stream was created: a date due before sluice
// existed is not reported (TestMissingSourcesOfADayBeforeTheStart).
func TestMissingSourcesAcrossARestart(t *testing.T) {
	partners := &config.File{Partners: []config.Partner{{Name: "acme", Expected: &config.Expected{
		Sources: []string{"acme_{date}.tar.gz"}, Deadline: config.Duration{Duration: 6 * time.Hour},
	}}}}
	e := newEnv(t, partners)
	stream, err := e.b.JS.Stream(context.Background(), e.b.Subjects.EventsStream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d1 := info.Created.UTC().Truncate(24*time.Hour).AddDate(0, 0, 1) // the first midnight after it
	d2 := d1.AddDate(0, 0, 1)
	date1, date2 := d1.Format(time.DateOnly), d2.Format(time.DateOnly)

	// Running at 01:00 of d1: its deadline (06:00) is ahead; nothing is written.
	e.setNow(d1.Add(time.Hour))
	s1, stop1 := e.start(t)
	if st := e.settledAfter(t, s1); st.Dates[date1].Written || len(st.Dates[date1].Missing) != 0 {
		t.Fatalf("%s before its deadline: %+v", date1, st.Dates[date1])
	}
	stop1()
	if _, err := e.out.Stat(context.Background(), summarizer.SummaryKey(date1)); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("summary of %s before its deadline: %v", date1, err)
	}

	// Down until 12:00 of d2: both deadlines passed meanwhile (d2's was never ahead of a
	// running summarizer). The next one reports both.
	e.setNow(d2.Add(12 * time.Hour))
	s2, _ := e.start(t)
	st := waitStatus(t, s2, func(st summarizer.Status) bool { return st.Dates[date1].Written && st.Dates[date2].Written })
	for _, d := range []time.Time{d1, d2} {
		date := d.Format(time.DateOnly)
		want := "acme_" + d.Format("20060102") + ".tar.gz"
		if m := st.Dates[date].Missing; !slices.Equal(m, []string{want}) {
			t.Errorf("%s missing %v, want %s", date, m, want)
		}
		if doc, _ := e.summary(t, date); doc.Complete || len(doc.Sources) != 1 || !slices.Equal(doc.Sources[0].Missing, []string{want}) {
			t.Errorf("%s summary sources %+v", date, doc.Sources)
		}
		if v, _ := metricValue(t, e.reg, "sluice_summarizer_missing_sources", map[string]string{"date": date, "partner": "acme"}); v != 1 {
			t.Errorf("missing_sources %s = %v, want 1", date, v)
		}
	}
}

func TestArchiveSpanningDates(t *testing.T) {
	e := newEnv(t, nil)
	s, _ := e.start(t)
	const d1, d2 = "2025-01-01", "2025-01-02"
	f := fixture{id: "a0000000000000000009", name: "acme_20250102_3.tar.gz", tables: []tbl{
		{name: "orders", in: map[string]int64{d1: 3, d2: 4}, committed: map[string]int64{d1: 3, d2: 3}, footer: map[string]int{d1: 3, d2: 3}, quarantined: 1, reason: "bad"},
	}}
	e.publishAll(t, f)
	st := waitFor(t, s, f.id)
	if a := st.Archives[f.id]; a.State != summarizer.StateCommitted || len(a.Dates) != 2 {
		t.Fatalf("archive %+v", a)
	}
	for date, want := range map[string][3]int64{d1: {3, 3, 0}, d2: {4, 3, 1}} {
		doc, _ := e.summary(t, date)
		o := tableByName(doc, "orders")
		if o.RowsIn != want[0] || o.RowsOut != want[1] || o.Quarantined != want[2] || o.Objects != 1 {
			t.Errorf("%s orders %+v", date, o)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []summarizer.Config{{CheckEvery: -time.Second}, {Consumer: "a.b"}, {CheckParallelism: -1}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	if err := (summarizer.Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := summarizer.New(summarizer.Config{}, summarizer.Deps{}); err == nil {
		t.Fatal("New without a bus")
	}
}

// TestSummaryOnS3 runs a good and a bad archive against a real S3 server (versitygw): footers
// are read with ranged GETs, summaries written with PutObject.
func TestSummaryOnS3(t *testing.T) {
	e := newEnvOn(t, nil, s3test.OpenS3(t))
	s, _ := e.start(t)
	good := goodArchive("a0000000000000000010", "acme_20250102_1.tar.gz")
	bad := fixture{id: "a0000000000000000011", name: "acme_20250102_2.tar.gz", tables: []tbl{
		{name: "orders", in: map[string]int64{day: 2}, committed: map[string]int64{day: 2}, footer: map[string]int{day: 3}},
	}}
	e.publishAll(t, good)
	e.publishAll(t, bad)
	st := waitFor(t, s, good.id, bad.id)
	if st.Archives[good.id].State != summarizer.StateCommitted || st.Archives[bad.id].State != summarizer.StateFailed {
		t.Fatalf("archives %+v", st.Archives)
	}
	doc, txt := e.summary(t, day)
	if doc.Check != summarizer.CheckFail || doc.Totals.RowsIn != 10 || doc.Totals.RowsOut != 10 || !strings.Contains(txt, "CHECK FAILURES") {
		t.Fatalf("summary %+v\n%s", doc.Totals, txt)
	}
}

func TestReextractionReplacesAttempt(t *testing.T) {
	e := newEnv(t, nil)
	s, _ := e.start(t)
	sub := e.b.Subjects
	f := fixture{id: "a0000000000000000012", name: "acme_20250102_1.tar.gz", tables: []tbl{
		{name: "orders", in: map[string]int64{day: 4}, committed: map[string]int64{day: 4}, footer: map[string]int{day: 4}},
	}}
	e.publishAll(t, f)
	waitFor(t, s, f.id)
	stale := e.commit(t, f, "orders")

	// sluice reextract: attempt 1, and this time the partner's file has 6 rows.
	f.tables[0] = tbl{name: "orders", in: map[string]int64{day: 6}, committed: map[string]int64{day: 6}, footer: map[string]int{day: 6}}
	l := f.landed()
	l.Attempt, l.Replay = 1, true
	seq := e.pub(t, sub.Landed(), l)
	if st := waitSeq(t, s, seq); st.Archives[f.id].State != summarizer.StatePending || st.Dates[day].Written {
		t.Fatalf("re-extraction not pending: %+v %+v", st.Archives[f.id], st.Dates[day])
	}
	ex := f.extracted()
	ex.Attempt = 1
	e.pub(t, sub.Extracted(), ex)
	c := e.commit(t, f, "orders")
	c.Attempt, c.Replay = 1, true
	e.pub(t, sub.Committed(), c)
	st := waitFor(t, s, f.id)
	if a := st.Archives[f.id]; a.State != summarizer.StateCommitted || a.Attempt != 1 || a.RowsIn != 6 || a.RowsOut != 6 {
		t.Fatalf("after re-extraction %+v", a)
	}
	// A late commit of attempt 0 is stale.
	seq = e.pub(t, sub.Committed(), stale)
	if st := waitSeq(t, s, seq); st.Archives[f.id].RowsOut != 6 || st.Archives[f.id].State != summarizer.StateCommitted {
		t.Fatalf("stale commit changed the archive %+v", st.Archives[f.id])
	}
	if doc, _ := e.summary(t, day); doc.Totals.RowsIn != 6 || doc.Archives[0].Attempt != 1 {
		t.Fatalf("summary %+v", doc.Totals)
	}
	if n := len(checkResults(t, e)); n != 2 {
		t.Fatalf("%d check results, want one per attempt", n)
	}
}

// TestExpiredArchivesCarriedOver: archives whose events left the stream (retention) stay in the
// summary of their date when a late archive makes it be rewritten.
func TestExpiredArchivesCarriedOver(t *testing.T) {
	e := newEnv(t, nil)
	old := goodArchive("a0000000000000000013", "acme_20250102_1.tar.gz")
	s1, stop1 := e.start(t)
	e.publishAll(t, old)
	waitFor(t, s1, old.id)
	stop1()
	stream, err := e.b.JS.Stream(context.Background(), e.b.Subjects.EventsStream())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Purge(context.Background()); err != nil { // what 30 days of retention would do
		t.Fatal(err)
	}

	s2, _ := e.start(t)
	late := fixture{id: "a0000000000000000014", name: "acme_20250102_9.tar.gz", tables: []tbl{
		{name: "orders", in: map[string]int64{day: 2}, committed: map[string]int64{day: 2}, footer: map[string]int{day: 2}},
	}}
	e.publishAll(t, late)
	waitFor(t, s2, late.id)
	doc, _ := e.summary(t, day)
	if len(doc.Archives) != 2 || doc.Totals.RowsIn != 10 || tableByName(doc, "orders").RowsIn != 7 {
		t.Fatalf("summary archives %d totals %+v", len(doc.Archives), doc.Totals)
	}
}

// TestArchiveWithoutATableSaysWhy: an archive from which no member was taken as a table is done,
// and a finding of `run --once`, which says the reason is in the summary: summary.json gives it
// and summary.txt lists it.
func TestArchiveWithoutATableSaysWhy(t *testing.T) {
	e := newEnv(t, nil)
	s, _ := e.start(t)
	sub := e.b.Subjects
	f := goodArchive("a0000000000000000041", "acme_20250102_9.tar.gz")
	f.tables = nil
	e.pub(t, sub.Landed(), f.landed())
	seq := e.pub(t, sub.Extracted(), f.extracted())
	waitStatus(t, s, func(st summarizer.Status) bool {
		return st.Seq >= seq && st.Archives[f.id].State == summarizer.StateCommitted && st.Dates[day].Written
	})
	doc, txt := e.summary(t, day)
	if len(doc.Archives) != 1 || doc.Archives[0].Reason != "no member was taken as a table: its only member was skipped or rejected (see below)" {
		t.Fatalf("summary.json archives %+v", doc.Archives)
	}
	if !strings.Contains(txt, "ARCHIVES WITHOUT A TABLE") || !strings.Contains(txt, "no member was taken as a table") {
		t.Errorf("summary.txt does not list it:\n%s", txt)
	}
}

// TestFailedAttemptsCommittedTablesListed: a run that crashed after publishing every chunk and
// marker of an archive, whose re-extraction then failed (the file gone), leaves tables committed
// by the merger and no extraction event: the failed archive's summary lists their objects and
// rows, which are in the lake (it said objects 0, rows out 0 — a user trial).
func TestFailedAttemptsCommittedTablesListed(t *testing.T) {
	e := newEnv(t, nil)
	s, _ := e.start(t)
	sub := e.b.Subjects
	// Named for another day than its members' (the failure's date would be that one): the
	// summary of the members' day lists the objects.
	f := goodArchive("a0000000000000000051", "acme_20250109_5.tar.gz")
	e.pub(t, sub.Landed(), f.landed())
	for _, tb := range f.tables[:2] {
		e.pub(t, sub.Committed(), e.commit(t, f, tb.name))
	}
	seq := e.pubFailed(t, &sluicev1.ArchiveFailed{ArchiveId: f.id, Name: f.name, Reason: "archive not found: file:///landing/" + f.name,
		FailedUnixMs: t0.UnixMilli(), Origin: sluicev1.Stage_STAGE_EXTRACTOR}, f.id+".0.failed")
	st := waitStatus(t, s, func(st summarizer.Status) bool {
		return st.Seq >= seq && st.Archives[f.id].State == summarizer.StateFailed && st.Dates[day].Written
	})
	if as := st.Archives[f.id]; as.RowsOut != 7 || as.RowsIn != 8 {
		t.Errorf("status: rows in %d, out %d; want 8 and 7", as.RowsIn, as.RowsOut)
	}
	doc, _ := e.summary(t, day)
	if len(doc.Archives) != 1 {
		t.Fatalf("archives %+v", doc.Archives)
	}
	a := doc.Archives[0]
	var tables []string
	objects := 0
	for _, x := range a.Tables {
		tables = append(tables, x.Table)
		objects += len(x.Objects)
	}
	if !slices.Equal(tables, []string{"customers", "orders"}) || objects != 2 || a.RowsOut != 7 || a.RowsIn != 8 ||
		doc.Totals.Objects != 2 || doc.Totals.RowsOut != 7 || len(doc.Failed) != 1 {
		t.Errorf("failed archive's entry: tables %v, objects %d, rows in %d, out %d; totals %+v", tables, objects, a.RowsIn, a.RowsOut, doc.Totals)
	}
	for _, tj := range doc.Tables {
		if tj.Check != "" { // never checked (a failed archive's), so not OK either
			t.Errorf("table %s: check %q, want none", tj.Table, tj.Check)
		}
	}
}
