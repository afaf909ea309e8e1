package objstore_test

import (
	"context"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/sluice-dev/sluice/internal/objstore"
)

// countingBucket counts what is fetched through it.
type countingBucket struct {
	objstore.Bucket
	gets, ranges, rangeBytes atomic.Int64
}

func (c *countingBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	c.gets.Add(1)
	return c.Bucket.Get(ctx, key)
}

func (c *countingBucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	c.ranges.Add(1)
	c.rangeBytes.Add(length)
	return c.Bucket.GetRange(ctx, key, off, length)
}

// TestParquetFooterThroughReaderAt writes Parquet through a bucket Writer (as the merger does)
// and opens it with arrow's file.NewParquetReader over ReaderAt: the footer is read with one
// small ranged request, never by downloading the object.
func TestParquetFooterThroughReaderAt(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		ctx := t.Context()
		b := &countingBucket{Bucket: be.open(t)}

		const rows = 200_000
		schema := arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.PrimitiveTypes.Int64}}, nil)
		bld := array.NewInt64Builder(mem)
		r := rand.New(rand.NewPCG(1, 2))
		var sum int64
		for range rows {
			v := r.Int64N(1 << 40)
			sum += v
			bld.Append(v)
		}
		col := bld.NewArray()
		bld.Release()
		rec := array.NewRecordBatch(schema, []arrow.Array{col}, rows)
		col.Release()
		tbl := array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
		rec.Release()
		defer tbl.Release()

		w, err := b.Create(ctx, "t/process_date=2024-01-02/batch_id=1/part-abc.parquet")
		if err != nil {
			t.Fatal(err)
		}
		props := parquet.NewWriterProperties(parquet.WithAllocator(mem), parquet.WithDictionaryDefault(false))
		if err := pqarrow.WriteTable(tbl, w, 50_000, props, pqarrow.NewArrowWriterProperties(pqarrow.WithAllocator(mem))); err != nil {
			t.Fatalf("write parquet: %v", err)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}

		ra, err := objstore.ReaderAt(ctx, b, "t/process_date=2024-01-02/batch_id=1/part-abc.parquet")
		if err != nil {
			t.Fatal(err)
		}
		pf, err := file.NewParquetReader(ra, file.WithReadProps(parquet.NewReaderProperties(mem)))
		if err != nil {
			t.Fatalf("open parquet footer: %v", err)
		}
		defer pf.Close()
		if pf.NumRows() != rows || pf.NumRowGroups() != 4 {
			t.Fatalf("rows %d, row groups %d", pf.NumRows(), pf.NumRowGroups())
		}
		if b.gets.Load() != 0 || b.ranges.Load() != 1 || b.rangeBytes.Load() > 64<<10 {
			t.Fatalf("footer of a %d-byte object: %d gets, %d ranges, %d range bytes",
				ra.Size(), b.gets.Load(), b.ranges.Load(), b.rangeBytes.Load())
		}

		// The data reads back through the same reader.
		fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, mem)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fr.ReadTable(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer got.Release()
		var gotSum int64
		for _, c := range got.Column(0).Data().Chunks() {
			for _, v := range c.(*array.Int64).Int64Values() {
				gotSum += v
			}
		}
		if got.NumRows() != rows || gotSum != sum {
			t.Fatalf("read %d rows, sum %d; want %d, %d", got.NumRows(), gotSum, rows, sum)
		}
		t.Logf("%d-byte object: %d ranged reads, %d bytes", ra.Size(), b.ranges.Load(), b.rangeBytes.Load())
	})
}
