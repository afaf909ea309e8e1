package quality

import (
	"bytes"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/table"
)

func TestCheckSchema(t *testing.T) {
	s := testSchema("rates", col{"hotel_id", table.Int64, nil}, col{"price", table.Float64, nil}, col{"name", table.String, nil},
		col{"stay", table.Date, nil}, col{"at", table.TimestampTZ, nil}, col{"new", table.Null, nil}, col{"rooms", table.Int64, nil})
	s.Version = 4
	q := parseQuality(t, `
key: [hotel_id, gone_key]
columns:
  price: {range: {min: 0}, max_length: 3}
  name: {range: {min: 2025-01-01}, allowed: [a, b]}
  stay: {range: {min: 0}, regex: 'x'}
  at: {range: {min: 2025-01-01}}
  rooms: {allowed: [1, two, 3.5]}
  new: {range: {min: 0}, max_length: 4}
  missing: {not_null: true}
table:
  freshness: {column: name, max_age: 1h}
`)
	err := CheckSchema("acme", "rates", q, s)
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		"partner acme table rates: quality: key column gone_key is not in the table (schema v4)",
		"partner acme table rates: quality: column missing is not in the table (schema v4)",
		"column price is float64: max_length needs a string column",
		"column stay is date: range with number bounds needs an int64 or float64 column",
		"column stay is date: regex needs a string column",
		`column rooms is int64: allowed value "two" is not a int64`,
		`column rooms is int64: allowed value "3.5" is not a int64`,
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q", w)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != len(want) {
		t.Errorf("%d problems, want %d:\n%v", n, len(want), err)
	}
	// a string column fits range and freshness: a column widened to text by the data is read value by value
	for _, ok := range []string{"column at", "column new", `allowed value "1"`, "column name", "freshness column name"} {
		if strings.Contains(err.Error(), ok) {
			t.Errorf("reported a fitting rule (%s):\n%v", ok, err)
		}
	}
	good := parseQuality(t, `
key: [hotel_id]
columns:
  price: {range: {min: 0, max: 1e6}, not_null: true, unique: true}
  name: {regex: '^a', max_length: 3, allowed: [a]}
  at: {range: {min: "2025-01-01 00:00:00"}}
table:
  freshness: {column: at, max_age: 1h}
`)
	if err := CheckSchema("acme", "rates", good, s); err != nil {
		t.Error(err)
	}
	if err := CheckSchema("acme", "rates", q, nil); err != nil {
		t.Errorf("no schema yet: %v", err)
	}
}

func TestKeys(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{ResultsKey("hotel_rates", "2025-03-01", "001", "abc"), "_dq/results/hotel_rates/process_date=2025-03-01/batch_id=001/part-abc.parquet"},
		{ProfilesKey("hotel_rates", "2025-03-01", "001", "abc"), "_dq/profiles/hotel_rates/process_date=2025-03-01/batch_id=001/part-abc.parquet"},
		{DateResultsKey("hotel_rates", "2025-03-01"), "_dq/results/hotel_rates/process_date=2025-03-01/date.parquet"},
		{ResultsKey("a/b", "2025-03-01", "..", "x"), "_dq/results/a%2Fb/process_date=2025-03-01/batch_id=../part-x.parquet"},
		{ResultsKey("t", "2025-03-01", "a=b%", "x"), "_dq/results/t/process_date=2025-03-01/batch_id=a%3Db%25/part-x.parquet"},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
}

// TestAllocatorLeak: checking (with rows removed from every column type), finishing and writing and reading the
// Parquet files leave nothing allocated from the caller's allocator.
func TestAllocatorLeak(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	d := genRows(4000, 21)
	s := testSchema("rates", d.cols...)
	r := compile(t, "rates", `
key: {columns: [id], action: quarantine}
columns:
  price: {not_null: true, range: {min: 0, max: 100000}, action: quarantine}
  currency: {allowed: [USD, EUR, KRW], action: quarantine}
  code: {unique: true, max_length: 12, action: quarantine}
  email: {regex: '^[^@\s]+@[^@\s]+$', mostly: 0.99}
  stay_date: {range: {min: 2025-01-01}, action: quarantine}
table:
  quarantine: {max_fraction: 0.9}
`)
	b := r.NewBatch(mem, BatchMeta{ArchiveID: "a", ProcessDate: "2025-01-01", BatchID: "1", Schema: s})
	removed := 0
	for _, part := range d.records(t, mem, s, 1500) {
		rec := record(t, mem, s, part.cols...)
		keep, q, err := b.Check(rec)
		if err != nil {
			t.Fatal(err)
		}
		removed += len(q)
		if keep.NumRows()+int64(len(q)) != rec.NumRows() {
			t.Errorf("kept %d + quarantined %d != %d", keep.NumRows(), len(q), rec.NumRows())
		}
		rec.Release() // keep outlives rec
		if int(keep.NumCols()) != len(d.cols) {
			t.Fatal("columns lost")
		}
		keep.Release()
	}
	if removed == 0 {
		t.Fatal("nothing removed")
	}
	results, _, profiles := b.Finish(FinishInput{RowsIn: 4000})
	var buf bytes.Buffer
	if err := WriteResults(&buf, mem, results); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadResults(bytes.NewReader(buf.Bytes()), mem); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if err := WriteProfiles(&buf, mem, profiles); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadProfiles(bytes.NewReader(buf.Bytes()), mem); err != nil {
		t.Fatal(err)
	}
	if b.MemoryBytes() <= 0 {
		t.Error("MemoryBytes")
	}
}

// TestSetBound: a unique rule whose set reaches its bound keeps checking against what it holds and says so.
func TestSetBound(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := testSchema("t", col{"v", table.Int64, nil})
	r := compile(t, "t", "columns:\n  v: {unique: true}\n")
	r.MaxSetBytes = 16 << 10 // 2048 slots: 1536 values
	vals := make([]any, 0, 4000)
	for i := range 3000 {
		vals = append(vals, int64(i))
	}
	for i := range 1000 {
		vals = append(vals, int64(i)) // duplicates of values held
	}
	_, _, results, _, _ := runBatch(t, mem, r, BatchMeta{Schema: s}, FinishInput{}, record(t, mem, s, col{"v", table.Int64, vals}))
	res := findResult(t, results, RuleUnique, "v")
	if res.FailedRows != 1000 || !strings.Contains(res.Observed, "hash set full at 1536 distinct values") {
		t.Errorf("%d %q", res.FailedRows, res.Observed)
	}
}

func TestHashSet(t *testing.T) {
	s := newHashSet(1 << 20)
	seen := map[uint64]bool{}
	for i := range uint64(50000) {
		h := hashFixed(i % 30000)
		if got := s.add(h); got != seen[h] {
			t.Fatalf("add %d: dup %v, want %v", i, got, seen[h])
		}
		seen[h] = true
	}
	if s.add(0) || !s.add(0) || !s.contains(1) || s.contains(2) {
		t.Error("hash 0")
	}
}

// TestFilterPaths: the kept rows are right whether they are copied as runs (few removed) or by compute Filter
// (many removed), for every column type, down to no row at all.
func TestFilterPaths(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	d := genRows(1000, 33)
	s := testSchema("t", d.cols...)
	rec := record(t, mem, s, d.cols...)
	defer rec.Release()
	b, _ := Compile("t", nil, nil)
	bt := b.NewBatch(mem, BatchMeta{Schema: s})
	for _, c := range []struct {
		name   string
		remove func(i int) bool
	}{
		{"runs: three rows", func(i int) bool { return i == 0 || i == 500 || i == 999 }},
		{"runs: a block", func(i int) bool { return i >= 100 && i < 900 }},
		{"filter: every other row", func(i int) bool { return i%2 == 0 }},
		{"filter: every 7th row", func(i int) bool { return i%7 == 3 }},
		{"all rows", func(int) bool { return true }},
	} {
		t.Run(c.name, func(t *testing.T) {
			bt.mask = make([]bool, 1000)
			var want []string
			for i := range 1000 {
				bt.mask[i] = c.remove(i)
				if !bt.mask[i] {
					row := make([]string, rec.NumCols())
					for j := range row {
						row[j] = formatValue(rec.Column(j), i)
					}
					want = append(want, strings.Join(row, "|"))
				}
			}
			keep, err := bt.filter(rec)
			if err != nil {
				t.Fatal(err)
			}
			defer keep.Release()
			if int(keep.NumRows()) != len(want) || !keep.Schema().Equal(rec.Schema()) {
				t.Fatalf("%d rows, want %d", keep.NumRows(), len(want))
			}
			for i := range len(want) {
				row := make([]string, keep.NumCols())
				for j := range row {
					row[j] = formatValue(keep.Column(j), i)
				}
				if got := strings.Join(row, "|"); got != want[i] {
					t.Fatalf("row %d: %s, want %s", i, got, want[i])
				}
			}
		})
	}
}

func TestTimeUnits(t *testing.T) {
	for _, c := range []struct {
		us   int64
		unit arrow.TimeUnit
		ceil bool
		want int64
	}{
		{1_500_000, arrow.Second, true, 2}, {1_500_000, arrow.Second, false, 1},
		{-1_500_000, arrow.Second, true, -1}, {-1_500_000, arrow.Second, false, -2},
		{2_000_000, arrow.Second, true, 2}, {1500, arrow.Millisecond, false, 1},
		{7, arrow.Nanosecond, false, 7000}, {7, arrow.Microsecond, true, 7},
	} {
		if got := fromMicros(c.us, c.unit, c.ceil); got != c.want {
			t.Errorf("fromMicros(%d, %v, %v) = %d, want %d", c.us, c.unit, c.ceil, got, c.want)
		}
	}
	if toMicros(2, arrow.Second) != 2_000_000 || toMicros(2500, arrow.Nanosecond) != 2 || toMicros(3, arrow.Millisecond) != 3000 {
		t.Error("toMicros")
	}
}
