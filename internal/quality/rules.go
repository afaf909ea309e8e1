package quality

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/sluice-dev/sluice/internal/config"
)

// Rule names, as Result.Rule and RowFailure.Rule hold them.
const (
	RuleNotNull   = "not_null"
	RuleUnique    = "unique"
	RuleAllowed   = "allowed"
	RuleRange     = "range"
	RuleRegex     = "regex"
	RuleMaxLength = "max_length"
	RuleKey       = "key"

	RuleRowCount      = "row_count"
	RuleFreshness     = "freshness"
	RuleSchemaAdded   = "schema.added"
	RuleSchemaRemoved = "schema.removed"
	RuleSchemaWidened = "schema.widened"
	RuleQuarantine    = "quarantine"

	RuleVolume = "volume"
)

// Result kinds.
const (
	KindRow   = "row"   // a rule checked on every row of the batch
	KindTable = "table" // a rule about the batch as a whole
	KindDate  = "date"  // a rule about a process date (volume)
)

// Result statuses.
const (
	StatusPass          = "pass"           // the rule holds
	StatusWarn          = "warn"           // it does not, and its action is warn (or quarantine: the rows were set aside)
	StatusFail          = "fail"           // it does not, and its action is fail: the batch must not be committed
	StatusMissingColumn = "missing_column" // the batch lacks the column (or its type no longer fits the rule)
)

// DefaultMaxSetBytes bounds the hash set of one unique or key rule (see Rules.MaxSetBytes).
const DefaultMaxSetBytes = 16 << 20

// Rules are a table's compiled data-quality rules: its quality block merged over the partner's defaults. They are
// immutable once compiled and may be shared by concurrent batches.
type Rules struct {
	table string
	row   []*rowRule // key, then columns by name, each column's rules in ruleOrder
	tbl   tableRules

	// MaxSetBytes bounds the memory of each unique and key rule's hash set (8 bytes per slot, at most 3/4 full:
	// DefaultMaxSetBytes = 16 MiB holds 1,572,864 distinct values). Beyond it new values are only looked up, not
	// added, and the result says so. Set it before NewBatch.
	MaxSetBytes int64
}

// tableRules are the table rules after merging the defaults.
type tableRules struct {
	rowCount  *config.RowCountRule
	volume    *config.VolumeRule
	freshness *config.FreshnessRule
	// freshnessLenient: the freshness rule is the partner's default; a table without its column has no result
	freshnessLenient bool
	schema           config.SchemaRule
	quarantine       *config.QuarantineRule
}

// rowRule is one row rule of one column (or of the key's columns).
type rowRule struct {
	name    string
	columns []string
	action  string  // warn, quarantine or fail
	mostly  float64 // 0: not set
	lenient bool    // from the partner's defaults: a table without the column has no result

	allowed []string
	lo, hi  *config.Bound
	re      *regexp.Regexp
	maxLen  int
}

// column is the rule's column, or the key's columns joined by commas.
func (r *rowRule) column() string { return strings.Join(r.columns, ",") }

// setRule: the rule needs the batch-wide hash set and is checked after the others.
func (r *rowRule) setRule() bool { return r.name == RuleUnique || r.name == RuleKey }

// quarantines: failing rows are removed from what is written.
func (r *rowRule) quarantines() bool { return r.action == config.ActionQuarantine && r.mostly == 0 }

// Table returns the table the rules were compiled for.
func (r *Rules) Table() string { return r.table }

// Empty reports whether there is no rule at all (profiles are still computed).
func (r *Rules) Empty() bool {
	t := r.tbl
	return len(r.row) == 0 && t.rowCount == nil && t.volume == nil && t.freshness == nil && t.quarantine == nil &&
		t.schema == (config.SchemaRule{})
}

// Compile merges a table's quality block q over the partner's defaults (either may be nil) and compiles the
// result. Merging: the table's key replaces the defaults' key; a column block of the table replaces the defaults'
// block of that column (whole); each table rule of the table replaces the defaults' rule of that name (schema:
// each of added, removed, widened). Rules that come from the defaults (key, column rules, freshness) apply only to
// tables that have their columns: a batch without them records nothing for them, where a table's own rule records
// missing_column.
// Both blocks are validated (config.Quality.Validate).
func Compile(tableName string, q, defaults *config.Quality) (*Rules, error) {
	if err := defaults.Validate(); err != nil {
		return nil, fmt.Errorf("quality defaults: %w", err)
	}
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("quality of table %s: %w", tableName, err)
	}
	r := &Rules{table: tableName, MaxSetBytes: DefaultMaxSetBytes}
	if q == nil {
		q = &config.Quality{}
	}
	if defaults == nil {
		defaults = &config.Quality{}
	}

	switch {
	case q.Key != nil:
		r.row = append(r.row, keyRule(q.Key, false))
	case defaults.Key != nil:
		r.row = append(r.row, keyRule(defaults.Key, true))
	}
	cols := map[string]bool{}
	for c := range q.Columns {
		cols[c] = true
	}
	for c := range defaults.Columns {
		cols[c] = true
	}
	names := make([]string, 0, len(cols))
	for c := range cols {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, name := range names {
		cr, lenient := q.Columns[name], false
		if cr == nil {
			cr, lenient = defaults.Columns[name], true
		}
		rules, err := columnRules(name, cr, lenient)
		if err != nil {
			return nil, err
		}
		r.row = append(r.row, rules...)
	}

	var qt, dt config.TableRules
	if q.Table != nil {
		qt = *q.Table
	}
	if defaults.Table != nil {
		dt = *defaults.Table
	}
	r.tbl = tableRules{
		rowCount:         first(qt.RowCount, dt.RowCount),
		volume:           first(qt.Volume, dt.Volume),
		freshness:        first(qt.Freshness, dt.Freshness),
		freshnessLenient: qt.Freshness == nil && dt.Freshness != nil,
		quarantine:       first(qt.Quarantine, dt.Quarantine),
	}
	var qs, ds config.SchemaRule
	if qt.Schema != nil {
		qs = *qt.Schema
	}
	if dt.Schema != nil {
		ds = *dt.Schema
	}
	r.tbl.schema = config.SchemaRule{
		Added:   firstString(qs.Added, ds.Added),
		Removed: firstString(qs.Removed, ds.Removed),
		Widened: firstString(qs.Widened, ds.Widened),
	}
	return r, nil
}

func first[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

func firstString(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func orWarn(action string) string {
	if action == "" {
		return config.ActionWarn
	}
	return action
}

func keyRule(k *config.KeyRule, lenient bool) *rowRule {
	return &rowRule{name: RuleKey, columns: append([]string(nil), k.Columns...), action: orWarn(k.Action), lenient: lenient}
}

// columnRules compiles a column's block into its rules, in the order they are checked and reported.
func columnRules(name string, c *config.ColumnRules, lenient bool) ([]*rowRule, error) {
	base := rowRule{columns: []string{name}, action: orWarn(c.Action), lenient: lenient}
	if c.Mostly != nil {
		base.mostly = *c.Mostly
	}
	rule := func(n string) *rowRule {
		r := base
		r.name = n
		return &r
	}
	var out []*rowRule
	if c.NotNull {
		out = append(out, rule(RuleNotNull))
	}
	if c.Allowed != nil {
		r := rule(RuleAllowed)
		r.allowed = append([]string(nil), c.Allowed...)
		out = append(out, r)
	}
	if c.Range != nil {
		r := rule(RuleRange)
		for _, b := range []struct {
			s   string
			dst **config.Bound
		}{{c.Range.Min, &r.lo}, {c.Range.Max, &r.hi}} {
			if b.s == "" {
				continue
			}
			v, err := config.ParseBound(b.s)
			if err != nil {
				return nil, fmt.Errorf("column %s: range: %w", name, err)
			}
			*b.dst = &v
		}
		out = append(out, r)
	}
	if c.Regex != "" {
		re, err := regexp.Compile(c.Regex)
		if err != nil {
			return nil, fmt.Errorf("column %s: regex: %w", name, err)
		}
		r := rule(RuleRegex)
		r.re = re
		out = append(out, r)
	}
	if c.MaxLength != nil {
		r := rule(RuleMaxLength)
		r.maxLen = *c.MaxLength
		out = append(out, r)
	}
	if c.Unique {
		out = append(out, rule(RuleUnique))
	}
	return out, nil
}

// expected describes what a row rule asks for (Result.Expected).
func (r *rowRule) expected() string {
	var s string
	switch r.name {
	case RuleNotNull:
		s = "no null"
	case RuleUnique:
		s = "unique within the batch"
	case RuleKey:
		s = "not null and unique within the batch"
	case RuleAllowed:
		s = "one of " + strings.Join(r.allowed, ", ")
	case RuleRange:
		lo, hi := "-inf", "+inf"
		if r.lo != nil {
			lo = boundText(r.lo)
		}
		if r.hi != nil {
			hi = boundText(r.hi)
		}
		s = fmt.Sprintf("in [%s, %s]", lo, hi)
	case RuleRegex:
		s = "matches " + r.re.String()
	case RuleMaxLength:
		s = fmt.Sprintf("at most %d characters", r.maxLen)
	}
	if r.mostly > 0 {
		s += fmt.Sprintf("; mostly %v of the values", r.mostly)
	}
	return s
}

func boundText(b *config.Bound) string {
	switch {
	case b.Kind == config.BoundTime && b.Date:
		return formatDate(int32(b.Micros / usPerDay))
	case b.Kind == config.BoundTime:
		return formatMicros(b.Micros, true)
	case b.Integer:
		return fmt.Sprint(b.Int)
	}
	return formatFloat(b.Float)
}
