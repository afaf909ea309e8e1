package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/dlq"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/merger"
	"github.com/sluice-dev/sluice/producer"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

type world struct {
	t   *testing.T
	b   *bus.Bus
	out objstore.Bucket
	log *slog.Logger
}

func newWorld(t *testing.T) *world {
	t.Helper()
	out, err := objstore.Open(context.Background(), t.TempDir(), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = out.Close() })
	return &world{t: t, b: bustest.New(t), out: out, log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))}
}

func (w *world) publish(msgs ...*nats.Msg) {
	w.t.Helper()
	for _, m := range msgs {
		if _, err := w.b.JS.PublishMsg(context.Background(), m); err != nil {
			w.t.Fatalf("publish %s: %v", m.Subject, err)
		}
	}
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

// batch builds the chunks (one record each) and the marker of a one-member batch of table t.
func batch(s bus.Subjects, archive string, rows int) (chunks []*nats.Msg, marker *nats.Msg) {
	const tbl = "t"
	subj := s.Rows(bus.Partition(archive, tbl, s.Partitions), tbl)
	mk := &sluicev1.BatchComplete{ArchiveId: archive, Table: tbl, Partner: "default", Chunks: uint32(rows), Rows: int64(rows)}
	mi := &sluicev1.MemberInfo{Name: "t_20250101_1.csv", ProcessDate: "2025-01-01", BatchId: "1", Chunks: uint32(rows), Rows: int64(rows)}
	for i := range rows {
		data := fmt.Sprintf("%d,v%d\n", i, i)
		c := &sluicev1.Chunk{ArchiveId: archive, Table: tbl, Member: mi.Name, ProcessDate: mi.ProcessDate, BatchId: mi.BatchId,
			ChunkIndex: uint32(i), MemberChunk: uint32(i), FirstLine: int64(i + 2), Rows: 1, Header: []byte("id,v"),
			Data: []byte(data), Delimiter: ",", Partner: "default", LastInMember: i == rows-1}
		chunks = append(chunks, rowsMsg(subj, bus.TypeChunk, bus.ChunkID(archive, 0, tbl, uint32(i)).String(), c))
		mk.Bytes += int64(len(data))
	}
	mk.Members = []*sluicev1.MemberInfo{mi}
	return chunks, rowsMsg(subj, bus.TypeComplete, bus.MarkerID(archive, 0, tbl).String(), mk)
}

func (w *world) startMerger() {
	w.t.Helper()
	cfg := merger.Config{Instance: "m1", MemoryBudget: 64 << 20, SpillDir: w.t.TempDir(), AckWait: time.Second,
		PinnedTTL: time.Second, MaxDeliver: 3, RetryDelay: 600 * time.Millisecond, RowGroupBytes: 1 << 20}
	m, err := merger.New(cfg, merger.Deps{Bus: w.b, Out: w.out, Log: w.log.With("merger", "m1")})
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	w.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			w.t.Errorf("merger: %v", err)
		}
	})
}

func (w *world) queue(reextract func(context.Context, string) error) *dlq.Queue {
	w.t.Helper()
	cfg := merger.Config{SpillDir: w.t.TempDir()}
	q, err := dlq.New(context.Background(), dlq.Deps{Bus: w.b, Log: w.log, Reextract: reextract,
		Remerge: remerge(cfg, merger.Deps{Bus: w.b, Out: w.out, Log: w.log})})
	if err != nil {
		w.t.Fatal(err)
	}
	return q
}

// remerge is a Deps.Remerge over merger.Replay, as cmd/sluice wires it (its reasons kept short).
func remerge(cfg merger.Config, deps merger.Deps) func(context.Context, string, string) (string, error) {
	return func(ctx context.Context, archiveID, table string) (string, error) {
		res, err := merger.Replay(ctx, cfg, deps, merger.ReplaySpec{Table: table, Archive: archiveID})
		if err == nil && len(res.Committed) == 0 {
			err = fmt.Errorf("did not commit: %+v %+v", res.Incomplete, res.Aborted)
		}
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d objects, %d rows", len(res.Committed[0].Objects), res.Committed[0].RowsOut), nil
	}
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (w *world) list(q *dlq.Queue) []dlq.Letter {
	w.t.Helper()
	ls, err := q.List(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	return ls
}

func byKind(ls []dlq.Letter) map[dlq.Kind]dlq.Letter {
	out := map[dlq.Kind]dlq.Letter{}
	for _, l := range ls {
		out[l.Kind()] = l
	}
	return out
}

// TestMergerDeadLettersRoundTrip: a batch missing a chunk and a poison message are dead-lettered
// by a running merger; list and show describe them; retrying the batch fails (and keeps the dead
// letter) until the missing chunk is in the stream, then re-merges it; retrying the poison
// message republishes it with a new message id.
func TestMergerDeadLettersRoundTrip(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.startMerger()
	q := w.queue(nil)
	committed, err := w.b.JS.OrderedConsumer(ctx, w.b.Subjects.EventsStream(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{w.b.Subjects.Committed()}})
	if err != nil {
		t.Fatal(err)
	}

	const archive = "dd000000000000000001"
	chunks, marker := batch(w.b.Subjects, archive, 3)
	w.publish(chunks[0], chunks[2], marker)
	poison := nats.NewMsg(w.b.Subjects.Rows(1, "t"))
	poison.Data = []byte("not a proto at all")
	poison.Header.Set(bus.HdrType, "bogus")
	poison.Header.Set(nats.MsgIdHdr, "poison-1")
	// An expectation that held when it was published, not when it is republished: the retry
	// must not carry the original's Nats- headers.
	rows, err := w.b.JS.Stream(context.Background(), w.b.Subjects.RowsStream())
	if err != nil {
		t.Fatal(err)
	}
	ri, err := rows.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	poison.Header.Set(jetstream.ExpectedLastSeqHeader, fmt.Sprint(ri.State.LastSeq))
	w.publish(poison)

	eventually(t, 30*time.Second, "two dead letters", func() bool { return len(w.list(q)) == 2 })
	ls := byKind(w.list(q))
	bl, pl := ls[dlq.KindBatch], ls[dlq.KindMessage]
	if bl.DeadLetter == nil || pl.DeadLetter == nil {
		t.Fatalf("dead letters: %+v", ls)
	}
	if bl.Stage != "merger" || bl.ArchiveId != archive || bl.Table != "t" || bl.Deliveries != 3 ||
		!strings.Contains(bl.Reason, "missing 1 of 3 chunks (1)") || bl.Age(time.Now()) > time.Minute {
		t.Fatalf("batch dead letter: %+v", bl.DeadLetter)
	}
	if !strings.Contains(pl.Reason, `unknown Sluice-Type "bogus"`) || pl.DeadLetter.Subject != poison.Subject {
		t.Fatalf("poison dead letter: %+v", pl.DeadLetter)
	}
	got, err := q.Get(ctx, bl.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if s := got.PayloadSummary(); !strings.Contains(s, "batch marker: archive "+archive) || !strings.Contains(s, "3 chunks, 3 rows") ||
		!strings.Contains(s, "t_20250101_1.csv (2025-01-01, batch 1, 3 rows, chunks 0..2)") {
		t.Fatalf("show: %s", s)
	}
	if s := pl.PayloadSummary(); !strings.Contains(s, `18 bytes (Sluice-Type "bogus")`) || !strings.Contains(s, `"not a proto at all"`) {
		t.Fatalf("show poison: %s", s)
	}
	if _, err := q.Get(ctx, 9999); !errors.Is(err, dlq.ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}

	// The chunk is still missing: the retry fails and the dead letter stays.
	o, err := q.Retry(ctx, bl.Seq)
	if err == nil || !strings.Contains(err.Error(), "missing 1 of 3 chunks") || o.Action != "re-merged" {
		t.Fatalf("retry without the chunk: %+v %v", o, err)
	}
	if _, err := q.Get(ctx, bl.Seq); err != nil {
		t.Fatalf("dead letter gone after a failed retry: %v", err)
	}

	// Now the partner's fix: the missing chunk is published; the retry re-merges the batch.
	w.publish(chunks[1])
	o, err = q.Retry(ctx, bl.Seq)
	if err != nil || !strings.Contains(o.Detail, "1 objects, 3 rows") {
		t.Fatalf("retry: %+v %v", o, err)
	}
	if _, err := q.Get(ctx, bl.Seq); !errors.Is(err, dlq.ErrNotFound) {
		t.Fatalf("dead letter not deleted: %v", err)
	}
	key := "t/process_date=2025-01-01/batch_id=1/part-" + archive + ".parquet"
	if _, err := w.out.Stat(ctx, key); err != nil {
		t.Fatalf("batch not committed: %v", err)
	}
	msg, err := committed.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var bc sluicev1.BatchCommitted
	if err := proto.Unmarshal(msg.Data(), &bc); err != nil || bc.ArchiveId != archive || bc.RowsOut != 3 || !bc.Replay {
		t.Fatalf("committed event: %v %v", &bc, err)
	}

	// The poison message goes back to its subject with a new id, and is dead-lettered again.
	o, err = q.Retry(ctx, pl.Seq)
	if err != nil || o.Action != "republished" {
		t.Fatalf("retry poison: %+v %v", o, err)
	}
	var again dlq.Letter
	eventually(t, 30*time.Second, "the republished poison message dead-lettered again", func() bool {
		ls := w.list(q)
		if len(ls) == 1 {
			again = ls[0]
		}
		return len(ls) == 1
	})
	if again.Seq == pl.Seq || again.Headers[nats.MsgIdHdr] != fmt.Sprintf("poison-1.retry-%d", pl.Seq) {
		t.Fatalf("dead letter of the republished message: seq %d headers %v", again.Seq, again.Headers)
	}
}

// TestExtractorDeadLetterReextracts: retrying an extractor dead letter re-extracts its archive
// (a new attempt in the ledger, a landed event with replay=true); several dead letters of one
// archive are retried once by --all; an undecodable one is kept with the reason.
func TestExtractorDeadLetterReextracts(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	kv, err := w.b.Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	led := ledger.New(kv, nil)
	const archive = "ee000000000000000001"
	if _, _, err := led.Create(ctx, ledger.Record{ArchiveID: archive, URI: "file:///landing/a.tar.gz", Name: "a.tar.gz", Size: 10}); err != nil {
		t.Fatal(err)
	}
	landed, err := w.b.JS.OrderedConsumer(ctx, w.b.Subjects.EventsStream(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{w.b.Subjects.Landed()}})
	if err != nil {
		t.Fatal(err)
	}
	letter := func(seq uint64, payload []byte) *nats.Msg {
		dl := &sluicev1.DeadLetter{Stage: "extractor", Stream: w.b.Subjects.EventsStream(), Subject: w.b.Subjects.Landed(),
			StreamSeq: seq, Deliveries: 5, Reason: "gzip: invalid header", Payload: payload, DeadUnixMs: time.Now().UnixMilli()}
		data, _ := proto.Marshal(dl)
		m := nats.NewMsg(w.b.Subjects.DLQ("extractor"))
		m.Data = data
		return m
	}
	ev, _ := proto.Marshal(&sluicev1.ArchiveLanded{ArchiveId: archive, Uri: "file:///landing/a.tar.gz", Name: "a.tar.gz"})
	w.publish(letter(7, ev), letter(9, ev), letter(11, []byte{0xff, 0x01}))

	q := w.queue(func(ctx context.Context, archiveID string) error {
		return producer.Reextract(ctx, producer.Deps{Bus: w.b, Ledger: led, Log: w.log}, archiveID)
	})
	ls := w.list(q)
	if len(ls) != 3 || ls[0].Kind() != dlq.KindArchive || ls[0].Archive() != archive || ls[2].Archive() != "" {
		t.Fatalf("list: %+v", ls)
	}
	if s := ls[0].PayloadSummary(); !strings.Contains(s, "archive landed: id "+archive) {
		t.Fatalf("show: %s", s)
	}
	outs, err := q.RetryAll(ctx)
	if err == nil || !strings.Contains(err.Error(), "names no archive") || len(outs) != 3 {
		t.Fatalf("retry all: %+v %v", outs, err)
	}
	if outs[0].Err != nil || outs[0].Action != "re-extraction requested" || outs[1].Err != nil || !strings.Contains(outs[1].Detail, "same archive") {
		t.Fatalf("outcomes: %+v", outs)
	}
	rec, _, err := led.Get(ctx, archive)
	if err != nil || rec.Attempt != 1 || rec.State != ledger.Landed || rec.Reason != producer.ReextractReason {
		t.Fatalf("ledger after retry: %+v %v", rec, err)
	}
	msg, err := landed.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var al sluicev1.ArchiveLanded
	if err := proto.Unmarshal(msg.Data(), &al); err != nil || al.ArchiveId != archive || al.Attempt != 1 || !al.Replay {
		t.Fatalf("landed event: %v %v", &al, err)
	}
	// Re-extracted once: RetryAll has returned, so every landed event it published is stored.
	es, err := w.b.JS.Stream(ctx, w.b.Subjects.EventsStream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := es.Info(ctx, jetstream.WithSubjectFilter(w.b.Subjects.Landed()))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[w.b.Subjects.Landed()]; n != 1 {
		t.Fatalf("%d landed events: archive re-extracted more than once", n)
	}
	if ls := w.list(q); len(ls) != 1 || ls[0].Seq != 3 {
		t.Fatalf("left in the DLQ: %+v", ls)
	}
}

// TestPayloadSummaryDecodesChunks: a dead-lettered chunk is described by its decoded size, with
// the codec; one that does not decode says so.
func TestPayloadSummaryDecodesChunks(t *testing.T) {
	records := []byte(strings.Repeat("1,x\n", 100))
	summary := func(c *sluicev1.Chunk) string {
		p, err := proto.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return dlq.Letter{DeadLetter: &sluicev1.DeadLetter{Stage: "merger", Payload: p,
			Headers: map[string]string{bus.HdrType: bus.TypeChunk}}}.PayloadSummary()
	}
	block := s2.Encode(nil, records)
	if s := summary(&sluicev1.Chunk{Rows: 100, Data: block, Codec: sluicev1.Chunk_CODEC_S2, DataBytes: 400}); !strings.Contains(s,
		fmt.Sprintf("100 rows from line 0, 400 data bytes (%d S2-compressed)", len(block))) {
		t.Fatalf("summary %q", s)
	}
	if s := summary(&sluicev1.Chunk{Data: records}); !strings.HasSuffix(s, ", 400 data bytes") {
		t.Fatalf("summary %q", s)
	}
	if s := summary(&sluicev1.Chunk{Data: block[:3], Codec: sluicev1.Chunk_CODEC_S2, DataBytes: 400}); !strings.Contains(s, "3 data bytes S2-compressed, undecodable: chunk data: corrupt S2 block") {
		t.Fatalf("summary %q", s)
	}
}

// TestRetryAllOncePerBatchAndArchive: `dlq retry --all` retries each batch (archive and table)
// and each archive once, and deletes the other dead letters of the same one only when that
// retry succeeded. A failed retry keeps all of them; two tables of one archive are two batches.
func TestRetryAllOncePerBatchAndArchive(t *testing.T) {
	w := newWorld(t)
	put := func(stage, archive, table string) {
		d := &sluicev1.DeadLetter{Stage: stage, ArchiveId: archive, Table: table, Reason: "test"}
		if stage == "merger" {
			d.Headers = map[string]string{bus.HdrType: bus.TypeComplete}
		}
		data, err := proto.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.b.JS.Publish(context.Background(), w.b.Subjects.DLQ(stage), data); err != nil {
			t.Fatal(err)
		}
	}
	put("merger", "a1", "t1")
	put("merger", "a1", "t2")
	put("merger", "a1", "t1") // the same batch dead-lettered again
	put("extractor", "a2", "")
	put("extractor", "a2", "") // the same archive dead-lettered again
	var remerged []string
	var reextracted []string
	q, err := dlq.New(context.Background(), dlq.Deps{Bus: w.b, Log: w.log,
		Reextract: func(_ context.Context, id string) error {
			reextracted = append(reextracted, id)
			return errors.New("ledger unavailable")
		},
		Remerge: func(_ context.Context, archive, table string) (string, error) {
			remerged = append(remerged, archive+"/"+table)
			return "ok", nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := q.RetryAll(context.Background())
	if err == nil || len(outs) != 5 {
		t.Fatalf("retry all: %d outcomes, err %v; want 5 and the re-extraction's failure", len(outs), err)
	}
	if strings.Join(remerged, ",") != "a1/t1,a1/t2" || strings.Join(reextracted, ",") != "a2" {
		t.Fatalf("re-merged %v, re-extracted %v", remerged, reextracted)
	}
	left := w.list(q)
	if len(left) != 2 || left[0].Archive() != "a2" || left[1].Archive() != "a2" {
		t.Fatalf("left in the DLQ: %+v; want both of a2's (its retry failed)", left)
	}
}
