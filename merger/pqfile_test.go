package merger

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// TestPQFileMatchesPQArrow: pqFile (columns encoded in parallel, string dictionary indices assigned
// by writeStringDict) writes what pqarrow.FileWriter writes (columns one after the other, values hashed by
// arrow-go) for the same record batches and writer properties (sameParquet: the same bytes but for
// the width of the dictionary indices on the pages written while arrow-go's dictionary was still
// growing), every page's statistics are its own rows', the same rows encode to the same bytes
// twice, and the rows read back. The cases cover every column type of a table schema, nulls (none,
// some, all), several data pages per column chunk (dictionary-encoded ones among them), a
// dictionary falling back to PLAIN, a record batch split at MaxRowGroupLength, and an empty record
// batch.
func TestPQFileMatchesPQArrow(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Log("GOMAXPROCS 1: one worker (the parallel path is not exercised)")
	}
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "status", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "amount", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "day", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "ts", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
		{Name: "note", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "flag", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "empty", Type: arrow.BinaryTypes.String, Nullable: true},
		// 5,000 distinct values: a dictionary whose indices (13 bits) fill several pages.
		{Name: "code", Type: arrow.BinaryTypes.String, Nullable: true},
		// Values that rise with the row: each page holds a narrow range of a large dictionary, so
		// statistics of the whole dictionary on a page would show.
		{Name: "rising", Type: arrow.BinaryTypes.String, Nullable: true},
		// A timestamp without nulls, each value three times (departure times).
		{Name: "at", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
	}, nil)
	batch := func(off, rows, nullEvery int) arrow.RecordBatch {
		null := func(i int, v any) any {
			if nullEvery > 0 && (i+off)%nullEvery == 0 {
				return nil
			}
			return v
		}
		cols := []arrow.Array{
			column(t, sc.Field(0).Type, rows, func(i int) any { return null(i, []string{"open", "closed", "pending"}[(i+off)%3]) }),
			column(t, sc.Field(1).Type, rows, func(i int) any { return null(i, float64((i+off)*37%100_000)+0.25) }),
			column(t, sc.Field(2).Type, rows, func(i int) any { return int64(off + i) }),
			column(t, sc.Field(3).Type, rows, func(i int) any { return null(i, int64(20_100+(i+off)%7)) }),
			column(t, sc.Field(4).Type, rows, func(i int) any { return null(i, int64(1_740_000_000_123_456+997_000_001*int64(i+off))) }),
			column(t, sc.Field(5).Type, rows, func(i int) any { return null(i, fmt.Sprintf("note %d, \"quoted\"", i+off)) }),
			column(t, sc.Field(6).Type, rows, func(i int) any { return null(i, (i+off)%5 == 0) }),
			column(t, sc.Field(7).Type, rows, func(int) any { return nil }),
			column(t, sc.Field(8).Type, rows, func(i int) any {
				if (i+off)%11 == 0 {
					return nil
				}
				return fmt.Sprintf("c%04d", (i+off)*7919%5000)
			}),
			column(t, sc.Field(9).Type, rows, func(i int) any {
				if (i+off)%13 == 5 { // a null's index points at the dictionary's first value, the lowest
					return nil
				}
				return fmt.Sprintf("v%06d", (i+off)/50)
			}),
			column(t, sc.Field(10).Type, rows, func(i int) any { return int64(1_740_000_000_000_000 + (i+off)/3*60_000_000) }),
		}
		rec := array.NewRecordBatch(sc, cols, int64(rows))
		for _, c := range cols {
			c.Release()
		}
		return rec
	}
	recs := []arrow.RecordBatch{batch(0, 10_000, 17), batch(10_000, 300_000, 0), batch(310_000, 0, 0), batch(310_000, 70_000, 3)}
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()

	opts, arrowProps := writerProps(memory.DefaultAllocator, DefaultZstdLevel)
	for _, tc := range []struct {
		name  string
		props func() *parquet.WriterProperties
	}{
		{"objectProps", func() *parquet.WriterProperties { return objectProps(opts, recs[0]) }},
		// A dictionary for every column: "id", "ts", "note" outgrow the page limit and fall back.
		{"dictionary everywhere, small pages, split row groups", func() *parquet.WriterProperties {
			return parquet.NewWriterProperties(append(opts[:len(opts):len(opts)],
				parquet.WithDataPageSize(64<<10), parquet.WithMaxRowGroupLength(120_000))...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := encode(t, recs, func(w io.Writer) (parquetWriter, error) {
				return pqarrow.NewFileWriter(sc, w, tc.props(), arrowProps)
			})
			open := func(w io.Writer) (parquetWriter, error) { return newPQFile(sc, w, tc.props(), arrowProps) }
			got := encode(t, recs, open)
			sameParquet(t, got, want)
			pageStatsOwn(t, got, recs)
			if again := encode(t, recs, open); !bytes.Equal(again, got) && !sameButStatsOrder(got, again) {
				t.Fatal("the same rows encoded to different bytes")
			}

			readsBack(t, got, recs) // so the comparison above is not between two equal wrong files
		})
	}
}

// parquetWriter is what pqFile and pqarrow.FileWriter have in common.
type parquetWriter interface {
	Write(arrow.RecordBatch) error
	Close() error
}

// encode writes recs with the writer open returns and returns the object's bytes.
func encode(t *testing.T, recs []arrow.RecordBatch, open func(io.Writer) (parquetWriter, error)) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := open(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestPQFileSchemaMismatch: a record batch of another schema is refused before anything of it is
// written; the object stays writable and reads back.
func TestPQFileSchemaMismatch(t *testing.T) {
	sc := arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	other := arrow.NewSchema([]arrow.Field{{Name: "b", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	opts, arrowProps := writerProps(memory.DefaultAllocator, DefaultZstdLevel)
	var buf bytes.Buffer
	pf, err := newPQFile(sc, &buf, parquet.NewWriterProperties(opts...), arrowProps)
	if err != nil {
		t.Fatal(err)
	}
	col := column(t, arrow.PrimitiveTypes.Int64, 3, func(i int) any { return int64(i) })
	defer col.Release()
	bad := array.NewRecordBatch(other, []arrow.Array{col}, 3)
	defer bad.Release()
	if err := pf.Write(bad); err == nil {
		t.Fatal("a record batch of another schema was written")
	}
	good := array.NewRecordBatch(sc, []arrow.Array{col}, 3)
	defer good.Release()
	if err := pf.Write(good); err != nil {
		t.Fatalf("a schema mismatch left the writer unusable: %v", err)
	}
	if err := pf.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := file.NewParquetReader(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("read back: %v", err)
	}
}

// sameParquet fails t unless the Parquet objects got (pqFile) and want (pqarrow.FileWriter) are the
// same bytes (but for the order of the encoding statistics, sameButStatsOrder), or differ only
// where writeStringDict's pages may: the data pages of a dictionary-encoded string column hold
// their indices at the width of the whole column chunk's dictionary, where arrow-go uses the width
// of the dictionary so far. Those column chunks must still have the same dictionary page, and data
// pages of the same rows with the same statistics; every other column chunk the same bytes; and the
// footers the same values, encodings and statistics.
func sameParquet(t *testing.T, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) || sameButStatsOrder(got, want) {
		return
	}
	if g, w := describe(t, got, false), describe(t, want, false); g != w {
		t.Fatalf("the objects differ:\npqFile:\n%s\npqarrow.FileWriter:\n%s", g, w)
	}
	gr, err := file.NewParquetReader(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	defer gr.Close()
	wr, err := file.NewParquetReader(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close()
	chunk := func(b []byte, cc *metadata.ColumnChunkMetaData) []byte {
		start := cc.DataPageOffset()
		if cc.HasDictionaryPage() {
			start = cc.DictionaryPageOffset()
		}
		return b[start : start+cc.TotalCompressedSize()]
	}
	for rg := range gr.NumRowGroups() {
		for c := range gr.MetaData().Schema.NumColumns() {
			gc, _ := gr.MetaData().RowGroup(rg).ColumnChunk(c)
			wc, _ := wr.MetaData().RowGroup(rg).ColumnChunk(c)
			if bytes.Equal(chunk(got, gc), chunk(want, wc)) {
				continue
			}
			if gc.Type() != parquet.Types.ByteArray || !gc.HasDictionaryPage() {
				t.Fatalf("row group %d column %d: the column chunks differ", rg, c)
			}
			if gp, wp := pages(t, gr, rg, c), pages(t, wr, rg, c); !slices.Equal(gp, wp) {
				t.Fatalf("row group %d column %d: pages differ:\npqFile %q\npqarrow %q", rg, c, gp, wp)
			}
		}
	}
}

// pages describes the pages of a column chunk: the dictionary page's bytes, each data page's values
// and statistics.
func pages(t *testing.T, r *file.Reader, rg, c int) []string {
	t.Helper()
	pr, err := r.RowGroup(rg).GetColumnPageReader(c)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for pr.Next() {
		switch p := pr.Page().(type) {
		case file.DataPage:
			st := p.Statistics()
			out = append(out, fmt.Sprintf("data: %d values, min %q max %q nulls %d", p.NumValues(), st.Min, st.Max, st.NullCount))
		default:
			out = append(out, fmt.Sprintf("%v: %d values, %x", p.Type(), p.NumValues(), p.Data()))
		}
	}
	if err := pr.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameButStatsOrder reports whether a and b are the same Parquet object but for the order of the
// encoding statistics of a column chunk that holds pages of two encodings (a dictionary that fell
// back to PLAIN): arrow-go lists them from a map, so that order differs from run to run.
func sameButStatsOrder(a, b []byte) bool {
	footer := func(b []byte) int { return len(b) - 8 - int(binary.LittleEndian.Uint32(b[len(b)-8:])) }
	if len(a) != len(b) || !bytes.Equal(a[:footer(a)], b[:footer(b)]) {
		return false
	}
	return describe(nil, a, true) == describe(nil, b, true)
}

// describe renders what a Parquet object's footer says: its schema, key-value metadata and every
// row group's column chunks (values, encodings, dictionary, statistics; with layout, their offsets,
// sizes and page counts too). Encoding statistics are sorted (see sameButStatsOrder).
func describe(t *testing.T, b []byte, layout bool) string {
	fail := func(err error) {
		if t != nil {
			t.Helper()
			t.Fatal(err)
		}
		panic(err)
	}
	r, err := file.NewParquetReader(bytes.NewReader(b))
	if err != nil {
		fail(err)
	}
	defer r.Close()
	md := r.MetaData()
	var sb strings.Builder
	fmt.Fprintf(&sb, "rows %d schema %s kv %v %v\n", md.NumRows, md.Schema, md.KeyValueMetadata().Keys(), md.KeyValueMetadata().Values())
	for g := range md.NumRowGroups() {
		rg := md.RowGroup(g)
		fmt.Fprintf(&sb, "row group %d: rows %d\n", g, rg.NumRows())
		for c := range rg.NumColumns() {
			cc, err := rg.ColumnChunk(c)
			if err != nil {
				fail(err)
			}
			var stats string
			if st, err := cc.Statistics(); err != nil {
				fail(err)
			} else if st != nil {
				enc, err := st.Encode()
				if err != nil {
					fail(err)
				}
				stats = fmt.Sprintf("%x %x %d", enc.Min, enc.Max, enc.NullCount)
			}
			encs := slices.Clone(cc.Encodings())
			slices.Sort(encs)
			fmt.Fprintf(&sb, "  column %d: values %d encodings %v dictionary %v stats %s\n", c, cc.NumValues(), encs, cc.HasDictionaryPage(), stats)
			if layout {
				es := cc.EncodingStats()
				slices.SortFunc(es, func(a, b metadata.PageEncodingStats) int {
					return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
				})
				fmt.Fprintf(&sb, "    dict %d data %d sizes %d/%d pages %v\n", cc.DictionaryPageOffset(), cc.DataPageOffset(),
					cc.TotalCompressedSize(), cc.TotalUncompressedSize(), es)
			}
		}
	}
	return sb.String()
}

// pageStatsOwn checks every data page of the string, int64 and timestamp columns of the Parquet
// object data, written from recs: its statistics (minimum, maximum, nulls) are those of its own rows.
func pageStatsOwn(t *testing.T, data []byte, recs []arrow.RecordBatch) {
	t.Helper()
	r, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var all []arrow.RecordBatch
	for _, rec := range recs {
		if rec.NumRows() > 0 {
			all = append(all, rec)
		}
	}
	sc := recs[0].Schema()
	tbl := array.NewTableFromRecords(sc, all)
	defer tbl.Release()
	start := int64(0) // the row group's first row in tbl
	pages := 0
	for rg := range r.NumRowGroups() {
		for c := range sc.NumFields() {
			// value returns row i as its statistics encode it (PLAIN), and a key that orders like it.
			var value func(a arrow.Array, i int) (enc []byte, key int64, s string)
			switch sc.Field(c).Type.ID() {
			case arrow.STRING:
				value = func(a arrow.Array, i int) ([]byte, int64, string) {
					v := a.(*array.String).Value(i)
					return []byte(v), 0, v
				}
			case arrow.INT64, arrow.TIMESTAMP:
				value = func(a arrow.Array, i int) ([]byte, int64, string) {
					v := arrow.Int64Traits.CastFromBytes(a.Data().Buffers()[1].Bytes())[a.Data().Offset()+i]
					return binary.LittleEndian.AppendUint64(nil, uint64(v)), v, ""
				}
			default:
				continue
			}
			col, err := array.Concatenate(tbl.Column(c).Data().Chunks(), memory.DefaultAllocator)
			if err != nil {
				t.Fatal(err)
			}
			pr, err := r.RowGroup(rg).GetColumnPageReader(c)
			if err != nil {
				t.Fatal(err)
			}
			row := start
			for pr.Next() {
				dp, ok := pr.Page().(file.DataPage)
				if !ok {
					continue // the dictionary page
				}
				pages++
				n := int64(dp.NumValues())
				var lo, hi []byte
				var loK, hiK int64
				var loS, hiS string
				var nulls int64
				seen := false
				for i := row; i < row+n; i++ {
					if col.IsNull(int(i)) {
						nulls++
						continue
					}
					enc, k, str := value(col, int(i))
					if !seen || k < loK || (k == loK && str < loS) {
						lo, loK, loS = enc, k, str
					}
					if !seen || k > hiK || (k == hiK && str > hiS) {
						hi, hiK, hiS = enc, k, str
					}
					seen = true
				}
				st := dp.Statistics()
				if st.NullCount != nulls || (seen && (!bytes.Equal(st.Min, lo) || !bytes.Equal(st.Max, hi))) || (!seen && st.HasMin) {
					t.Fatalf("row group %d column %s, page of rows [%d, %d): statistics min %x max %x nulls %d, its rows' %x %x %d",
						rg, sc.Field(c).Name, row, row+n, st.Min, st.Max, st.NullCount, lo, hi, nulls)
				}
				row += n
			}
			if err := pr.Err(); err != nil {
				t.Fatal(err)
			}
			col.Release()
		}
		start += r.MetaData().RowGroup(rg).NumRows()
	}
	if pages == 0 {
		t.Fatal("no data page checked")
	}
}

// TestPQFileMatchesPQArrowRandom is TestPQFileMatchesPQArrow's comparison over generated tables:
// string columns of random cardinality (one value to all distinct), value length (empty to a few
// KiB, some of them multi-byte), null share (none to all) and order (random or rising), beside an
// int64 and a timestamp column, written in one to three record batches under random data page
// sizes, dictionary page limits (a dictionary that outgrows its limit partway through a column
// chunk falls back to PLAIN) and row group lengths. Seeded: a failure names the seed that
// reproduces it.
func TestPQFileMatchesPQArrowRandom(t *testing.T) {
	opts, arrowProps := writerProps(memory.DefaultAllocator, DefaultZstdLevel)
	for seed := uint64(1); seed <= 12; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 15))
			rows := 1 + rng.IntN(20_000)
			fields := []arrow.Field{
				{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
				{Name: "at", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
				{Name: "x", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
				{Name: "day", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
				{Name: "ok", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
			}
			specials := []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 0}
			gens := []func(i int) any{
				func(i int) any { return int64(i) * int64(1+rng.IntN(3)) },
				func(i int) any { return int64(1_740_000_000_000_000 + int64(rng.IntN(1+i))*1_000_000) },
				func(i int) any {
					switch r := rng.IntN(50); {
					case r == 0:
						return nil
					case r < 3:
						return specials[rng.IntN(len(specials))]
					default:
						return float64(rng.IntN(10_000)) / 8
					}
				},
				func(i int) any {
					if rng.IntN(10) == 0 {
						return nil
					}
					return int64(20_000 + rng.IntN(40))
				},
				func(i int) any {
					if rng.IntN(7) == 0 {
						return nil
					}
					return rng.IntN(3) == 0
				},
			}
			for c := range 2 + rng.IntN(4) {
				fields = append(fields, arrow.Field{Name: fmt.Sprint("s", c), Type: arrow.BinaryTypes.String, Nullable: true})
				distinct := []int{1, 2, 50, 5_000, rows}[rng.IntN(5)]
				minLen, maxLen := []int{0, 3, 20, 200}[rng.IntN(4)], 0
				maxLen = minLen + []int{0, 4, 40, 3_000}[rng.IntN(4)]
				nulls := []float64{0, 0, 0.05, 0.5, 1}[rng.IntN(5)]
				rising := rng.IntN(3) == 0
				wide := rng.IntN(3) == 0 // multi-byte runes
				// value k is a deterministic string of its own length: the same k, the same string
				value := func(k int) string {
					r := rand.New(rand.NewPCG(uint64(k), seed))
					n := minLen + r.IntN(maxLen-minLen+1)
					var sb strings.Builder
					fmt.Fprintf(&sb, "%08d", k) // distinct values stay distinct, and rising ones sort
					for sb.Len() < n {
						if wide {
							sb.WriteRune(rune(0x00e0 + r.IntN(400)))
						} else {
							sb.WriteByte(byte('a' + r.IntN(26)))
						}
					}
					return sb.String()
				}
				gens = append(gens, func(i int) any {
					if rng.Float64() < nulls {
						return nil
					}
					if rising {
						return value(i * distinct / rows)
					}
					return value(rng.IntN(distinct))
				})
			}
			sc := arrow.NewSchema(fields, nil)
			cols := make([]arrow.Array, len(fields))
			for c := range fields {
				cols[c] = column(t, fields[c].Type, rows, gens[c])
			}
			whole := array.NewRecordBatch(sc, cols, int64(rows))
			for _, c := range cols {
				c.Release()
			}
			defer whole.Release()
			// one to three record batches (slices of the whole: offsets other than 0)
			var recs []arrow.RecordBatch
			for start, parts := 0, 1+rng.IntN(3); start < rows; parts-- {
				end := rows
				if parts > 1 {
					end = start + rng.IntN(rows-start+1)
				}
				recs = append(recs, whole.NewSlice(int64(start), int64(end)))
				start = end
			}
			defer func() {
				for _, r := range recs {
					r.Release()
				}
			}()
			props := append(opts[:len(opts):len(opts)],
				parquet.WithDataPageSize([]int64{4 << 10, 64 << 10, 1 << 20}[rng.IntN(3)]),
				parquet.WithDictionaryPageSizeLimit([]int64{2 << 10, 64 << 10, parquet.DefaultDictionaryPageSizeLimit}[rng.IntN(3)]),
				parquet.WithMaxRowGroupLength([]int64{int64(1 + rows/3), 64 << 20}[rng.IntN(2)]))
			t.Logf("rows %d, %d record batches, %d string columns", rows, len(recs), len(fields)-5)
			want := encode(t, recs, func(w io.Writer) (parquetWriter, error) {
				return pqarrow.NewFileWriter(sc, w, parquet.NewWriterProperties(props...), arrowProps)
			})
			got := encode(t, recs, func(w io.Writer) (parquetWriter, error) {
				return newPQFile(sc, w, parquet.NewWriterProperties(props...), arrowProps)
			})
			sameParquet(t, got, want)
			pageStatsOwn(t, got, recs)
			readsBack(t, got, recs)
		})
	}
}

// readsBack fails t unless the Parquet object data reads back as the rows of recs: every column of
// the same type and values (floats compared exactly, NaN equal to NaN).
func readsBack(t *testing.T, data []byte, recs []arrow.RecordBatch) {
	t.Helper()
	rdr, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Close()
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	var rows int64
	for _, r := range recs {
		rows += r.NumRows()
	}
	if tbl.NumRows() != rows {
		t.Fatalf("%d rows read back, want %d", tbl.NumRows(), rows)
	}
	sc := recs[0].Schema()
	for c := range sc.NumFields() {
		all := make([]arrow.Array, 0, len(recs))
		for _, r := range recs {
			all = append(all, r.Column(c))
		}
		want, err := array.Concatenate(all, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		got, err := array.Concatenate(tbl.Column(c).Data().Chunks(), memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		if !array.ApproxEqual(got, want, array.WithNaNsEqual(true), array.WithAbsTolerance(0)) { // exact, NaN = NaN
			t.Errorf("column %s differs after reading back (read back as %s, written as %s)", sc.Field(c).Name, got.DataType(), want.DataType())
		}
		want.Release()
		got.Release()
	}
}

// TestPQFileDictionaryPageStats: a page whose rows hold every value of the column chunk's
// dictionary but one, and a null, gets the statistics of its own rows. Handed such a page as a
// dictionary array, arrow-go counts the null as one more referenced entry, finds as many as the
// dictionary holds, and takes the statistics of the whole dictionary (docs/UPSTREAM.md); statsSafe
// sees it coming and leaves the column to arrow-go's own path.
func TestPQFileDictionaryPageStats(t *testing.T) {
	sc := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	const rows = 20_000
	col := column(t, sc.Field(0).Type, rows, func(i int) any {
		switch {
		case i >= rows/2:
			return "c" // only on the later pages
		case i%7 == 0:
			return nil
		case i%2 == 0:
			return "a"
		default:
			return "b"
		}
	})
	rec := array.NewRecordBatch(sc, []arrow.Array{col}, rows)
	col.Release()
	defer rec.Release()
	recs := []arrow.RecordBatch{rec}
	opts, arrowProps := writerProps(memory.DefaultAllocator, DefaultZstdLevel)
	props := func() *parquet.WriterProperties {
		return parquet.NewWriterProperties(append(opts[:len(opts):len(opts)], parquet.WithDataPageSize(4<<10))...)
	}
	got := encode(t, recs, func(w io.Writer) (parquetWriter, error) { return newPQFile(sc, w, props(), arrowProps) })
	pageStatsOwn(t, got, recs)
	want := encode(t, recs, func(w io.Writer) (parquetWriter, error) { return pqarrow.NewFileWriter(sc, w, props(), arrowProps) })
	sameParquet(t, got, want)
	readsBack(t, got, recs)
}
