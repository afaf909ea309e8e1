package quality

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/sluice-dev/sluice/internal/table"
)

const benchRows = 100_000

// benchCSV is a clean 100k-row table of ten columns (ids, amounts, codes, currencies, emails, dates,
// timestamps), as CSV with its header.
func benchCSV(defectEvery int) (header []string, data []byte) {
	r := rand.New(rand.NewPCG(42, 1))
	header = []string{"id", "hotel_id", "price", "qty", "currency", "code", "email", "stay_date", "observed_at", "note"}
	cur := []string{"USD", "EUR", "KRW", "JPY", "GBP"}
	var b bytes.Buffer
	for i := range benchRows {
		price := fmt.Sprintf("%d.%02d", r.IntN(50000), r.IntN(100))
		if defectEvery > 0 && i%defectEvery == 0 {
			price = "-1"
		}
		note := ""
		if r.IntN(5) == 0 {
			note = fmt.Sprintf("note %d", r.IntN(1000))
		}
		fmt.Fprintf(&b, "%d,%d,%s,%d,%s,C%07d,user%d@example.com,2025-03-%02d,2025-03-%02d %02d:%02d:%02d,%s\n",
			1_000_000+i, r.IntN(5000), price, 1+r.IntN(9), cur[r.IntN(len(cur))], r.IntN(10_000_000), r.IntN(50000),
			1+r.IntN(28), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), note)
	}
	return header, b.Bytes()
}

// benchRecord parses the CSV as the merger does: one record batch under the inferred schema.
func benchRecord(b *testing.B, mem memory.Allocator, header []string, data []byte) (*table.Schema, arrow.RecordBatch) {
	in := table.NewInferer(table.Options{})
	if _, err := in.Observe(header, data, 2); err != nil {
		b.Fatal(err)
	}
	s, _ := table.Evolve("bench", nil, in.Columns(), table.Options{})
	bld := table.NewBuilder(mem, s, table.Options{})
	defer bld.Release()
	if _, err := bld.Append(header, data, 2, nil); err != nil {
		b.Fatal(err)
	}
	return s, bld.NewRecordBatch()
}

// benchRules are the five rules of the benchmark: a key, not_null, range, allowed, max_length.
const benchRules = `
key: [id]
columns:
  price: {not_null: true, range: {min: 0, max: 100000}}
  currency: {allowed: [USD, EUR, KRW, JPY, GBP]}
  code: {max_length: 12}
`

// BenchmarkCheck: the engine on one 100k-row record batch (ns/row), beside what the merge itself costs for the
// same rows (CSV → Arrow → zstd Parquet, the merger's two main steps) as the yardstick.
func BenchmarkCheck(b *testing.B) {
	header, data := benchCSV(0)
	mem := memory.NewGoAllocator()
	s, rec := benchRecord(b, mem, header, data)
	defer rec.Release()
	run := func(b *testing.B, r *Rules, noProfiles bool, rec arrow.RecordBatch) {
		b.ReportAllocs()
		for b.Loop() {
			bt := r.NewBatch(mem, BatchMeta{ArchiveID: "a", ProcessDate: "2025-03-01", BatchID: "1", Schema: s, NoProfiles: noProfiles})
			keep, _, err := bt.Check(rec)
			if err != nil {
				b.Fatal(err)
			}
			keep.Release()
			bt.Finish(FinishInput{})
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchRows, "ns/row")
	}
	five := compile(b, "bench", benchRules)
	b.Run("rules=5", func(b *testing.B) { run(b, five, true, rec) })
	b.Run("rules=5+profiles", func(b *testing.B) { run(b, five, false, rec) })
	none, _ := Compile("bench", nil, nil)
	b.Run("profiles", func(b *testing.B) { run(b, none, false, rec) })
	for _, one := range []struct{ name, block string }{
		{"not_null", "columns:\n  price: {not_null: true}\n"},
		{"range", "columns:\n  price: {range: {min: 0, max: 100000}}\n"},
		{"allowed", "columns:\n  currency: {allowed: [USD, EUR, KRW, JPY, GBP]}\n"},
		{"max_length", "columns:\n  code: {max_length: 12}\n"},
		{"key", "key: [id]\n"},
		{"key2", "key: [hotel_id, stay_date, observed_at]\n"},
		{"unique_string", "columns:\n  code: {unique: true}\n"},
		{"regex", `columns: {email: {regex: '^[^@\s]+@[^@\s]+$'}}` + "\n"},
	} {
		r := compile(b, "bench", one.block)
		b.Run("rule="+one.name, func(b *testing.B) { run(b, r, true, rec) })
	}
	// 1% of the rows quarantined: the filtered copy of the record batch
	q := compile(b, "bench", "columns:\n  price: {range: {min: 0}, action: quarantine}\n")
	_, bad := benchRecord(b, mem, header, func() []byte { _, d := benchCSV(100); return d }())
	defer bad.Release()
	b.Run("quarantine=1%", func(b *testing.B) { run(b, q, true, bad) })

	b.Run("merge", func(b *testing.B) {
		b.ReportAllocs()
		props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithCompressionLevel(1),
			parquet.WithStats(true))
		for b.Loop() {
			bld := table.NewBuilder(mem, s, table.Options{})
			if _, err := bld.Append(header, data, 2, nil); err != nil {
				b.Fatal(err)
			}
			r := bld.NewRecordBatch()
			fw, err := pqarrow.NewFileWriter(s.Arrow(), io.Discard, props, pqarrow.DefaultWriterProps())
			if err != nil {
				b.Fatal(err)
			}
			if err := fw.Write(r); err != nil {
				b.Fatal(err)
			}
			if err := fw.Close(); err != nil {
				b.Fatal(err)
			}
			r.Release()
			bld.Release()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchRows, "ns/row")
	})
}

// BenchmarkWriteProfiles: the profiles Parquet object of one batch of the benchmark's ten columns (one is
// written per committed batch).
func BenchmarkWriteProfiles(b *testing.B) {
	header, data := benchCSV(0)
	mem := memory.NewGoAllocator()
	s, rec := benchRecord(b, mem, header, data)
	defer rec.Release()
	none, _ := Compile("bench", nil, nil)
	bt := none.NewBatch(mem, BatchMeta{ArchiveID: "a", ProcessDate: "2025-03-01", BatchID: "1", Schema: s})
	keep, _, err := bt.Check(rec)
	if err != nil {
		b.Fatal(err)
	}
	keep.Release()
	_, _, profiles := bt.Finish(FinishInput{})
	var out bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		if err := WriteProfiles(&out, mem, profiles); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(out.Len()), "bytes")
}
