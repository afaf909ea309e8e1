package quality

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.yaml.in/yaml/v3"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/table"
)

// col is a test column: its values are Go values of the type's kind (string, int64, float64, bool, time.Time for
// date and timestamps) or nil for null.
type col struct {
	name string
	typ  table.Type
	vals []any
}

// testSchema is the registry schema of cols.
func testSchema(name string, cols ...col) *table.Schema {
	s := &table.Schema{Table: name, Version: 1}
	for _, c := range cols {
		s.Columns = append(s.Columns, table.Column{Name: c.name, Type: c.typ, AddedIn: 1})
	}
	return s
}

// record builds a record batch of cols under s.Arrow() (as the merger's Builder does).
func record(t testing.TB, mem memory.Allocator, s *table.Schema, cols ...col) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(mem, s.Arrow())
	defer b.Release()
	n := -1
	for i, c := range cols {
		if n >= 0 && len(c.vals) != n {
			t.Fatalf("column %s has %d values, want %d", c.name, len(c.vals), n)
		}
		n = len(c.vals)
		fb := b.Field(i)
		for _, v := range c.vals {
			if v == nil {
				fb.AppendNull()
				continue
			}
			switch fb := fb.(type) {
			case *array.StringBuilder:
				fb.Append(v.(string))
			case *array.Int64Builder:
				fb.Append(v.(int64))
			case *array.Float64Builder:
				fb.Append(v.(float64))
			case *array.BooleanBuilder:
				fb.Append(v.(bool))
			case *array.Date32Builder:
				fb.Append(arrow.Date32FromTime(v.(time.Time)))
			case *array.TimestampBuilder:
				fb.Append(arrow.Timestamp(v.(time.Time).UnixMicro()))
			default:
				t.Fatalf("builder %T", fb)
			}
		}
	}
	return b.NewRecordBatch()
}

// parseQuality reads a quality block as the configuration loader does (strict keys) and validates it.
func parseQuality(t testing.TB, y string) *config.Quality {
	t.Helper()
	var q config.Quality
	dec := yaml.NewDecoder(bytes.NewReader([]byte(y)))
	dec.KnownFields(true)
	if err := dec.Decode(&q); err != nil {
		t.Fatalf("parse %q: %v", y, err)
	}
	if err := q.Validate(); err != nil {
		t.Fatalf("validate %q: %v", y, err)
	}
	return &q
}

func compile(t testing.TB, tableName, y string) *Rules {
	t.Helper()
	r, err := Compile(tableName, parseQuality(t, y), nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// findResult returns the result of rule on column.
func findResult(t testing.TB, results []Result, rule, column string) Result {
	t.Helper()
	for _, r := range results {
		if r.Rule == rule && r.Column == column {
			return r
		}
	}
	t.Fatalf("no result %s on %q in %s", rule, column, dump(results))
	return Result{}
}

func dump(results []Result) string {
	var b bytes.Buffer
	for _, r := range results {
		fmt.Fprintf(&b, "\n  %s %s %s %s checked=%d failed=%d observed=%q expected=%q", r.Kind, r.Rule, r.Column, r.Status,
			r.CheckedRows, r.FailedRows, r.Observed, r.Expected)
	}
	return b.String()
}

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func ts(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return t
}

// runBatch checks recs (released here) in one Batch and returns what Check kept (as Go rows of column 0..n, via
// formatValue), the failures and Finish's output.
func runBatch(t testing.TB, mem memory.Allocator, r *Rules, meta BatchMeta, in FinishInput, recs ...arrow.RecordBatch) (kept [][]string, failures [][]RowFailure, results, failed []Result, profiles []Profile) {
	t.Helper()
	b := r.NewBatch(mem, meta)
	for _, rec := range recs {
		keep, q, err := b.Check(rec)
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
		for i := range int(keep.NumRows()) {
			row := make([]string, keep.NumCols())
			for j := range row {
				row[j] = formatValue(keep.Column(j), i)
			}
			kept = append(kept, row)
		}
		keep.Release()
		failures = append(failures, q)
	}
	results, failed, profiles = b.Finish(in)
	return kept, failures, results, failed, profiles
}
