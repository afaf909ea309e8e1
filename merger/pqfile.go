package merger

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// pqFile writes one Parquet object from Arrow record batches of a flat schema (primitive columns,
// as every table schema is), encoding the columns of each row group in parallel.
//
// pqarrow.FileWriter encodes a row group's columns one after the other on its caller's goroutine.
// A batch committed at its marker is encoded while nothing else may be left to run (the last
// archive's largest table ends a run), so that left one core idle for as long as the encoding took.
// pqFile encodes each column into its own in-memory buffer (arrow-go's buffered row group) on up to
// GOMAXPROCS goroutines, and closes the columns in order, each as soon as its values are written:
// closing appends the column chunk to the object. The bytes are pqarrow.FileWriter's
// (TestPQFileMatchesPQArrow): the same writer properties, the same column writers, the same order;
// only dictionary-encoded string columns may differ, in the width of their indices (writeStringDict).
// What it costs: a row group's encoded columns are held in memory until they are appended (one
// compressed row group, about a fifth of RowGroupBytes of typical CSV).
type pqFile struct {
	w          *file.Writer
	sc         *arrow.Schema
	arrowProps pqarrow.ArrowWriterProperties
	err        error // the first failed write: the object is abandoned
	closed     bool
}

// newPQFile starts a Parquet object on w with schema sc, as pqarrow.NewFileWriter does given
// pqarrow.WithStoreSchema (as the merger's properties are): the Parquet schema from
// pqarrow.ToParquet, and the schema's metadata and the serialized Arrow schema (ARROW:schema) in
// the footer.
func newPQFile(sc *arrow.Schema, w io.Writer, props *parquet.WriterProperties, arrowProps pqarrow.ArrowWriterProperties) (*pqFile, error) {
	for _, f := range sc.Fields() {
		if _, nested := f.Type.(arrow.NestedType); nested {
			return nil, fmt.Errorf("parquet writer: column %q: nested type %s", f.Name, f.Type)
		}
	}
	pqschema, err := pqarrow.ToParquet(sc, props, arrowProps)
	if err != nil {
		return nil, err
	}
	meta := make(metadata.KeyValueMetadata, 0, sc.Metadata().Len()+1)
	for i, k := range sc.Metadata().Keys() {
		meta.Append(k, sc.Metadata().Values()[i])
	}
	// Stored always: ArrowWriterProperties does not tell whether WithStoreSchema was given.
	meta.Append("ARROW:schema", base64.StdEncoding.EncodeToString(flight.SerializeSchema(sc, props.Allocator())))
	fw, err := file.NewParquetWriterWithError(w, pqschema.Root(), file.WithWriterProps(props), file.WithWriteMetadata(meta))
	if err != nil {
		return nil, err
	}
	return &pqFile{w: fw, sc: sc, arrowProps: arrowProps}, nil
}

// Write writes rec as one row group, or several of at most the properties' MaxRowGroupLength rows.
func (f *pqFile) Write(rec arrow.RecordBatch) error {
	if f.closed || f.err != nil {
		return fmt.Errorf("parquet writer: write after close or failure")
	}
	if !rec.Schema().Equal(f.sc) {
		return fmt.Errorf("parquet writer: record schema %s, writer's %s", rec.Schema(), f.sc)
	}
	maxRows := f.w.Properties().MaxRowGroupLength()
	if rec.NumRows() <= maxRows {
		f.err = f.writeRowGroup(rec)
		return f.err
	}
	for off := int64(0); off < rec.NumRows(); off += maxRows {
		part := rec.NewSlice(off, min(off+maxRows, rec.NumRows()))
		f.err = f.writeRowGroup(part)
		part.Release()
		if f.err != nil {
			return f.err
		}
	}
	return nil
}

// writeRowGroup writes rec as one row group: workers take the columns in order and write each into
// its column writer; this goroutine closes column i (which appends it to the object) once it is
// written, while later columns are still being written.
func (f *pqFile) writeRowGroup(rec arrow.RecordBatch) error {
	if rec.NumRows() == 0 {
		// An empty row group, as pqarrow writes it: each column started and closed without values
		// (a buffered row group would record other page offsets for them).
		rgw, err := f.w.AppendRowGroupChecked()
		if err != nil {
			return err
		}
		for range rec.NumCols() {
			if _, err := rgw.NextColumn(); err != nil {
				return err
			}
		}
		return rgw.Close()
	}
	rgw, err := f.w.AppendBufferedRowGroupChecked()
	if err != nil {
		return err
	}
	n := int(rec.NumCols())
	written := make([]chan error, n)
	for i := range written {
		written[i] = make(chan error, 1)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		next int
		stop bool
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if stop || next == n {
			return 0, false
		}
		next++
		return next - 1, true
	}
	for range min(n, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			var sc colScratch
			for i, ok := take(); ok; i, ok = take() {
				cw, err := rgw.Column(i)
				if err == nil {
					err = f.writeColumn(cw, rec.Column(i), f.sc.Field(i).Nullable, &sc)
				}
				written[i] <- err
			}
		})
	}
	var first error
	for i := range n {
		if first = <-written[i]; first != nil {
			break
		}
		cw, _ := rgw.Column(i) // written: i is in range
		if first = cw.Close(); first != nil {
			break
		}
	}
	if first != nil {
		mu.Lock()
		stop = true
		mu.Unlock()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return rgw.Close() // the columns are closed: checks the row counts, finishes the row group's metadata
}

// colScratch is a worker's scratch space, reused from column to column.
type colScratch struct {
	defLevels []int16
	indices   []int32
	cuts      []int
	dict      map[string]int32
	seen      []int32 // per dictionary entry, the last page (1-based) that referenced it (statsSafe)
}

// writeColumn writes a (flat) column's values: definition levels 1 for a value, 0 for a null, as
// pqarrow derives them for a nullable top-level primitive field; none for a required one. A string
// column the writer dictionary-encodes goes through writeStringDict.
func (f *pqFile) writeColumn(cw file.ColumnChunkWriter, a arrow.Array, nullable bool, sc *colScratch) error {
	var defLevels []int16
	if cw.LevelInfo().DefLevel > 0 {
		if cap(sc.defLevels) < a.Len() {
			sc.defLevels = make([]int16, a.Len())
		}
		defLevels = sc.defLevels[:a.Len()]
		if a.NullN() == 0 {
			for i := range defLevels {
				defLevels[i] = 1
			}
		} else {
			for i := range defLevels {
				defLevels[i] = 0
				if a.IsValid(i) {
					defLevels[i] = 1
				}
			}
		}
	}
	ctx := pqarrow.NewArrowWriteContext(context.Background(), &f.arrowProps)
	if str, ok := a.(*array.String); ok && cw.CurrentEncoder().Encoding() == parquet.Encodings.PlainDict {
		if done, err := writeStringDict(ctx, cw, str, defLevels, nullable, sc); done || err != nil {
			return err
		}
	}
	return pqarrow.WriteArrowToColumn(ctx, cw, a, defLevels, nil, nullable)
}

// writeStringDict writes a string column the writer dictionary-encodes as an Arrow dictionary array
// of our making. Given plain strings, arrow-go's dictionary encoder boxes every value into an
// interface to look it up in its hash table (an allocation per value, and a []parquet.ByteArray as
// long as the column besides): 20–30% of the encoder's CPU on the generated corpus. Here a Go map
// assigns the indices in first-occurrence order, as arrow-go's table does, and arrow-go takes the
// dictionary once and the indices as they are.
//
// The pages are arrow-go's own (TestPQFileMatchesPQArrow): given indices, arrow-go neither cuts data
// pages (it sizes a dictionary page by the raw bytes of the values it saw, and indices have none) nor
// checks the dictionary's size, and it takes a page's statistics from the dictionary array it was
// handed. So the indices are handed over page by page, cut where arrow-go cuts the strings (after
// the first WriteBatchSize batch whose values, 4 bytes each plus their length, reach DataPageSize),
// each page ended explicitly but the last (the column's close ends it); a dictionary that would
// reach the dictionary page limit, where arrow-go falls back to PLAIN, is left to arrow-go, as are
// the columns its cost-based fallback may apply to. The one difference: arrow-go packs a page's
// indices at the width of the dictionary so far, these pages at the width of the whole chunk's
// dictionary, so the first pages of a column whose dictionary keeps growing are a little larger
// (the same bytes once the dictionary is complete: the common case of codes and categories).
//
// It returns false, having written nothing, when it leaves the column to arrow-go.
func writeStringDict(ctx context.Context, cw file.ColumnChunkWriter, a *array.String, defLevels []int16, nullable bool, sc *colScratch) (bool, error) {
	n := a.Len()
	props := cw.Properties()
	flusher, ok := cw.(interface{ FlushCurrentPage() error })
	if !ok || a.NullN() == n || props.DictionaryCostFallbackEnabledFor(cw.Descr().Path()) {
		return false, nil
	}
	limit, pageSize, batch := props.DictionaryPageSizeLimit(), props.DataPageSize(), int(props.WriteBatchSize())
	if sc.dict == nil {
		sc.dict = map[string]int32{}
	}
	clear(sc.dict)
	if cap(sc.indices) < n {
		sc.indices = make([]int32, n)
	}
	idx := sc.indices[:n]
	sc.cuts = sc.cuts[:0]
	db := array.NewStringBuilder(props.Allocator())
	defer db.Release()
	var dictBytes, pageRaw int64
	for start := 0; start < n; start += batch {
		end := min(start+batch, n)
		for i := start; i < end; i++ {
			if a.IsNull(i) {
				idx[i] = 0
				continue
			}
			v := a.Value(i)
			pageRaw += int64(len(v)) + 4
			k, ok := sc.dict[v]
			if !ok {
				if dictBytes += int64(len(v)) + 4; dictBytes >= limit {
					return false, nil
				}
				k = int32(len(sc.dict))
				sc.dict[strings.Clone(v)] = k
				db.Append(v)
			}
			idx[i] = k
		}
		if pageRaw >= pageSize {
			sc.cuts = append(sc.cuts, end)
			pageRaw = 0
		}
	}
	if a.NullN() > 0 && !statsSafe(a, idx, sc, len(sc.dict)) {
		return false, nil
	}
	dict := db.NewArray()
	defer dict.Release()

	var validity *memory.Buffer
	if a.NullN() > 0 {
		bm := make([]byte, bitutil.BytesForBits(int64(n)))
		bitutil.CopyBitmap(a.NullBitmapBytes(), a.Data().Offset(), n, bm, 0)
		validity = memory.NewBufferBytes(bm)
	}
	data := array.NewData(arrow.PrimitiveTypes.Int32, n,
		[]*memory.Buffer{validity, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(idx))}, nil, a.NullN(), 0)
	defer data.Release()
	indices := array.NewInt32Data(data)
	defer indices.Release()
	da := array.NewDictionaryArray(&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}, indices, dict)
	defer da.Release()

	write := func(from, to int) error {
		part := array.NewSlice(da, int64(from), int64(to))
		defer part.Release()
		var lv []int16
		if defLevels != nil {
			lv = defLevels[from:to]
		}
		return pqarrow.WriteArrowToColumn(ctx, cw, part, lv, nil, nullable)
	}
	from := 0
	for _, to := range sc.cuts {
		if err := write(from, to); err != nil {
			return true, err
		}
		if err := flusher.FlushCurrentPage(); err != nil {
			return true, err
		}
		from = to
	}
	if from < n {
		if err := write(from, n); err != nil {
			return true, err
		}
	}
	return true, nil
}

// statsSafe reports whether arrow-go computes the right statistics for every page of a column with
// nulls handed over as a dictionary array of dictLen values with indices idx, cut at sc.cuts.
// arrow-go takes a page's statistics from the dictionary values its indices reference, which it
// finds as the unique indices; but it counts the null among those, and when that count equals the
// dictionary's length it takes the whole dictionary instead: a page that references all values but
// one, and has a null, gets the statistics of all of them (TestPQFileMatchesPQArrowRandom found it,
// TestPQFileDictionaryPageStats pins it, docs/UPSTREAM.md describes it; the column chunk's
// statistics stay right, every value being on some page). Such a column is left to arrow-go, which
// computes page statistics from the strings themselves.
func statsSafe(a *array.String, idx []int32, sc *colScratch, dictLen int) bool {
	if cap(sc.seen) < dictLen {
		sc.seen = make([]int32, dictLen)
	}
	seen := sc.seen[:dictLen]
	clear(seen)
	from, page := 0, int32(0)
	check := func(to int) bool {
		page++
		distinct, nulls := 0, false
		for i := from; i < to; i++ {
			if a.IsNull(i) {
				nulls = true
				continue
			}
			if k := idx[i]; seen[k] != page {
				seen[k] = page
				distinct++
			}
		}
		from = to
		return !nulls || distinct+1 != dictLen
	}
	for _, to := range sc.cuts {
		if !check(to) {
			return false
		}
	}
	return from == len(idx) || check(len(idx))
}

// Close writes the footer. After a failed Write it writes nothing (the object is to be abandoned)
// and returns that failure; called again, it does nothing.
func (f *pqFile) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	if f.err != nil {
		return f.err
	}
	return f.w.Close()
}
