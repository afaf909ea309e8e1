package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Data-quality rules (docs/DATA-QUALITY.md). A table's `quality:` block and a partner's `quality_defaults:` have
// the shape of Quality. The engine that applies them is internal/quality; this file only reads and validates them.
//
// Every struct of the block decodes through decodeStrict: the YAML loader's KnownFields(true) does not reach
// into a custom unmarshaler, so each block checks its own keys (an unknown rule name is an error naming the line,
// the known names and the closest one) and remembers its line for the errors of Validate.

// Actions of row rules (columns, key) and of table rules.
const (
	ActionWarn       = "warn"       // count and report; the data is committed as it is
	ActionQuarantine = "quarantine" // row rules: the failing rows are set aside, the rest is committed
	ActionFail       = "fail"       // the batch is not committed (the caller dead-letters it with the results)
)

// Quality is a table's data-quality block (tables.<t>.quality) or a partner's quality_defaults.
type Quality struct {
	// Key: each column not null, and the tuple unique within the batch. YAML: a list of columns, or
	// {columns: [...], action: ...}.
	Key *KeyRule `yaml:"key,omitempty"`
	// Columns: row rules per column name.
	Columns map[string]*ColumnRules `yaml:"columns,omitempty"`
	// Table: rules about the batch as a whole (and, for volume, the process date).
	Table *TableRules `yaml:"table,omitempty"`

	line int
}

// KeyRule is the key of a table: not null on each column and a unique tuple within the batch.
type KeyRule struct {
	Columns []string `yaml:"columns"`
	Action  string   `yaml:"action,omitempty"` // warn (default), quarantine or fail

	line int
}

// ColumnRules are the row rules of one column. Nulls are checked only by not_null: a null value passes every
// other rule. Mostly, when set, turns every rule of the block into a pass/fail on the share of values that pass
// (no row is quarantined by it).
type ColumnRules struct {
	NotNull   bool     `yaml:"not_null,omitempty"`
	Unique    bool     `yaml:"unique,omitempty"`     // within the batch
	Allowed   []string `yaml:"allowed,omitempty"`    // the value must be one of these (compared as the column's type)
	Range     *Range   `yaml:"range,omitempty"`      // numbers, dates, timestamps; bounds inclusive
	Regex     string   `yaml:"regex,omitempty"`      // RE2 syntax (Go regexp), string columns; unanchored unless written with ^…$
	MaxLength *int     `yaml:"max_length,omitempty"` // in characters (Unicode code points), string columns
	Mostly    *float64 `yaml:"mostly,omitempty"`     // in (0,1]: pass while at least this share of the values pass
	Action    string   `yaml:"action,omitempty"`     // warn (default), quarantine, fail

	line int
}

// Range bounds a value, both bounds inclusive, either optional. A bound is a number (for int64 and float64
// columns) or a date YYYY-MM-DD or timestamp (YYYY-MM-DD[T ]HH:MM:SS[.f][Z|±HH:MM], no zone = UTC) for date and
// timestamp columns. Written in YAML as plain scalars: {min: 0, max: 100000}, {min: 2024-01-01}.
type Range struct {
	Min string `yaml:"min,omitempty"`
	Max string `yaml:"max,omitempty"`

	line int
}

// TableRules are checked once per batch before it is committed (volume: once per process date).
type TableRules struct {
	RowCount   *RowCountRule   `yaml:"row_count,omitempty"`
	Volume     *VolumeRule     `yaml:"volume,omitempty"`
	Freshness  *FreshnessRule  `yaml:"freshness,omitempty"`
	Schema     *SchemaRule     `yaml:"schema,omitempty"`
	Quarantine *QuarantineRule `yaml:"quarantine,omitempty"`

	line int
}

// RowCountRule bounds the rows a batch commits (after every quarantine), both bounds inclusive and optional.
type RowCountRule struct {
	Min    *int64 `yaml:"min,omitempty"`
	Max    *int64 `yaml:"max,omitempty"`
	Action string `yaml:"action,omitempty"` // warn (default) or fail

	line int
}

// VolumeRule compares a process date's row total with the median of the trailing days' totals.
type VolumeRule struct {
	TrailingDays int      `yaml:"trailing_days,omitempty"` // days before the process date looked at; default 7
	MaxChange    *float64 `yaml:"max_change,omitempty"`    // allowed relative change from the baseline; default 0.5
	MinHistory   int      `yaml:"min_history,omitempty"`   // days with data needed to judge; default 3
	Action       string   `yaml:"action,omitempty"`        // warn (default) or fail

	line int
}

// Volume defaults (a VolumeRule field left out).
const (
	DefaultVolumeTrailingDays = 7
	DefaultVolumeMaxChange    = 0.5
	DefaultVolumeMinHistory   = 3
)

// Days returns TrailingDays or its default.
func (v *VolumeRule) Days() int { return cmp0(v.TrailingDays, DefaultVolumeTrailingDays) }

// History returns MinHistory or its default.
func (v *VolumeRule) History() int { return cmp0(v.MinHistory, DefaultVolumeMinHistory) }

// Change returns MaxChange or its default.
func (v *VolumeRule) Change() float64 {
	if v.MaxChange == nil {
		return DefaultVolumeMaxChange
	}
	return *v.MaxChange
}

func cmp0(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// FreshnessRule: the newest value of Column (date, timestamp or timestamptz) must be at most MaxAge older than the
// end of the process date (its next midnight, UTC).
type FreshnessRule struct {
	Column string   `yaml:"column"`
	MaxAge Duration `yaml:"max_age"`
	Action string   `yaml:"action,omitempty"` // warn (default) or fail

	line int
}

// SchemaRule gives an action to each kind of schema change a batch brings: columns added, columns of the
// registry absent from the batch (removed), columns widened. A kind left out is not checked.
type SchemaRule struct {
	Added   string `yaml:"added,omitempty"`
	Removed string `yaml:"removed,omitempty"`
	Widened string `yaml:"widened,omitempty"`

	line int
}

// QuarantineRule bounds the share of a batch's rows quarantined for any reason (parse errors and rules).
type QuarantineRule struct {
	MaxFraction *float64 `yaml:"max_fraction"`
	Action      string   `yaml:"action,omitempty"` // fail (default: a mostly rejected batch is not committed) or warn

	line int
}

// Line returns the line of the block in the configuration file (0 when it was not read from YAML).
func (q *Quality) Line() int { return q.line }

// --- YAML decoding ----------------------------------------------------------------------------------------------

// yamlKeys lists the yaml names of a struct type's fields, in field order.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		keys = append(keys, name)
	}
	return keys
}

// decodeStrict decodes mapping n into out (a pointer to a struct type without UnmarshalYAML), refusing keys that
// are not fields of it. what names the block in errors ("column rule", "table rule").
func decodeStrict(n *yaml.Node, what string, out any) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: %s must be a mapping, got %s", n.Line, what, nodeKind(n))
	}
	known := yamlKeys(reflect.TypeOf(out).Elem())
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(known, k.Value) {
			msg := fmt.Sprintf("line %d: unknown %s %q (known: %s)", k.Line, what, k.Value, strings.Join(known, ", "))
			if near := closest(k.Value, known); near != "" {
				msg += fmt.Sprintf("; did you mean %q?", near)
			}
			return errors.New(msg)
		}
	}
	return n.Decode(out)
}

// decodeAt is decodeStrict that also records the block's line.
func decodeAt(n *yaml.Node, what string, out any, line *int) error {
	if err := decodeStrict(n, what, out); err != nil {
		return err
	}
	*line = n.Line
	return nil
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// closest returns the known name within edit distance 2 of s, if any.
func closest(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(s, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// UnmarshalYAML reads a quality block, refusing unknown keys.
func (q *Quality) UnmarshalYAML(n *yaml.Node) error {
	type plain Quality
	return decodeAt(n, "quality key", (*plain)(q), &q.line)
}

// UnmarshalYAML reads a key as a list of columns or as {columns, action}.
func (k *KeyRule) UnmarshalYAML(n *yaml.Node) error {
	k.line = n.Line
	switch n.Kind {
	case yaml.SequenceNode:
		return n.Decode(&k.Columns)
	case yaml.ScalarNode:
		return fmt.Errorf("line %d: key must be a list of columns ([a, b]) or {columns: [a, b], action: …}, got %q", n.Line, n.Value)
	}
	type plain KeyRule
	return decodeAt(n, "key option", (*plain)(k), &k.line)
}

// MarshalYAML writes a key without action as a flow list of columns.
func (k KeyRule) MarshalYAML() (any, error) {
	if k.Action == "" {
		seq := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, c := range k.Columns {
			seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: c})
		}
		return seq, nil
	}
	type plain KeyRule
	return plain(k), nil
}

// UnmarshalYAML reads a column's rules, refusing unknown rule names.
func (c *ColumnRules) UnmarshalYAML(n *yaml.Node) error {
	type plain ColumnRules
	return decodeAt(n, "column rule", (*plain)(c), &c.line)
}

// UnmarshalYAML reads a range; bounds are kept as written.
func (r *Range) UnmarshalYAML(n *yaml.Node) error {
	type plain Range
	return decodeAt(n, "range bound", (*plain)(r), &r.line)
}

// MarshalYAML writes a range in flow style with its bounds as plain scalars (numbers and dates unquoted).
func (r Range) MarshalYAML() (any, error) {
	m := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
	add := func(k, v string) {
		if v == "" {
			return
		}
		val := &yaml.Node{Kind: yaml.ScalarNode, Value: v, Tag: "!!str"}
		if b, err := ParseBound(v); err == nil {
			switch {
			case b.Kind == BoundNumber && b.Integer:
				val.Tag = "!!int"
			case b.Kind == BoundNumber:
				val.Tag = "!!float"
			case b.Kind == BoundTime && len(v) == len(time.DateOnly):
				val.Tag = "!!timestamp"
			}
		}
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, val)
	}
	add("min", r.Min)
	add("max", r.Max)
	return m, nil
}

// flow encodes v (a type without MarshalYAML) as a flow-style node: {a: 1, b: 2}, as the documentation writes
// rules.
func flow(v any) (*yaml.Node, error) {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return nil, err
	}
	n.Style = yaml.FlowStyle
	for _, c := range n.Content {
		if c.Kind == yaml.SequenceNode {
			c.Style = yaml.FlowStyle
		}
	}
	return &n, nil
}

// MarshalYAML writes a column's rules in flow style.
func (c ColumnRules) MarshalYAML() (any, error) {
	type plain ColumnRules
	return flow(plain(c))
}

// MarshalYAML writes the rule in flow style.
func (r RowCountRule) MarshalYAML() (any, error) {
	type plain RowCountRule
	return flow(plain(r))
}

// MarshalYAML writes the rule in flow style.
func (r VolumeRule) MarshalYAML() (any, error) {
	type plain VolumeRule
	return flow(plain(r))
}

// MarshalYAML writes the rule in flow style.
func (r FreshnessRule) MarshalYAML() (any, error) {
	type plain FreshnessRule
	return flow(plain(r))
}

// MarshalYAML writes the rule in flow style.
func (r SchemaRule) MarshalYAML() (any, error) {
	type plain SchemaRule
	return flow(plain(r))
}

// MarshalYAML writes the rule in flow style.
func (r QuarantineRule) MarshalYAML() (any, error) {
	type plain QuarantineRule
	return flow(plain(r))
}

// UnmarshalYAML reads the table rules, refusing unknown rule names.
func (t *TableRules) UnmarshalYAML(n *yaml.Node) error {
	type plain TableRules
	return decodeAt(n, "table rule", (*plain)(t), &t.line)
}

// UnmarshalYAML reads a row_count rule.
func (r *RowCountRule) UnmarshalYAML(n *yaml.Node) error {
	type plain RowCountRule
	return decodeAt(n, "row_count option", (*plain)(r), &r.line)
}

// UnmarshalYAML reads a volume rule.
func (r *VolumeRule) UnmarshalYAML(n *yaml.Node) error {
	type plain VolumeRule
	return decodeAt(n, "volume option", (*plain)(r), &r.line)
}

// UnmarshalYAML reads a freshness rule.
func (r *FreshnessRule) UnmarshalYAML(n *yaml.Node) error {
	type plain FreshnessRule
	return decodeAt(n, "freshness option", (*plain)(r), &r.line)
}

// UnmarshalYAML reads a schema rule.
func (r *SchemaRule) UnmarshalYAML(n *yaml.Node) error {
	type plain SchemaRule
	return decodeAt(n, "schema change", (*plain)(r), &r.line)
}

// UnmarshalYAML reads a quarantine rule.
func (r *QuarantineRule) UnmarshalYAML(n *yaml.Node) error {
	type plain QuarantineRule
	return decodeAt(n, "quarantine option", (*plain)(r), &r.line)
}

// --- bounds -----------------------------------------------------------------------------------------------------

// BoundKind says what a range bound is.
type BoundKind uint8

// Bound kinds.
const (
	BoundNumber BoundKind = iota + 1 // an integer or a decimal number
	BoundTime                        // a date or a timestamp
)

// Bound is a parsed range bound.
type Bound struct {
	Kind    BoundKind
	Integer bool    // BoundNumber written as an integer that fits int64 (then Int holds it)
	Int     int64   // BoundNumber and Integer
	Float   float64 // BoundNumber
	Micros  int64   // BoundTime: µs since 1970-01-01 UTC (a date is its midnight)
	Date    bool    // BoundTime written as a date
}

// timeLayouts are the timestamp forms a bound may take, after a date: the value's own types (see internal/table).
var timeLayouts = []string{
	time.DateOnly,
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999Z0700",
}

// ParseBound reads a range bound: a number, a date or a timestamp (no zone = UTC).
func ParseBound(s string) (Bound, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return Bound{Kind: BoundNumber, Integer: true, Int: i, Float: float64(i)}, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
		return Bound{Kind: BoundNumber, Float: f}, nil
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return Bound{Kind: BoundTime, Micros: t.UnixMicro(), Date: l == time.DateOnly}, nil
		}
	}
	return Bound{}, fmt.Errorf("%q is not a number, a date (YYYY-MM-DD) or a timestamp", s)
}

// less reports whether a < b for two bounds of the same kind.
func (a Bound) less(b Bound) bool {
	if a.Kind == BoundTime {
		return a.Micros < b.Micros
	}
	if a.Integer && b.Integer {
		return a.Int < b.Int
	}
	return a.Float < b.Float
}

// --- validation -------------------------------------------------------------------------------------------------

func at(line int) string {
	if line > 0 {
		return fmt.Sprintf("line %d: ", line)
	}
	return ""
}

func checkAction(line int, what, action string, allowed ...string) error {
	if action == "" || slices.Contains(allowed, action) {
		return nil
	}
	return fmt.Errorf("%s%s: unknown action %q (use %s)", at(line), what, action, strings.Join(allowed, " or "))
}

// Validate checks a quality block: rule parameters, actions, regular expressions, bounds. Errors name the YAML
// line when the block was read from a file. Whether the columns exist and have fitting types is checked against a
// table's schema by quality.CheckSchema.
func (q *Quality) Validate() error {
	if q == nil {
		return nil
	}
	var errs []error
	if k := q.Key; k != nil {
		if len(k.Columns) == 0 {
			errs = append(errs, fmt.Errorf("%skey: no column", at(k.line)))
		}
		seen := map[string]bool{}
		for _, c := range k.Columns {
			if c == "" {
				errs = append(errs, fmt.Errorf("%skey: empty column name", at(k.line)))
			} else if seen[c] {
				errs = append(errs, fmt.Errorf("%skey: column %q twice", at(k.line), c))
			}
			seen[c] = true
		}
		if err := checkAction(k.line, "key", k.Action, ActionWarn, ActionQuarantine, ActionFail); err != nil {
			errs = append(errs, err)
		}
	}
	names := make([]string, 0, len(q.Columns))
	for name := range q.Columns {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := q.Columns[name].validate(name); err != nil {
			errs = append(errs, err)
		}
	}
	if t := q.Table; t != nil {
		errs = append(errs, t.validate()...)
	}
	return errors.Join(errs...)
}

func (c *ColumnRules) validate(name string) error {
	if c == nil {
		return fmt.Errorf("%scolumn %q: no rule", at(0), name)
	}
	where := fmt.Sprintf("%scolumn %s", at(c.line), name)
	var errs []error
	if name == "" {
		errs = append(errs, fmt.Errorf("%s: empty column name", where))
	}
	if !c.NotNull && !c.Unique && c.Allowed == nil && c.Range == nil && c.Regex == "" && c.MaxLength == nil {
		errs = append(errs, fmt.Errorf("%s: no rule (not_null, unique, allowed, range, regex, max_length)", where))
	}
	if c.Allowed != nil && len(c.Allowed) == 0 {
		errs = append(errs, fmt.Errorf("%s: allowed: empty list", where))
	}
	if c.Regex != "" {
		if _, err := regexp.Compile(c.Regex); err != nil {
			errs = append(errs, fmt.Errorf("%s: regex %q: %w", where, c.Regex, err))
		}
	}
	if c.MaxLength != nil && *c.MaxLength < 1 {
		errs = append(errs, fmt.Errorf("%s: max_length must be at least 1, got %d", where, *c.MaxLength))
	}
	if r := c.Range; r != nil {
		if err := r.validate(); err != nil {
			errs = append(errs, fmt.Errorf("%scolumn %s: %w", at(max(r.line, c.line)), name, err))
		}
	}
	if c.Mostly != nil {
		if m := *c.Mostly; !(m > 0 && m <= 1) {
			errs = append(errs, fmt.Errorf("%s: mostly must be in (0, 1], got %v", where, m))
		}
	}
	if err := checkAction(0, where, c.Action, ActionWarn, ActionQuarantine, ActionFail); err != nil {
		errs = append(errs, err)
	} else if c.Mostly != nil && c.Action == ActionQuarantine {
		errs = append(errs, fmt.Errorf("%s: mostly does not quarantine rows: use action warn or fail with it", where))
	}
	return errors.Join(errs...)
}

// validate checks the bounds; the error does not name the line (the caller does).
func (r *Range) validate() error {
	if r.Min == "" && r.Max == "" {
		return errors.New("range: give min, max or both")
	}
	var lo, hi Bound
	var err error
	if r.Min != "" {
		if lo, err = ParseBound(r.Min); err != nil {
			return fmt.Errorf("range min: %w", err)
		}
	}
	if r.Max != "" {
		if hi, err = ParseBound(r.Max); err != nil {
			return fmt.Errorf("range max: %w", err)
		}
	}
	if r.Min != "" && r.Max != "" {
		if lo.Kind != hi.Kind {
			return fmt.Errorf("range: min %s and max %s are not both numbers or both dates/timestamps", r.Min, r.Max)
		}
		if hi.less(lo) {
			return fmt.Errorf("range: min %s is greater than max %s", r.Min, r.Max)
		}
	}
	return nil
}

// Kind returns what the range's bounds are (BoundNumber or BoundTime); 0 when none parses.
func (r *Range) Kind() BoundKind {
	for _, s := range []string{r.Min, r.Max} {
		if b, err := ParseBound(s); s != "" && err == nil {
			return b.Kind
		}
	}
	return 0
}

func (t *TableRules) validate() []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	tableActions := []string{ActionWarn, ActionFail}
	if r := t.RowCount; r != nil {
		w := at(r.line) + "row_count"
		if r.Min == nil && r.Max == nil {
			add(fmt.Errorf("%s: give min, max or both", w))
		}
		if r.Min != nil && *r.Min < 0 {
			add(fmt.Errorf("%s: min must not be negative, got %d", w, *r.Min))
		}
		if r.Min != nil && r.Max != nil && *r.Min > *r.Max {
			add(fmt.Errorf("%s: min %d is greater than max %d", w, *r.Min, *r.Max))
		}
		add(checkAction(0, w, r.Action, tableActions...))
	}
	if r := t.Volume; r != nil {
		w := at(r.line) + "volume"
		if r.TrailingDays < 0 || r.TrailingDays > 366 {
			add(fmt.Errorf("%s: trailing_days must be in [1, 366], got %d", w, r.TrailingDays))
		}
		if r.MinHistory < 0 {
			add(fmt.Errorf("%s: min_history must not be negative, got %d", w, r.MinHistory))
		} else if r.TrailingDays >= 0 && r.History() > r.Days() {
			add(fmt.Errorf("%s: min_history %d is more than trailing_days %d", w, r.History(), r.Days()))
		}
		if r.MaxChange != nil && !(*r.MaxChange > 0) {
			add(fmt.Errorf("%s: max_change must be greater than 0, got %v", w, *r.MaxChange))
		}
		add(checkAction(0, w, r.Action, tableActions...))
	}
	if r := t.Freshness; r != nil {
		w := at(r.line) + "freshness"
		if r.Column == "" {
			add(fmt.Errorf("%s: column is required", w))
		}
		if r.MaxAge.Duration < 0 {
			add(fmt.Errorf("%s: max_age must not be negative, got %s", w, r.MaxAge.Duration))
		} else if r.MaxAge.Duration == 0 {
			add(fmt.Errorf("%s: max_age is required (e.g. 36h)", w))
		}
		add(checkAction(0, w, r.Action, tableActions...))
	}
	if r := t.Schema; r != nil {
		w := at(r.line) + "schema"
		if r.Added == "" && r.Removed == "" && r.Widened == "" {
			add(fmt.Errorf("%s: give an action to added, removed or widened", w))
		}
		add(checkAction(0, w+" added", r.Added, tableActions...))
		add(checkAction(0, w+" removed", r.Removed, tableActions...))
		add(checkAction(0, w+" widened", r.Widened, tableActions...))
	}
	if r := t.Quarantine; r != nil {
		w := at(r.line) + "quarantine"
		if r.MaxFraction == nil {
			add(fmt.Errorf("%s: max_fraction is required", w))
		} else if f := *r.MaxFraction; !(f >= 0 && f <= 1) {
			add(fmt.Errorf("%s: max_fraction must be in [0, 1], got %v", w, f))
		}
		add(checkAction(0, w, r.Action, tableActions...))
	}
	return errs
}
