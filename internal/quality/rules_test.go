package quality

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/table"
)

// rowData is a seeded table with every kind of defect, as Go values (nil = null). Column rn numbers the rows.
type rowData struct {
	n    int
	cols []col
}

func (d rowData) col(name string) []any {
	for _, c := range d.cols {
		if c.name == name {
			return c.vals
		}
	}
	panic(name)
}

func genRows(n int, seed uint64) rowData {
	r := rand.New(rand.NewPCG(seed, 7))
	rn := make([]any, n)
	id := make([]any, n)
	price := make([]any, n)
	qty := make([]any, n)
	rooms := make([]any, n)
	currency := make([]any, n)
	email := make([]any, n)
	code := make([]any, n)
	stay := make([]any, n)
	at := make([]any, n)
	paid := make([]any, n)
	currencies := []string{"USD", "EUR", "KRW", "USD", "EUR", "GBP", "usd", ""}
	for i := range n {
		rn[i] = int64(i)
		switch x := r.IntN(100); {
		case x < 3:
			id[i] = nil
		case x < 8:
			id[i] = int64(r.IntN(i + 1)) // likely a duplicate
		default:
			id[i] = int64(1_000_000 + i)
		}
		switch x := r.IntN(100); {
		case x < 4:
			price[i] = nil
		case x < 7:
			price[i] = -float64(r.IntN(100)) - 0.5
		case x < 9:
			price[i] = 100000 + float64(r.IntN(1000)) + 0.25
		case x < 10:
			price[i] = 100000.0 // on the bound: passes
		default:
			price[i] = float64(r.IntN(10000000)) / 100
		}
		if r.IntN(20) == 0 {
			qty[i] = nil
		} else {
			qty[i] = int64(r.IntN(13) - 1) // -1..11
		}
		if r.IntN(10) == 0 {
			rooms[i] = nil
		} else {
			rooms[i] = int64(r.IntN(5))
		}
		if r.IntN(15) == 0 {
			currency[i] = nil
		} else {
			currency[i] = currencies[r.IntN(len(currencies))]
		}
		switch x := r.IntN(20); {
		case x == 0:
			email[i] = nil
		case x == 1:
			email[i] = "no-at-sign.example"
		case x == 2:
			email[i] = "two@@example.com"
		case x == 3:
			email[i] = "space in@example.com"
		default:
			email[i] = fmt.Sprintf("user%d@example.com", r.IntN(500))
		}
		switch x := r.IntN(20); {
		case x == 0:
			code[i] = nil
		case x == 1:
			code[i] = strings.Repeat("X", 13) + strconv.Itoa(i) // too long
		case x == 2:
			code[i] = "ÄÖÜäöüß-" + strconv.Itoa(i%1000) // > 12 bytes, ≤ 12 characters
		case x == 3:
			code[i] = "C" + strconv.Itoa(r.IntN(50)) // duplicates
		default:
			code[i] = "K" + strconv.Itoa(i)
		}
		if r.IntN(25) == 0 {
			stay[i] = nil
		} else {
			stay[i] = day("2024-12-25").AddDate(0, 0, r.IntN(20))
		}
		if r.IntN(25) == 0 {
			at[i] = nil
		} else {
			at[i] = ts("2025-01-01 00:00:00").Add(time.Duration(r.IntN(72*3600)) * time.Second)
		}
		if r.IntN(12) == 0 {
			paid[i] = nil
		} else {
			paid[i] = r.IntN(4) != 0
		}
	}
	return rowData{n: n, cols: []col{
		{"rn", table.Int64, rn}, {"id", table.Int64, id}, {"price", table.Float64, price}, {"qty", table.Int64, qty},
		{"rooms", table.Int64, rooms}, {"currency", table.String, currency}, {"email", table.String, email},
		{"code", table.String, code}, {"stay_date", table.Date, stay}, {"at", table.TimestampTZ, at},
		{"paid", table.Bool, paid},
	}}
}

// records cuts d into record batches of size rows.
func (d rowData) records(t testing.TB, mem memory.Allocator, s *table.Schema, size int) []recordsSlice {
	var out []recordsSlice
	for start := 0; start < d.n; start += size {
		end := min(d.n, start+size)
		cols := make([]col, len(d.cols))
		for i, c := range d.cols {
			cols[i] = col{c.name, c.typ, c.vals[start:end]}
		}
		out = append(out, recordsSlice{start: start, cols: cols})
	}
	return out
}

type recordsSlice struct {
	start int
	cols  []col
}

func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' }

// TestRowRules checks every row rule under every action against a plain loop over the same values: the counts,
// the status, the rows quarantined (and their values) and the rows kept.
func TestRowRules(t *testing.T) {
	d := genRows(3000, 1)
	s := testSchema("rates", d.cols...)
	var firstAt time.Time // a timestamp the data holds: the allowed timestamps must pass some rows
	for _, v := range d.col("at") {
		if v != nil {
			firstAt = v.(time.Time)
			break
		}
	}
	type oracle func(v any, seen map[any]bool) (checked, fails bool)
	// unique: the first of each value passes, every later one fails (time.Time values as instants)
	unique := func(v any, seen map[any]bool) (bool, bool) {
		if v == nil {
			return false, false
		}
		if tt, ok := v.(time.Time); ok {
			v = tt.UnixMicro()
		}
		dup := seen[v]
		seen[v] = true
		return true, dup
	}
	nonNull := func(f func(v any) bool) oracle {
		return func(v any, _ map[any]bool) (bool, bool) {
			if v == nil {
				return false, false
			}
			return true, f(v)
		}
	}
	cases := []struct {
		name, column, block string
		rule                string
		oracle              oracle
	}{
		{"not_null", "price", "not_null: true", RuleNotNull, func(v any, _ map[any]bool) (bool, bool) { return true, v == nil }},
		{"range float", "price", "range: {min: 0, max: 100000}", RuleRange, nonNull(func(v any) bool {
			f := v.(float64)
			return f < 0 || f > 100000
		})},
		{"range min only", "price", "range: {min: 0}", RuleRange, nonNull(func(v any) bool { return v.(float64) < 0 })},
		{"range int with decimal bounds", "qty", "range: {min: 0.5, max: 10.5}", RuleRange, nonNull(func(v any) bool {
			f := float64(v.(int64))
			return f < 0.5 || f > 10.5
		})},
		{"allowed strings", "currency", "allowed: [USD, EUR, KRW]", RuleAllowed, nonNull(func(v any) bool {
			return !slices.Contains([]string{"USD", "EUR", "KRW"}, v.(string))
		})},
		{"allowed long list", "currency", "allowed: [A, B, C, D, E, F, G, H, I, USD, EUR]", RuleAllowed, nonNull(func(v any) bool {
			return v.(string) != "USD" && v.(string) != "EUR"
		})},
		{"allowed sharing a first byte", "currency", "allowed: [U1, U2, U3, U4, U5, U6, U7, U8, U9, USD]", RuleAllowed, nonNull(func(v any) bool {
			return v.(string) != "USD"
		})},
		{"allowed ints", "rooms", "allowed: [1, 2, 3]", RuleAllowed, nonNull(func(v any) bool {
			return v.(int64) < 1 || v.(int64) > 3
		})},
		{"allowed floats", "price", "allowed: [100000, 0.5, 12.34]", RuleAllowed, nonNull(func(v any) bool {
			return !slices.Contains([]float64{100000, 0.5, 12.34}, v.(float64))
		})},
		{"allowed dates", "stay_date", "allowed: [2024-12-25, 2025-01-01]", RuleAllowed, nonNull(func(v any) bool {
			tt := v.(time.Time)
			return !tt.Equal(day("2024-12-25")) && !tt.Equal(day("2025-01-01"))
		})},
		{"allowed timestamps", "at", fmt.Sprintf(`allowed: ["%s", "2025-01-02T00:00:00Z"]`, firstAt.UTC().Format(time.DateTime)), RuleAllowed,
			nonNull(func(v any) bool {
				tt := v.(time.Time)
				return !tt.Equal(firstAt) && !tt.Equal(ts("2025-01-02 00:00:00"))
			})},
		{"allowed bools", "paid", "allowed: [true]", RuleAllowed, nonNull(func(v any) bool { return !v.(bool) })},
		{"regex", "email", `regex: '^[^@\s]+@[^@\s]+$'`, RuleRegex, nonNull(func(v any) bool {
			s := v.(string)
			user, host, ok := strings.Cut(s, "@")
			return !ok || user == "" || host == "" || strings.Contains(host, "@") || strings.ContainsFunc(s, isSpace)
		})},
		{"max_length", "code", "max_length: 12", RuleMaxLength, nonNull(func(v any) bool { return utf8.RuneCountInString(v.(string)) > 12 })},
		{"unique strings", "code", "unique: true", RuleUnique, unique},
		{"unique ints", "id", "unique: true", RuleUnique, unique},
		{"unique floats", "price", "unique: true", RuleUnique, unique},
		{"unique timestamps", "at", "unique: true", RuleUnique, unique},
		{"unique bools", "paid", "unique: true", RuleUnique, unique},
		{"range dates", "stay_date", "range: {min: 2025-01-01, max: 2025-01-10}", RuleRange, nonNull(func(v any) bool {
			tt := v.(time.Time)
			return tt.Before(day("2025-01-01")) || tt.After(day("2025-01-10"))
		})},
		{"range timestamps", "at", `range: {min: "2025-01-01 12:00:00", max: "2025-01-03T00:00:00Z"}`, RuleRange, nonNull(func(v any) bool {
			tt := v.(time.Time)
			return tt.Before(ts("2025-01-01 12:00:00")) || tt.After(ts("2025-01-03 00:00:00"))
		})},
		// A date bound on a timestamp column is its midnight: the rows of 2025-01-03 after 00:00:00 fail.
		{"range timestamps by dates", "at", `range: {min: 2025-01-02, max: 2025-01-03}`, RuleRange, nonNull(func(v any) bool {
			tt := v.(time.Time)
			return tt.Before(day("2025-01-02")) || tt.After(day("2025-01-03"))
		})},
	}
	for _, c := range cases {
		for _, action := range []string{"warn", "quarantine", "fail"} {
			t.Run(c.name+"/"+action, func(t *testing.T) {
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				r := compile(t, "rates", fmt.Sprintf("columns:\n  %s: {%s, action: %s}\n", c.column, c.block, action))

				// the plain loop
				vals := d.col(c.column)
				seen := map[any]bool{}
				var checked, failing int64
				fails := make([]bool, d.n)
				for i, v := range vals {
					ch, f := c.oracle(v, seen)
					if ch {
						checked++
					}
					if f {
						failing++
						fails[i] = true
					}
				}
				if failing == 0 || checked == 0 || failing == checked {
					t.Fatalf("test data for %s: %d rows checked, %d failing: want some of each", c.name, checked, failing)
				}

				b := r.NewBatch(mem, BatchMeta{ArchiveID: "a1", ProcessDate: "2025-01-01", BatchID: "1", Schema: s})
				var kept []int64
				for _, part := range d.records(t, mem, s, 1000) {
					rec := record(t, mem, s, part.cols...)
					keep, q, err := b.Check(rec)
					if err != nil {
						t.Fatal(err)
					}
					for i := range int(keep.NumRows()) {
						kept = append(kept, i64At(keep.Column(0), i))
					}
					// quarantined rows: exactly the failing ones of this slice, with their values
					var want []RowFailure
					if action == "quarantine" {
						for i := range rec.NumRows() {
							if fails[part.start+int(i)] {
								want = append(want, RowFailure{Row: int(i), Rule: c.rule, Column: c.column, Value: formatValue(rec.Column(s.Arrow().FieldIndices(c.column)[0]), int(i))})
							}
						}
					}
					if !slices.Equal(q, want) {
						t.Errorf("slice at %d: quarantined %d rows, want %d (first: %v vs %v)", part.start, len(q), len(want), head(q), head(want))
					}
					keep.Release()
					rec.Release()
				}
				results, failed, _ := b.Finish(FinishInput{})
				res := findResult(t, results, c.rule, c.column)
				if res.CheckedRows != checked || res.FailedRows != failing {
					t.Errorf("checked %d failed %d, want %d %d (%s)", res.CheckedRows, res.FailedRows, checked, failing, res.Observed)
				}
				wantStatus := StatusWarn
				if action == "fail" {
					wantStatus = StatusFail
				}
				if res.Status != wantStatus || res.Action != action || res.Kind != KindRow {
					t.Errorf("status %s action %s kind %s, want %s %s row", res.Status, res.Action, res.Kind, wantStatus, action)
				}
				if (len(failed) == 1) != (action == "fail") {
					t.Errorf("failed = %v", dump(failed))
				}
				var wantKept []int64
				for i := range d.n {
					if action != "quarantine" || !fails[i] {
						wantKept = append(wantKept, int64(i))
					}
				}
				if !slices.Equal(kept, wantKept) {
					t.Errorf("kept %d rows, want %d", len(kept), len(wantKept))
				}
				if res.Table != "rates" || res.ArchiveID != "a1" || res.ProcessDate != "2025-01-01" || res.BatchID != "1" {
					t.Errorf("identity %+v", res)
				}
				if c.rule != RuleNotNull && !strings.Contains(res.Observed, "e.g.") {
					t.Errorf("observed quotes no example: %q", res.Observed)
				}
			})
		}
	}
}

func head(q []RowFailure) any {
	if len(q) == 0 {
		return nil
	}
	return q[0]
}

// TestRulesPass: rules that hold give status pass and no quarantined row.
func TestRulesPass(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	r := compile(t, "t", `
key: [id]
columns:
  price: {not_null: true, range: {min: 0, max: 10}, action: quarantine}
  cur: {allowed: [USD, EUR], regex: '^[A-Z]{3}$', max_length: 3, action: fail}
`)
	s := testSchema("t", col{"id", table.Int64, nil}, col{"price", table.Float64, nil}, col{"cur", table.String, nil})
	rec := record(t, mem, s, col{"id", table.Int64, []any{int64(1), int64(2), int64(3)}},
		col{"price", table.Float64, []any{0.0, 5.5, 10.0}}, col{"cur", table.String, []any{"USD", nil, "EUR"}})
	kept, q, results, failed, _ := runBatch(t, mem, r, BatchMeta{Schema: s}, FinishInput{}, rec)
	if len(kept) != 3 || len(q[0]) != 0 || len(failed) != 0 {
		t.Fatalf("kept %d, quarantined %v, failed %v", len(kept), q, failed)
	}
	if len(results) != 6 {
		t.Errorf("%d results:%s", len(results), dump(results))
	}
	for _, res := range results {
		if res.Status != StatusPass || res.FailedRows != 0 {
			t.Errorf("%s %s: %s %q", res.Rule, res.Column, res.Status, res.Observed)
		}
	}
	if res := findResult(t, results, RuleRegex, "cur"); res.CheckedRows != 2 {
		t.Errorf("regex checked %d values, want 2 (nulls are not checked)", res.CheckedRows)
	}
	// fixed order: key, then columns by name, each column's rules in order
	var order []string
	for _, res := range results {
		order = append(order, res.Rule+":"+res.Column)
	}
	want := "key:id allowed:cur regex:cur max_length:cur not_null:price range:price"
	if got := strings.Join(order, " "); !strings.HasPrefix(got, "key:id allowed:cur regex:cur max_length:cur not_null:price range:price") {
		t.Errorf("order %s, want %s", got, want)
	}
}

// TestMostly: the rule passes while at least mostly of the values pass, exactly at the threshold included; below
// it the status is the action's; no row is quarantined by a mostly rule.
func TestMostly(t *testing.T) {
	s := testSchema("t", col{"email", table.String, nil})
	vals := make([]any, 0, 205)
	for i := range 200 {
		if i < 4 {
			vals = append(vals, "bad") // 4 of 200 fail: 98% pass
		} else {
			vals = append(vals, fmt.Sprintf("u%d@x", i))
		}
	}
	for range 5 {
		vals = append(vals, nil) // nulls do not count
	}
	cases := []struct {
		mostly, action, want string
	}{
		{"0.98", "warn", StatusPass}, // exactly at the threshold
		{"0.97", "warn", StatusPass},
		{"0.981", "warn", StatusWarn},
		{"0.99", "fail", StatusFail},
		{"1", "warn", StatusWarn},
	}
	for _, c := range cases {
		t.Run(c.mostly+"/"+c.action, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			r := compile(t, "t", fmt.Sprintf("columns:\n  email: {regex: '@', mostly: %s, action: %s}\n", c.mostly, c.action))
			rec := record(t, mem, s, col{"email", table.String, vals})
			kept, q, results, failed, _ := runBatch(t, mem, r, BatchMeta{Schema: s}, FinishInput{}, rec)
			res := findResult(t, results, RuleRegex, "email")
			if res.Status != c.want || res.CheckedRows != 200 || res.FailedRows != 4 {
				t.Errorf("%s checked %d failed %d (%s)", res.Status, res.CheckedRows, res.FailedRows, res.Observed)
			}
			if !strings.HasPrefix(res.Observed, "98% of 200 values pass") {
				t.Errorf("observed %q", res.Observed)
			}
			if len(kept) != 205 || len(q[0]) != 0 {
				t.Errorf("a mostly rule removed rows: kept %d", len(kept))
			}
			if (c.want == StatusFail) != (len(failed) == 1) {
				t.Errorf("failed %v", failed)
			}
		})
	}
	// not_null with mostly: the share of rows that are not null
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	r := compile(t, "t", "columns:\n  email: {not_null: true, mostly: 0.975}\n")
	_, _, results, _, _ := runBatch(t, mem, r, BatchMeta{Schema: s}, FinishInput{}, record(t, mem, s, col{"email", table.String, vals}))
	if res := findResult(t, results, RuleNotNull, "email"); res.Status != StatusPass || res.CheckedRows != 205 || res.FailedRows != 5 {
		t.Errorf("not_null mostly: %s %d %d %q", res.Status, res.CheckedRows, res.FailedRows, res.Observed) // 200/205 = 97.56%
	}
}

// TestKey: nulls in any key column fail, a tuple seen before fails (the first occurrence passes), across record
// batches; with quarantine the kept rows have unique non-null keys.
func TestKey(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	n := 2500
	hotel := make([]any, n)
	date := make([]any, n)
	for i := range n {
		if r.IntN(40) == 0 {
			hotel[i] = nil
		} else {
			hotel[i] = int64(r.IntN(60))
		}
		if r.IntN(40) == 0 {
			date[i] = nil
		} else {
			date[i] = day("2025-01-01").AddDate(0, 0, r.IntN(40))
		}
	}
	s := testSchema("rates", col{"hotel_id", table.Int64, nil}, col{"stay_date", table.Date, nil})
	type tuple struct {
		h int64
		d time.Time
	}
	var nulls, dups int64
	seen := map[tuple]bool{}
	fails := make([]bool, n)
	for i := range n {
		if hotel[i] == nil || date[i] == nil {
			nulls++
			fails[i] = true
			continue
		}
		k := tuple{hotel[i].(int64), date[i].(time.Time)}
		if seen[k] {
			dups++
			fails[i] = true
		}
		seen[k] = true
	}
	for _, action := range []string{"warn", "quarantine"} {
		t.Run(action, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			rules := compile(t, "rates", fmt.Sprintf("key: {columns: [hotel_id, stay_date], action: %s}\n", action))
			var recs []arrow.RecordBatch
			for start := 0; start < n; start += 700 {
				end := min(n, start+700)
				recs = append(recs, record(t, mem, s, col{"hotel_id", table.Int64, hotel[start:end]}, col{"stay_date", table.Date, date[start:end]}))
			}
			kept, q, results, _, _ := runBatch(t, mem, rules, BatchMeta{Schema: s}, FinishInput{}, recs...)
			res := findResult(t, results, RuleKey, "hotel_id,stay_date")
			if res.CheckedRows != int64(n) || res.FailedRows != nulls+dups {
				t.Errorf("checked %d failed %d, want %d %d", res.CheckedRows, res.FailedRows, n, nulls+dups)
			}
			if !strings.Contains(res.Observed, fmt.Sprintf("%d with a null, %d duplicates", nulls, dups)) {
				t.Errorf("observed %q", res.Observed)
			}
			quarantined := 0
			for _, qq := range q {
				quarantined += len(qq)
			}
			if action == "quarantine" {
				if quarantined != int(nulls+dups) || len(kept) != n-int(nulls+dups) {
					t.Errorf("quarantined %d kept %d, want %d %d", quarantined, len(kept), nulls+dups, n-int(nulls+dups))
				}
				keys := map[string]bool{}
				for _, row := range kept {
					k := row[0] + "|" + row[1]
					if row[0] == "" || row[1] == "" || keys[k] {
						t.Fatalf("kept row %v has a null or duplicate key", row)
					}
					keys[k] = true
				}
				if f := q[0][0]; f.Rule != RuleKey || f.Column != "hotel_id,stay_date" || !strings.Contains(f.Value, ",") {
					t.Errorf("failure %+v", f)
				}
			} else if quarantined != 0 || len(kept) != n {
				t.Errorf("warn removed rows")
			}
		})
	}
}

// TestUniqueAfterQuarantine: a row removed by another quarantine rule does not make a later equal value a
// duplicate: what is written is unique.
func TestUniqueAfterQuarantine(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := testSchema("t", col{"code", table.String, nil}, col{"price", table.Int64, nil})
	r := compile(t, "t", `
columns:
  code: {unique: true, action: quarantine}
  price: {range: {min: 0}, action: quarantine}
`)
	rec := record(t, mem, s, col{"code", table.String, []any{"a", "a", "b", "b", "c"}},
		col{"price", table.Int64, []any{int64(-1), int64(1), int64(1), int64(2), nil}})
	kept, q, results, _, _ := runBatch(t, mem, r, BatchMeta{Schema: s}, FinishInput{}, rec)
	if got := fmt.Sprint(kept); got != "[[a 1] [b 1] [c ]]" {
		t.Errorf("kept %s", got)
	}
	want := []RowFailure{{0, RuleRange, "price", "-1"}, {3, RuleUnique, "code", "b"}}
	if !slices.Equal(q[0], want) {
		t.Errorf("quarantined %+v, want %+v", q[0], want)
	}
	if res := findResult(t, results, RuleUnique, "code"); res.CheckedRows != 4 || res.FailedRows != 1 {
		t.Errorf("unique: %+v", res)
	}
}

// TestFirstQuarantineRuleReported: a row failing two quarantine rules is reported once, with the first rule.
func TestFirstQuarantineRuleReported(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := testSchema("t", col{"a", table.Int64, nil}, col{"b", table.String, nil})
	r := compile(t, "t", "columns:\n  a: {not_null: true, action: quarantine}\n  b: {allowed: [x], action: quarantine}\n")
	rec := record(t, mem, s, col{"a", table.Int64, []any{nil, int64(1), nil}}, col{"b", table.String, []any{"y", "y", "x"}})
	_, q, results, _, _ := runBatch(t, mem, r, BatchMeta{Schema: s}, FinishInput{RowsIn: 3}, rec)
	// columns are checked by name: a's rule before b's
	want := []RowFailure{{0, RuleNotNull, "a", ""}, {1, RuleAllowed, "b", "y"}, {2, RuleNotNull, "a", ""}}
	if !slices.Equal(q[0], want) {
		t.Errorf("got %+v, want %+v", q[0], want)
	}
	if findResult(t, results, RuleNotNull, "a").FailedRows != 2 || findResult(t, results, RuleAllowed, "b").FailedRows != 2 {
		t.Errorf("each rule counts all its failing rows:%s", dump(results))
	}
}

// TestMissingColumn: a rule on a column the batch lacks (or of a type it cannot check) is recorded as
// missing_column; a partner default on a column the table does not have records nothing.
func TestMissingColumn(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	q := parseQuality(t, `
key: [id, gone]
columns:
  gone: {not_null: true}
  absent: {not_null: true, action: quarantine}
  name: {range: {min: 0}}
  qty: {max_length: 3}
  when: {range: {min: 0}}
table:
  freshness: {column: gone, max_age: 1h}
`)
	defaults := parseQuality(t, "columns:\n  other_tables_column: {not_null: true}\n  name: {allowed: [a]}\n")
	r, err := Compile("t", q, defaults)
	if err != nil {
		t.Fatal(err)
	}
	s := testSchema("t", col{"id", table.Int64, nil}, col{"absent", table.String, nil}, col{"name", table.String, nil},
		col{"qty", table.Int64, nil}, col{"when", table.Date, nil})
	rec := record(t, mem, s, col{"id", table.Int64, []any{int64(1)}}, col{"absent", table.String, []any{nil}},
		col{"name", table.String, []any{"b"}}, col{"qty", table.Int64, []any{int64(12345)}}, col{"when", table.Date, []any{day("2025-01-01")}})
	kept, _, results, failed, _ := runBatch(t, mem, r, BatchMeta{Schema: s, Absent: []string{"absent"}, ProcessDate: "2025-01-01"}, FinishInput{}, rec)
	if len(kept) != 1 || len(failed) != 0 {
		t.Fatalf("kept %d failed %v", len(kept), failed)
	}
	for _, c := range []struct{ rule, column, observed string }{
		{RuleKey, "id,gone", "column gone is not in the batch"},
		{RuleNotNull, "gone", "column gone is not in the batch"},
		{RuleNotNull, "absent", "column absent is absent from the batch's members"},
		{RuleMaxLength, "qty", "column qty is int64: max_length needs a string column"},
		{RuleRange, "when", "column when is date: range needs a number column"},
		{RuleFreshness, "gone", "column gone is not in the batch"},
	} {
		res := findResult(t, results, c.rule, c.column)
		if res.Status != StatusMissingColumn || !strings.HasPrefix(res.Observed, c.observed) {
			t.Errorf("%s %s: %s %q, want missing_column %q", c.rule, c.column, res.Status, res.Observed, c.observed)
		}
	}
	// a range on a string column reads its values as numbers: "b" is not one
	if res := findResult(t, results, RuleRange, "name"); res.Status != StatusWarn || !strings.Contains(res.Observed, `e.g. "b"`) {
		t.Errorf("range on a string column: %s %q, want warn naming \"b\"", res.Status, res.Observed)
	}
	for _, res := range results {
		if res.Column == "other_tables_column" {
			t.Errorf("a default rule on a column the table lacks was recorded: %+v", res)
		}
	}
	// the table's own block replaces the default's block of the same column: name has no allowed rule
	for _, res := range results {
		if res.Rule == RuleAllowed {
			t.Errorf("default block of name applied over the table's: %+v", res)
		}
	}
}

// TestCompileMerge: the table's rules replace the defaults' rule by rule; default table rules apply.
func TestCompileMerge(t *testing.T) {
	defaults := parseQuality(t, `
key: [id]
columns:
  id: {not_null: true}
  code: {max_length: 3}
table:
  schema: {removed: fail, added: warn}
  row_count: {min: 1}
  quarantine: {max_fraction: 0.5}
`)
	q := parseQuality(t, `
columns:
  id: {unique: true}
table:
  schema: {added: fail}
  row_count: {min: 10, action: fail}
`)
	r, err := Compile("t", q, defaults)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rr := range r.row {
		got = append(got, fmt.Sprintf("%s:%s:%v", rr.name, rr.column(), rr.lenient))
	}
	if s := strings.Join(got, " "); s != "key:id:true max_length:code:true unique:id:false" {
		t.Errorf("row rules %s", s)
	}
	if r.tbl.schema != (config.SchemaRule{Added: "fail", Removed: "fail"}) || *r.tbl.rowCount.Min != 10 || r.tbl.quarantine == nil {
		t.Errorf("table rules %+v", r.tbl)
	}
	if r.Empty() {
		t.Error("Empty")
	}
	if e, _ := Compile("t", nil, nil); !e.Empty() || e.Table() != "t" {
		t.Error("no rules is not Empty")
	}
	bad := &config.Quality{Columns: map[string]*config.ColumnRules{"x": {Regex: "("}}}
	if _, err := Compile("t", bad, nil); err == nil || !strings.Contains(err.Error(), "quality of table t") {
		t.Errorf("invalid block compiled: %v", err)
	}
}

// TestRangeOnAColumnWidenedToText: a number (or temporal) column widened to string by the data keeps its range
// rule: each value is read as the inferer reads numbers (dates, timestamps), and one that is not a number (time)
// is outside the range. The quarantine rule still takes out -50 and 99999, and also "1,200".
func TestRangeOnAColumnWidenedToText(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	r := compile(t, "t", "columns:\n  amount: {range: {min: 0, max: 1000}, action: quarantine}\n  at: {range: {min: 2025-01-01, max: 2025-01-31}}\n")
	s := testSchema("t", col{"amount", table.String, nil}, col{"at", table.String, nil})
	amounts := []any{"5", "1,200", "-50", "99999", "1e2", "NaN", nil, "12345678901234567890", " 7", "1000"}
	ats := []any{"2025-01-02", "2025-01-31 23:00:00", "2025-02-01", "soon", nil, "2025-01-15T00:00:00Z", "2024-12-31", "2025-01-31", "x", "2025-01-01"}
	kept, _, results, failed, _ := runBatch(t, mem, r, BatchMeta{Schema: s, ProcessDate: "2025-01-31"}, FinishInput{},
		record(t, mem, s, col{"amount", table.String, amounts}, col{"at", table.String, ats}))
	var got []string
	for _, row := range kept {
		got = append(got, row[0])
	}
	if want := []string{"5", "1e2", "", "1000"}; !slices.Equal(got, want) { // "" is the null
		t.Errorf("kept amounts %q, want %q", got, want)
	}
	if len(failed) != 0 {
		t.Errorf("failed %v", failed)
	}
	amount := findResult(t, results, RuleRange, "amount")
	if amount.Status != StatusWarn || amount.CheckedRows != 9 || amount.FailedRows != 6 {
		t.Errorf("amount: %+v", amount)
	}
	// every row is checked by every rule: 2025-01-31 23:00:00 is past a date bound's midnight (as for a timestamp
	// column), then 2025-02-01, soon, 2024-12-31 and x
	at := findResult(t, results, RuleRange, "at")
	if at.Status != StatusWarn || at.CheckedRows != 9 || at.FailedRows != 5 || !strings.Contains(at.Observed, `"soon"`) {
		t.Errorf("at: %+v", at)
	}
}
