package merger

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/table"
)

// Tests that what a partner sent is what the Parquet holds: null tokens, bytes inside quotes, and
// every column of the schema version a file is written at. Values are read back from the objects.

func TestLossless(t *testing.T) {
	dir := sinks[0]
	t.Run("NullTokens", func(t *testing.T) { testNullTokens(t, dir) })
	t.Run("StringsCanBeNull", func(t *testing.T) { testStringsCanBeNull(t, dir) })
	t.Run("QuotedCRLF", func(t *testing.T) { testQuotedCRLF(t, dir) })
	t.Run("EveryColumn", func(t *testing.T) { testEveryColumn(t, dir) })
}

// tableMember is a one-member batch of table t.
func tableMember(archive, date, header string, records ...string) tbatch {
	return tbatch{archive: archive, table: "t", members: []tmember{{
		name: "t_" + date[:4] + date[5:7] + date[8:] + "_1.csv", date: date, batch: "1", header: header, records: records,
	}}}
}

// expectColumn checks a column's Arrow type and cells (nullCell for null) in td.
func expectColumn(t *testing.T, td tableData, name string, typ arrow.DataType, want ...string) {
	t.Helper()
	got, gt, ok := td.column(name)
	if !ok {
		t.Fatalf("no column %s in %v", name, td.names)
	}
	if !arrow.TypeEqual(gt, typ) || !slices.Equal(got, want) {
		t.Fatalf("column %s: %v %q, want %v %q", name, gt, got, typ, want)
	}
}

// testNullTokens: "" is null in every column; the other tokens are null in columns that are not
// string and text in string columns. A column that widens to string keeps the token as text in
// the files written after the widening; earlier files keep their nulls until a replay rewrites
// them under the widened schema.
func testNullTokens(t *testing.T, sk sink) {
	e := newEnv(t, sk)
	ev := e.committedEvents()
	e.start(testConfig("m1"), nil, nil)
	var (
		str = arrow.BinaryTypes.String
		i64 = arrow.PrimitiveTypes.Int64
		N   = nullCell
	)

	a := tableMember("ln0000000000000000a1", "2025-01-01", "n,s,x,only",
		"1,NA,1,NA\n",
		",,NA,\n",
		"NULL,text,2,NULL\n",
		"NA,N/A,3,\"NA\"\n",
		"null,\"\",null,N/A\n",
	)
	e.publishBatch(a)
	bc := ev.nextCommitted(t, 30*time.Second)
	if bc.SchemaVersion != 1 || bc.RowsOut != 5 {
		t.Fatalf("committed: %v", bc)
	}
	keyA := bc.Objects[0].Key
	tdA := e.readParquet(keyA)
	expectColumn(t, tdA, "n", i64, "1", N, N, N, N)           // numeric: every token is null
	expectColumn(t, tdA, "s", str, "NA", N, "text", "N/A", N) // string: tokens are text, "" is null
	expectColumn(t, tdA, "x", i64, "1", N, "2", "3", N)       // "NA" while inferring: x stays int64
	expectColumn(t, tdA, "only", str, N, N, N, N, N)          // type null (nothing but tokens): nulls

	// x widens to string (schema v2): from now on its tokens are text; a's object keeps its nulls.
	b := tableMember("ln0000000000000000b2", "2025-01-02", "n,s,x,only",
		"4,b,abc,\n",
		"5,NA,NA,x\n",
	)
	e.publishBatch(b)
	bc = ev.nextCommitted(t, 30*time.Second)
	if bc.SchemaVersion != 2 {
		t.Fatalf("committed: %v", bc)
	}
	tdB := e.readParquet(bc.Objects[0].Key)
	expectColumn(t, tdB, "n", i64, "4", "5")
	expectColumn(t, tdB, "s", str, "b", "NA")
	expectColumn(t, tdB, "x", str, "abc", "NA")
	expectColumn(t, tdB, "only", str, N, "x")
	tdA = e.readParquet(keyA)
	expectColumn(t, tdA, "x", i64, "1", N, "2", "3", N)
	expectColumn(t, tdA, "only", str, N, N, N, N, N)
	e.allAcked()

	// A replay rewrites a's object under v2: x and only are string there now, so their tokens are text.
	res := e.replay(ReplaySpec{Table: "t", Archive: a.archive}, nil, nil)
	if len(res.Committed) != 1 || res.Committed[0].SchemaVersion != 2 {
		t.Fatalf("replay: %+v", res)
	}
	tdA = e.readParquet(keyA)
	expectColumn(t, tdA, "n", i64, "1", N, N, N, N)
	expectColumn(t, tdA, "s", str, "NA", N, "text", "N/A", N)
	expectColumn(t, tdA, "x", str, "1", "NA", "2", "3", "null")
	expectColumn(t, tdA, "only", str, "NA", N, "NULL", "NA", "N/A")
}

// testStringsCanBeNull: the partner option makes the tokens null in string columns too.
func testStringsCanBeNull(t *testing.T, sk sink) {
	e := newEnv(t, sk)
	ev := e.committedEvents()
	partners := &config.File{Partners: []config.Partner{{Name: "default", StringsCanBeNull: true}}}
	if err := partners.Validate(); err != nil {
		t.Fatal(err)
	}
	e.start(testConfig("m1"), nil, partners)
	e.publishBatch(tableMember("ls0000000000000000a1", "2025-01-01", "n,s",
		"1,NA\n",
		"NA,text\n",
		",N/A\n",
		"2,\"NULL\"\n",
		"3,\n",
	))
	bc := ev.nextCommitted(t, 30*time.Second)
	td := e.readParquet(bc.Objects[0].Key)
	N := nullCell
	expectColumn(t, td, "n", arrow.PrimitiveTypes.Int64, "1", N, N, "2", "3")
	expectColumn(t, td, "s", arrow.BinaryTypes.String, N, "text", N, N, N)
	if !slices.Equal(td.names, []string{"n", "s"}) {
		t.Fatalf("columns %v", td.names)
	}
}

// testQuotedCRLF: inside quotes every byte is data, so a quoted "\r\n" is stored as "\r\n" (as
// DuckDB reads it); an unquoted "\r\n" ends the record and is in no value.
func testQuotedCRLF(t *testing.T, sk sink) {
	e := newEnv(t, sk)
	ev := e.committedEvents()
	e.start(testConfig("m1"), nil, nil)
	e.publishBatch(tableMember("lc0000000000000000a1", "2025-01-01", "id,story,tail",
		"1,\"Once upon \r\na time\",end\r\n",
		"2,\"lf\nonly\",\"quoted\"\"\r\n\"\r\n",
		"3,\"cr\ralone\",\"\r\n\"\r\n",
		"4,plain,x\r\n",
		"5,\"last \r\n\r\n\",\"\"", // no terminator
	))
	bc := ev.nextCommitted(t, 30*time.Second)
	if bc.RowsOut != 5 || bc.Quarantined != 0 {
		t.Fatalf("committed: %v", bc)
	}
	td := e.readParquet(bc.Objects[0].Key)
	str := arrow.BinaryTypes.String
	expectColumn(t, td, "id", arrow.PrimitiveTypes.Int64, "1", "2", "3", "4", "5")
	expectColumn(t, td, "story", str, "Once upon \r\na time", "lf\nonly", "cr\ralone", "plain", "last \r\n\r\n")
	expectColumn(t, td, "tail", str, "end", "quoted\"\r\n", "\r\n", "x", nullCell)
}

// expectSchema checks that td has exactly the columns of want, in that order, with those Arrow
// types, and was written at schema version v.
func expectSchema(t *testing.T, what string, td tableData, v string, want ...arrow.Field) {
	t.Helper()
	var names []string
	for i, f := range want {
		names = append(names, f.Name)
		if i < len(td.types) && !arrow.TypeEqual(td.types[i], f.Type) {
			t.Errorf("%s: column %s is %v, want %v", what, f.Name, td.types[i], f.Type)
		}
	}
	if !slices.Equal(td.names, names) {
		t.Fatalf("%s: columns %v, want %v", what, td.names, names)
	}
	if got := td.meta[table.MetaSchemaVersion]; got != v {
		t.Fatalf("%s: schema version %q, want %s", what, got, v)
	}
}

// testEveryColumn: an object written at schema version N has every column of version N, in
// registry order, those its members lack all null — through the merger's commit path (members
// with fewer columns, a header-only member, two groups with different headers in one batch) and
// through a replay of a batch committed at an older version.
func testEveryColumn(t *testing.T, sk sink) {
	e := newEnv(t, sk)
	ev := e.committedEvents()
	e.start(testConfig("m1"), nil, nil)
	var (
		a = arrow.Field{Name: "a", Type: arrow.PrimitiveTypes.Int64}
		b = arrow.Field{Name: "b", Type: arrow.BinaryTypes.String}
		c = arrow.Field{Name: "c", Type: arrow.FixedWidthTypes.Date32}
		d = arrow.Field{Name: "d", Type: arrow.FixedWidthTypes.Boolean}
		f = arrow.Field{Name: "f", Type: arrow.PrimitiveTypes.Float64}
		N = nullCell
	)

	// v1: a, b.
	b1 := tableMember("le0000000000000000a1", "2025-01-01", "a,b", "1,x\n", "2,y\n")
	e.publishBatch(b1)
	bc := ev.nextCommitted(t, 30*time.Second)
	key1 := bc.Objects[0].Key
	expectSchema(t, "v1", e.readParquet(key1), "1", a, b)

	// v2 adds c; this batch lacks b.
	e.publishBatch(tableMember("le0000000000000000a2", "2025-01-02", "c,a", "2025-01-02,3\n"))
	bc = ev.nextCommitted(t, 30*time.Second)
	td := e.readParquet(bc.Objects[0].Key)
	expectSchema(t, "v2", td, "2", a, b, c)
	if fmt.Sprint(td.rows) != fmt.Sprint([][]string{{"3", N, "2025-01-02"}}) {
		t.Fatalf("v2 rows %q", td.rows)
	}

	// v3 adds d and f, in a batch of two groups with different headers and a header-only member.
	b3 := tbatch{archive: "le0000000000000000a3", table: "t", members: []tmember{
		{name: "t_20250103_1.csv", date: "2025-01-03", batch: "1", header: "d,a", records: []string{"true,4\n"}},
		{name: "t_20250104_1.csv", date: "2025-01-04", batch: "1", header: "f", records: []string{"1.5\n", "2.5\n"}},
		{name: "t_20250105_1.csv", date: "2025-01-05", batch: "1", header: "b"},
	}}
	e.publishBatch(b3)
	bc = ev.nextCommitted(t, 30*time.Second)
	if bc.SchemaVersion != 3 || len(bc.Objects) != 3 {
		t.Fatalf("v3 committed: %v", bc)
	}
	want := map[string][][]string{
		"2025-01-03": {{"4", N, N, "true", N}},
		"2025-01-04": {{N, N, N, N, "1.5"}, {N, N, N, N, "2.5"}},
		"2025-01-05": {},
	}
	for _, o := range bc.Objects {
		td := e.readParquet(o.Key)
		expectSchema(t, o.Key, td, "3", a, b, c, d, f)
		if fmt.Sprint(td.rows) != fmt.Sprint(want[o.ProcessDate]) {
			t.Fatalf("%s rows %q, want %q", o.Key, td.rows, want[o.ProcessDate])
		}
	}

	// At v3 without a schema change: still every column.
	e.publishBatch(tableMember("le0000000000000000a4", "2025-01-06", "a", "5\n"))
	bc = ev.nextCommitted(t, 30*time.Second)
	if bc.SchemaVersion != 3 || len(bc.SchemaChanges) != 0 {
		t.Fatalf("a4 committed: %v", bc)
	}
	expectSchema(t, "a4", e.readParquet(bc.Objects[0].Key), "3", a, b, c, d, f)
	e.allAcked()

	// A replay rewrites the v1 object at v3: the columns added since are there, all null.
	res := e.replay(ReplaySpec{Table: "t", Archive: b1.archive}, nil, nil)
	if len(res.Committed) != 1 || res.Committed[0].SchemaVersion != 3 {
		t.Fatalf("replay: %+v", res)
	}
	td = e.readParquet(key1)
	expectSchema(t, "replayed v1", td, "3", a, b, c, d, f)
	if fmt.Sprint(td.rows) != fmt.Sprint([][]string{{"1", "x", N, N, N}, {"2", "y", N, N, N}}) {
		t.Fatalf("replayed rows %q", td.rows)
	}
}
