package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// qualityExample is the contract of docs/DATA-QUALITY.md.
const qualityExample = `
partners:
  - name: acme
    quality_defaults:
      table:
        schema: {removed: fail}
    tables:
      hotel_rates:
        quality:
          key: [hotel_id, stay_date]
          columns:
            price:    {not_null: true, range: {min: 0, max: 100000}, action: quarantine}
            currency: {allowed: [USD, EUR, KRW]}
            email:    {regex: '^[^@\s]+@[^@\s]+$', mostly: 0.99}
            code:     {unique: true, max_length: 12}
            stay_date: {range: {min: 2024-01-01, max: "2030-12-31T23:59:59Z"}}
            rooms:    {allowed: [1, 2, 3]}
          table:
            row_count: {min: 1, max: 5000000}
            volume:    {trailing_days: 7, max_change: 0.5, min_history: 3}
            freshness: {column: observed_at, max_age: 36h}
            schema:    {added: warn, removed: fail, widened: warn}
            quarantine: {max_fraction: 0.05, action: fail}
`

func loadString(t *testing.T, s string) (*File, error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return Load(file)
}

func TestQualityExample(t *testing.T) {
	f, err := loadString(t, qualityExample)
	if err != nil {
		t.Fatal(err)
	}
	p := f.Partner("acme")
	if p.QualityDefaults == nil || p.QualityDefaults.Table.Schema.Removed != ActionFail {
		t.Fatalf("defaults: %+v", p.QualityDefaults)
	}
	q := p.Tables["hotel_rates"].Quality
	if q == nil {
		t.Fatal("no quality block")
	}
	if got := strings.Join(q.Key.Columns, ","); got != "hotel_id,stay_date" || q.Key.Action != "" {
		t.Errorf("key %+v", q.Key)
	}
	price := q.Columns["price"]
	if !price.NotNull || price.Range.Min != "0" || price.Range.Max != "100000" || price.Action != ActionQuarantine {
		t.Errorf("price %+v %+v", price, price.Range)
	}
	if got := strings.Join(q.Columns["currency"].Allowed, ","); got != "USD,EUR,KRW" {
		t.Errorf("currency allowed %q", got)
	}
	if e := q.Columns["email"]; e.Regex != `^[^@\s]+@[^@\s]+$` || *e.Mostly != 0.99 {
		t.Errorf("email %+v", e)
	}
	if c := q.Columns["code"]; !c.Unique || *c.MaxLength != 12 {
		t.Errorf("code %+v", c)
	}
	if r := q.Columns["stay_date"].Range; r.Min != "2024-01-01" || r.Max != "2030-12-31T23:59:59Z" || r.Kind() != BoundTime {
		t.Errorf("stay_date range %+v", r)
	}
	if got := strings.Join(q.Columns["rooms"].Allowed, ","); got != "1,2,3" {
		t.Errorf("rooms allowed %q", got)
	}
	tr := q.Table
	if *tr.RowCount.Min != 1 || *tr.RowCount.Max != 5000000 {
		t.Errorf("row_count %+v", tr.RowCount)
	}
	if tr.Volume.Days() != 7 || tr.Volume.Change() != 0.5 || tr.Volume.History() != 3 {
		t.Errorf("volume %+v", tr.Volume)
	}
	if tr.Freshness.Column != "observed_at" || tr.Freshness.MaxAge.Duration != 36*time.Hour {
		t.Errorf("freshness %+v", tr.Freshness)
	}
	if s := tr.Schema; s.Added != ActionWarn || s.Removed != ActionFail || s.Widened != ActionWarn {
		t.Errorf("schema %+v", s)
	}
	if r := tr.Quarantine; *r.MaxFraction != 0.05 || r.Action != ActionFail {
		t.Errorf("quarantine %+v", r)
	}
	if q.Line() == 0 {
		t.Error("quality block has no line")
	}
}

func TestQualityKeyForms(t *testing.T) {
	f, err := loadString(t, `
partners:
  - name: a
    tables:
      t:
        quality:
          key: {columns: [a, b], action: quarantine}
`)
	if err != nil {
		t.Fatal(err)
	}
	k := f.Partner("a").Tables["t"].Quality.Key
	if strings.Join(k.Columns, ",") != "a,b" || k.Action != ActionQuarantine {
		t.Fatalf("%+v", k)
	}
}

func TestVolumeDefaults(t *testing.T) {
	v := &VolumeRule{}
	if v.Days() != 7 || v.History() != 3 || v.Change() != 0.5 {
		t.Fatalf("%d %d %v", v.Days(), v.History(), v.Change())
	}
}

// TestQualityErrors: every invalid block is refused at load with a message naming the problem and its line.
func TestQualityErrors(t *testing.T) {
	wrap := func(block string) string {
		return "partners:\n  - name: acme\n    tables:\n      rates:\n        quality:\n" + block
	}
	cases := []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"unknown column rule", wrap("          columns:\n            price: {not_nul: true}\n"),
			[]string{"line 7", `unknown column rule "not_nul"`, `did you mean "not_null"`, "known: not_null, unique"}},
		{"unknown table rule", wrap("          table:\n            rowcount: {min: 1}\n"),
			[]string{"line 7", `unknown table rule "rowcount"`, `did you mean "row_count"`}},
		{"unknown quality key", wrap("          colums: {}\n"),
			[]string{"line 6", `unknown quality key "colums"`, `did you mean "columns"`}},
		{"unknown range bound", wrap("          columns:\n            p: {range: {minimum: 0}}\n"),
			[]string{`unknown range bound "minimum"`}},
		{"rule not a mapping", wrap("          columns:\n            p: [not_null]\n"),
			[]string{"line 7", "column rule must be a mapping"}},
		{"bad regex", wrap("          columns:\n            email: {regex: '^[a-z'}\n"),
			[]string{"table rates", "line 7", "column email", "regex", "missing closing ]"}},
		{"unknown action", wrap("          columns:\n            p: {not_null: true, action: drop}\n"),
			[]string{"line 7", "column p", `unknown action "drop"`, "warn or quarantine or fail"}},
		{"unknown table action", wrap("          table:\n            row_count: {min: 1, action: quarantine}\n"),
			[]string{"line 7", "row_count", `unknown action "quarantine"`, "warn or fail"}},
		{"unknown schema action", wrap("          table:\n            schema: {removed: block}\n"),
			[]string{"schema removed", `unknown action "block"`}},
		{"mostly zero", wrap("          columns:\n            p: {not_null: true, mostly: 0}\n"),
			[]string{"line 7", "mostly must be in (0, 1], got 0"}},
		{"mostly above one", wrap("          columns:\n            p: {not_null: true, mostly: 1.5}\n"),
			[]string{"mostly must be in (0, 1], got 1.5"}},
		{"mostly with quarantine", wrap("          columns:\n            p: {not_null: true, mostly: 0.9, action: quarantine}\n"),
			[]string{"mostly does not quarantine rows"}},
		{"range min above max", wrap("          columns:\n            p: {range: {min: 10, max: 5}}\n"),
			[]string{"line 7", "column p", "range: min 10 is greater than max 5"}},
		{"range dates min above max", wrap("          columns:\n            d: {range: {min: 2025-01-02, max: 2025-01-01}}\n"),
			[]string{"min 2025-01-02 is greater than max 2025-01-01"}},
		{"range mixed kinds", wrap("          columns:\n            d: {range: {min: 0, max: 2025-01-01}}\n"),
			[]string{"not both numbers or both dates/timestamps"}},
		{"range bad bound", wrap("          columns:\n            d: {range: {min: abc}}\n"),
			[]string{"range min", `"abc" is not a number, a date`}},
		{"range empty", wrap("          columns:\n            d: {range: {}}\n"),
			[]string{"range: give min, max or both"}},
		{"max_length zero", wrap("          columns:\n            d: {max_length: 0}\n"),
			[]string{"max_length must be at least 1"}},
		{"no rule", wrap("          columns:\n            d: {action: warn}\n"),
			[]string{"column d: no rule"}},
		{"empty allowed", wrap("          columns:\n            d: {allowed: []}\n"),
			[]string{"allowed: empty list"}},
		{"max_fraction above one", wrap("          table:\n            quarantine: {max_fraction: 1.2}\n"),
			[]string{"line 7", "quarantine: max_fraction must be in [0, 1], got 1.2"}},
		{"max_fraction negative", wrap("          table:\n            quarantine: {max_fraction: -0.1}\n"),
			[]string{"max_fraction must be in [0, 1], got -0.1"}},
		{"max_fraction missing", wrap("          table:\n            quarantine: {action: warn}\n"),
			[]string{"max_fraction is required"}},
		{"negative max_age", wrap("          table:\n            freshness: {column: at, max_age: -1h}\n"),
			[]string{"line 7", "freshness: max_age must not be negative, got -1h0m0s"}},
		{"bad max_age", wrap("          table:\n            freshness: {column: at, max_age: 1d}\n"),
			[]string{`duration "1d"`}},
		{"freshness without column", wrap("          table:\n            freshness: {max_age: 1h}\n"),
			[]string{"freshness: column is required"}},
		{"negative trailing days", wrap("          table:\n            volume: {trailing_days: -1}\n"),
			[]string{"trailing_days must be in [1, 366], got -1"}},
		{"min_history above trailing days", wrap("          table:\n            volume: {trailing_days: 3, min_history: 5}\n"),
			[]string{"min_history 5 is more than trailing_days 3"}},
		{"zero max_change", wrap("          table:\n            volume: {max_change: 0}\n"),
			[]string{"max_change must be greater than 0"}},
		{"row_count min above max", wrap("          table:\n            row_count: {min: 10, max: 1}\n"),
			[]string{"row_count: min 10 is greater than max 1"}},
		{"row_count negative", wrap("          table:\n            row_count: {min: -1}\n"),
			[]string{"row_count: min must not be negative"}},
		{"key empty", wrap("          key: []\n"),
			[]string{"line 6", "key: no column"}},
		{"key empty column", wrap("          key: [a, '']\n"),
			[]string{"key: empty column name"}},
		{"key duplicate column", wrap("          key: [a, a]\n"),
			[]string{`key: column "a" twice`}},
		{"key scalar", wrap("          key: id\n"),
			[]string{"line 6", "key must be a list of columns ([a, b]) or {columns: [a, b], action: …}, got \"id\""}},
		{"key unknown option", wrap("          key: {cols: [a]}\n"),
			[]string{`unknown key option "cols"`}},
		{"not_null not a bool", wrap("          columns:\n            p: {not_null: maybe}\n"),
			[]string{"line 7", "cannot unmarshal", "maybe"}},
		{"defaults", "partners:\n  - name: acme\n    quality_defaults:\n      table:\n        schema: {removed: maybe}\n",
			[]string{"partner acme: quality_defaults", "line 5", `schema removed: unknown action "maybe"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadString(t, c.yaml)
			if err == nil {
				t.Fatalf("accepted:\n%s", c.yaml)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestParseBound(t *testing.T) {
	cases := []struct {
		in   string
		kind BoundKind
		us   int64
		f    float64
	}{
		{"0", BoundNumber, 0, 0},
		{"-2.5", BoundNumber, 0, -2.5},
		{"1e3", BoundNumber, 0, 1000},
		{"1970-01-02", BoundTime, 86400e6, 0},
		{"1970-01-01T00:00:01Z", BoundTime, 1e6, 0},
		{"1970-01-01 00:00:01.5", BoundTime, 1.5e6, 0},
		{"1970-01-01T02:00:00+02:00", BoundTime, 0, 0},
	}
	for _, c := range cases {
		b, err := ParseBound(c.in)
		if err != nil || b.Kind != c.kind || b.Micros != c.us || b.Float != c.f {
			t.Errorf("ParseBound(%q) = %+v, %v", c.in, b, err)
		}
	}
	for _, bad := range []string{"", "abc", "NaN", "inf", "2025-13-01"} {
		if _, err := ParseBound(bad); err == nil {
			t.Errorf("ParseBound(%q) accepted", bad)
		}
	}
}

// TestQualityMarshal: a block written by yaml.Marshal reads back the same (used by quality.Suggest's rendering).
func TestQualityMarshal(t *testing.T) {
	f, err := loadString(t, qualityExample)
	if err != nil {
		t.Fatal(err)
	}
	q := f.Partner("acme").Tables["hotel_rates"].Quality
	out, err := yaml.Marshal(q)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"key: [hotel_id, stay_date]",
		"price: {not_null: true, range: {min: 0, max: 100000}, action: quarantine}",
		"stay_date: {range: {min: 2024-01-01, max: \"2030-12-31T23:59:59Z\"}}",
		"currency: {allowed: [USD, EUR, KRW]}",
		"freshness: {column: observed_at, max_age: 36h}",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("marshalled block lacks %q:\n%s", want, out)
		}
	}
	var back Quality
	if err := yaml.Unmarshal(out, &back); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if err := back.Validate(); err != nil {
		t.Fatal(err)
	}
	again, _ := yaml.Marshal(&back)
	if string(again) != string(out) {
		t.Errorf("not stable:\n%s\n---\n%s", out, again)
	}
}

// TestDataQualityDocExample: the example of docs/DATA-QUALITY.md loads.
func TestDataQualityDocExample(t *testing.T) {
	f, err := loadString(t, partnerExample(t, "../../docs/DATA-QUALITY.md"))
	if err != nil {
		t.Fatalf("docs/DATA-QUALITY.md example: %v", err)
	}
	if q := f.Partner("acme").Tables["hotel_rates"].Quality; q == nil || len(q.Columns) != 4 || q.Table.Quarantine == nil {
		t.Fatalf("example read as %+v", q)
	}
}

// partnerExample returns the first partner YAML example (a ```yaml block starting with "partners:") of a document.
func partnerExample(t *testing.T, doc string) string {
	t.Helper()
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```yaml\npartners:")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatalf("no partner YAML example in %s", doc)
	}
	return "partners:" + example
}
