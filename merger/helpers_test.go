package merger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/objstore/s3test"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// sink is an output bucket kind the shared suite runs against.
type sink struct {
	name string
	open func(t *testing.T) objstore.Bucket
}

var sinks = []sink{
	{"dir", func(t *testing.T) objstore.Bucket {
		dir := t.TempDir()
		if keep := os.Getenv("MERGER_TEST_OUT"); keep != "" { // keep the output, e.g. to query it with DuckDB
			dir = filepath.Join(keep, strings.ReplaceAll(t.Name(), "/", "_"))
		}
		b, err := objstore.Open(context.Background(), dir, objstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}},
	{"s3", func(t *testing.T) objstore.Bucket { return s3test.OpenS3(t) }},
}

// env is one test's world: a NATS server, an output bucket, a checked allocator.
type env struct {
	t     *testing.T
	bus   *bus.Bus
	out   objstore.Bucket
	alloc *memory.CheckedAllocator
	log   *slog.Logger
	// ledger, when set before start, is given to the mergers (Deps.Ledger).
	ledger *ledger.Ledger
}

func newEnv(t *testing.T, sk sink) *env {
	t.Helper()
	return newEnvOn(t, sk, bustest.New(t))
}

// newEnvOn is newEnv on a bus of the test's choosing (a cluster's, say).
func newEnvOn(t *testing.T, sk sink, b *bus.Bus) *env {
	t.Helper()
	e := &env{t: t, bus: b, out: sk.open(t), alloc: memory.NewCheckedAllocator(memory.NewGoAllocator())}
	// Registered first, so it runs after every merger's stop (cleanups run last in, first out): a
	// merger still running holds Arrow memory (rows parsed on arrival) until it stops.
	t.Cleanup(func() { e.alloc.AssertSize(t, 0) })
	level := slog.LevelWarn
	switch os.Getenv("MERGER_TEST_LOG") {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	}
	e.log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: level}))
	if level == slog.LevelDebug { // pin advisories
		sub, err := e.bus.NC.Subscribe("$JS.EVENT.ADVISORY.CONSUMER.>", func(m *nats.Msg) {
			e.log.Debug("advisory", "subject", m.Subject, "data", string(m.Data))
		})
		if err == nil {
			t.Cleanup(func() { _ = sub.Unsubscribe() })
		}
	}
	return e
}

// testConfig is fast: short pins, acks and retries.
func testConfig(instance string) Config {
	return Config{
		Instance:      instance,
		MemoryBudget:  64 << 20,
		SpillDir:      "", // set by start
		AckWait:       2 * time.Second,
		PinnedTTL:     2 * time.Second,
		MaxDeliver:    5,
		RetryDelay:    700 * time.Millisecond, // 4×0.7s > AckWait
		RowGroupBytes: 1 << 20,
	}
}

// running is a merger started by env.start.
type running struct {
	m      *Merger
	cancel context.CancelFunc
	done   chan error
	reg    *prometheus.Registry
	stop   func()
}

// start runs a merger on b (nil: the env's bus) until the test ends or stop is called; once every
// merger of the test stopped, the checked allocator must be back to zero.
func (e *env) start(cfg Config, b *bus.Bus, partners *config.File) *running {
	e.t.Helper()
	if b == nil {
		b = e.bus
	}
	if cfg.SpillDir == "" {
		cfg.SpillDir = e.t.TempDir()
	}
	reg := prometheus.NewRegistry()
	m, err := New(cfg, Deps{Bus: b, Out: e.out, Partners: partners, Log: e.log.With("merger", cfg.Instance), Metrics: reg, Alloc: e.alloc, Ledger: e.ledger})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{m: m, cancel: cancel, done: make(chan error, 1), reg: reg}
	go func() { r.done <- m.Run(ctx) }()
	select {
	case <-m.ready:
	case err := <-r.done:
		r.done <- nil // for the cleanup's stop
		e.t.Fatalf("merger %s: Run: %v", cfg.Instance, err)
	case <-time.After(30 * time.Second):
		e.t.Fatalf("merger %s did not start", cfg.Instance)
	}
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-r.done:
				if err != nil {
					e.t.Errorf("merger %s: Run: %v", cfg.Instance, err)
				}
			case <-time.After(60 * time.Second):
				e.t.Errorf("merger %s did not stop", cfg.Instance)
			}
		})
	}
	e.t.Cleanup(r.stop)
	return r
}

// metric returns the value of a counter or gauge in r's registry, summed over its series (0 when
// absent).
func (r *running) metric(t *testing.T, name string) float64 {
	t.Helper()
	return r.sum(t, name, func(*dto.Metric) bool { return true })
}

// metricLabel returns the value of a counter or gauge in r's registry whose label has value
// (0 when absent).
func (r *running) metricLabel(t *testing.T, name, label, value string) float64 {
	t.Helper()
	return r.sum(t, name, func(m *dto.Metric) bool {
		return slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == label && l.GetValue() == value })
	})
}

// sum adds up the counter or gauge values of the series of name that match accepts.
func (r *running) sum(t *testing.T, name string, match func(*dto.Metric) bool) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if match(m) {
				v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return v
}

// tmember is one CSV member of a test batch.
type tmember struct {
	name    string
	date    string // YYYY-MM-DD
	batch   string
	header  string   // raw header record, no terminator
	records []string // raw records, each with its terminator
}

// tbatch is one (archive, attempt, table) batch as the extractor would publish it.
type tbatch struct {
	archive string
	attempt uint32
	table   string
	members []tmember
	per     int // records per chunk (default 2)
	// codec of the chunks' data: "" alternates raw and S2 chunk by chunk (so every test goes
	// through both), "none" or "s2" for all of them.
	codec string
}

// encodeData sets c's data to raw encoded with codec ("none" or "s2"), as the extractor does
// (minus its "only when smaller" rule: the merger must accept any S2 block).
func encodeData(c *sluicev1.Chunk, raw []byte, codec string) {
	c.Data, c.Codec, c.DataBytes = raw, sluicev1.Chunk_CODEC_NONE, 0
	if codec == "s2" {
		c.Data, c.Codec, c.DataBytes = s2.Encode(nil, raw), sluicev1.Chunk_CODEC_S2, uint32(len(raw))
	}
}

// msgs builds the batch's chunk messages and its marker, the way the extractor does.
func (tb tbatch) msgs(s bus.Subjects) (chunks []*nats.Msg, marker *nats.Msg, mk *sluicev1.BatchComplete) {
	per := tb.per
	if per == 0 {
		per = 2
	}
	part := bus.Partition(tb.archive, tb.table, s.Partitions)
	subj := s.Rows(part, tb.table)
	mk = &sluicev1.BatchComplete{ArchiveId: tb.archive, Attempt: tb.attempt, Table: tb.table, Partition: part, Partner: "default"}
	var idx uint32
	for mi, m := range tb.members {
		info := &sluicev1.MemberInfo{Name: m.name, ProcessDate: m.date, BatchId: m.batch, FirstChunk: idx,
			HeaderOnly: len(m.records) == 0, Bytes: int64(len(m.header) + 1)}
		line := int64(2)
		var memberChunk uint32
		emit := func(recs []string, last bool) {
			data := strings.Join(recs, "")
			c := &sluicev1.Chunk{ArchiveId: tb.archive, Attempt: tb.attempt, Table: tb.table, Member: m.name,
				MemberIndex: uint32(mi), ProcessDate: m.date, BatchId: m.batch, ChunkIndex: idx, MemberChunk: memberChunk,
				FirstLine: line, Rows: uint32(len(recs)), Header: []byte(m.header), Delimiter: ",",
				Partner: "default", LastInMember: last}
			codec := tb.codec
			if codec == "" {
				codec = []string{"none", "s2"}[idx%2]
			}
			encodeData(c, []byte(data), codec)
			chunks = append(chunks, rowsMsg(subj, bus.TypeChunk, bus.MsgID(tb.archive, tb.attempt, tb.table, "c", idx), c))
			line += int64(strings.Count(data, "\n"))
			info.Chunks++
			info.Rows += int64(len(recs))
			info.Bytes += int64(len(data))
			mk.Rows += int64(len(recs))
			mk.Bytes += int64(len(data))
			mk.Chunks++
			idx++
			memberChunk++
		}
		if len(m.records) == 0 {
			emit(nil, true)
		}
		for i := 0; i < len(m.records); i += per {
			end := min(i+per, len(m.records))
			emit(m.records[i:end], end == len(m.records))
		}
		mk.Members = append(mk.Members, info)
	}
	marker = rowsMsg(subj, bus.TypeComplete, bus.MsgID(tb.archive, tb.attempt, tb.table, "done", 0), mk)
	return chunks, marker, mk
}

func (tb tbatch) abortMsg(s bus.Subjects, reason string) *nats.Msg {
	part := bus.Partition(tb.archive, tb.table, s.Partitions)
	return rowsMsg(s.Rows(part, tb.table), bus.TypeAbort, bus.MsgID(tb.archive, tb.attempt, tb.table, "abort", 0),
		&sluicev1.BatchAborted{ArchiveId: tb.archive, Attempt: tb.attempt, Table: tb.table, Reason: reason})
}

func rowsMsg(subj, typ, id string, pm proto.Message) *nats.Msg {
	data, err := proto.Marshal(pm)
	if err != nil {
		panic(err)
	}
	m := nats.NewMsg(subj)
	m.Data = data
	m.Header.Set(bus.HdrType, typ)
	m.Header.Set(nats.MsgIdHdr, id)
	return m
}

// publish stores msgs in order, waiting for each publish ack, and returns the stream sequence
// of the last one.
func (e *env) publish(msgs ...*nats.Msg) (seq uint64) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, m := range msgs {
		// PublishMsg may keep a reference; publish a copy so a message can be re-published.
		c := nats.NewMsg(m.Subject)
		c.Data = m.Data
		for k, v := range m.Header {
			c.Header[k] = append([]string(nil), v...)
		}
		// No responders are retried for a minute (600 × 100 ms): on a cluster whose nodes were
		// just restarted the stream may still be electing its leader (every message has an id,
		// so a retry stores nothing twice).
		ack, err := e.bus.JS.PublishMsg(ctx, c, jetstream.WithRetryAttempts(600), jetstream.WithRetryWait(100*time.Millisecond))
		if err != nil {
			e.t.Fatalf("publish %s: %v", m.Subject, err)
		}
		seq = ack.Sequence
	}
	return seq
}

// publishBatch publishes the batch's chunks then its marker.
func (e *env) publishBatch(tb tbatch) *sluicev1.BatchComplete {
	e.t.Helper()
	chunks, marker, mk := tb.msgs(e.bus.Subjects)
	e.publish(chunks...)
	e.publish(marker)
	return mk
}

// events subscribes to a subject of the events/DLQ streams from the start.
type events struct {
	cons jetstream.Consumer
}

func (e *env) watch(stream, subject string) *events {
	e.t.Helper()
	ctx := context.Background()
	c, err := e.bus.JS.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		e.t.Fatal(err)
	}
	return &events{cons: c}
}

func (e *env) committedEvents() *events {
	return e.watch(e.bus.Subjects.EventsStream(), e.bus.Subjects.Committed())
}

// next waits for the next message and decodes it into pm.
func (ev *events) next(t *testing.T, pm proto.Message, timeout time.Duration) *sluicev1.BatchCommitted {
	t.Helper()
	msg, err := ev.cons.Next(jetstream.FetchMaxWait(timeout))
	if err != nil {
		t.Fatalf("waiting for event: %v", err)
	}
	if err := proto.Unmarshal(msg.Data(), pm); err != nil {
		t.Fatal(err)
	}
	bc, _ := pm.(*sluicev1.BatchCommitted)
	return bc
}

// nextCommitted waits for the next BatchCommitted.
func (ev *events) nextCommitted(t *testing.T, timeout time.Duration) *sluicev1.BatchCommitted {
	t.Helper()
	return ev.next(t, &sluicev1.BatchCommitted{}, timeout)
}

// table is a Parquet object read back: column names, Arrow types and rows of cells rendered as
// strings (null as nullCell).
type tableData struct {
	names []string
	types []arrow.DataType
	rows  [][]string
	meta  map[string]string
}

const nullCell = "<null>"

func (e *env) readParquet(key string) tableData {
	e.t.Helper()
	ctx := context.Background()
	ra, err := objstore.ReaderAt(ctx, e.out, key)
	if err != nil {
		e.t.Fatal(err)
	}
	defer ra.Close()
	pf, err := file.NewParquetReader(ra)
	if err != nil {
		e.t.Fatalf("open parquet %s: %v", key, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		e.t.Fatal(err)
	}
	tbl, err := fr.ReadTable(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	defer tbl.Release()
	var td tableData
	sc := tbl.Schema()
	fsc, err := fr.Schema() // the table's schema lacks the stored metadata
	if err != nil {
		e.t.Fatal(err)
	}
	td.meta = map[string]string{}
	if md := fsc.Metadata(); md.Len() > 0 {
		for i, k := range md.Keys() {
			td.meta[k] = md.Values()[i]
		}
	}
	for i := 0; i < int(tbl.NumCols()); i++ {
		td.names = append(td.names, sc.Field(i).Name)
		td.types = append(td.types, sc.Field(i).Type)
	}
	td.rows = make([][]string, tbl.NumRows())
	for r := range td.rows {
		td.rows[r] = make([]string, tbl.NumCols())
	}
	for c := 0; c < int(tbl.NumCols()); c++ {
		r := 0
		for _, ch := range tbl.Column(c).Data().Chunks() {
			for i := 0; i < ch.Len(); i++ {
				td.rows[r][c] = cell(ch, i)
				r++
			}
		}
	}
	return td
}

func cell(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return nullCell
	}
	switch a := a.(type) {
	case *array.String:
		return a.Value(i)
	case *array.Int64:
		return strconv.FormatInt(a.Value(i), 10)
	case *array.Float64:
		return strconv.FormatFloat(a.Value(i), 'g', -1, 64)
	case *array.Boolean:
		return strconv.FormatBool(a.Value(i))
	case *array.Date32:
		return a.Value(i).ToTime().Format("2006-01-02")
	case *array.Timestamp:
		return a.Value(i).ToTime(arrow.Microsecond).UTC().Format("2006-01-02 15:04:05.999999")
	}
	return a.ValueStr(i)
}

// column returns the cells of a column by name, and whether it exists.
func (td tableData) column(name string) ([]string, arrow.DataType, bool) {
	for i, n := range td.names {
		if n == name {
			out := make([]string, len(td.rows))
			for r := range td.rows {
				out[r] = td.rows[r][i]
			}
			return out, td.types[i], true
		}
	}
	return nil, nil, false
}

// keys lists the output keys under prefix.
func (e *env) keys(prefix string) []string {
	e.t.Helper()
	var ks []string
	if err := e.out.List(context.Background(), prefix, "", func(a objstore.Attrs) error {
		ks = append(ks, a.Key)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	sort.Strings(ks)
	return ks
}

func (e *env) get(key string) []byte {
	e.t.Helper()
	rc, err := e.out.Get(context.Background(), key)
	if err != nil {
		e.t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *env) exists(key string) bool {
	_, err := e.out.Stat(context.Background(), key)
	if err != nil && !errors.Is(err, objstore.ErrNotFound) {
		e.t.Fatal(err)
	}
	return err == nil
}

// quarantineLines reads a quarantine object.
func (e *env) quarantineLines(key string) []quarantineLine {
	e.t.Helper()
	var out []quarantineLine
	for _, l := range bytes.Split(bytes.TrimSpace(e.get(key)), []byte("\n")) {
		var q quarantineLine
		if err := json.Unmarshal(l, &q); err != nil {
			e.t.Fatalf("quarantine line %q: %v", l, err)
		}
		out = append(out, q)
	}
	return out
}

// consumerInfo returns the state of a partition consumer.
func (e *env) consumerInfo(partition uint32) *jetstream.ConsumerInfo {
	e.t.Helper()
	c, err := e.bus.JS.Consumer(context.Background(), e.bus.Subjects.RowsStream(), fmt.Sprintf("merger-p%d", partition))
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info
}

// ackPending returns the un-acked messages of a partition consumer.
func (e *env) ackPending(partition uint32) int {
	e.t.Helper()
	return e.consumerInfo(partition).NumAckPending
}

// streamMsgs returns how many messages a stream holds.
func (e *env) streamMsgs(stream string) uint64 { return e.streamState(stream).Msgs }

// streamLastSeq returns a stream's last sequence.
func (e *env) streamLastSeq(stream string) uint64 { return e.streamState(stream).LastSeq }

func (e *env) streamState(stream string) jetstream.StreamState {
	e.t.Helper()
	s, err := e.bus.JS.Stream(context.Background(), stream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State
}

// nakWatch counts, from the server's advisories, the Naks of each stream sequence on one
// partition consumer.
type nakWatch struct {
	mu   sync.Mutex
	seqs map[uint64]int
}

// watchNaks starts counting the Naks on partition's consumer; it is subscribed on the server
// when it returns.
func (e *env) watchNaks(partition uint32) *nakWatch {
	e.t.Helper()
	w := &nakWatch{seqs: map[uint64]int{}}
	subj := fmt.Sprintf("$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.%s.merger-p%d", e.bus.Subjects.RowsStream(), partition)
	sub, err := e.bus.NC.Subscribe(subj, func(m *nats.Msg) {
		var a struct {
			StreamSeq uint64 `json:"stream_seq"`
		}
		if json.Unmarshal(m.Data, &a) == nil {
			w.mu.Lock()
			w.seqs[a.StreamSeq]++
			w.mu.Unlock()
		}
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.bus.NC.Flush(); err != nil {
		e.t.Fatal(err)
	}
	return w
}

// naks returns how many times the message at stream sequence seq was Nak'ed.
func (w *nakWatch) naks(seq uint64) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seqs[seq]
}

// eventually polls cond until it holds or d elapses.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !within(d, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// within reports whether cond holds within d (eventually without the failure: for a wait whose
// timing out is one of the outcomes).
func within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// archiveOn returns an archive id (20 hex chars) whose batch of tbl lands on partition p.
func archiveOn(tag string, tbl string, p uint32, partitions int) string {
	for i := 0; ; i++ {
		id := fmt.Sprintf("%s%020x", tag, i)[:20]
		if len(tag) < 20 {
			id = fmt.Sprintf("%s%0*x", tag, 20-len(tag), i)
		}
		if bus.Partition(id, tbl, partitions) == p {
			return id
		}
	}
}

// csvRows renders records as CSV lines.
func csvRows(n int, f func(i int) string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = f(i) + "\n"
	}
	return out
}
