package quality

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/axiomhq/hyperloglog"

	"github.com/sluice-dev/sluice/internal/table"
)

// profileData: one column of each kind, nulls included, some with many distinct values.
func profileData(n int, seed uint64) []col {
	r := rand.New(rand.NewPCG(seed, 11))
	mk := func(f func(i int) any, nullEvery int) []any {
		out := make([]any, n)
		for i := range out {
			if nullEvery > 0 && r.IntN(nullEvery) == 0 {
				continue
			}
			out[i] = f(i)
		}
		return out
	}
	return []col{
		{"id", table.Int64, mk(func(i int) any { return int64(i*7 + 3) }, 0)},
		{"qty", table.Int64, mk(func(int) any { return int64(r.IntN(2001) - 1000) }, 10)},
		{"price", table.Float64, mk(func(int) any { return r.NormFloat64()*25 + 100 }, 7)},
		{"cur", table.String, mk(func(int) any { return []string{"USD", "EUR", "KRW", "日本円"}[r.IntN(4)] }, 5)},
		{"name", table.String, mk(func(int) any { return "näme-" + strconv.Itoa(r.IntN(40000)) }, 9)},
		{"ok", table.Bool, mk(func(int) any { return r.IntN(3) == 0 }, 4)},
		{"d", table.Date, mk(func(int) any { return day("2024-01-01").AddDate(0, 0, r.IntN(400)) }, 6)},
		{"at", table.TimestampTZ, mk(func(int) any {
			return ts("2024-01-01 00:00:00").Add(time.Duration(r.Int64N(1e12)) * time.Microsecond)
		}, 8)},
		{"empty", table.String, mk(func(int) any { return "" }, 1)}, // every value null
	}
}

// plainProfile computes a column's profile with plain loops over the Go values.
func plainProfile(c col) Profile {
	p := Profile{Column: c.name, Type: c.typ.String(), Rows: int64(len(c.vals))}
	distinct := map[any]bool{}
	var nums []float64
	first := true
	less := func(a, b any) bool {
		switch a := a.(type) {
		case int64:
			return a < b.(int64)
		case float64:
			return a < b.(float64)
		case string:
			return a < b.(string)
		case bool:
			return !a && b.(bool)
		case time.Time:
			return a.Before(b.(time.Time))
		}
		panic(a)
	}
	var lo, hi any
	for _, v := range c.vals {
		if v == nil {
			p.Nulls++
			continue
		}
		distinct[v] = true
		if first || less(v, lo) {
			lo = v
		}
		if first || less(hi, v) {
			hi = v
		}
		switch v := v.(type) {
		case int64:
			nums = append(nums, float64(v))
		case float64:
			nums = append(nums, v)
		case string:
			l := int64(utf8.RuneCountInString(v))
			if first || l < p.MinLength {
				p.MinLength = l
			}
			if first || l > p.MaxLength {
				p.MaxLength = l
			}
		}
		first = false
	}
	format := func(v any) string {
		switch v := v.(type) {
		case int64:
			return strconv.FormatInt(v, 10)
		case float64:
			return strconv.FormatFloat(v, 'g', -1, 64)
		case string:
			return v
		case bool:
			return strconv.FormatBool(v)
		case time.Time:
			if c.typ == table.Date {
				return v.Format(time.DateOnly)
			}
			return v.UTC().Format("2006-01-02 15:04:05.999999") + "Z"
		}
		return ""
	}
	if !first {
		p.Min, p.Max = format(lo), format(hi)
	}
	if len(nums) > 0 {
		var sum float64
		for _, f := range nums {
			sum += f
		}
		p.Mean = sum / float64(len(nums))
		var ss float64
		for _, f := range nums {
			ss += (f - p.Mean) * (f - p.Mean)
		}
		p.Stddev = math.Sqrt(ss / float64(len(nums)))
	}
	p.Distinct = int64(len(distinct))
	if c.typ == table.String {
		if len(distinct) <= MaxValues {
			for v := range distinct {
				p.Values = append(p.Values, v.(string))
			}
			slices.Sort(p.Values)
		} else {
			p.ValuesOverflow = true
		}
	}
	return p
}

func near(a, b, relTol float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= relTol*math.Max(math.Abs(a), math.Abs(b))
}

// checkProfile compares got with the plain computation; Distinct exactly when both are exact, else within 3%.
func checkProfile(t *testing.T, got, want Profile) {
	t.Helper()
	if got.Column != want.Column || got.Type != want.Type || got.Rows != want.Rows || got.Nulls != want.Nulls ||
		got.Min != want.Min || got.Max != want.Max || got.MinLength != want.MinLength || got.MaxLength != want.MaxLength ||
		got.ValuesOverflow != want.ValuesOverflow || !slices.Equal(got.Values, want.Values) {
		t.Errorf("%s:\n got %+v\nwant %+v", want.Column, withoutSketch(got), want)
	}
	if !near(got.Mean, want.Mean, 1e-9) || !near(got.Stddev, want.Stddev, 1e-9) {
		t.Errorf("%s: mean %v stddev %v, want %v %v", want.Column, got.Mean, got.Stddev, want.Mean, want.Stddev)
	}
	exact := want.Distinct <= exactMax
	if exact && got.Distinct != want.Distinct {
		t.Errorf("%s: distinct %d, want exactly %d", want.Column, got.Distinct, want.Distinct)
	}
	if !exact && !near(float64(got.Distinct), float64(want.Distinct), 0.03) {
		t.Errorf("%s: distinct %d, want %d ± 3%%", want.Column, got.Distinct, want.Distinct)
	}
	if len(got.Sketch) == 0 {
		t.Errorf("%s: no sketch", want.Column)
	}
}

func withoutSketch(p Profile) Profile {
	p.Sketch = nil
	return p
}

func TestProfiles(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	cols := profileData(60000, 1)
	s := testSchema("t", cols...)
	r, _ := Compile("t", nil, nil)
	var recs []arrow.RecordBatch
	for start := 0; start < 60000; start += 25000 {
		end := min(60000, start+25000)
		part := make([]col, len(cols))
		for i, c := range cols {
			part[i] = col{c.name, c.typ, c.vals[start:end]}
		}
		recs = append(recs, record(t, mem, s, part...))
	}
	_, _, results, _, profiles := runBatch(t, mem, r, BatchMeta{ArchiveID: "a", ProcessDate: "2024-05-01", BatchID: "b", Schema: s}, FinishInput{}, recs...)
	if len(results) != 0 || len(profiles) != len(cols) {
		t.Fatalf("%d results, %d profiles", len(results), len(profiles))
	}
	for i, c := range cols {
		p := profiles[i]
		if p.Table != "t" || p.ArchiveID != "a" || p.ProcessDate != "2024-05-01" || p.BatchID != "b" {
			t.Errorf("identity %+v", p)
		}
		checkProfile(t, p, plainProfile(c))
	}
}

// TestProfileAfterQuarantine: profiles describe the rows written.
func TestProfileAfterQuarantine(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := testSchema("t", col{"v", table.Int64, nil})
	r := compile(t, "t", "columns:\n  v: {range: {max: 10}, action: quarantine}\n")
	_, _, _, _, profiles := runBatch(t, mem, r, BatchMeta{Schema: s}, FinishInput{},
		record(t, mem, s, col{"v", table.Int64, []any{int64(1), int64(100), nil, int64(3)}}))
	p := profiles[0]
	if p.Rows != 3 || p.Nulls != 1 || p.Max != "3" || p.Mean != 2 || p.Distinct != 2 {
		t.Errorf("%+v", withoutSketch(p))
	}
	// no profiles when turned off
	_, _, _, _, profiles = runBatch(t, mem, r, BatchMeta{Schema: s, NoProfiles: true}, FinishInput{},
		record(t, mem, s, col{"v", table.Int64, []any{int64(1)}}))
	if profiles != nil {
		t.Errorf("profiles with NoProfiles: %v", profiles)
	}
}

// TestProfileMerge: merging the profiles of two halves equals the profile of the whole.
func TestProfileMerge(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	cols := profileData(40000, 2)
	s := testSchema("t", cols...)
	r, _ := Compile("t", nil, nil)
	half := func(from, to int, batch string) []Profile {
		part := make([]col, len(cols))
		for i, c := range cols {
			part[i] = col{c.name, c.typ, c.vals[from:to]}
		}
		_, _, _, _, p := runBatch(t, mem, r, BatchMeta{ArchiveID: "a", ProcessDate: "2024-05-01", BatchID: batch, Schema: s}, FinishInput{}, record(t, mem, s, part...))
		return p
	}
	a, b := half(0, 15000, "1"), half(15000, 40000, "2")
	for i, c := range cols {
		m, err := Merge(a[i], b[i])
		if err != nil {
			t.Fatal(err)
		}
		if m.BatchID != "" || m.ArchiveID != "a" || m.ProcessDate != "2024-05-01" {
			t.Errorf("merged identity %+v", withoutSketch(m))
		}
		checkProfile(t, m, plainProfile(c))
	}
	// a column whose values exceed MaxValues only once merged
	small := func(from, to int) Profile {
		vals := make([]any, 0, to-from)
		for i := from; i < to; i++ {
			vals = append(vals, fmt.Sprintf("v%02d", i))
		}
		ss := testSchema("t", col{"c", table.String, nil})
		_, _, _, _, p := runBatch(t, mem, r, BatchMeta{Schema: ss}, FinishInput{}, record(t, mem, ss, col{"c", table.String, vals}))
		return p[0]
	}
	m, err := Merge(small(0, 20), small(10, 30))
	if err != nil || m.ValuesOverflow || len(m.Values) != 30 || m.Distinct != 30 {
		t.Errorf("merge to 30 values: %v %+v", err, withoutSketch(m))
	}
	m, err = Merge(small(0, 20), small(20, 40))
	if err != nil || !m.ValuesOverflow || m.Values != nil || m.Distinct < 39 || m.Distinct > 41 {
		t.Errorf("merge to 40 values: %v %+v", err, withoutSketch(m))
	}
	if _, err := Merge(a[0], a[1]); err == nil {
		t.Error("merged profiles of two columns")
	}
}

// TestSketchFromRegisters: the registers, serialised and estimated without the library, are what inserting every
// hash into axiomhq's dense sketch gives.
func TestSketchFromRegisters(t *testing.T) {
	for _, n := range []int{1, 100, 5000, 300000} {
		p := newColProfile("c", table.Int64, kInt64)
		p.regs = make([]uint8, hllRegs)
		want := hyperloglog.NewNoSparse()
		r := rand.New(rand.NewPCG(uint64(n), 1))
		for range n {
			h := hashFixed(r.Uint64())
			p.insert(h)
			want.InsertHash(h)
		}
		wb, _ := want.MarshalBinary()
		if gb := marshalRegisters(p.regs); !bytes.Equal(gb, wb) {
			t.Errorf("n=%d: serialisation differs from the library's", n)
		}
		if got := estimate(p.regs); got != want.Estimate() {
			t.Errorf("n=%d: estimate %d, library %d", n, got, want.Estimate())
		}
		var back hyperloglog.Sketch
		if err := back.UnmarshalBinary(marshalRegisters(p.regs)); err != nil || back.Estimate() != want.Estimate() {
			t.Errorf("n=%d: read back: %v", n, err)
		}
		if e := float64(estimate(p.regs)); n > 1 && !near(e, float64(n), 0.03) {
			t.Errorf("n=%d: estimate %v", n, e)
		}
	}
}

// TestExactToRegisters: a column counted exactly switches to registers past exactMax values, keeping every value.
func TestExactToRegisters(t *testing.T) {
	for _, n := range []int{exactMax, exactMax + 1, 3 * exactMax} {
		p := newColProfile("c", table.Int64, kInt64)
		for i := range n {
			p.see(hashFixed(uint64(i)))
			p.see(hashFixed(uint64(i))) // twice
		}
		pr := p.profile()
		if n <= exactMax && (pr.Distinct != int64(n) || p.regs != nil) {
			t.Errorf("n=%d: distinct %d (exact expected)", n, pr.Distinct)
		}
		if n > exactMax && (p.regs == nil || !near(float64(pr.Distinct), float64(n), 0.03)) {
			t.Errorf("n=%d: distinct %d", n, pr.Distinct)
		}
		var sk hyperloglog.Sketch
		if err := sk.UnmarshalBinary(pr.Sketch); err != nil || !near(float64(sk.Estimate()), float64(n), 0.03) {
			t.Errorf("n=%d: sketch estimate %d, %v", n, sk.Estimate(), err)
		}
	}
}

func TestIsASCII(t *testing.T) {
	for _, c := range []struct {
		s    string
		want bool
	}{{"", true}, {"abcdefghijklmnop", true}, {"abcdefghijklmnoé", false}, {"é", false}, {"abcdefgh\x80", false}} {
		if got := isASCII([]byte(c.s)); got != c.want {
			t.Errorf("isASCII(%q) = %v", c.s, got)
		}
	}
}

// TestValidRuns: the runs validRuns reports are the non-null rows, maximal and in order, for arrays with
// no, some and only nulls, sliced at offsets that are and are not byte-aligned.
func TestValidRuns(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 8))
	for round := range 300 {
		n := r.IntN(200)
		nullP := []float64{0, 0.02, 0.3, 0.9, 1}[round%5]
		b := array.NewInt64Builder(memory.DefaultAllocator)
		for i := range n {
			if r.Float64() < nullP {
				b.AppendNull()
			} else {
				b.Append(int64(i))
			}
		}
		whole := b.NewArray()
		b.Release()
		from := r.IntN(n + 1)
		to := from + r.IntN(n-from+1)
		a := array.NewSlice(whole, int64(from), int64(to))
		var want [][2]int
		for i := 0; i < a.Len(); i++ {
			if a.IsValid(i) && (len(want) == 0 || want[len(want)-1][1] != i) {
				want = append(want, [2]int{i, i + 1})
			} else if a.IsValid(i) {
				want[len(want)-1][1] = i + 1
			}
		}
		var got [][2]int
		validRuns(a, func(from, to int) { got = append(got, [2]int{from, to}) })
		if !slices.Equal(got, want) {
			t.Fatalf("round %d (slice [%d, %d) of %d rows): runs %v, want %v", round, from, to, n, got, want)
		}
		a.Release()
		whole.Release()
	}
}
