package quality

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/table"
)

var suggestCategories = []string{"bike", "bus", "car", "ferry", "train", "tram"}

// dayBatch is one day's batch of the Suggest history: id (unique text), amount (≥ 0), qty (1..20), category
// (6 values), note (sparse free text), at (a timestamp of the day). Defects, when asked for, are planted as the
// data generator's --defects does: an empty id every 97th row, amount -1 every 101st, an unexpected category
// every 131st, and a third of the rows.
func dayBatch(d time.Time, seed uint64, defects bool) []col {
	r := rand.New(rand.NewPCG(seed, 99))
	n := 2000 + r.IntN(100) - 50
	if defects {
		n /= 3
	}
	id, amount, qty, category, note, at := make([]any, n), make([]any, n), make([]any, n), make([]any, n), make([]any, n), make([]any, n)
	for i := range n {
		id[i] = fmt.Sprintf("%s-%05d", d.Format("20060102"), i)
		amount[i] = 5 + float64(r.IntN(49500))/100
		qty[i] = int64(1 + r.IntN(20))
		category[i] = suggestCategories[r.IntN(len(suggestCategories))]
		if r.IntN(4) == 0 {
			note[i] = fmt.Sprintf("note %d", r.IntN(1000000))
		}
		at[i] = d.Add(time.Duration(r.IntN(86400)) * time.Second)
		if defects {
			if i%97 == 0 {
				id[i] = nil
			}
			if i%101 == 0 {
				amount[i] = -1.0
			}
			if i%131 == 0 {
				category[i] = "hovercraft"
			}
		}
	}
	return []col{{"id", table.String, id}, {"amount", table.Float64, amount}, {"qty", table.Int64, qty},
		{"category", table.String, category}, {"note", table.String, note}, {"at", table.Timestamp, at}}
}

func TestSuggest(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := testSchema("trips", dayBatch(day("2025-03-01"), 0, false)...)
	none, _ := Compile("trips", nil, nil)

	// seven days of history, profiled as the engine profiles every batch
	var history []Profile
	var totals []DayTotal
	days := make([][]col, 7)
	for i := range days {
		d := day("2025-03-01").AddDate(0, 0, i)
		days[i] = dayBatch(d, uint64(i), false)
		_, _, _, _, p := runBatch(t, mem, none, BatchMeta{ArchiveID: "arch" + fmt.Sprint(i), ProcessDate: d.Format(time.DateOnly), BatchID: "1", Schema: s},
			FinishInput{}, record(t, mem, s, days[i]...))
		history = append(history, p...)
		totals = append(totals, DayTotal{d.Format(time.DateOnly), p[0].Rows})
	}
	q := Suggest(history)

	// what was suggested
	if q.Key == nil || !slices.Equal(q.Key.Columns, []string{"id"}) {
		t.Errorf("key %+v", q.Key)
	}
	if c := q.Columns["category"]; c == nil || !slices.Equal(c.Allowed, suggestCategories) || !c.NotNull {
		t.Errorf("category %+v", c)
	}
	if c := q.Columns["amount"]; c == nil || !c.NotNull || c.Range == nil || c.Range.Min != "0" {
		t.Errorf("amount %+v %+v", c, c.Range)
	} else if lo, hi := c.Range.Min, c.Range.Max; lo != "0" || hi != "550" { // 5..500, margin 49.5 → step 10
		t.Errorf("amount range [%s, %s]", lo, hi)
	}
	if c := q.Columns["qty"]; c == nil || c.Range == nil || c.Range.Min != "0" || c.Range.Max != "22" {
		t.Errorf("qty %+v", c)
	}
	if c := q.Columns["note"]; c != nil {
		t.Errorf("note has nulls and many values, got rules %+v", c)
	}
	if c := q.Columns["at"]; c == nil || !c.NotNull || c.Range != nil || c.Unique {
		t.Errorf("at %+v", c) // timestamps are not key-like nor ranged
	}
	if q.Table == nil || q.Table.RowCount == nil || q.Table.Volume == nil {
		t.Fatalf("table rules %+v", q.Table)
	}
	if v := q.Table.Volume; v.Change() != 0.2 || v.History() != 3 || v.Days() != 7 {
		t.Errorf("volume %+v", v)
	}
	if err := q.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := CheckSchema("p", "trips", q, s); err != nil {
		t.Fatal(err)
	}

	// rendered as a quality: block, it loads back through the strict configuration loader
	y, err := RenderYAML(q)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("suggested:\n%s", y)
	cfg := "partners:\n  - name: p\n    tables:\n      trips:\n" + indent(string(y), "        ")
	file := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := config.Load(file)
	if err != nil {
		t.Fatalf("%v\n%s", err, cfg)
	}
	loaded := f.Partner("p").Tables["trips"].Quality
	if y2, _ := RenderYAML(loaded); !bytes.Equal(y, y2) {
		t.Errorf("rendering not stable:\n%s\n---\n%s", y, y2)
	}

	// the suggested rules hold on the history they came from
	rules, err := Compile("trips", loaded, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, cols := range days {
		d := day("2025-03-01").AddDate(0, 0, i).Format(time.DateOnly)
		_, _, results, _, _ := runBatch(t, mem, rules, BatchMeta{ProcessDate: d, Schema: s}, FinishInput{}, record(t, mem, s, cols...))
		for _, res := range results {
			if res.Status != StatusPass {
				t.Errorf("%s: %s %s %s %q", d, res.Rule, res.Column, res.Status, res.Observed)
			}
		}
		vol, _, err := rules.Volume(d, totals[i].Rows, totals[:i])
		if err != nil || vol.Status != StatusPass {
			t.Errorf("%s: volume %s %q %q", d, vol.Status, vol.Observed, vol.Expected)
		}
	}

	// and catch the defects planted into a later batch
	bad := dayBatch(day("2025-03-08"), 8, true)
	n := len(bad[0].vals)
	var nullIDs, negative, unexpected int64
	for i := range n {
		if bad[0].vals[i] == nil {
			nullIDs++
		}
		if bad[1].vals[i].(float64) < 0 {
			negative++
		}
		if !slices.Contains(suggestCategories, bad[3].vals[i].(string)) {
			unexpected++
		}
	}
	_, _, results, _, _ := runBatch(t, mem, rules, BatchMeta{ProcessDate: "2025-03-08", Schema: s}, FinishInput{}, record(t, mem, s, bad...))
	for _, c := range []struct {
		rule, column string
		failed       int64
	}{
		{RuleKey, "id", nullIDs},
		{RuleRange, "amount", negative},
		{RuleAllowed, "category", unexpected},
		{RuleRowCount, "", -1},
	} {
		res := findResult(t, results, c.rule, c.column)
		if res.Status != StatusWarn || (c.failed >= 0 && res.FailedRows != c.failed) {
			t.Errorf("%s %s: %s failed %d (want warn, %d): %q", c.rule, c.column, res.Status, res.FailedRows, c.failed, res.Observed)
		}
	}
	vol, _, _ := rules.Volume("2025-03-08", int64(n), totals)
	if vol.Status != StatusWarn {
		t.Errorf("a third of the rows: volume %s %q %q", vol.Status, vol.Observed, vol.Expected)
	}
}

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = pre + l
	}
	return strings.Join(lines, "\n") + "\n"
}

func TestSuggestEdgeCases(t *testing.T) {
	if q := Suggest(nil); q.Key != nil || q.Columns != nil && len(q.Columns) > 0 || q.Table != nil {
		t.Errorf("empty history: %+v", q)
	}
	// a constant column, negative numbers, a column that widened (latest type wins)
	p := func(date, column, typ, lo, hi string, rows, nulls, distinct int64) Profile {
		return Profile{Table: "t", ProcessDate: date, BatchID: "1", Column: column, Type: typ, Min: lo, Max: hi, Rows: rows, Nulls: nulls, Distinct: distinct}
	}
	q := Suggest([]Profile{
		p("2025-01-01", "c", "int64", "7", "7", 10, 0, 1),
		p("2025-01-01", "neg", "float64", "-2.5", "3.25", 10, 0, 5),
		p("2025-01-01", "w", "int64", "1", "2", 10, 0, 2),
		p("2025-01-02", "c", "int64", "7", "7", 10, 0, 1),
		p("2025-01-02", "neg", "float64", "-1", "1", 10, 2, 5),
		p("2025-01-02", "w", "string", "a", "b", 10, 0, 2),
	})
	if r := q.Columns["c"].Range; r.Min != "6" || r.Max != "8" {
		t.Errorf("constant column range %+v", r)
	}
	if r := q.Columns["neg"].Range; r.Min != "-3.1" || r.Max != "3.9" || q.Columns["neg"].NotNull {
		t.Errorf("negative range %+v", q.Columns["neg"])
	}
	if r := q.Columns["w"]; r.Range != nil || !r.NotNull {
		t.Errorf("widened column judged as int64: %+v", r)
	}
	if q.Table.Volume != nil || *q.Table.RowCount.Min != 5 || *q.Table.RowCount.Max != 20 {
		t.Errorf("table %+v", q.Table.RowCount)
	}
	// exact counts: one duplicate in a small batch is not key-like; an empty batch leaves no row_count minimum
	q = Suggest([]Profile{
		p("2025-01-01", "id", "int64", "1", "100", 100, 0, 99),
		p("2025-01-01", "id2", "int64", "1", "100", 100, 0, 100),
		p("2025-01-02", "id", "int64", "1", "100", 0, 0, 0),
		p("2025-01-02", "id2", "int64", "1", "100", 0, 0, 0),
	})
	if q.Key == nil || q.Key.Columns[0] != "id2" || q.Columns["id"].Unique {
		t.Errorf("key %+v, id %+v", q.Key, q.Columns["id"])
	}
	if rc := q.Table.RowCount; rc.Min != nil || *rc.Max != 200 {
		t.Errorf("row_count %+v", rc)
	}
}
