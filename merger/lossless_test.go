package merger

import (
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/sluice-dev/sluice/internal/config"
)

// Tests that what a partner sent is what the Parquet holds: null tokens, bytes inside quotes, and
// every column of the schema version a file is written at. Values are read back from the objects.

func TestLossless(t *testing.T) {
	dir := sinks[0]
	t.Run("NullTokens", func(t *testing.T) { testNullTokens(t, dir) })
	t.Run("StringsCanBeNull", func(t *testing.T) { testStringsCanBeNull(t, dir) })
	t.Run("QuotedCRLF", func(t *testing.T) { testQuotedCRLF(t, dir) })
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
