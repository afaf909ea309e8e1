package merger

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// column builds an Arrow array of n values of type dt: f(i) is the value of row i (nil for null).
func column(t testing.TB, dt arrow.DataType, n int, f func(i int) any) arrow.Array {
	t.Helper()
	b := array.NewBuilder(memory.DefaultAllocator, dt)
	defer b.Release()
	for i := range n {
		switch v := f(i).(type) {
		case nil:
			b.AppendNull()
		case int64:
			switch b := b.(type) {
			case *array.Int64Builder:
				b.Append(v)
			case *array.TimestampBuilder:
				b.Append(arrow.Timestamp(v))
			case *array.Date32Builder:
				b.Append(arrow.Date32(v))
			}
		case float64:
			b.(*array.Float64Builder).Append(v)
		case string:
			b.(*array.StringBuilder).Append(v)
		case bool:
			b.(*array.BooleanBuilder).Append(v)
		default:
			t.Fatalf("value %T", v)
		}
	}
	return b.NewArray()
}

func TestUseDictionary(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	perm := func(n int) []int { return rng.Perm(n) }
	p300k, p200k := perm(300_000), perm(200_000)
	status := []string{"open", "closed", "pending review", "closed, temporary", "unknown"}
	ts := arrow.FixedWidthTypes.Timestamp_us
	const limit = parquet.DefaultDictionaryPageSizeLimit
	for _, tc := range []struct {
		name     string
		dt       arrow.DataType
		n        int
		f        func(i int) any
		dict, ok bool
	}{
		{"int64 50 values", arrow.PrimitiveTypes.Int64, 20_000, func(i int) any { return int64(i % 50) }, true, true},
		{"int64 unique", arrow.PrimitiveTypes.Int64, 20_000, func(i int) any { return int64(1_000_000 + i) }, false, true},
		{"float64 unique", arrow.PrimitiveTypes.Float64, 20_000, func(i int) any { return float64(i)*1.37 + 0.01 }, false, true},
		{"float64 unique, few rows (all looked at)", arrow.PrimitiveTypes.Float64, 100, func(i int) any { return float64(i) / 7 }, false, true},
		{"float64 prices of 1,000 values", arrow.PrimitiveTypes.Float64, 20_000, func(i int) any { return float64(p300k[i]%1000) / 100 }, true, true},
		{"string 5 values", arrow.BinaryTypes.String, 20_000, func(i int) any { return status[i%len(status)] }, true, true},
		{"string unique", arrow.BinaryTypes.String, 20_000, func(i int) any { return fmt.Sprintf("REF-%07d", p300k[i]) }, false, true},
		{"string 5 values with nulls", arrow.BinaryTypes.String, 20_000, func(i int) any {
			if i%3 == 0 {
				return nil
			}
			return status[i%len(status)]
		}, true, true},
		{"date32 30 days", arrow.FixedWidthTypes.Date32, 20_000, func(i int) any { return int64(20_000 + i%30) }, true, true},
		{"timestamp unique", ts, 20_000, func(i int) any { return int64(1_740_000_000_000_000 + 1_000_003*int64(i)) }, false, true},
		// Sampled: 4,096 of 300,000 values show ~1,900 distinct of 3,000, yet the column is 1% distinct.
		{"int64 3,000 values sampled", arrow.PrimitiveTypes.Int64, 300_000, func(i int) any { return int64(p300k[i] % 3000) }, true, true},
		{"int64 unique sampled", arrow.PrimitiveTypes.Int64, 300_000, func(i int) any { return int64(p300k[i]) }, false, true},
		{"int64 a fifth distinct sampled", arrow.PrimitiveTypes.Int64, 200_000, func(i int) any { return int64(p200k[i] / 5) }, true, true},
		{"int64 half distinct sampled", arrow.PrimitiveTypes.Int64, 200_000, func(i int) any { return int64(p200k[i] / 2) }, false, true},
		// 20% distinct, but 200,000 int64 values overflow the 1 MiB dictionary page.
		{"int64 beyond the dictionary page limit", arrow.PrimitiveTypes.Int64, 1_000_000, func(i int) any { return int64((i * 7919) % 200_000) }, false, true},
		{"all null", arrow.PrimitiveTypes.Float64, 1000, func(int) any { return nil }, false, false},
		{"bool", arrow.FixedWidthTypes.Boolean, 1000, func(i int) any { return i%2 == 0 }, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := column(t, tc.dt, tc.n, tc.f)
			defer a.Release()
			var set distinctSet
			dict, ok := useDictionary(a, limit, &set)
			if dict != tc.dict || ok != tc.ok {
				t.Fatalf("useDictionary = %v, %v; want %v, %v", dict, ok, tc.dict, tc.ok)
			}
		})
	}
}

func TestExpectedDistinct(t *testing.T) {
	if got := expectedDistinct(123, 1000, 1000); got != 123 {
		t.Fatalf("whole column: %v", got)
	}
	// 4,096 draws from 1,000,000 unique values: all distinct, to within rounding.
	if got := expectedDistinct(1e6, 1e6, 4096); got < 4087 || got > 4096 {
		t.Fatalf("unique column: %v", got)
	}
	// 4,096 draws from 10 values seen 100,000 times each: all 10.
	if got := expectedDistinct(10, 1e6, 4096); got < 9.99 || got > 10 {
		t.Fatalf("10 values: %v", got)
	}
}

// TestObjectPropsParquet writes a record batch per row group under objectProps and checks which
// column chunks got a dictionary, and that every value reads back exactly.
func TestObjectPropsParquet(t *testing.T) {
	const rows = 10_000
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "status", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "amount", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "day", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "ts", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
		{Name: "zone.code", Type: arrow.PrimitiveTypes.Int64, Nullable: true}, // a dot in the name
		{Name: "note", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "flag", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	}, nil)
	wantDict := map[string]bool{"status": true, "amount": false, "id": false, "day": true, "ts": false,
		"zone.code": true, "note": false, "flag": false}
	batch := func(off int) arrow.RecordBatch {
		null := func(i int, v any) any {
			if (i+off)%17 == 0 {
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
			column(t, sc.Field(5).Type, rows, func(i int) any { return int64((i + off) % 40) }),
			column(t, sc.Field(6).Type, rows, func(i int) any { return null(i, fmt.Sprintf("note %d, \"quoted\"", i+off)) }),
			column(t, sc.Field(7).Type, rows, func(i int) any { return null(i, (i+off)%5 == 0) }),
		}
		rec := array.NewRecordBatch(sc, cols, rows)
		for _, c := range cols {
			c.Release()
		}
		return rec
	}
	recs := []arrow.RecordBatch{batch(0), batch(rows)}
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()

	opts, arrowProps := writerProps(memory.DefaultAllocator, DefaultZstdLevel)
	write := func() []byte {
		var buf bytes.Buffer
		fw, err := pqarrow.NewFileWriter(sc, &buf, objectProps(opts, recs[0]), arrowProps)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if err := fw.Write(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := fw.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	data := write()
	if again := write(); !bytes.Equal(data, again) {
		t.Fatal("the same rows encoded to different bytes")
	}

	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	if n := pf.NumRowGroups(); n != len(recs) {
		t.Fatalf("%d row groups, want %d", n, len(recs))
	}
	for g := range pf.NumRowGroups() {
		for c := range sc.NumFields() {
			cc, err := pf.MetaData().RowGroup(g).ColumnChunk(c)
			if err != nil {
				t.Fatal(err)
			}
			name := sc.Field(c).Name
			if got := cc.HasDictionaryPage(); got != wantDict[name] {
				t.Errorf("row group %d column %s: dictionary %v, want %v (encodings %v)", g, name, got, wantDict[name], cc.Encodings())
			}
		}
	}

	readsBack(t, data, recs)
}

// An object without rows gets the base properties (every column may use a dictionary).
func TestObjectPropsEmpty(t *testing.T) {
	opts, _ := writerProps(memory.DefaultAllocator, DefaultZstdLevel)
	p := objectProps(opts, nil)
	if !p.DictionaryEnabledFor("anything") {
		t.Fatal("dictionary off without rows")
	}
}
