package quality

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/table"
)

func TestRowCount(t *testing.T) {
	s := testSchema("t", col{"v", table.Int64, nil})
	cases := []struct {
		block string
		rows  int
		want  string
	}{
		{"{min: 1, max: 5}", 3, StatusPass},
		{"{min: 1, max: 5}", 5, StatusPass},
		{"{min: 1, max: 5}", 0, StatusWarn},
		{"{min: 1, max: 5}", 6, StatusWarn},
		{"{max: 2, action: fail}", 3, StatusFail},
		{"{min: 4}", 3, StatusWarn},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%d", c.block, c.rows), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			r := compile(t, "t", "table:\n  row_count: "+c.block+"\n")
			vals := make([]any, c.rows)
			for i := range vals {
				vals[i] = int64(i)
			}
			_, _, results, failed, _ := runBatch(t, mem, r, BatchMeta{Schema: s}, FinishInput{}, record(t, mem, s, col{"v", table.Int64, vals}))
			res := findResult(t, results, RuleRowCount, "")
			if res.Status != c.want || res.CheckedRows != int64(c.rows) || res.Kind != KindTable {
				t.Errorf("%s %d %q", res.Status, res.CheckedRows, res.Observed)
			}
			if (c.want == StatusFail) != (len(failed) == 1) {
				t.Errorf("failed %v", failed)
			}
		})
	}
	// rows written: after quarantine
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	r := compile(t, "t", "columns:\n  v: {not_null: true, action: quarantine}\ntable:\n  row_count: {min: 3}\n")
	_, _, results, _, _ := runBatch(t, mem, r, BatchMeta{Schema: s}, FinishInput{},
		record(t, mem, s, col{"v", table.Int64, []any{int64(1), nil, int64(2)}}))
	if res := findResult(t, results, RuleRowCount, ""); res.Status != StatusWarn || res.CheckedRows != 2 {
		t.Errorf("row_count after quarantine: %+v", res)
	}
}

func TestFreshness(t *testing.T) {
	cases := []struct {
		name   string
		typ    table.Type
		vals   []any
		maxAge string
		want   string
		obs    string
	}{
		{"timestamp fresh", table.Timestamp, []any{ts("2025-03-01 10:00:00"), ts("2025-03-01 20:00:00"), nil}, "6h", StatusPass,
			"newest 2025-03-01 20:00:00Z, 4h before the end of 2025-03-01"},
		{"timestamp stale", table.TimestampTZ, []any{ts("2025-02-28 10:00:00"), nil}, "36h", StatusWarn,
			"newest 2025-02-28 10:00:00Z, 38h before the end of 2025-03-01"},
		{"timestamp at the limit", table.Timestamp, []any{ts("2025-02-28 12:00:00")}, "36h", StatusPass, "36h before"},
		{"future", table.Timestamp, []any{ts("2025-03-02 02:00:00")}, "1h", StatusPass, "2h after the end of 2025-03-01"},
		{"date same day", table.Date, []any{day("2025-02-20"), day("2025-03-01")}, "1h", StatusPass,
			"newest 2025-03-01, 0s before the end of 2025-03-01"},
		{"date day before", table.Date, []any{day("2025-02-28")}, "23h", StatusWarn, "newest 2025-02-28, 24h before"},
		{"no value", table.Timestamp, []any{nil, nil}, "1h", StatusWarn, "no value"},
		{"not temporal", table.Int64, []any{int64(1)}, "1h", StatusMissingColumn, "column at is int64: freshness needs a date or timestamp column"},
		// a temporal column widened to text by a value of another form: the values that read as times count
		{"widened to text", table.String, []any{"2025-03-01 20:00:00", "2025-03-01T21:00:00Z", "yesterday", "2025-02-27", nil}, "6h", StatusPass,
			"newest 2025-03-01 21:00:00Z, 3h before the end of 2025-03-01"},
		{"text without a time", table.String, []any{"x", "2025-13-01"}, "1h", StatusWarn, "no value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			s := testSchema("t", col{"at", c.typ, nil})
			r := compile(t, "t", "table:\n  freshness: {column: at, max_age: "+c.maxAge+"}\n")
			_, _, results, _, _ := runBatch(t, mem, r, BatchMeta{Schema: s, ProcessDate: "2025-03-01"}, FinishInput{},
				record(t, mem, s, col{"at", c.typ, c.vals}))
			res := findResult(t, results, RuleFreshness, "at")
			if res.Status != c.want || !strings.Contains(res.Observed, c.obs) {
				t.Errorf("%s %q, want %s %q", res.Status, res.Observed, c.want, c.obs)
			}
		})
	}
}

// TestFreshnessDefault: a partner's default freshness rule applies to the tables that have its column only.
func TestFreshnessDefault(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	r, err := Compile("t", nil, parseQuality(t, "table:\n  freshness: {column: at, max_age: 1h}\n"))
	if err != nil {
		t.Fatal(err)
	}
	without := testSchema("t", col{"v", table.Int64, nil})
	_, _, results, _, _ := runBatch(t, mem, r, BatchMeta{Schema: without, ProcessDate: "2025-03-01"}, FinishInput{},
		record(t, mem, without, col{"v", table.Int64, []any{int64(1)}}))
	if len(results) != 0 {
		t.Errorf("results for a table without the column:%s", dump(results))
	}
	with := testSchema("t", col{"at", table.Timestamp, nil})
	_, _, results, _, _ = runBatch(t, mem, r, BatchMeta{Schema: with, ProcessDate: "2025-03-01"}, FinishInput{},
		record(t, mem, with, col{"at", table.Timestamp, []any{ts("2025-03-01 23:30:00")}}))
	if res := findResult(t, results, RuleFreshness, "at"); res.Status != StatusPass {
		t.Errorf("%+v", res)
	}
}

func TestSchemaChanges(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := testSchema("t", col{"a", table.Int64, nil}, col{"b", table.String, nil})
	defaults := parseQuality(t, "table:\n  schema: {removed: fail}\n")
	q := parseQuality(t, "table:\n  schema: {added: warn, widened: warn}\n")
	r, err := Compile("t", q, defaults)
	if err != nil {
		t.Fatal(err)
	}
	rec := record(t, mem, s, col{"a", table.Int64, []any{int64(1)}}, col{"b", table.String, []any{nil}})
	_, _, results, failed, _ := runBatch(t, mem, r, BatchMeta{Schema: s, Absent: []string{"b"}},
		FinishInput{SchemaAdded: []string{"c", "d"}}, rec)
	added := findResult(t, results, RuleSchemaAdded, "c,d")
	removed := findResult(t, results, RuleSchemaRemoved, "b") // BatchMeta.Absent when SchemaRemoved is nil
	widened := findResult(t, results, RuleSchemaWidened, "")
	if added.Status != StatusWarn || added.FailedRows != 2 || added.Observed != "2 column(s) added: c, d" {
		t.Errorf("added %+v", added)
	}
	if removed.Status != StatusFail || removed.Action != config.ActionFail {
		t.Errorf("removed %+v", removed)
	}
	if widened.Status != StatusPass || widened.Observed != "none" {
		t.Errorf("widened %+v", widened)
	}
	if len(failed) != 1 || failed[0].Rule != RuleSchemaRemoved {
		t.Errorf("failed %v", dump(failed))
	}
	// a sub-rule left out is not checked
	r2 := compile(t, "t", "table:\n  schema: {widened: fail}\n")
	_, _, results, failed, _ = runBatch(t, mem, r2, BatchMeta{Schema: s}, FinishInput{SchemaAdded: []string{"x"}, SchemaRemoved: []string{"y"}},
		record(t, mem, s, col{"a", table.Int64, []any{int64(1)}}, col{"b", table.String, []any{"z"}}))
	if len(results) != 1 || results[0].Rule != RuleSchemaWidened || len(failed) != 0 {
		t.Errorf("results %s", dump(results))
	}
}

// TestQuarantineShare: rows quarantined by rules plus those quarantined at parse, over the rows in; the default
// action is fail.
func TestQuarantineShare(t *testing.T) {
	s := testSchema("t", col{"v", table.Int64, nil})
	vals := make([]any, 100)
	for i := range vals {
		vals[i] = int64(i)
		if i%10 == 0 {
			vals[i] = nil // 10 quarantined by not_null
		}
	}
	cases := []struct {
		block     string
		rowsIn    int64
		other     int64
		want      string
		wantShare string
	}{
		{"{max_fraction: 0.1}", 0, 0, StatusPass, "10 of 100 rows quarantined (10%): 10 by rules, 0 at parse"},
		{"{max_fraction: 0.1}", 0, 5, StatusFail, "15 of 105 rows quarantined (14.29%): 10 by rules, 5 at parse"},
		{"{max_fraction: 0.15, action: warn}", 120, 5, StatusPass, "15 of 120 rows quarantined (12.5%)"},
		{"{max_fraction: 0.05, action: warn}", 120, 5, StatusWarn, "15 of 120"},
		{"{max_fraction: 0}", 0, 0, StatusFail, "10 of 100"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.block, c.rowsIn, c.other), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			r := compile(t, "t", "columns:\n  v: {not_null: true, action: quarantine}\ntable:\n  quarantine: "+c.block+"\n")
			_, _, results, failed, _ := runBatch(t, mem, r, BatchMeta{Schema: s}, FinishInput{RowsIn: c.rowsIn, QuarantinedOther: c.other},
				record(t, mem, s, col{"v", table.Int64, vals}))
			res := findResult(t, results, RuleQuarantine, "")
			if res.Status != c.want || !strings.HasPrefix(res.Observed, c.wantShare) {
				t.Errorf("%s %q, want %s %q", res.Status, res.Observed, c.want, c.wantShare)
			}
			if (c.want == StatusFail) != (len(failed) == 1) {
				t.Errorf("failed %v", failed)
			}
		})
	}
}

// TestVolume: baseline = median of the trailing days with data, band baseline·(1±max_change), insufficient
// history passes.
func TestVolume(t *testing.T) {
	change := func(f float64) *float64 { return &f }
	history := []DayTotal{
		{"2025-02-20", 5000},                                          // outside the 7 trailing days of 2025-03-08
		{"2025-03-01", 1000}, {"2025-03-02", 1200}, {"2025-03-03", 0}, // a day without data does not count
		{"2025-03-04", 900}, {"2025-03-05", 600}, {"2025-03-05", 500}, // two entries of one date add up: 1100
		{"2025-03-07", 1300},
		{"2025-03-08", 99999}, // the date itself is not history
		{"2025-03-09", 1},     // nor is a later one
	}
	// trailing days of 2025-03-08: 03-01 .. 03-07 → with data: 1000, 1200, 900, 1100, 1300 → median 1100
	rule := config.VolumeRule{TrailingDays: 7, MaxChange: change(0.2), MinHistory: 3}
	cases := []struct {
		rows     int64
		want     string
		expected string
	}{
		{1100, StatusPass, "baseline 1100 (median of 5 days with data in the 7 before), band [880, 1320] (±20%)"},
		{880, StatusPass, ""},
		{1320, StatusPass, ""},
		{879, StatusWarn, ""},
		{1321, StatusWarn, ""},
		{366, StatusWarn, ""}, // a third of the rows
	}
	for _, c := range cases {
		res, err := CheckVolume("t", rule, "2025-03-08", c.rows, history)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != c.want || (c.expected != "" && res.Expected != c.expected) || res.Kind != KindDate || res.Rule != RuleVolume {
			t.Errorf("%d rows: %s %q %q", c.rows, res.Status, res.Observed, res.Expected)
		}
	}
	// even count: mean of the two middle totals
	rule.Action = config.ActionFail
	res, _ := CheckVolume("t", rule, "2025-03-06", 100, history) // 02-27..03-05: 1000, 1200, 900, 1100 → (1000+1100)/2
	if !strings.HasPrefix(res.Expected, "baseline 1050 (median of 4 days") || res.Status != StatusFail {
		t.Errorf("even: %s %q", res.Status, res.Expected)
	}
	// insufficient history: pass, says so
	rule.MinHistory = 6
	res, _ = CheckVolume("t", rule, "2025-03-08", 1, history)
	if res.Status != StatusPass || !strings.HasPrefix(res.Observed, "insufficient history: 5 of 6 days with data") {
		t.Errorf("insufficient: %s %q", res.Status, res.Observed)
	}
	// defaults: 7 days, ±50%, 3 days
	res, _ = CheckVolume("t", config.VolumeRule{}, "2025-03-08", 500, history)
	if res.Status != StatusWarn || !strings.Contains(res.Expected, "band [550, 1650] (±50%)") {
		t.Errorf("defaults: %s %q", res.Status, res.Expected)
	}
	if _, err := CheckVolume("t", rule, "March 8", 1, history); err == nil {
		t.Error("bad date accepted")
	}
	// through Rules
	r := compile(t, "t", "table:\n  volume: {max_change: 0.2}\n")
	if res, ok, err := r.Volume("2025-03-08", 1100, history); !ok || err != nil || res.Status != StatusPass || res.Table != "t" {
		t.Errorf("Rules.Volume: %+v %v %v", res, ok, err)
	}
	if _, ok, _ := compile(t, "t", "table:\n  row_count: {min: 1}\n").Volume("2025-03-08", 1, nil); ok {
		t.Error("volume result without a volume rule")
	}
	if d, ok := r.VolumeTrailingDays(); !ok || d != config.DefaultVolumeTrailingDays {
		t.Errorf("VolumeTrailingDays %d %v", d, ok)
	}
	if d, ok := compile(t, "t", "table:\n  volume: {trailing_days: 3, min_history: 2}\n").VolumeTrailingDays(); !ok || d != 3 {
		t.Errorf("VolumeTrailingDays %d %v", d, ok)
	}
	if _, ok := compile(t, "t", "table:\n  row_count: {min: 1}\n").VolumeTrailingDays(); ok {
		t.Error("trailing days without a volume rule")
	}
	// volume over a history of DayTotal built from 30 seeded days
	var hist []DayTotal
	base := day("2025-01-01")
	for i := range 30 {
		hist = append(hist, DayTotal{base.AddDate(0, 0, i).Format(time.DateOnly), int64(1000 + 10*(i%5))})
	}
	res, _ = CheckVolume("t", config.VolumeRule{MaxChange: change(0.1)}, "2025-01-31", 1000, hist)
	// last 7 days: i=23..29 → 1030,1040,1000,1010,1020,1030,1040 → median 1030
	if res.Status != StatusPass || !strings.HasPrefix(res.Expected, "baseline 1030 (median of 7 days") {
		t.Errorf("seeded: %s %q", res.Status, res.Expected)
	}
}
