package summarizer

import (
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/objstore"
	sluicev1 "github.com/sluice-dev/sluice/proto/sluicev1"
)

// checked is a CheckResult and the fingerprint of what it checked (its HdrCheckOf header).
type checked struct {
	r  *sluicev1.CheckResult
	fp string
}

// BenchmarkFoldMemory measures what the fold (the summarizer's state, and the dashboard's) holds
// per archive: archives of 10 tables, each landed, extracted, committed (one object, three quality
// results per table) and checked, read back from a real events stream and folded. The summarizer
// keeps every archive of the events stream's retention (30 days), so bytes/archive × archives
// a day × 30 is its steady-state heap for the fold (docs/SCALING.md, "Memory").
// foldEvents publishes the events of n archives of `tables` tables each — landed, extracted,
// committed (one object, three passed quality results per table) and checked — to a real events
// stream, and returns the bus and the messages read back. Archive i is partner (i % 3)'s and of
// process date i % dates, from 2025-03-01 on.
func foldEvents(b *testing.B, archives, tables, dates int) (*bus.Bus, []jetstream.Msg) {
	bs := bustest.New(b)
	ctx := b.Context()
	publish := func(subject string, m proto.Message, header ...string) {
		data, err := proto.Marshal(m)
		if err != nil {
			b.Fatal(err)
		}
		msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
		for i := 0; i+1 < len(header); i += 2 {
			msg.Header.Set(header[i], header[i+1])
		}
		if _, err := bs.JS.PublishMsgAsync(msg); err != nil {
			b.Fatal(err)
		}
	}
	sub := bs.Subjects
	for a := range archives {
		id := fmt.Sprintf("%020x", a+1)
		day := time.Date(2025, 3, 1+a%dates, 0, 0, 0, 0, time.UTC)
		date, compact, ms := day.Format(time.DateOnly), day.Format("20060102"), day.UnixMilli()
		partner := fmt.Sprintf("partner%d", a%3)
		name := fmt.Sprintf("%s_%s_%d.tar.gz", partner, compact, a)
		uri := "s3://landing/" + partner + "/" + date + "/" + name
		publish(sub.Landed(), &sluicev1.ArchiveLanded{ArchiveId: id, Sha256: id + id + id, Uri: uri, Name: name, Size: 300 << 20,
			LandedUnixMs: ms, Partner: partner, Attempt: 1})
		var checks []checked
		ex := &sluicev1.ArchiveExtracted{ArchiveId: id, Attempt: 1, Uri: uri, Name: name, Partner: partner, CompressedBytes: 300 << 20,
			UncompressedBytes: 1 << 30, DurationMs: 9000, ExtractedUnixMs: ms + 9000}
		for t := range tables {
			tbl := fmt.Sprintf("table_number_%d", t)
			ex.Tables = append(ex.Tables, &sluicev1.TableCount{Table: tbl, Partition: uint32(t % 8), Chunks: 100, Rows: 1e6, Bytes: 100 << 20,
				Members: []*sluicev1.MemberInfo{{Name: tbl + "_" + compact + "_001.csv", ProcessDate: date, BatchId: "001", Rows: 1e6, Bytes: 100 << 20, Chunks: 100}}})
			bc := &sluicev1.BatchCommitted{ArchiveId: id, Attempt: 1, Table: tbl, RowsIn: 1e6, RowsOut: 1e6, Bytes: 20 << 20, SchemaVersion: 3,
				CommittedUnixMs: ms + 10000, Merger: "merger-1", DurationMs: 800,
				Objects: []*sluicev1.CommittedObject{{Key: tbl + "/process_date=" + date + "/batch_id=001/part-" + id + ".parquet",
					ProcessDate: date, BatchId: "001", Rows: 1e6, Bytes: 20 << 20}},
				QualityKey: "_dq/results/" + tbl + "/process_date=" + date + "/batch_id=001/part-" + id + ".parquet"}
			for r := range 3 {
				bc.Quality = append(bc.Quality, &sluicev1.QualityResult{Rule: fmt.Sprintf("rule_%d", r), Column: "price", Kind: "row", Action: "warn",
					Status: "pass", CheckedRows: 1e6, Observed: "0 rows", Expected: "0 rows", ProcessDate: date, BatchId: "001"})
			}
			publish(sub.Committed(), bc)
			checks = append(checks, checked{&sluicev1.CheckResult{ArchiveId: id, Table: tbl, Ok: true, RowsExpected: 1e6, RowsFound: 1e6},
				computeFingerprint(id, 1, ex.Tables[t], bc)})
		}
		publish(sub.Extracted(), ex)
		for _, c := range checks {
			publish(sub.Checked(), c.r, HdrCheckOf, c.fp)
		}
	}
	select {
	case <-bs.JS.PublishAsyncComplete():
	case <-ctx.Done():
		b.Fatal(ctx.Err())
	}
	stream, err := bs.JS.Stream(ctx, sub.EventsStream())
	if err != nil {
		b.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	total := info.State.Msgs

	// The messages are read first, so that what is measured is the fold alone (not the client's
	// buffers, nor the in-process server's caches filling while they are read).
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: NewFold(sub, nil).Subjects()})
	if err != nil {
		b.Fatal(err)
	}
	it, err := cons.Messages()
	if err != nil {
		b.Fatal(err)
	}
	msgs := make([]jetstream.Msg, 0, total)
	for uint64(len(msgs)) < total {
		msg, err := it.Next()
		if err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, msg)
	}
	it.Stop()

	return bs, msgs
}

func BenchmarkFoldMemory(b *testing.B) {
	const archives, tables = 2000, 10
	bs, msgs := foldEvents(b, archives, tables, 1)
	sub := bs.Subjects
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		fold := NewFold(sub, nil)
		for _, msg := range msgs {
			if err := fold.Apply(msg); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if st := fold.Status(); st.Totals.Archives != archives || st.Totals.Committed != archives {
			b.Fatalf("folded %d archives, %d committed", st.Totals.Archives, st.Totals.Committed)
		}
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/archives, "heap-B/archive")
		runtime.KeepAlive(fold)
	}
}

// BenchmarkSettle measures what the summarizer does after each batch of events once caught up,
// when nothing changed: a settle (checks due, dates to render, pruning) and the status snapshot,
// over a fold of n archives whose summaries are already written. Its cost per archive times
// the archives of the events stream's retention is what every settle costs at that scale.
func BenchmarkSettle(b *testing.B) {
	// Each partner expects three sources a day, two of which never arrive (missing: every
	// render lists them), over 30 days.
	partners := &config.File{}
	for p := range 3 {
		name := fmt.Sprintf("partner%d", p)
		partners.Partners = append(partners.Partners, config.Partner{Name: name, Expected: &config.Expected{
			Deadline: config.Duration{Duration: 30 * time.Hour},
			Sources:  []string{name + "_{date}_*.tar.gz", name + "_{date}_late*.tar.gz", "other_" + name + "_{date}.tar.gz"}}})
	}
	for _, c := range []struct {
		archives, dates int
		partners        *config.File
	}{{500, 1, nil}, {2000, 1, nil}, {2000, 30, partners}, {8000, 30, partners}} {
		name := fmt.Sprint(c.archives)
		if c.partners != nil {
			name += fmt.Sprintf("/%d-days-expected", c.dates)
		}
		b.Run(name, func(b *testing.B) {
			n := c.archives
			bs, msgs := foldEvents(b, n, 10, c.dates)
			out, err := objstore.Open(b.Context(), b.TempDir(), objstore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			s, err := New(Config{}, Deps{Bus: bs, Out: out, Log: slog.New(slog.DiscardHandler), Partners: c.partners})
			if err != nil {
				b.Fatal(err)
			}
			s.st = newState(c.partners)
			for _, m := range msgs {
				meta, err := m.Metadata()
				if err != nil {
					b.Fatal(err)
				}
				s.apply(m, meta)
			}
			s.st.caughtUp = true
			if err := s.settle(b.Context()); err != nil { // writes the summaries
				b.Fatal(err)
			}
			s.publishSnapshot()
			if st := s.Status(); st.Totals.Committed != n || !st.Dates["2025-03-01"].Written {
				b.Fatalf("%d committed, date %+v", st.Totals.Committed, st.Dates["2025-03-01"])
			}
			for b.Loop() {
				if err := s.settle(b.Context()); err != nil {
					b.Fatal(err)
				}
				s.publishSnapshot()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n)/1e3, "µs/archive")
		})
	}
}
