package quality

import (
	"errors"
	"fmt"
	"sort"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/table"
)

// CheckSchema reports, all at once, the rules of a table's quality block q that do not fit the table's schema s:
// a rule naming a column s lacks, range with number bounds on a date, timestamp or bool column (or date bounds on
// a number or bool column), max_length or regex on a column that is not string, an allowed value that is not of
// the column's type, freshness on a number or bool column. A column of type null (no value seen yet) fits every
// rule, and so does a string column for range and freshness: a number or temporal column becomes string when a
// value of another kind arrives (the data's doing, not the configuration's), and those rules then read each value
// as a number or a time (a value that is not one is outside the range). Meant for start-up, when the registry
// already knows the table; nil s (a table not seen yet) or q is nothing to check.
//
// Give it the table's own block, not the partner's quality_defaults: a default rule applies only to the tables
// that have its column, so its column being absent is not an error. At run time a rule that does not fit the
// batch is recorded with status missing_column rather than failing.
func CheckSchema(partner, tableName string, q *config.Quality, s *table.Schema) error {
	if q == nil || s == nil {
		return nil
	}
	types := map[string]table.Type{}
	for _, c := range s.Columns {
		types[c.Name] = c.Type
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("partner %s table %s: quality: "+format, append([]any{partner, tableName}, args...)...))
	}
	if k := q.Key; k != nil {
		for _, c := range k.Columns {
			if _, ok := types[c]; !ok {
				bad("key column %s is not in the table (schema v%d)", c, s.Version)
			}
		}
	}
	names := make([]string, 0, len(q.Columns))
	for n := range q.Columns {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		c := q.Columns[name]
		t, ok := types[name]
		if !ok {
			bad("column %s is not in the table (schema v%d)", name, s.Version)
			continue
		}
		if c == nil || t == table.Null {
			continue
		}
		if r := c.Range; r != nil {
			switch kind := r.Kind(); {
			case t == table.String:
			case kind == config.BoundNumber && t != table.Int64 && t != table.Float64:
				bad("column %s is %s: range with number bounds needs an int64 or float64 column", name, t)
			case kind == config.BoundTime && t != table.Date && t != table.Timestamp && t != table.TimestampTZ:
				bad("column %s is %s: range with date bounds needs a date or timestamp column", name, t)
			}
		}
		if c.MaxLength != nil && t != table.String {
			bad("column %s is %s: max_length needs a string column", name, t)
		}
		if c.Regex != "" && t != table.String {
			bad("column %s is %s: regex needs a string column (it is not applied to numbers or dates as text)", name, t)
		}
		if t != table.String {
			k := kindOfType(t)
			for _, v := range c.Allowed {
				if _, ok := parseAllowed(v, k); !ok {
					bad("column %s is %s: allowed value %q is not a %s", name, t, v, t)
				}
			}
		}
	}
	if q.Table != nil {
		if f := q.Table.Freshness; f != nil {
			switch t, ok := types[f.Column]; {
			case !ok:
				bad("freshness column %s is not in the table (schema v%d)", f.Column, s.Version)
			case t != table.Null && t != table.String && t != table.Date && t != table.Timestamp && t != table.TimestampTZ:
				bad("freshness column %s is %s: it needs a date or timestamp column", f.Column, t)
			}
		}
	}
	return errors.Join(errs...)
}

// kindOfType is how a column of table type t is read.
func kindOfType(t table.Type) valKind {
	return kindOf(t.Arrow())
}
