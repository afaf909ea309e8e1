package table

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

type chunk struct {
	header    []string
	data      string
	firstLine int64
}

// pipeline runs what the merger does: infer every chunk, evolve, build every chunk into one record batch.
func pipeline(t *testing.T, mem memory.Allocator, opts Options, prev *Schema, chunks []chunk) (*Schema, arrow.RecordBatch, []Quarantined, ObserveStats) {
	t.Helper()
	in := NewInferer(opts)
	for _, c := range chunks {
		if _, err := in.Observe(c.header, []byte(c.data), c.firstLine); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := Evolve("t", prev, in.Columns(), opts)
	b := NewBuilder(mem, s, opts)
	defer b.Release()
	var q []Quarantined
	total := 0
	for _, c := range chunks {
		n, err := b.Append(c.header, []byte(c.data), c.firstLine, func(x Quarantined) {
			x.Raw = append([]byte(nil), x.Raw...)
			q = append(q, x)
		})
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	st := in.Stats()
	if int64(total) != st.Rows-st.Rejected() || int64(len(q)) != st.Rejected() || b.Len() != total {
		t.Fatalf("built %d rows (Len %d), quarantined %d; inferer stats %+v", total, b.Len(), len(q), st)
	}
	if total > 0 && b.ApproxBytes() <= 0 {
		t.Error("ApproxBytes")
	}
	rec := b.NewRecordBatch()
	if b.Len() != 0 || b.ApproxBytes() > int64(4*len(s.Columns)) {
		t.Errorf("builder not reset: %d rows, %d bytes", b.Len(), b.ApproxBytes())
	}
	return s, rec, q, st
}

// checkRecords asserts that rec holds exactly the records of chunks (read with readCSV) by column name.
func checkRecords(t *testing.T, s *Schema, rec arrow.RecordBatch, opts Options, chunks []chunk) {
	t.Helper()
	nulls := newNullSet(opts.NullTokens)
	row := 0
	for ci, c := range chunks {
		recs, ok := readCSV(c.data, opts.delimiter())
		if !ok {
			t.Fatalf("chunk %d: malformed test data", ci)
		}
		for _, fields := range recs {
			seen := map[string]bool{}
			for pos, name := range c.header {
				seen[name] = true
				col := s.Columns[rec.Schema().FieldIndices(name)[0]]
				checkValue(t, col.Type, &nulls, opts.StringsCanBeNull, colByName(t, rec, name), row, fields[pos],
					fmt.Sprintf("chunk %d row %d column %s", ci, row, name))
			}
			for _, col := range s.Columns {
				if !seen[col.Name] && !colByName(t, rec, col.Name).IsNull(row) {
					t.Errorf("chunk %d row %d: absent column %s is not null", ci, row, col.Name)
				}
			}
			row++
		}
	}
	if int64(row) != rec.NumRows() {
		t.Errorf("%d rows, want %d", rec.NumRows(), row)
	}
}

func TestBuilderRoundTrip(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	header := []string{"id", "price", "qty", "day", "at", "at_tz", "ok", "zip", "note", "empty"}
	data := "1,9.99,3,2024-01-31,2024-01-31 10:00:00,2024-01-31T10:00:00Z,true,00501,plain,\r\n" +
		"-2,1e3,-4,1999-12-31,2024-01-31,2024-01-31T10:00:00.123456+02:00,FALSE,10001,\"with,comma\",\r\n" +
		"9223372036854775807,-0.5,NULL,NULL,2024-02-29T23:59:59.5,2024-01-31 10:00:00-0530,,02134,\"quoted \"\"x\"\"\",NA\r\n" +
		"NA,,0,0001-01-01,,,N/A,90210,\"line1\r\nline2\nline3\",\n" +
		"0,3,7,2024-06-01,1970-01-01 00:00:00.000001,1969-12-31T23:59:59.999999Z,true,N/A,\" lead and trail \",\n" +
		"5,.5,+8,2024-06-02,1960-06-01 12:00:00,2030-01-01T00:00:00+14:00,true,12345,é ü 漢字,"
	chunks := []chunk{{header, data, 2}}
	s, rec, q, _ := pipeline(t, mem, Options{}, nil, chunks)
	defer rec.Release()
	if len(q) != 0 {
		t.Fatalf("quarantined %+v", q)
	}
	want := map[string]Type{"id": Int64, "price": Float64, "qty": Int64, "day": Date, "at": Timestamp,
		"at_tz": TimestampTZ, "ok": Bool, "zip": String, "note": String, "empty": Null}
	for _, c := range s.Columns {
		if want[c.Name] != c.Type {
			t.Errorf("column %s: %v, want %v", c.Name, c.Type, want[c.Name])
		}
	}
	checkRecords(t, s, rec, Options{}, chunks)
	if got := colByName(t, rec, "note").(*array.String).Value(3); got != "line1\r\nline2\nline3" {
		t.Errorf("quoted newlines: %q", got)
	}
	if !arrow.TypeEqual(colByName(t, rec, "at_tz").DataType(), &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}) {
		t.Error("timestamptz type")
	}
}

// TestBuilderByName: chunks with reordered, added and dropped columns land in the right columns.
func TestBuilderByName(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	opts := Options{Delimiter: ';'}
	chunks := []chunk{
		{[]string{"a", "b"}, "1;x\n2;y\n", 2},
		{[]string{"b", "a", "c"}, "z;3;2024-01-01\n", 2},
		{[]string{"c"}, "2024-01-02\n", 2},
		{[]string{"b", "a"}, "w;4\n", 2},
	}
	s, rec, _, _ := pipeline(t, mem, opts, nil, chunks)
	defer rec.Release()
	checkRecords(t, s, rec, opts, chunks)
	a := colByName(t, rec, "a").(*array.Int64)
	if a.Value(2) != 3 || !a.IsNull(3) || a.Value(4) != 4 {
		t.Errorf("a = %v", a)
	}
}

// TestBuilderPrevSchema: building under a wider registered schema (and with a column this batch lacks).
func TestBuilderPrevSchema(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	prev := &Schema{Table: "t", Version: 4, Columns: []Column{
		{Name: "gone", Type: Bool, AddedIn: 1}, {Name: "n", Type: Float64, AddedIn: 1},
		{Name: "ts", Type: Timestamp, AddedIn: 2}, {Name: "s", Type: String, AddedIn: 3},
	}}
	chunks := []chunk{{[]string{"n", "ts", "s"}, "1,2024-01-01,7\n2,2024-01-01 10:00:00,8\n", 2}}
	s, rec, _, _ := pipeline(t, mem, Options{}, prev, chunks)
	defer rec.Release()
	if s != prev {
		t.Errorf("schema changed: %+v", s)
	}
	checkRecords(t, s, rec, Options{}, chunks)
}

func TestBuilderQuarantine(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	opts := Options{Hints: map[string]Hint{"qty": {Type: Int64, Strict: true}}}
	header := []string{"id", "qty", "note"}
	data := "1,2,a\n" + // line 10
		"2,3\n" + // 11: ragged
		"3,4,\"multi\nline\"\n" + // 12-13
		"4,5,b\xffc\n" + // 14: invalid utf-8
		"\n" + // 15: blank
		"5,abc,d\n" + // 16: strict hint
		"6,007,e\n" + // 17: strict hint
		"7,8,\"x\"y\",z\n" + // 18: malformed; read lazily, the quoted field ends at '",' and the record at the line end
		"8,9,\"multi\r\nline\",extra\r\n" + // 19-20: ragged
		"9,10,z" // 21
	chunks := []chunk{{header, data, 10}}
	_, rec, q, st := pipeline(t, mem, opts, nil, chunks)
	defer rec.Release()
	want := []Quarantined{
		{Line: 11, Kind: KindRagged, Reason: "ragged row: 2 fields, header has 3", Raw: []byte("2,3")},
		{Line: 14, Kind: KindInvalidUTF8, Reason: "invalid utf-8", Raw: []byte("4,5,b\xffc")},
		{Line: 16, Kind: KindType, Reason: `value "abc" is not int64 (strict hint) in column qty`, Raw: []byte("5,abc,d")},
		{Line: 17, Kind: KindType, Reason: `value "007" is not int64 (strict hint) in column qty`, Raw: []byte("6,007,e")},
		{Line: 18, Kind: KindMalformed, Reason: "malformed csv: " + malformedQuote, Raw: []byte("7,8,\"x\"y\",z")},
		{Line: 19, Kind: KindRagged, Reason: "ragged row: 4 fields, header has 3", Raw: []byte("8,9,\"multi\r\nline\",extra")},
	}
	if !reflect.DeepEqual(q, want) {
		t.Errorf("quarantined\n%+v\nwant\n%+v", q, want)
	}
	if st.Blank != 1 || rec.NumRows() != 3 {
		t.Errorf("stats %+v, rows %d", st, rec.NumRows())
	}
	ids := colByName(t, rec, "id").(*array.Int64)
	if ids.Value(0) != 1 || ids.Value(1) != 3 || ids.Value(2) != 9 {
		t.Errorf("ids %v", ids)
	}
}

// TestBuilderSchemaMismatch: under a schema not inferred from the data, a value that does not fit is quarantined,
// never dropped or nulled.
func TestBuilderSchemaMismatch(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := &Schema{Table: "t", Version: 3, Columns: []Column{{Name: "n", Type: Float64}, {Name: "x", Type: Null}}}
	b := NewBuilder(mem, s, Options{})
	defer b.Release()
	var q []Quarantined
	n, err := b.Append([]string{"n", "x"}, []byte("1.5,a\n9007199254740993,b\nx,c\n"), 2, func(x Quarantined) { q = append(q, x) })
	if err != nil || n != 1 || len(q) != 2 {
		t.Fatalf("n %d err %v q %+v", n, err, q)
	}
	if q[0].Reason != `value "9007199254740993" is not float64 in column n (schema v3)` || q[1].Line != 4 {
		t.Errorf("%+v", q)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	if colByName(t, rec, "x").(*array.String).Value(0) != "a" {
		t.Error("null column holds strings")
	}
}

func TestBuilderErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := &Schema{Table: "t", Version: 1, Columns: []Column{{Name: "a", Type: Int64}}}
	b := NewBuilder(mem, s, Options{})
	defer b.Release()
	if _, err := b.Append([]string{"a", "b"}, []byte("1,2\n"), 2, nil); !errors.Is(err, ErrUnknownColumn) {
		t.Errorf("unknown column: %v", err)
	}
	if _, err := b.Append([]string{"a", "a"}, []byte("1,2\n"), 2, nil); !errors.Is(err, ErrDuplicateColumn) {
		t.Errorf("duplicate: %v", err)
	}
	if b.Len() != 0 {
		t.Error("rows buffered on error")
	}
	bad := NewBuilder(mem, s, Options{Delimiter: '\n'})
	defer bad.Release()
	if _, err := bad.Append([]string{"a"}, nil, 2, nil); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("options: %v", err)
	}
}

// TestBuilderReuse: several record batches from one Builder, all memory returned.
func TestBuilderReuse(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := &Schema{Table: "t", Version: 1, Columns: []Column{{Name: "a", Type: Int64}, {Name: "s", Type: String}}}
	b := NewBuilder(mem, s, Options{})
	defer b.Release()
	for i := range 3 {
		data := strings.Repeat(fmt.Sprintf("%d,text %d\n", i, i), 1000)
		if _, err := b.Append([]string{"s", "a"}, []byte(strings.ReplaceAll(data, ",", ";")), 2, nil); err == nil {
			// one field per record under ',' split: every row ragged, nothing buffered
			if b.Len() != 0 {
				t.Fatal("ragged rows buffered")
			}
		}
		if _, err := b.Append([]string{"a", "s"}, []byte(data), 2, nil); err != nil {
			t.Fatal(err)
		}
		rec := b.NewRecordBatch()
		if rec.NumRows() != 1000 || rec.Column(0).(*array.Int64).Value(999) != int64(i) {
			t.Errorf("batch %d: %d rows", i, rec.NumRows())
		}
		rec.Release()
	}
}

// TestBlankLinesSingleColumn documents that a blank line is not a row, even for a one-column table: an empty value
// there must be written as "" (as Python's csv and pandas do).
func TestBlankLinesSingleColumn(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	_, rec, _, st := pipeline(t, mem, Options{}, nil, []chunk{{[]string{"v"}, "1\n\n\"\"\n2\n", 2}})
	defer rec.Release()
	if st.Blank != 1 || rec.NumRows() != 3 || !rec.Column(0).IsNull(1) {
		t.Errorf("stats %+v rows %d", st, rec.NumRows())
	}
}

// TestNullTokens: the empty field is null in every column; the other null tokens are null in columns whose type
// is not string (inference treats them as null, so "NA" keeps a column numeric) and kept as text in string
// columns, unless StringsCanBeNull.
func TestNullTokens(t *testing.T) {
	header := []string{"n", "s", "d", "only", "zip", "strict"}
	data := "1,a,2024-01-01,NA,00501,5\n" +
		",,,,,\n" +
		"NA,NA,NA,NULL,N/A,NA\n" +
		"null,N/A,NULL,,NULL,null\n" +
		"\"NA\",\"\",\"N/A\",\"\",\"NA\",\"\"\n"
	hints := map[string]Hint{"zip": {Type: String}, "strict": {Type: Int64, Strict: true}}
	const N = "<null>"
	tests := []struct {
		name string
		opts Options
		want map[string][]string // column -> cells
		typ  map[string]Type
	}{
		{"default", Options{Hints: hints}, map[string][]string{
			"n":      {"1", N, N, N, N},
			"s":      {"a", N, "NA", "N/A", N},
			"d":      {"2024-01-01", N, N, N, N},
			"only":   {N, N, N, N, N},
			"zip":    {"00501", N, "N/A", "NULL", "NA"},
			"strict": {"5", N, N, N, N},
		}, map[string]Type{"n": Int64, "s": String, "d": Date, "only": Null, "zip": String, "strict": Int64}},
		{"strings can be null", Options{Hints: hints, StringsCanBeNull: true}, map[string][]string{
			"n":      {"1", N, N, N, N},
			"s":      {"a", N, N, N, N},
			"d":      {"2024-01-01", N, N, N, N},
			"only":   {N, N, N, N, N},
			"zip":    {"00501", N, N, N, N},
			"strict": {"5", N, N, N, N},
		}, map[string]Type{"n": Int64, "s": String, "d": Date, "only": Null, "zip": String, "strict": Int64}},
		{"partner tokens", Options{Hints: hints, NullTokens: []string{"", "NA"}}, map[string][]string{
			"n":      {"1", N, N, "null", N}, // "null" is in the quarantined row
			"s":      {"a", N, "NA", "N/A", N},
			"d":      {"2024-01-01", N, "NA", "NULL", "N/A"},
			"only":   {"NA", N, "NULL", N, N},
			"zip":    {"00501", N, "N/A", "NULL", "NA"},
			"strict": nil, // "null" is not a token: that row breaks the strict hint
		}, map[string]Type{"n": Int64, "s": String, "d": String, "only": String, "zip": String, "strict": Int64}},
		{"empty is not a token", Options{NullTokens: []string{"NA"}}, map[string][]string{
			"n":    {"1", "", "NA", "null", "NA"}, // "" is a string: the column is string, so "NA" is text
			"s":    {"a", "", "NA", "N/A", ""},
			"only": {"NA", "", "NULL", "", ""},
		}, map[string]Type{"n": String, "s": String, "only": String}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			chunks := []chunk{{header, data, 2}}
			s, rec, q, _ := pipeline(t, mem, tt.opts, nil, chunks)
			defer rec.Release()
			for _, c := range s.Columns {
				if want, ok := tt.typ[c.Name]; ok && c.Type != want {
					t.Errorf("column %s: %v, want %v", c.Name, c.Type, want)
				}
			}
			rows := 5
			if tt.want["strict"] == nil && tt.typ["strict"] == Int64 {
				rows = 4 // row 4 quarantined
				if len(q) != 1 || q[0].Line != 5 {
					t.Fatalf("quarantined %+v", q)
				}
			} else if len(q) != 0 {
				t.Fatalf("quarantined %+v", q)
			}
			for name, want := range tt.want {
				if want == nil {
					continue
				}
				if rows == 4 {
					want = append(want[:3:3], want[4])
				}
				arr := colByName(t, rec, name)
				var got []string
				for i := 0; i < arr.Len(); i++ {
					if arr.IsNull(i) {
						got = append(got, N)
					} else {
						got = append(got, arr.ValueStr(i))
					}
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("column %s: %q, want %q", name, got, want)
				}
			}
		})
	}
}

// TestNullTokensFollowSchema: whether a token is null depends on the column's type in the schema the Builder
// writes under, not on what the batch alone infers: under a registered string column "NA" is text even in a
// batch where it is the column's only value; under a registered int64 column it is null.
func TestNullTokensFollowSchema(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	prev := &Schema{Table: "t", Version: 2, Columns: []Column{{Name: "was_text", Type: String}, {Name: "was_int", Type: Int64}}}
	chunks := []chunk{{[]string{"was_text", "was_int"}, "NA,NA\n1,NULL\n", 2}}
	s, rec, _, _ := pipeline(t, mem, Options{}, prev, chunks)
	defer rec.Release()
	if s != prev {
		t.Fatalf("schema changed: %+v", s)
	}
	checkRecords(t, s, rec, Options{}, chunks)
	text := colByName(t, rec, "was_text").(*array.String)
	if text.IsNull(0) || text.Value(0) != "NA" || text.Value(1) != "1" {
		t.Errorf("was_text %v", text)
	}
	if ints := colByName(t, rec, "was_int"); ints.NullN() != 2 {
		t.Errorf("was_int %v", ints)
	}
}
