package merger

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
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

// TestPQFileSameBytes: pqFile (columns encoded in parallel) writes byte for byte what
// pqarrow.FileWriter writes (columns one after the other) for the same record batches and writer
// properties, and the rows read back. The cases cover every column type of a table schema, nulls
// (none, some, all), several data pages per column chunk, a dictionary falling back to PLAIN, a
// record batch split at MaxRowGroupLength, and an empty record batch.
func TestPQFileSameBytes(t *testing.T) {
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
			var want, got bytes.Buffer
			fw, err := pqarrow.NewFileWriter(sc, &want, tc.props(), arrowProps)
			if err != nil {
				t.Fatal(err)
			}
			pf, err := newPQFile(sc, &got, tc.props(), arrowProps)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if err := fw.Write(r); err != nil {
					t.Fatal(err)
				}
				if err := pf.Write(r); err != nil {
					t.Fatal(err)
				}
			}
			if err := fw.Close(); err != nil {
				t.Fatal(err)
			}
			if err := pf.Close(); err != nil {
				t.Fatal(err)
			}
			sameParquet(t, got.Bytes(), want.Bytes())

			// The rows read back (so the comparison above is not between two equal wrong files).
			rdr, err := file.NewParquetReader(bytes.NewReader(got.Bytes()))
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
			for c := range sc.NumFields() {
				all := make([]arrow.Array, 0, len(recs))
				for _, r := range recs {
					all = append(all, r.Column(c))
				}
				wantCol, err := array.Concatenate(all, memory.DefaultAllocator)
				if err != nil {
					t.Fatal(err)
				}
				gotCol, err := array.Concatenate(tbl.Column(c).Data().Chunks(), memory.DefaultAllocator)
				if err != nil {
					t.Fatal(err)
				}
				if !array.Equal(gotCol, wantCol) {
					t.Errorf("column %s differs after reading back", sc.Field(c).Name)
				}
				wantCol.Release()
				gotCol.Release()
			}
		})
	}
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

// sameParquet fails t unless the Parquet objects got and want are the same bytes, but for the
// order of the encoding statistics of a column chunk that holds pages of two encodings (a dictionary
// that fell back to PLAIN): arrow-go lists them from a map, so that order differs from run to run
// whichever writer wrote the object.
func sameParquet(t *testing.T, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	footer := func(b []byte) int { return len(b) - 8 - int(binary.LittleEndian.Uint32(b[len(b)-8:])) }
	if len(got) != len(want) || !bytes.Equal(got[:footer(got)], want[:footer(want)]) {
		t.Fatalf("pqFile wrote %d bytes, pqarrow.FileWriter %d: the column chunks differ", len(got), len(want))
	}
	describe := func(b []byte) string {
		r, err := file.NewParquetReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		md := r.MetaData()
		var sb strings.Builder
		fmt.Fprintf(&sb, "rows %d schema %s kv %v %v\n", md.NumRows, md.Schema, md.KeyValueMetadata().Keys(), md.KeyValueMetadata().Values())
		for g := range md.NumRowGroups() {
			rg := md.RowGroup(g)
			fmt.Fprintf(&sb, "row group %d: rows %d bytes %d compressed %d offset %d\n", g, rg.NumRows(), rg.TotalByteSize(), rg.TotalCompressedSize(), rg.FileOffset())
			for c := range rg.NumColumns() {
				cc, err := rg.ColumnChunk(c)
				if err != nil {
					t.Fatal(err)
				}
				var stats string
				if st, err := cc.Statistics(); err != nil {
					t.Fatal(err)
				} else if st != nil {
					enc, err := st.Encode()
					if err != nil {
						t.Fatal(err)
					}
					stats = fmt.Sprintf("%x %x %d", enc.Min, enc.Max, enc.NullCount)
				}
				es := cc.EncodingStats()
				slices.SortFunc(es, func(a, b metadata.PageEncodingStats) int {
					return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
				})
				fmt.Fprintf(&sb, "  column %d: values %d encodings %v dict %d data %d sizes %d/%d stats %s pages %v\n",
					c, cc.NumValues(), cc.Encodings(), cc.DictionaryPageOffset(), cc.DataPageOffset(),
					cc.TotalCompressedSize(), cc.TotalUncompressedSize(), stats, es)
			}
		}
		return sb.String()
	}
	if g, w := describe(got), describe(want); g != w {
		t.Fatalf("footers differ:\npqFile:\n%s\npqarrow.FileWriter:\n%s", g, w)
	}
}
