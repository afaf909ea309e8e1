package merger

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	rtmetrics "runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/gen"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/table"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// benchCSV returns about size bytes of CSV records (no header) of a typical partner table,
// cut into chunks of about chunk bytes at record boundaries.
func benchCSV(seed, size, chunk int) (header string, chunks [][]byte, total int) {
	header = "id,customer,amount,qty,day,ts,active,comment"
	var sb strings.Builder
	for i := 0; total < size; i++ {
		n := seed*1_000_000 + i
		rec := fmt.Sprintf("%d,customer %d,%d.%02d,%d,2025-%02d-%02d,2025-01-02 %02d:%02d:%02d,%t,\"note %d, with comma\"\n",
			n, n%5000, n%100000, n%100, n%17, 1+n%12, 1+n%28, n%24, n%60, n%60, n%3 == 0, n%997)
		sb.WriteString(rec)
		total += len(rec)
		if sb.Len() >= chunk {
			chunks = append(chunks, []byte(sb.String()))
			sb.Reset()
		}
	}
	if sb.Len() > 0 {
		chunks = append(chunks, []byte(sb.String()))
	}
	return header, chunks, total
}

func benchSchema(b *testing.B, header string, chunks [][]byte) (*table.Schema, []string) {
	names, _, err := table.ParseHeader([]byte(header), ',')
	if err != nil {
		b.Fatal(err)
	}
	in := table.NewInferer(table.Options{})
	for _, c := range chunks {
		if _, err := in.Observe(names, c, 2); err != nil {
			b.Fatal(err)
		}
	}
	s, _ := table.Evolve("bench", nil, in.Columns(), table.Options{})
	return s, names
}

// BenchmarkCSVToArrow: parsing CSV chunks into Arrow record batches (row groups of 32 MiB).
func BenchmarkCSVToArrow(b *testing.B) {
	header, chunks, total := benchCSV(0, 64<<20, 1<<20)
	s, names := benchSchema(b, header, chunks)
	b.SetBytes(int64(total))
	b.ResetTimer()
	for b.Loop() {
		bld := table.NewBuilder(memory.DefaultAllocator, s, table.Options{})
		for _, c := range chunks {
			if _, err := bld.Append(names, c, 2, nil); err != nil {
				b.Fatal(err)
			}
			if bld.ApproxBytes() >= DefaultRowGroupBytes {
				bld.NewRecordBatch().Release()
			}
		}
		bld.NewRecordBatch().Release()
		bld.Release()
	}
}

// BenchmarkArrowToParquet: encoding record batches (row groups of DefaultRowGroupBytes) as Parquet
// with the merger's writer properties, per-object dictionary choice included; MB/s of the CSV they
// came from, and the bytes written. synthetic: benchCSV's table as one object. corpus: the
// end-to-end benchmark's corpus (scripts/bench.sh PRESET=100mb, generated here by internal/gen),
// one object per table member as the merger writes them.
func BenchmarkArrowToParquet(b *testing.B) {
	b.Run("synthetic", func(b *testing.B) {
		header, chunks, total := benchCSV(0, 64<<20, 1<<20)
		s, names := benchSchema(b, header, chunks)
		obj := benchObject(b, s, names, chunks)
		defer obj.release()
		benchWriteObjects(b, []benchObj{obj}, int64(total))
	})
	b.Run("corpus", func(b *testing.B) {
		objs, total := benchCorpus(b)
		defer func() {
			for _, o := range objs {
				o.release()
			}
		}()
		benchWriteObjects(b, objs, total)
	})
}

// benchObj is the record batches of one Parquet object.
type benchObj struct {
	schema *arrow.Schema
	recs   []arrow.RecordBatch
}

func (o benchObj) release() {
	for _, r := range o.recs {
		r.Release()
	}
}

// benchObject parses chunks under s into record batches cut at DefaultRowGroupBytes.
func benchObject(b *testing.B, s *table.Schema, names []string, chunks [][]byte) benchObj {
	bld := table.NewBuilder(memory.DefaultAllocator, s, table.Options{})
	defer bld.Release()
	obj := benchObj{schema: bld.ArrowSchema()}
	for _, c := range chunks {
		if _, err := bld.Append(names, c, 2, nil); err != nil {
			b.Fatal(err)
		}
		if bld.ApproxBytes() >= DefaultRowGroupBytes {
			obj.recs = append(obj.recs, bld.NewRecordBatch())
		}
	}
	if bld.Len() > 0 || len(obj.recs) == 0 {
		obj.recs = append(obj.recs, bld.NewRecordBatch())
	}
	return obj
}

// benchCorpus generates the 100mb preset of scripts/bench.sh and returns one object per table
// member (its schema inferred from the member alone), and the CSV bytes of those members.
func benchCorpus(b *testing.B) ([]benchObj, int64) {
	cfg := gen.DefaultConfig()
	cfg.Out, cfg.Seed, cfg.Days, cfg.Archives, cfg.Tables = b.TempDir(), 7, 2, 4, 24
	cfg.TargetBytes, cfg.LargeTable = 107_000_000, true
	man, err := gen.Generate(cfg)
	if err != nil {
		b.Fatal(err)
	}
	var objs []benchObj
	var total int64
	for _, a := range man.Archives {
		f, err := os.Open(a.Path)
		if err != nil {
			b.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			b.Fatal(err)
		}
		tr := tar.NewReader(zr)
		tables := map[string]bool{}
		for _, m := range a.Members {
			if m.Table != "" {
				tables[m.Name] = true
			}
		}
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if !tables[h.Name] {
				continue
			}
			raw, err := io.ReadAll(tr)
			if err != nil {
				b.Fatal(err)
			}
			nl := bytes.IndexByte(raw, '\n')
			if nl < 0 {
				continue // header only
			}
			names, _, err := table.ParseHeader(raw[:nl], ',')
			if err != nil {
				b.Fatal(err)
			}
			data := raw[nl+1:]
			in := table.NewInferer(table.Options{})
			if _, err := in.Observe(names, data, 2); err != nil {
				b.Fatal(err)
			}
			s, _ := table.Evolve(h.Name, nil, in.Columns(), table.Options{})
			objs = append(objs, benchObject(b, s, names, csvChunks(data, 1<<20)))
			total += int64(len(raw))
		}
		f.Close()
	}
	return objs, total
}

// csvChunks cuts data into chunks of about size bytes at line ends outside quotes.
func csvChunks(data []byte, size int) [][]byte {
	var chunks [][]byte
	start, quoted := 0, false
	for i, c := range data {
		switch {
		case c == '"':
			quoted = !quoted
		case c == '\n' && !quoted && i+1-start >= size:
			chunks = append(chunks, data[start:i+1])
			start = i + 1
		}
	}
	if start < len(data) {
		chunks = append(chunks, data[start:])
	}
	return chunks
}

// benchWriteObjects times writing objs as the merger does (objectProps from each object's first
// record batch) to a byte counter, total being the CSV bytes they came from: "pqFile" is the
// merger's writer (a row group's columns encoded in parallel), "pqarrow" arrow-go's FileWriter (one
// column after the other), for comparison.
func benchWriteObjects(b *testing.B, objs []benchObj, total int64) {
	opts, arrowProps := writerProps(memory.DefaultAllocator, DefaultZstdLevel)
	for _, w := range []struct {
		name string
		open func(sc *arrow.Schema, w io.Writer, props *parquet.WriterProperties) (parquetWriter, error)
	}{
		{"pqFile", func(sc *arrow.Schema, w io.Writer, props *parquet.WriterProperties) (parquetWriter, error) {
			return newPQFile(sc, w, props, arrowProps)
		}},
		{"pqarrow", func(sc *arrow.Schema, w io.Writer, props *parquet.WriterProperties) (parquetWriter, error) {
			return pqarrow.NewFileWriter(sc, w, props, arrowProps)
		}},
	} {
		b.Run(w.name, func(b *testing.B) {
			b.SetBytes(total)
			var out int64
			for b.Loop() {
				out = 0
				for _, o := range objs {
					cw := &countingWriter{w: io.Discard}
					fw, err := w.open(o.schema, cw, objectProps(opts, o.recs[0]))
					if err != nil {
						b.Fatal(err)
					}
					for _, r := range o.recs {
						if err := fw.Write(r); err != nil {
							b.Fatal(err)
						}
					}
					if err := fw.Close(); err != nil {
						b.Fatal(err)
					}
					out += cw.n
				}
			}
			b.ReportMetric(float64(out), "parquet-bytes")
			b.ReportMetric(float64(total)/float64(out), "csv/parquet")
		})
	}
}

// BenchmarkMergerBudget: 8 archives × 30 tables interleaved on the rows stream (markers last, as
// when the extractions run concurrently), merged by one merger at a 128 MiB budget into a
// directory. Reports MB/s of CSV, the peak Go heap in use while merging (sampled HeapInuse, which
// includes garbage not yet collected and the embedded nats-server of the same process), the peak
// live heap (as of each GC), the heap before the merger started, and the peak memory the merger
// accounted against its budget.
func BenchmarkMergerBudget(b *testing.B) {
	const archives, tables, perBatch = 8, 30, 900 << 10
	for b.Loop() {
		b.StopTimer()
		bs := benchBus(b)
		ctx := context.Background()
		var all [][]*nats.Msg
		var markers []*nats.Msg
		var total int64
		for a := range archives {
			for tb := range tables {
				archive := fmt.Sprintf("bench%015d", a)
				tbl := fmt.Sprintf("table_%02d", tb)
				header, chunks, n := benchCSV(a*100+tb, perBatch, 256<<10)
				total += int64(n)
				msgs, marker := benchMsgs(bs.Subjects, archive, tbl, header, chunks)
				all = append(all, msgs)
				markers = append(markers, marker)
			}
		}
		publishAsync(b, bs.JS, interleave(all))
		publishAsync(b, bs.JS, markers)
		all, markers = nil, nil

		out, err := objstore.Open(ctx, b.TempDir(), objstore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		evc, err := bs.JS.OrderedConsumer(ctx, bs.Subjects.EventsStream(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{bs.Subjects.Committed()}})
		if err != nil {
			b.Fatal(err)
		}
		cfg := Config{Instance: "bench", MemoryBudget: 128 << 20, SpillDir: b.TempDir()}
		m, err := New(cfg, Deps{Bus: bs, Out: out, Metrics: prometheus.NewRegistry()})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapInuse
		var peakHeap, peakLive, peakAcct atomic.Uint64
		sampleCtx, stopSampling := context.WithCancel(ctx)
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			var ms runtime.MemStats
			live := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
			for {
				select {
				case <-sampleCtx.Done():
					return
				case <-t.C:
				}
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peakHeap.Load() {
					peakHeap.Store(ms.HeapInuse)
				}
				rtmetrics.Read(live)
				if v := live[0].Value.Uint64(); v > peakLive.Load() {
					peakLive.Store(v)
				}
				if u := uint64(max(m.mem.used.Load(), 0)); u > peakAcct.Load() {
					peakAcct.Store(u)
				}
			}
		}()
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		b.StartTimer()
		start := time.Now()
		go func() { done <- m.Run(runCtx) }()
		for range archives * tables {
			if _, err := evc.Next(jetstream.FetchMaxWait(10 * time.Minute)); err != nil {
				b.Fatal(err)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		stopSampling()
		<-sampled
		b.ReportMetric(float64(total)/1e6/elapsed.Seconds(), "MB/s")
		b.ReportMetric(float64(peakHeap.Load())/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(peakLive.Load())/(1<<20), "peak-live-heap-MiB")
		b.ReportMetric(float64(base)/(1<<20), "heap-before-MiB")
		b.ReportMetric(float64(peakAcct.Load())/(1<<20), "peak-accounted-MiB")
		b.ReportMetric(float64(total)/(1<<20), "csv-MiB")
		var released dto.Metric
		if err := m.met.releasedTotal.Write(&released); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(released.GetCounter().GetValue()/(1<<20), "released-MiB")
		b.StartTimer()
	}
}

// benchMsgs builds one batch (one member) on subj's partition.
func benchMsgs(s bus.Subjects, archive, tbl, header string, chunks [][]byte) ([]*nats.Msg, *nats.Msg) {
	part := bus.Partition(archive, tbl, s.Partitions)
	subj := s.Rows(part, tbl)
	mk := &sluicev1.BatchComplete{ArchiveId: archive, Table: tbl, Partition: part, Partner: "default"}
	info := &sluicev1.MemberInfo{Name: tbl + "_20250101_1.csv", ProcessDate: "2025-01-01", BatchId: "1"}
	var msgs []*nats.Msg
	line := int64(2)
	for i, c := range chunks {
		rows := strings.Count(string(c), "\n") // no quoted newlines in bench data
		ch := &sluicev1.Chunk{ArchiveId: archive, Table: tbl, Member: info.Name, ProcessDate: "2025-01-01", BatchId: "1",
			ChunkIndex: uint32(i), MemberChunk: uint32(i), FirstLine: line, Rows: uint32(rows), Header: []byte(header),
			Data: c, Delimiter: ",", Partner: "default", LastInMember: i == len(chunks)-1}
		msgs = append(msgs, rowsMsg(subj, bus.TypeChunk, fmt.Sprintf("%s.0.%s.c.%d", archive, tbl, i), ch))
		line += int64(rows)
		info.Chunks++
		info.Rows += int64(rows)
		info.Bytes += int64(len(c))
		mk.Chunks++
		mk.Rows += int64(rows)
		mk.Bytes += int64(len(c))
	}
	mk.Members = []*sluicev1.MemberInfo{info}
	return msgs, rowsMsg(subj, bus.TypeComplete, fmt.Sprintf("%s.0.%s.done.0", archive, tbl), mk)
}

func interleave(all [][]*nats.Msg) []*nats.Msg {
	var out []*nats.Msg
	for i := 0; ; i++ {
		any := false
		for _, c := range all {
			if i < len(c) {
				out = append(out, c[i])
				any = true
			}
		}
		if !any {
			return out
		}
	}
}

func publishAsync(b *testing.B, js jetstream.JetStream, msgs []*nats.Msg) {
	b.Helper()
	const window = 256
	var futs []jetstream.PubAckFuture
	for i, m := range msgs {
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			b.Fatal(err)
		}
		futs = append(futs, f)
		if len(futs) == window || i == len(msgs)-1 {
			for _, f := range futs {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					b.Fatal(err)
				case <-time.After(time.Minute):
					b.Fatal("publish ack timeout")
				}
			}
			futs = futs[:0]
		}
	}
}

// benchBus is an embedded nats-server (bustest), or the server at $MERGER_BENCH_NATS_URL (a
// fresh one, e.g. nats-server -js -sd DIR) so that the heap figures hold the merger alone.
func benchBus(b *testing.B) *bus.Bus {
	url := os.Getenv("MERGER_BENCH_NATS_URL")
	if url == "" {
		return bustest.New(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bs, err := bus.Connect(ctx, bus.Config{URL: url, Subjects: bus.Subjects{Prefix: fmt.Sprintf("bench%d", time.Now().UnixNano()%1e6), Partitions: 4}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(bs.Close)
	if err := bs.Ensure(ctx); err != nil {
		b.Fatal(err)
	}
	return bs
}
