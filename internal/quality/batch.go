package quality

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/table"
)

// BatchMeta says which batch a Batch checks.
type BatchMeta struct {
	ArchiveID   string
	ProcessDate string // YYYY-MM-DD
	BatchID     string
	// Schema is the registry schema the batch is written under (its record batches have Schema.Arrow()). Nil: the
	// first record batch's schema is used, and column types come from Arrow types (a column of type null then
	// reads as string).
	Schema *table.Schema
	// Absent lists the registry columns that no member of the batch has (all null in its record batches): the
	// rules on them record missing_column instead of checking nulls. Also the default of FinishInput.SchemaRemoved.
	Absent []string
	// NoProfiles turns off the column profiles (Finish then returns none).
	NoProfiles bool
}

// RowFailure is a row that a quarantine rule removed from a record batch.
type RowFailure struct {
	Row    int    // index of the row in the record batch given to Check
	Rule   string // the first quarantine rule the row failed (rules are checked in Result order, unique and key last)
	Column string // the rule's column; for key the key's columns joined by commas
	Value  string // the offending value as text ("" for null); for key the tuple's values joined by commas
}

// FinishInput is what the caller knows about the batch beyond its rows.
type FinishInput struct {
	// RowsIn is the number of rows the batch arrived with, before any quarantine (the marker's count). 0: the rows
	// given to Check plus QuarantinedOther.
	RowsIn int64
	// QuarantinedOther counts the rows quarantined before the rules ran (malformed, ragged, invalid UTF-8, type).
	QuarantinedOther int64
	// Schema changes this batch brought: columns it added, columns it widened, registry columns absent from it.
	// SchemaRemoved nil means BatchMeta.Absent.
	SchemaAdded, SchemaWidened, SchemaRemoved []string
}

// Batch checks and profiles the record batches of one (table, archive, process date, batch). Call Check on every
// record batch before it is written, then Finish once. A Batch is not safe for concurrent use; it holds no Arrow
// memory between calls.
type Batch struct {
	rules  *Rules
	mem    memory.Allocator
	meta   BatchMeta
	schema *arrow.Schema // bound by bind
	types  []table.Type  // per field of schema
	absent map[string]bool

	states   []*ruleState // as rules.row
	ordered  []*ruleState // check order: the others, then unique and key
	profiles []*colProfile
	fresh    freshState

	rowsIn  int64 // rows given to Check
	kept    int64 // rows returned by Check
	removed int64 // rows removed by quarantine rules

	// per Check call
	mask        []bool
	anyMasked   bool
	failures    []RowFailure
	hashes      []uint64
	scratch     []uint64
	profScratch []uint64
	nullKey     []bool
}

// ruleState is a row rule bound to a batch's columns, with its counts.
type ruleState struct {
	r       *rowRule
	cols    []int
	missing string // why the rule cannot be checked: status missing_column
	skip    bool   // a defaults rule on a column the table does not have: no result

	checked, failed int64
	nullKeys        int64 // key: rows with a null in a key column
	examples        []string

	set *hashSet

	// range, bound to the column's kind (int64 bounds for int64, date32 days, timestamp units)
	ilo, ihi int64
	flo, fhi float64
	empty    bool // no value can be in range
	// text: a string column (a number or temporal column widened to string by the data): each value is read as
	// the bounds' kind (table.TextNumber, table.TextTime: µs in ilo, ihi); a value that is not one fails the rule
	text, textTime bool

	allowStr   []string
	allowFrom  [257]int // allowStr[allowFrom[c]:allowFrom[c+1]] start with byte c
	allowStrM  map[string]struct{}
	allowInt   []int64
	allowIntM  map[int64]struct{}
	allowFloat []float64

	reCache map[string]bool
	reHits  int
}

type freshState struct {
	rule    *config.FreshnessRule
	lenient bool
	col     int
	kind    valKind
	unit    arrow.TimeUnit
	missing string
	has     bool
	newest  int64 // µs since epoch (a date: the end of the day)
}

// NewBatch starts checking a batch. mem allocates the record batches Check returns when it removes rows.
func (r *Rules) NewBatch(mem memory.Allocator, meta BatchMeta) *Batch {
	b := &Batch{rules: r, mem: mem, meta: meta, absent: map[string]bool{}}
	for _, c := range meta.Absent {
		b.absent[c] = true
	}
	for _, rr := range r.row {
		st := &ruleState{r: rr}
		b.states = append(b.states, st)
	}
	for _, st := range b.states {
		if !st.r.setRule() {
			b.ordered = append(b.ordered, st)
		}
	}
	for _, st := range b.states {
		if st.r.setRule() {
			b.ordered = append(b.ordered, st)
		}
	}
	b.fresh.rule = r.tbl.freshness
	b.fresh.lenient = r.tbl.freshnessLenient
	if meta.Schema != nil {
		b.bind(meta.Schema.Arrow())
	}
	return b
}

// bind maps the rules onto the columns of sc and prepares the profiles.
func (b *Batch) bind(sc *arrow.Schema) {
	b.schema = sc
	b.types = make([]table.Type, sc.NumFields())
	for i, f := range sc.Fields() {
		b.types[i] = tableType(f.Type)
	}
	if s := b.meta.Schema; s != nil {
		for i, c := range s.Columns {
			if i < len(b.types) {
				b.types[i] = c.Type
			}
		}
	}
	for _, st := range b.states {
		st.bind(b, sc)
	}
	if f := b.fresh.rule; f != nil {
		b.fresh.col = fieldIndex(sc, f.Column)
		switch {
		case b.fresh.col < 0 && b.fresh.lenient:
			b.fresh.rule = nil // a default rule on a column the table does not have
		case b.fresh.col < 0:
			b.fresh.missing = fmt.Sprintf("column %s is not in the batch", f.Column)
		case b.absent[f.Column]:
			b.fresh.missing = fmt.Sprintf("column %s is absent from the batch's members", f.Column)
		default:
			t := sc.Field(b.fresh.col).Type
			b.fresh.kind = kindOf(t)
			if b.fresh.kind != kDate32 && b.fresh.kind != kTimestamp && b.fresh.kind != kString {
				b.fresh.missing = fmt.Sprintf("column %s is %s: freshness needs a date or timestamp column", f.Column, b.types[b.fresh.col])
			} else if ts, ok := t.(*arrow.TimestampType); ok {
				b.fresh.unit = ts.Unit
			}
		}
	}
	if !b.meta.NoProfiles {
		b.profiles = make([]*colProfile, sc.NumFields())
		for i, f := range sc.Fields() {
			b.profiles[i] = newColProfile(f.Name, b.types[i], kindOf(f.Type))
		}
	}
}

func fieldIndex(sc *arrow.Schema, name string) int {
	if idx := sc.FieldIndices(name); len(idx) > 0 {
		return idx[0]
	}
	return -1
}

// bind finds the rule's columns in sc and compiles its parameters for their types.
func (st *ruleState) bind(b *Batch, sc *arrow.Schema) {
	r := st.r
	st.cols = st.cols[:0]
	for _, c := range r.columns {
		i := fieldIndex(sc, c)
		if i < 0 {
			if r.lenient {
				st.skip = true
			} else {
				st.missing = fmt.Sprintf("column %s is not in the batch", c)
			}
			return
		}
		if b.absent[c] {
			st.missing = fmt.Sprintf("column %s is absent from the batch's members", c)
			return
		}
		st.cols = append(st.cols, i)
	}
	k := kindOf(sc.Field(st.cols[0]).Type)
	typ := b.types[st.cols[0]]
	mismatch := func(needs string) {
		st.missing = fmt.Sprintf("column %s is %s: %s needs %s", r.columns[0], typ, r.name, needs)
	}
	switch r.name {
	case RuleRange:
		st.bindRange(sc.Field(st.cols[0]).Type, mismatch)
	case RuleAllowed:
		if !st.bindAllowed(k) {
			mismatch("a string, number, bool, date or timestamp column")
		}
	case RuleRegex:
		if k != kString {
			mismatch("a string column")
		}
		st.reCache = map[string]bool{}
	case RuleMaxLength:
		if k != kString {
			mismatch("a string column")
		}
	case RuleUnique, RuleKey:
		st.set = newHashSet(b.rules.MaxSetBytes)
	}
}

// bindRange converts the bounds to the column's representation; a number range on a temporal column (or the
// reverse) is a mismatch.
func (st *ruleState) bindRange(t arrow.DataType, mismatch func(string)) {
	r := st.r
	kind := config.BoundNumber
	if b := first(r.lo, r.hi); b != nil {
		kind = b.Kind
	}
	k := kindOf(t)
	switch {
	case kind == config.BoundNumber && (k == kInt64 || k == kFloat64):
	case kind == config.BoundTime && (k == kDate32 || k == kTimestamp):
	case k == kString:
		// A value of another kind once widened the column to text: the rule keeps checking what it can read, and a
		// value it cannot read as a number (date) is outside the range.
		st.text, st.textTime = true, kind == config.BoundTime
	case kind == config.BoundNumber:
		mismatch("a number column (its bounds are numbers)")
		return
	default:
		mismatch("a date or timestamp column (its bounds are dates or timestamps)")
		return
	}
	st.ilo, st.ihi = minInt64, maxInt64
	st.flo, st.fhi = negInf, posInf
	switch {
	case st.textTime:
		if r.lo != nil {
			st.ilo = r.lo.Micros
		}
		if r.hi != nil {
			st.ihi = r.hi.Micros
		}
		return
	case st.text:
		if r.lo != nil {
			st.flo = r.lo.Float
		}
		if r.hi != nil {
			st.fhi = r.hi.Float
		}
		return
	}
	switch k {
	case kInt64:
		if r.lo != nil {
			st.ilo, st.empty = intBound(r.lo, true, st.empty)
		}
		if r.hi != nil {
			st.ihi, st.empty = intBound(r.hi, false, st.empty)
		}
	case kFloat64:
		if r.lo != nil {
			st.flo = r.lo.Float
		}
		if r.hi != nil {
			st.fhi = r.hi.Float
		}
	case kDate32:
		if r.lo != nil {
			st.ilo = ceilDiv(r.lo.Micros, usPerDay)
		}
		if r.hi != nil {
			st.ihi = floorDiv(r.hi.Micros, usPerDay)
		}
	case kTimestamp:
		unit := t.(*arrow.TimestampType).Unit
		if r.lo != nil {
			st.ilo = fromMicros(r.lo.Micros, unit, true)
		}
		if r.hi != nil {
			st.ihi = fromMicros(r.hi.Micros, unit, false)
		}
	}
}

// intBound is an integer column's bound for a number bound: exact for integers, ceil (lo) or floor (hi) of a
// decimal; a bound beyond int64 clamps (or makes the range empty).
func intBound(b *config.Bound, lo bool, empty bool) (int64, bool) {
	if b.Integer {
		return b.Int, empty
	}
	f := b.Float
	if lo {
		f = ceil(f)
	} else {
		f = floor(f)
	}
	switch {
	case f >= 9.223372036854775807e18:
		if lo {
			return maxInt64, true
		}
		return maxInt64, empty
	case f < -9.223372036854775808e18:
		if lo {
			return minInt64, empty
		}
		return minInt64, true
	}
	return int64(f), empty
}

// bindAllowed parses the allowed values as the column's type; values that do not parse can never match (CheckSchema
// reports them). False for a column type allowed does not read.
func (st *ruleState) bindAllowed(k valKind) bool {
	vals := st.r.allowed
	switch k {
	case kString:
		// sorted by first byte, with the start of each byte's run: most lookups compare once
		st.allowStr = slices.Clone(vals)
		slices.SortStableFunc(st.allowStr, func(a, b string) int { return int(firstByte(a)) - int(firstByte(b)) })
		var count [257]int
		for _, v := range st.allowStr {
			count[int(firstByte(v))+1]++
		}
		longest := 0
		for c := 1; c <= 256; c++ {
			longest = max(longest, count[c])
			st.allowFrom[c] = st.allowFrom[c-1] + count[c]
		}
		if longest > smallList { // many values share a first byte: a map
			st.allowStrM = make(map[string]struct{}, len(vals))
			for _, v := range vals {
				st.allowStrM[v] = struct{}{}
			}
		}
	case kFloat64:
		for _, v := range vals {
			if f, ok := parseAllowed(v, k); ok {
				st.allowFloat = append(st.allowFloat, float64frombits(f))
			}
		}
	case kInt64, kBool, kDate32, kTimestamp:
		var ints []int64
		for _, v := range vals {
			if i, ok := parseAllowed(v, k); ok {
				ints = append(ints, int64(i))
			}
		}
		if len(ints) <= smallList {
			st.allowInt = ints
		} else {
			st.allowIntM = make(map[int64]struct{}, len(ints))
			for _, i := range ints {
				st.allowIntM[i] = struct{}{}
			}
		}
	default:
		return false
	}
	return true
}

func firstByte(s string) byte {
	if s == "" {
		return 0
	}
	return s[0]
}

// smallList: allowed lists up to this long are searched linearly (faster than a map for short lists).
const smallList = 8

// Check checks every row of rec against the row rules, accumulates the counts and the column profiles, and
// returns the rows to write: keep is a new reference the caller releases (rec itself, retained, when no row was
// removed; else a filtered copy allocated from the Batch's allocator) and quarantined lists the removed rows, by
// Row. rec stays the caller's. Every record batch of a Batch must have the same schema (that of BatchMeta.Schema
// when given).
func (b *Batch) Check(rec arrow.RecordBatch) (keep arrow.RecordBatch, quarantined []RowFailure, err error) {
	if b.schema == nil {
		b.bind(rec.Schema())
	} else if sc := rec.Schema(); sc != b.schema && !sc.Equal(b.schema) {
		return nil, nil, fmt.Errorf("quality: record batch schema %s differs from the batch's %s", sc, b.schema)
	}
	n := int(rec.NumRows())
	b.rowsIn += int64(n)
	b.anyMasked = false
	b.failures = nil
	if cap(b.mask) < n {
		b.mask = make([]bool, n)
	} else {
		b.mask = b.mask[:n]
		clear(b.mask)
	}
	for _, st := range b.ordered {
		if st.skip || st.missing != "" {
			continue
		}
		b.checkRule(st, rec)
	}
	if b.anyMasked {
		keep, err = b.filter(rec)
		if err != nil {
			return nil, nil, err
		}
		slices.SortStableFunc(b.failures, func(x, y RowFailure) int { return x.Row - y.Row })
	} else {
		rec.Retain()
		keep = rec
	}
	b.kept += keep.NumRows()
	if b.profiles != nil {
		for i, p := range b.profiles {
			p.add(keep.Column(i), &b.profScratch)
		}
	}
	if b.fresh.rule != nil && b.fresh.missing == "" {
		b.fresh.add(keep.Column(b.fresh.col))
	}
	return keep, b.failures, nil
}

// filter returns rec without the masked rows: for few removed rows, the runs of kept rows copied whole
// (array.Concatenate of zero-copy slices: memmove of values, offsets shifted); for many, arrow-go's compute
// Filter (a take per row, which for strings is several times slower than copying runs).
func (b *Batch) filter(rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	var runs [][2]int64
	start := -1
	for i, m := range b.mask {
		switch {
		case !m && start < 0:
			start = i
		case m && start >= 0:
			runs = append(runs, [2]int64{int64(start), int64(i)})
			start = -1
		}
	}
	if start >= 0 {
		runs = append(runs, [2]int64{int64(start), int64(len(b.mask))})
	}
	if len(runs) <= maxRuns(len(b.mask)) {
		return b.concatRuns(rec, runs)
	}
	fb := array.NewBooleanBuilder(b.mem)
	defer fb.Release()
	fb.Reserve(len(b.mask))
	for _, m := range b.mask {
		fb.UnsafeAppend(!m)
	}
	f := fb.NewBooleanArray()
	defer f.Release()
	ec := compute.DefaultExecCtx()
	ec.NumParallel = 1 // the caller owns the parallelism (the merger encodes on another goroutine)
	ctx := compute.SetExecCtx(compute.WithAllocator(context.Background(), b.mem), ec)
	out, err := compute.FilterRecordBatch(ctx, rec, f, compute.DefaultFilterOptions())
	if err != nil {
		return nil, fmt.Errorf("quality: filter quarantined rows: %w", err)
	}
	return out, nil
}

// maxRuns is the number of kept runs up to which filter copies runs rather than calling compute Filter.
func maxRuns(n int) int { return max(1, n/32) }

// concatRuns builds the record batch of the rows in runs.
func (b *Batch) concatRuns(rec arrow.RecordBatch, runs [][2]int64) (arrow.RecordBatch, error) {
	if len(runs) == 0 {
		runs = [][2]int64{{0, 0}}
	}
	var rows int64
	for _, r := range runs {
		rows += r[1] - r[0]
	}
	cols := make([]arrow.Array, 0, rec.NumCols())
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	parts := make([]arrow.Array, len(runs))
	for _, c := range rec.Columns() {
		for k, r := range runs {
			parts[k] = array.NewSlice(c, r[0], r[1])
		}
		out, err := array.Concatenate(parts, b.mem)
		for _, p := range parts {
			p.Release()
		}
		if err != nil {
			return nil, fmt.Errorf("quality: copy kept rows: %w", err)
		}
		cols = append(cols, out)
	}
	return array.NewRecordBatch(rec.Schema(), cols, rows), nil
}

// fail records that row i fails st.
func (b *Batch) fail(st *ruleState, rec arrow.RecordBatch, i int) {
	st.failed++
	q := st.r.quarantines()
	if len(st.examples) >= maxExamples && !q {
		return
	}
	v := st.value(rec, i)
	if len(st.examples) < maxExamples && !slices.Contains(st.examples, v) {
		st.examples = append(st.examples, v)
	}
	if q && !b.mask[i] {
		b.mask[i] = true
		b.anyMasked = true
		b.removed++
		b.failures = append(b.failures, RowFailure{Row: i, Rule: st.r.name, Column: st.r.column(), Value: v})
	}
}

// maxExamples is how many distinct failing values a result quotes.
const maxExamples = 3

// value is the rule's value at row i as text.
func (st *ruleState) value(rec arrow.RecordBatch, i int) string {
	if len(st.cols) == 1 {
		return formatValue(rec.Column(st.cols[0]), i)
	}
	parts := make([]string, len(st.cols))
	for j, c := range st.cols {
		parts[j] = formatValue(rec.Column(c), i)
	}
	return strings.Join(parts, ",")
}

// add folds the newest value of the freshness column of a record batch.
func (f *freshState) add(a arrow.Array) {
	switch a := a.(type) {
	case *array.Date32:
		for i, v := range a.Date32Values() {
			if us := (int64(v) + 1) * usPerDay; (!f.has || us > f.newest) && a.IsValid(i) {
				f.newest, f.has = us, true
			}
		}
	case *array.Timestamp:
		for i, v := range a.TimestampValues() {
			if us := toMicros(int64(v), f.unit); (!f.has || us > f.newest) && a.IsValid(i) {
				f.newest, f.has = us, true
			}
		}
	case *array.String: // a temporal column widened to text: the values that still read as dates or timestamps
		for i := range a.Len() {
			if a.IsNull(i) {
				continue
			}
			us, date, ok := table.TextTime(a.Value(i))
			if date {
				us += usPerDay // a date is fresh until its end, as for a date column
			}
			if ok && (!f.has || us > f.newest) {
				f.newest, f.has = us, true
			}
		}
	}
}

// Finish returns the batch's results (every row and table rule, in a fixed order: key, columns by name, then
// table rules), those of them with status fail (the batch must not be committed when there is any: dead-letter it
// with them as the reason), and one profile per column of the batch (none with BatchMeta.NoProfiles).
func (b *Batch) Finish(in FinishInput) (results, failed []Result, profiles []Profile) {
	for _, st := range b.states {
		if st.skip {
			continue
		}
		results = append(results, b.rowResult(st))
	}
	results = append(results, b.tableResults(in)...)
	for _, r := range results {
		if r.Status == StatusFail {
			failed = append(failed, r)
		}
	}
	for _, p := range b.profiles {
		pr := p.profile()
		pr.Table, pr.ArchiveID, pr.ProcessDate, pr.BatchID = b.rules.table, b.meta.ArchiveID, b.meta.ProcessDate, b.meta.BatchID
		profiles = append(profiles, pr)
	}
	return results, failed, profiles
}

// MemoryBytes is the memory the Batch holds besides Arrow data: the hash sets of unique and key rules and the
// profiles' sketches, for the caller's memory accounting.
func (b *Batch) MemoryBytes() int64 {
	var n int64
	for _, st := range b.states {
		if st.set != nil {
			n += st.set.bytes()
		}
	}
	for _, p := range b.profiles {
		n += p.bytes()
	}
	return n + int64(cap(b.hashes)+cap(b.scratch)+cap(b.profScratch))*8
}

func (b *Batch) result(rule, column, kind, action string) Result {
	return Result{Table: b.rules.table, ArchiveID: b.meta.ArchiveID, ProcessDate: b.meta.ProcessDate, BatchID: b.meta.BatchID,
		Rule: rule, Column: column, Kind: kind, Action: action}
}

func (b *Batch) rowResult(st *ruleState) Result {
	r := st.r
	res := b.result(r.name, r.column(), KindRow, r.action)
	res.Expected = r.expected()
	if st.missing != "" {
		res.Status, res.Observed = StatusMissingColumn, st.missing
		return res
	}
	res.CheckedRows, res.FailedRows = st.checked, st.failed
	what := "values"
	if r.name == RuleNotNull || r.name == RuleKey {
		what = "rows"
	}
	switch {
	case r.mostly > 0:
		share := 1.0
		if st.checked > 0 {
			share = float64(st.checked-st.failed) / float64(st.checked)
		}
		res.Observed = fmt.Sprintf("%s of %d %s pass", percent(share), st.checked, what)
		res.Status = StatusPass
		if share < r.mostly {
			res.Status = statusOf(r.action)
		}
	case st.failed == 0:
		res.Status = StatusPass
		res.Observed = fmt.Sprintf("0 of %d %s fail", st.checked, what)
	default:
		res.Status = statusOf(r.action)
		res.Observed = fmt.Sprintf("%d of %d %s fail (%s)", st.failed, st.checked, what, percent(float64(st.failed)/float64(st.checked)))
	}
	if r.name == RuleKey && st.failed > 0 {
		res.Observed += fmt.Sprintf(": %d with a null, %d duplicates", st.nullKeys, st.failed-st.nullKeys)
	}
	if len(st.examples) > 0 && r.name != RuleNotNull {
		q := make([]string, len(st.examples))
		for i, e := range st.examples {
			q[i] = fmt.Sprintf("%q", e)
		}
		res.Observed += "; e.g. " + strings.Join(q, ", ")
	}
	if st.set != nil && st.set.full {
		res.Observed += fmt.Sprintf("; hash set full at %d distinct values: later values checked against those only", st.set.capacity())
	}
	return res
}

// statusOf is the status of a failing rule with this action: quarantine and warn are warn.
func statusOf(action string) string {
	if action == config.ActionFail {
		return StatusFail
	}
	return StatusWarn
}

func percent(f float64) string {
	s := fmt.Sprintf("%.2f", f*100)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + "%"
}

func (b *Batch) tableResults(in FinishInput) []Result {
	var out []Result
	t := b.rules.tbl
	if rc := t.rowCount; rc != nil {
		res := b.result(RuleRowCount, "", KindTable, orWarn(rc.Action))
		lo, hi := "0", "+inf"
		if rc.Min != nil {
			lo = fmt.Sprint(*rc.Min)
		}
		if rc.Max != nil {
			hi = fmt.Sprint(*rc.Max)
		}
		res.Expected = fmt.Sprintf("rows written in [%s, %s]", lo, hi)
		res.CheckedRows = b.kept
		res.Observed = fmt.Sprintf("%d rows written", b.kept)
		res.Status = StatusPass
		if (rc.Min != nil && b.kept < *rc.Min) || (rc.Max != nil && b.kept > *rc.Max) {
			res.Status = statusOf(res.Action)
		}
		out = append(out, res)
	}
	if f := b.fresh.rule; f != nil {
		out = append(out, b.freshResult(f))
	}
	removed := in.SchemaRemoved
	if removed == nil {
		removed = b.meta.Absent
	}
	for _, sc := range []struct {
		rule, action string
		cols         []string
	}{
		{RuleSchemaAdded, t.schema.Added, in.SchemaAdded},
		{RuleSchemaRemoved, t.schema.Removed, removed},
		{RuleSchemaWidened, t.schema.Widened, in.SchemaWidened},
	} {
		if sc.action == "" {
			continue
		}
		res := b.result(sc.rule, strings.Join(sc.cols, ","), KindTable, sc.action)
		res.Expected = "no column " + strings.TrimPrefix(sc.rule, "schema.")
		res.Status, res.Observed = StatusPass, "none"
		if len(sc.cols) > 0 {
			res.Status = statusOf(sc.action)
			res.FailedRows = int64(len(sc.cols))
			res.Observed = fmt.Sprintf("%d column(s) %s: %s", len(sc.cols), strings.TrimPrefix(sc.rule, "schema."), strings.Join(sc.cols, ", "))
		}
		out = append(out, res)
	}
	if q := t.quarantine; q != nil {
		action := q.Action
		if action == "" {
			action = config.ActionFail
		}
		res := b.result(RuleQuarantine, "", KindTable, action)
		rowsIn := in.RowsIn
		if rowsIn == 0 {
			rowsIn = b.rowsIn + in.QuarantinedOther
		}
		total := b.removed + in.QuarantinedOther
		res.CheckedRows, res.FailedRows = rowsIn, total
		res.Expected = fmt.Sprintf("at most %s of the rows quarantined", percent(*q.MaxFraction))
		share := 0.0
		if rowsIn > 0 {
			share = float64(total) / float64(rowsIn)
		}
		res.Observed = fmt.Sprintf("%d of %d rows quarantined (%s): %d by rules, %d at parse", total, rowsIn, percent(share), b.removed, in.QuarantinedOther)
		res.Status = StatusPass
		if share > *q.MaxFraction {
			res.Status = statusOf(action)
		}
		out = append(out, res)
	}
	return out
}

func (b *Batch) freshResult(f *config.FreshnessRule) Result {
	res := b.result(RuleFreshness, f.Column, KindTable, orWarn(f.Action))
	res.Expected = fmt.Sprintf("newest value at most %s before the end of the process date", config.FormatDuration(f.MaxAge.Duration))
	if b.fresh.missing != "" {
		res.Status, res.Observed = StatusMissingColumn, b.fresh.missing
		return res
	}
	res.CheckedRows = b.kept
	day, err := time.Parse(time.DateOnly, b.meta.ProcessDate)
	switch {
	case err != nil:
		res.Status, res.Observed = statusOf(res.Action), fmt.Sprintf("process date %q is not a date", b.meta.ProcessDate)
	case !b.fresh.has:
		res.Status, res.Observed = statusOf(res.Action), "no value"
	default:
		end := day.Add(24 * time.Hour).UnixMicro()
		age := time.Duration(end-b.fresh.newest) * time.Microsecond
		newest := formatMicros(b.fresh.newest, true)
		if b.fresh.kind == kDate32 {
			newest = formatDate(int32(b.fresh.newest/usPerDay - 1))
		}
		if age >= 0 {
			res.Observed = fmt.Sprintf("newest %s, %s before the end of %s", newest, config.FormatDuration(age), b.meta.ProcessDate)
		} else {
			res.Observed = fmt.Sprintf("newest %s, %s after the end of %s", newest, config.FormatDuration(-age), b.meta.ProcessDate)
		}
		res.Status = StatusPass
		if age > f.MaxAge.Duration {
			res.Status = statusOf(res.Action)
		}
	}
	return res
}
