package merger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/internal/table"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// TestBatchKeepsCompressedData: a batch holds S2 chunks as received (memory counts the compressed
// bytes), checks the marker against decoded bytes, and payload returns the exact records from
// memory and, once released, fetched back from the rows stream by their sequences (a real
// embedded JetStream). A released chunk whose message the stream's limits removed (its first
// sequence past the chunk's), that was deleted, that lies past the stream's end, or whose
// sequence holds another chunk, is a permanent error naming it.
func TestBatchKeepsCompressedData(t *testing.T) {
	bs := bustest.New(t)
	ctx := t.Context()
	rows, err := bs.JS.Stream(ctx, bs.Subjects.RowsStream())
	if err != nil {
		t.Fatal(err)
	}
	key := batchKey{archive: "c0000000000000000001", attempt: 2, table: "t"}
	var fetched int64
	b := newBatch(key, nil, 0, "default", table.Options{Delimiter: ','}, collectConfig{}, chunkSource{rows: rows, fetched: func(n int64) { fetched += n }}, time.Now())
	recs := map[uint32]string{
		0: strings.Repeat("1,aaaaaaaaaaaaaaaa\n", 500),
		1: "2,raw\n",
		2: strings.Repeat("3,bbbbbbbbbbbbbbbbbbbbbbbb\n", 300),
		// Uncompressed and near the 1 MiB max payload: fetched back as JSON (below), its data in
		// base64, the answer is a third larger than any message a client may publish.
		3: strings.Repeat("5,cccccccccccccccccccccccccccccccccccccccccccccc\n", 20000),
		4: "", // header-only style: no data
	}
	var scratch []byte
	var raw, stored int64
	seqs := map[uint32]uint64{}
	mk := &sluicev1.BatchComplete{ArchiveId: key.archive, Attempt: key.attempt, Table: key.table, Chunks: uint32(len(recs))}
	for i := range uint32(len(recs)) {
		c := &sluicev1.Chunk{ArchiveId: key.archive, Attempt: key.attempt, Table: key.table, Member: "m.csv", Header: []byte("id,v"),
			ChunkIndex: i, FirstLine: 2, Rows: uint32(strings.Count(recs[i], "\n"))}
		codec := []string{"s2", "none"}[i%2]
		if recs[i] == "" {
			codec = "none" // nothing stored: never released, never fetched
		}
		encodeData(c, []byte(recs[i]), codec)
		payload, err := proto.Marshal(c)
		if i == 3 && len(payload) < 900<<10 {
			t.Fatalf("chunk 3 is %d bytes, not near the max payload", len(payload))
		}
		if codec == "s2" && len(c.Data) >= len(recs[i])/4 {
			t.Fatalf("chunk %d: S2 stores %d of %d bytes", i, len(c.Data), len(recs[i]))
		}
		if err != nil {
			t.Fatal(err)
		}
		ack, err := bs.JS.Publish(ctx, bs.Subjects.Rows(0, key.table), payload)
		if err != nil {
			t.Fatal(err)
		}
		seqs[i] = ack.Sequence
		n, err := b.addChunk(c, ack.Sequence, &scratch)
		if err != nil || n != int64(len(c.Data)) {
			t.Fatalf("chunk %d: addChunk = %d, %v; %d bytes stored", i, n, err, len(c.Data))
		}
		raw += int64(len(recs[i]))
		stored += n
		mk.Rows += int64(c.Rows)
	}
	mk.Bytes = raw
	if b.poison != "" {
		t.Fatalf("poisoned: %s", b.poison)
	}
	if got := b.memBytes.Load(); got != stored {
		t.Fatalf("memory %d bytes, stored %d, raw %d", got, stored, raw)
	}
	if reason := b.check(mk); reason != "" {
		t.Fatalf("check: %s", reason)
	}
	if cols := b.columns(); len(cols) != 2 || cols[0].Type != table.Int64 || cols[1].Type != table.String {
		t.Fatalf("inferred %+v", cols)
	}
	readAll := func(what string) {
		t.Helper()
		var buf []byte
		for _, c := range b.orderedChunks() {
			data, nbuf, err := b.payload(ctx, c, buf)
			buf = nbuf
			if err != nil || string(data) != recs[c.index] {
				t.Fatalf("%s: chunk %d: payload %q, %v", what, c.index, data, err)
			}
		}
	}
	readAll("in memory")
	if freed := b.release(); freed != stored || b.memBytes.Load() != 0 {
		t.Fatalf("release: freed %d (stored %d), %d left in memory", freed, stored, b.memBytes.Load())
	}
	for _, c := range b.orderedChunks() {
		if (c.released && c.data != nil) || c.released != (c.stored > 0) {
			t.Fatalf("chunk %d (%d bytes): released %v, data %d bytes", c.index, c.stored, c.released, len(c.data))
		}
	}
	readAll("released")
	if fetched != stored {
		t.Fatalf("fetched back %d bytes, want the %d released", fetched, stored)
	}
	if !rows.CachedInfo().Config.AllowDirect {
		t.Fatal("the rows stream does not allow direct gets")
	}
	// A rows stream created before it allowed direct gets (kept as it is without
	// --update-streams) answers in JSON, the data in base64: the same bytes come back.
	cfg := rows.CachedInfo().Config
	cfg.AllowDirect = false
	if _, err := bs.JS.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if b.src.rows, err = bs.JS.Stream(ctx, bs.Subjects.RowsStream()); err != nil {
		t.Fatal(err)
	}
	readAll("released, fetched as JSON")
	if fetched != 2*stored {
		t.Fatalf("fetched back %d bytes, want twice the %d released", fetched, stored)
	}

	// Chunk 2 now points at chunk 0's sequence: the stream holds another chunk there.
	byIndex := map[uint32]*chunk{}
	for _, c := range b.orderedChunks() {
		byIndex[c.index] = c
	}
	byIndex[2].seq = seqs[0]
	if _, _, err := b.payload(ctx, byIndex[2], nil); !isPermanent(err) || !strings.Contains(err.Error(), "another message") {
		t.Fatalf("chunk 2 at chunk 0's sequence: %v", err)
	}
	byIndex[2].seq = seqs[2]
	// The stream's limits removed chunk 0 before the commit.
	if err := rows.DeleteMsg(ctx, seqs[0]); err != nil {
		t.Fatal(err)
	}
	_, _, err = b.payload(ctx, byIndex[0], nil)
	if !isPermanent(err) || !strings.Contains(err.Error(), fmt.Sprintf("chunk 0 of member m.csv (stream sequence %d): no longer in the rows stream", seqs[0])) {
		t.Fatalf("chunk 0 gone from the stream: %v", err)
	}
	// Deleted inside the stream (`nats stream rmm`), or past its end (the stream was re-created).
	if err := rows.DeleteMsg(ctx, seqs[3]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.payload(ctx, byIndex[3], nil); !isPermanent(err) || !strings.Contains(err.Error(), "deleted from the rows stream") {
		t.Fatalf("chunk 3 deleted inside the stream: %v", err)
	}
	byIndex[3].seq = seqs[3] + 1000
	if _, _, err := b.payload(ctx, byIndex[3], nil); !isPermanent(err) || !strings.Contains(err.Error(), "it was re-created") {
		t.Fatalf("chunk 3 past the stream's end: %v", err)
	}
	if _, _, err := b.payload(ctx, byIndex[2], nil); err != nil {
		t.Fatalf("chunk 2 after chunk 0 was removed: %v", err)
	}
	if _, mem := b.close(); mem != 0 {
		t.Fatalf("close: mem %d", mem)
	}
}

// isPermanent reports whether err is one the committer does not retry.
func isPermanent(err error) bool {
	var perm *permanentError
	return errors.As(err, &perm)
}

// TestBatchPoisonedByBadChunkData: data that does not decode poisons the batch with the reason;
// nothing panics and the chunk still counts as received (its handle is held until the batch is
// dead-lettered).
func TestBatchPoisonedByBadChunkData(t *testing.T) {
	good := []byte(strings.Repeat("1,x\n", 100))
	block := s2.Encode(nil, good)
	for _, tc := range []struct {
		name  string
		chunk func(c *sluicev1.Chunk)
		want  string
	}{
		{"corrupt block", func(c *sluicev1.Chunk) {
			// the length header of the real block (2 bytes), then garbage
			c.Codec, c.DataBytes, c.Data = sluicev1.Chunk_CODEC_S2, uint32(len(good)), append(slices.Clone(block[:2]), 0xff, 0xff, 0xff, 0xff)
		}, "corrupt S2 block"},
		{"garbage length", func(c *sluicev1.Chunk) {
			c.Codec, c.DataBytes, c.Data = sluicev1.Chunk_CODEC_S2, 5, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		}, "corrupt S2 block"},
		{"data_bytes mismatch", func(c *sluicev1.Chunk) {
			c.Codec, c.DataBytes, c.Data = sluicev1.Chunk_CODEC_S2, uint32(len(good)+1), block
		}, fmt.Sprintf("S2 block decodes to %d bytes, data_bytes says %d", len(good), len(good)+1)},
		{"raw with data_bytes", func(c *sluicev1.Chunk) {
			c.Codec, c.DataBytes, c.Data = sluicev1.Chunk_CODEC_NONE, 7, good
		}, fmt.Sprintf("data_bytes 7 but %d bytes stored uncompressed", len(good))},
		{"unknown codec", func(c *sluicev1.Chunk) {
			c.Codec, c.DataBytes, c.Data = sluicev1.Chunk_Codec(9), uint32(len(good)), good
		}, "unknown codec 9"},
		{"huge data_bytes", func(c *sluicev1.Chunk) {
			big := s2.Encode(nil, make([]byte, bus.MaxChunkData+1))
			c.Codec, c.DataBytes, c.Data = sluicev1.Chunk_CODEC_S2, bus.MaxChunkData+1, big
		}, "above the"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBatch(batchKey{archive: "c0000000000000000002", table: "t"}, nil, 0, "default", table.Options{Delimiter: ','}, collectConfig{}, chunkSource{}, time.Now())
			c := &sluicev1.Chunk{ArchiveId: "c0000000000000000002", Table: "t", Member: "m.csv", Header: []byte("id,v"),
				ChunkIndex: 3, FirstLine: 2, Rows: 100}
			tc.chunk(c)
			var scratch []byte
			n, err := b.addChunk(c, 1, &scratch)
			if err != nil || n != int64(len(c.Data)) {
				t.Fatalf("addChunk = %d, %v", n, err)
			}
			if want := "member m.csv chunk 3: chunk data: "; !strings.HasPrefix(b.poison, want) || !strings.Contains(b.poison, tc.want) {
				t.Fatalf("poison %q, want %q…%q", b.poison, want, tc.want)
			}
			if len(b.orderedChunks()) != 1 {
				t.Fatal("the chunk was dropped")
			}
			b.close()
		})
	}
}

// TestS2Batches: batches of S2 chunks commit exactly their rows, whether their rows are parsed on
// arrival or from the CSV at commit. While held, the memory budget counts the compressed bytes
// (plus the parsed rows when they are parsed on arrival); it is all given back after the commit.
func TestS2Batches(t *testing.T) {
	for _, tc := range []struct {
		name       string
		parseLimit int64
		when       string
	}{{"parsed at commit", -1, "commit"}, {"parsed on arrival", 0, "arrival"}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, sinks[0])
			ev := e.committedEvents()
			cfg := testConfig("m1")
			cfg.ParseLimit = tc.parseLimit
			r := e.start(cfg, nil, nil)
			recs := csvRows(3000, func(i int) string { return fmt.Sprintf("%d,\"name, %d\",%d.25,2025-01-%02d", i, i%50, i, 1+i%28) })
			tb := tbatch{archive: "c1000000000000000001", table: "s2t", per: 400, codec: "s2", members: []tmember{
				{name: "s2t_20250101_1.csv", date: "2025-01-01", batch: "1", header: "id,name,price,day", records: recs},
			}}
			chunks, marker, mk := tb.msgs(e.bus.Subjects)
			var stored int64
			for _, m := range chunks {
				var c sluicev1.Chunk
				if err := proto.Unmarshal(m.Data, &c); err != nil || c.Codec != sluicev1.Chunk_CODEC_S2 {
					t.Fatalf("test chunk: %v %v", c.Codec, err)
				}
				stored += int64(len(c.Data))
			}
			e.publish(chunks...)
			// The held count and the memory gauge are two updates: wait for both (the count can be
			// seen before the last chunk's bytes are).
			eventually(t, 20*time.Second, "chunks held, their bytes counted", func() bool {
				mem := r.metric(t, "sluice_merger_memory_bytes")
				return r.metric(t, "sluice_merger_held_messages") == float64(len(chunks)) &&
					(tc.when == "commit" && mem == float64(stored) || tc.when == "arrival" && mem > float64(stored)+3000*8)
			})
			if stored*2 > mk.Bytes {
				t.Fatalf("%d compressed bytes of %d raw: the test chunks do not compress", stored, mk.Bytes)
			}
			e.publish(marker)
			bc := ev.nextCommitted(t, 30*time.Second)
			if bc.RowsIn != 3000 || bc.RowsOut != 3000 || bc.Quarantined != 0 || len(bc.Objects) != 1 {
				t.Fatalf("committed %v", bc)
			}
			td := e.readParquet(bc.Objects[0].Key)
			var got []string
			for _, row := range td.rows {
				got = append(got, fmt.Sprintf("%s,\"%s\",%s,%s\n", row[0], row[1], row[2], row[3]))
			}
			if !slices.Equal(got, recs) {
				for i := range min(len(got), len(recs)) {
					if got[i] != recs[i] {
						t.Fatalf("row %d: %q, want %q", i, got[i], recs[i])
					}
				}
				t.Fatalf("%d rows, want %d", len(got), len(recs))
			}
			eventually(t, 10*time.Second, "memory given back", func() bool {
				return r.metric(t, "sluice_merger_memory_bytes") == 0
			})
			if n := r.metricLabel(t, "sluice_merger_groups_parsed_total", "when", tc.when); n != 1 {
				t.Fatalf("groups parsed at %s: %v, want 1", tc.when, n)
			}
		})
	}
}

// TestCorruptChunkDeadLettersBatch: a chunk whose S2 block is corrupt poisons its batch, which is
// dead-lettered with the reason on its marker's first delivery (no retries: the stored chunk
// will never decode), the archive is reported failed, nothing is written, and the partition goes
// on committing other batches.
func TestCorruptChunkDeadLettersBatch(t *testing.T) {
	e := newEnv(t, sinks[0])
	ev := e.committedEvents()
	dlq := e.watch(e.bus.Subjects.DLQStream(), e.bus.Subjects.DLQ("merger"))
	failed := e.watch(e.bus.Subjects.EventsStream(), e.bus.Subjects.Failed())
	r := e.start(testConfig("m1"), nil, nil)

	bad := tbatch{archive: archiveOn("c2", "t", 1, 4), table: "t", per: 5, codec: "s2", members: []tmember{
		{name: "t_20250101_1.csv", date: "2025-01-01", batch: "1", header: "a,b", records: csvRows(15, func(i int) string { return fmt.Sprintf("%d,x", i) })},
	}}
	chunks, marker, _ := bad.msgs(e.bus.Subjects)
	corruptChunk(t, chunks, 1)
	e.publish(chunks...)
	e.publish(marker)

	var dl sluicev1.DeadLetter
	dlq.next(t, &dl, 30*time.Second)
	if dl.ArchiveId != bad.archive || dl.Deliveries != 1 || !strings.Contains(dl.Reason, "member t_20250101_1.csv chunk 1: chunk data: corrupt S2 block") {
		t.Fatalf("dead letter: %v", &dl)
	}
	var af sluicev1.ArchiveFailed
	failed.next(t, &af, 10*time.Second)
	if af.ArchiveId != bad.archive || !strings.Contains(af.Reason, "corrupt S2 block") {
		t.Fatalf("archive failed: %v", &af)
	}
	eventually(t, 10*time.Second, "terminated", func() bool { return e.ackPending(1) == 0 })
	if ks := e.keys("t/"); len(ks) != 0 {
		t.Fatalf("objects of a dead-lettered batch: %v", ks)
	}

	// The same partition keeps working.
	good := bad
	good.archive = archiveOn("c3", "t", 1, 4)
	e.publishBatch(good)
	if bc := ev.nextCommitted(t, 30*time.Second); bc.ArchiveId != good.archive || bc.RowsOut != 15 {
		t.Fatalf("committed %v", bc)
	}
	if r.metric(t, "sluice_merger_batches_dead_lettered_total") != 1 {
		t.Fatal("dead-lettered metric")
	}
}

// TestDeadLetteredBatchRedeliveryIsSettled: a consumer reset (bus.RecoverDeliveries at start-up
// re-delivers what sits above the ack floor) hands a dead-lettered batch's messages back. The
// ledger records the dead letter (ledger.BatchDeadLettered), so the next merger acks them as
// settled instead of merging the batch and dead-lettering it a second time.
func TestDeadLetteredBatchRedeliveryIsSettled(t *testing.T) {
	e := newEnv(t, sinks[0])
	ctx := context.Background()
	e.useLedger()
	ev := e.committedEvents()
	dlq := e.watch(e.bus.Subjects.DLQStream(), e.bus.Subjects.DLQ("merger"))

	bad := tbatch{archive: archiveOn("d1", "t", 1, 4), attempt: 1, table: "t", per: 5, codec: "s2", members: []tmember{
		{name: "t_20250101_1.csv", date: "2025-01-01", batch: "1", header: "a,b", records: csvRows(15, func(i int) string { return fmt.Sprintf("%d,x", i) })},
	}}
	if _, _, err := e.ledger.Create(ctx, ledger.Record{ArchiveID: bad.archive, State: ledger.Extracted, Attempt: bad.attempt}); err != nil {
		t.Fatal(err)
	}
	chunks, marker, _ := bad.msgs(e.bus.Subjects)
	corruptChunk(t, chunks, 1)

	r1 := e.start(testConfig("m1"), nil, nil)
	e.publish(chunks...)
	e.publish(marker)
	var dl sluicev1.DeadLetter
	dlq.next(t, &dl, 30*time.Second)
	eventually(t, 10*time.Second, "terminated", func() bool { return e.ackPending(1) == 0 })
	rec, _, err := e.ledger.Get(ctx, bad.archive)
	if err != nil || !slices.Contains(rec.TablesDeadLettered, "t") || !rec.BatchSettled(bad.attempt, "t") {
		t.Fatalf("ledger after the dead letter: %+v, %v", rec, err)
	}
	r1.stop()

	// Everything of the partition is delivered again from its first message.
	if _, err := e.bus.JS.ResetConsumerToSequence(ctx, e.bus.Subjects.RowsStream(), "merger-p1", 1); err != nil {
		t.Fatal(err)
	}
	r2 := e.start(testConfig("m2"), nil, nil)
	good := bad
	good.archive = archiveOn("d2", "t", 1, 4)
	e.publishBatch(good)
	if bc := ev.nextCommitted(t, 30*time.Second); bc.ArchiveId != good.archive || bc.RowsOut != 15 {
		t.Fatalf("committed %v", bc)
	}
	last := e.streamLastSeq(e.bus.Subjects.RowsStream())
	eventually(t, 10*time.Second, "every message delivered and acked", func() bool {
		ci := e.consumerInfo(1)
		return ci.NumAckPending == 0 && ci.Delivered.Stream >= last
	})
	if n := r2.metric(t, "sluice_merger_batches_dead_lettered_total"); n != 0 {
		t.Fatalf("the redelivered dead-lettered batch was merged and dead-lettered again (%v)", n)
	}
	if ks := e.keys("t/"); len(ks) != 1 {
		t.Fatalf("want only the good batch's object, got %v", ks)
	}
}

// TestCommittedBatchLoneMarkerIsSettled: the marker of a committed batch delivered again alone
// (its ack lost in a crash after the chunks' acks; here a consumer reset to it) is acked as
// settled from the ledger (ledger.BatchCommitted, recorded before the acks), not held for chunks
// that will never come and then dead-lettered.
func TestCommittedBatchLoneMarkerIsSettled(t *testing.T) {
	e := newEnv(t, sinks[0])
	ctx := context.Background()
	e.useLedger()
	ev := e.committedEvents()
	tb := tbatch{archive: archiveOn("c1", "t", 1, 4), attempt: 1, table: "t", per: 5, members: []tmember{
		{name: "t_20250101_1.csv", date: "2025-01-01", batch: "1", header: "a,b", records: csvRows(15, func(i int) string { return fmt.Sprintf("%d,x", i) })},
	}}
	if _, _, err := e.ledger.Create(ctx, ledger.Record{ArchiveID: tb.archive, State: ledger.Extracted, Attempt: tb.attempt}); err != nil {
		t.Fatal(err)
	}
	r1 := e.start(testConfig("m1"), nil, nil)
	e.publishBatch(tb)
	if bc := ev.nextCommitted(t, 30*time.Second); bc.ArchiveId != tb.archive || bc.RowsOut != 15 {
		t.Fatalf("committed %v", bc)
	}
	eventually(t, 10*time.Second, "acked", func() bool { return e.ackPending(1) == 0 })
	objects := e.keys("t/")
	r1.stop()

	markerSeq := e.streamLastSeq(e.bus.Subjects.RowsStream())
	if _, err := e.bus.JS.ResetConsumerToSequence(ctx, e.bus.Subjects.RowsStream(), "merger-p1", markerSeq); err != nil {
		t.Fatal(err)
	}
	r2 := e.start(testConfig("m2"), nil, nil)
	eventually(t, 10*time.Second, "the lone marker acked", func() bool {
		ci := e.consumerInfo(1)
		return ci.NumAckPending == 0 && ci.AckFloor.Stream >= markerSeq
	})
	if n := r2.metric(t, "sluice_merger_batches_dead_lettered_total"); n != 0 {
		t.Fatalf("the committed batch's marker was dead-lettered (%v)", n)
	}
	if n := r2.metric(t, "sluice_merger_batches_committed_total"); n != 0 {
		t.Fatalf("the committed batch was committed again (%v)", n)
	}
	if ks := e.keys("t/"); !slices.Equal(ks, objects) || len(ks) != 1 {
		t.Fatalf("objects %v, before the redelivery %v", ks, objects)
	}
}

// useLedger gives the mergers started from now on a ledger (Deps.Ledger) on the env's bus.
func (e *env) useLedger() {
	e.t.Helper()
	kv, err := e.bus.Ledger(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	e.ledger = ledger.New(kv, time.Now)
}

// corruptChunk breaks the S2 block of chunks[i]: its length header is kept, its body is not.
func corruptChunk(t *testing.T, chunks []*nats.Msg, i int) {
	t.Helper()
	var c sluicev1.Chunk
	if err := proto.Unmarshal(chunks[i].Data, &c); err != nil {
		t.Fatal(err)
	}
	for j := 1; j < len(c.Data); j++ {
		c.Data[j] = 0xff
	}
	chunks[i] = rowsMsg(chunks[i].Subject, bus.TypeChunk, chunks[i].Header.Get(nats.MsgIdHdr), &c)
}

// TestParsedOnArrivalOrAtCommit: one batch, two output groups. The first group's zip codes read
// as integers until one keeps a leading zero; its integers are written back as the text they were
// read from, so its rows parsed on arrival are used. The second group's "+5" cannot be written
// back as read once the column turns out to be text: that group is parsed from its CSV at commit.
// Both objects hold exactly the text of the CSV, in order.
func TestParsedOnArrivalOrAtCommit(t *testing.T) {
	e := newEnv(t, sinks[0])
	ev := e.committedEvents()
	r := e.start(testConfig("m1"), nil, nil)
	zips := []string{"98101,1.5\n", "10001,2\n", "NA,3\n", "02134,4.25\n", "60601,\n"}
	plus := []string{"+5,1\n", "7,2\n", "x7,3\n"}
	tb := tbatch{archive: "c3000000000000000001", table: "zips", per: 2, members: []tmember{
		{name: "zips_20250101_1.csv", date: "2025-01-01", batch: "1", header: "zip,n", records: zips},
		{name: "zips_20250102_1.csv", date: "2025-01-02", batch: "1", header: "zip,n", records: plus},
	}}
	chunks, marker, _ := tb.msgs(e.bus.Subjects)
	e.publish(chunks...)
	e.publish(marker)
	bc := ev.nextCommitted(t, 30*time.Second)
	if bc.RowsOut != int64(len(zips)+len(plus)) || len(bc.Objects) != 2 {
		t.Fatalf("committed %v", bc)
	}
	for i, want := range [][]string{zips, plus} {
		td := e.readParquet(bc.Objects[i].Key)
		var got []string
		for _, row := range td.rows {
			n := row[1]
			if n == nullCell {
				n = ""
			}
			got = append(got, row[0]+","+n+"\n")
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", bc.Objects[i].Key, got, want)
		}
	}
	if a, c := r.metricLabel(t, "sluice_merger_groups_parsed_total", "when", "arrival"),
		r.metricLabel(t, "sluice_merger_groups_parsed_total", "when", "commit"); a != 1 || c != 1 {
		t.Fatalf("groups parsed on arrival %v, at commit %v; want 1 and 1", a, c)
	}
}

// TestOutOfOrderChunks: a chunk that arrives after a later one of its group makes the group's rows
// parsed at commit (rows parsed on arrival must be in chunk order); the rows are right and in
// order, and the memory the given-up rows held is given back to the budget.
func TestOutOfOrderChunks(t *testing.T) {
	e := newEnv(t, sinks[0])
	ev := e.committedEvents()
	r := e.start(testConfig("m1"), nil, nil)
	recs := csvRows(9, func(i int) string { return fmt.Sprintf("%d,v%d", i, i) })
	tb := tbatch{archive: "c4000000000000000001", table: "ooo", per: 3, members: []tmember{
		{name: "ooo_20250101_1.csv", date: "2025-01-01", batch: "1", header: "id,v", records: recs},
	}}
	chunks, marker, _ := tb.msgs(e.bus.Subjects)
	if len(chunks) != 3 {
		t.Fatalf("%d chunks", len(chunks))
	}
	e.publish(chunks[0], chunks[2], chunks[1], marker)
	bc := ev.nextCommitted(t, 30*time.Second)
	if bc.RowsOut != 9 || len(bc.Objects) != 1 {
		t.Fatalf("committed %v", bc)
	}
	var got []string
	for _, row := range e.readParquet(bc.Objects[0].Key).rows {
		got = append(got, row[0]+","+row[1]+"\n")
	}
	if !slices.Equal(got, recs) {
		t.Fatalf("rows %q, want %q", got, recs)
	}
	if n := r.metricLabel(t, "sluice_merger_groups_parsed_total", "when", "commit"); n != 1 {
		t.Fatalf("groups parsed at commit: %v, want 1", n)
	}
	eventually(t, 10*time.Second, "memory given back", func() bool {
		return r.metric(t, "sluice_merger_memory_bytes") == 0
	})
}
