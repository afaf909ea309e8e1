package quality

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/sluice-dev/sluice/internal/table"
)

// TestResultsRoundTrip: results written as Parquet read back equal, from zstd-compressed columns.
func TestResultsRoundTrip(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	d := genRows(500, 5)
	s := testSchema("rates", d.cols...)
	r := compile(t, "rates", `
key: [id]
columns:
  price: {not_null: true, range: {min: 0, max: 100000}, action: quarantine}
  currency: {allowed: [USD, EUR, KRW]}
  email: {regex: '^[^@\s]+@[^@\s]+$', mostly: 0.99}
table:
  row_count: {min: 1}
  quarantine: {max_fraction: 0.5}
`)
	_, _, results, _, profiles := runBatch(t, mem, r, BatchMeta{ArchiveID: "abc", ProcessDate: "2025-01-01", BatchID: "7", Schema: s},
		FinishInput{QuarantinedOther: 3}, record(t, mem, s, d.cols...))
	results = append(results, Result{Table: "rates", ProcessDate: "2025-01-01", Rule: RuleVolume, Kind: KindDate, Action: "warn",
		Status: StatusPass, Observed: "insufficient history: 0 of 3 days with data; 10 rows", Expected: "ünïcode ✓"})

	var buf bytes.Buffer
	if err := WriteResults(&buf, mem, results); err != nil {
		t.Fatal(err)
	}
	back, err := ReadResults(bytes.NewReader(buf.Bytes()), mem)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, results) {
		t.Errorf("results differ:\n got%s\nwant%s", dump(back), dump(results))
	}
	assertZstd(t, buf.Bytes(), 13)

	buf.Reset()
	if err := WriteProfiles(&buf, mem, profiles); err != nil {
		t.Fatal(err)
	}
	pback, err := ReadProfiles(bytes.NewReader(buf.Bytes()), mem)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pback, profiles) {
		for i := range profiles {
			if !reflect.DeepEqual(pback[i], profiles[i]) {
				t.Errorf("profile %d differs:\n got %+v\nwant %+v", i, withoutSketch(pback[i]), withoutSketch(profiles[i]))
			}
		}
	}
	assertZstd(t, buf.Bytes(), 18)
	// a read-back profile still merges
	if _, err := Merge(pback[1], profiles[1]); err != nil {
		t.Error(err)
	}

	// empty slices write valid, empty files
	buf.Reset()
	if err := WriteResults(&buf, mem, nil); err != nil {
		t.Fatal(err)
	}
	if back, err := ReadResults(bytes.NewReader(buf.Bytes()), mem); err != nil || len(back) != 0 {
		t.Errorf("empty: %v %v", back, err)
	}
	if _, err := ReadResults(bytes.NewReader([]byte("not parquet")), mem); err == nil {
		t.Error("read garbage")
	}
}

func assertZstd(t *testing.T, b []byte, cols int) {
	t.Helper()
	rd, err := file.NewParquetReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	md := rd.MetaData()
	if md.Schema.NumColumns() != cols {
		t.Errorf("%d columns, want %d", md.Schema.NumColumns(), cols)
	}
	rg := md.RowGroup(0)
	for i := range rg.NumColumns() {
		cc, _ := rg.ColumnChunk(i)
		if c := cc.Compression().String(); !strings.EqualFold(c, "zstd") {
			t.Errorf("column %d compressed with %s", i, c)
		}
	}
}

// TestProfilesOfEveryType: every column type round-trips, all-null columns included.
func TestProfilesOfEveryType(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	cols := profileData(3000, 9)
	cols = append(cols, col{"nothing", table.Null, make([]any, 3000)})
	s := testSchema("t", cols...)
	r, _ := Compile("t", nil, nil)
	_, _, _, _, profiles := runBatch(t, mem, r, BatchMeta{Schema: s}, FinishInput{}, record(t, mem, s, cols...))
	var buf bytes.Buffer
	if err := WriteProfiles(&buf, mem, profiles); err != nil {
		t.Fatal(err)
	}
	back, err := ReadProfiles(bytes.NewReader(buf.Bytes()), mem)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, profiles) {
		t.Errorf("profiles differ")
	}
	if last := back[len(back)-1]; last.Type != "null" || last.Nulls != 3000 || last.Distinct != 0 {
		t.Errorf("null column: %+v", withoutSketch(last))
	}
}
