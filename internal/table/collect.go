package table

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Collector keeps the rows an Inferer accepts, parsed, in typed Arrow columns: the values of a batch are split
// and classified once, on arrival, instead of once to infer and once more to build. It is a cache of what a
// Builder would build: each column is held under the type its own values have so far, and Records converts the
// columns to the schema Evolve derives at the end of the batch. Conversions are exact or not made: int64 to
// float64 (unless "-0" was read or an integer is beyond 2^53), date to timestamp, integers written canonically and
// dates to string. A column whose values need their original text under that schema (floats, bools, timestamps or
// "+5" in a column that turns into text, a null token read as null in a column that turns into text) cannot be
// converted; Records then reports ErrNotCollected and the caller builds the batch from its CSV with a Builder, as
// without a Collector. Rows are kept in the order observed.
//
// Rows are sealed into segments of about segmentBytes (a record batch each, one Parquet row group). A Collector is
// not safe for concurrent use; Release frees its memory.
type Collector struct {
	mem          memory.Allocator
	opts         Options
	segmentBytes int64

	cols  []*collectColumn
	index map[string]int
	rows  int // rows in the open segment
	segs  []collectSegment
	dead  string // why the Collector gave up ("" while it holds every row)

	sealedBytes int64
	taken       int // rows of the segments TakeSealed handed out

	// per Observe call
	colOf []int // header position -> index in cols
	est   int   // records in the call's data, at most (room reserved in the fixed-width builders)
}

// ErrNotCollected is returned by Records when the collected columns cannot be converted to the schema exactly;
// the batch must be built from its CSV.
var ErrNotCollected = errors.New("table: rows not collected under this schema")

type collectSegment struct {
	rows int
	cols map[string]collectArray
}

type collectArray struct {
	typ Type
	arr arrow.Array
	flags
}

// flags say which conversions of a column's values are exact.
type flags struct {
	tokens     bool // a Null column that holds null tokens as text (kept if the column is a string column)
	nullTokens bool // a typed column that read a non-empty null token as null (its text is lost)
	negZero    bool // an int64 column that read "-0" (-0.0 once float64)
	nonCanon   bool // an int64 column that read a value strconv.FormatInt does not write back ("+5", "-0")
}

type collectColumn struct {
	typedBuilder // typ: the type of the values held so far in the open segment
	name         string
	strict       bool
	n            int // values in the open segment
	flags
}

// NewCollector returns a Collector that seals a segment whenever its columns hold about segmentBytes.
func NewCollector(mem memory.Allocator, opts Options, segmentBytes int64) *Collector {
	return &Collector{mem: mem, opts: opts, segmentBytes: segmentBytes, index: map[string]int{}}
}

// Dead reports why the Collector stopped collecting ("" while it holds every accepted row).
func (c *Collector) Dead() string { return c.dead }

// Kill stops collecting and frees the columns; Records then reports ErrNotCollected with why.
func (c *Collector) Kill(why string) {
	if c.dead != "" {
		return
	}
	c.dead = why
	c.free()
}

func (c *Collector) free() {
	for _, col := range c.cols {
		if col.b != nil {
			col.b.Release()
			col.b = nil
		}
	}
	c.cols, c.index = nil, nil
	for _, s := range c.segs {
		for _, a := range s.cols {
			a.arr.Release()
		}
	}
	c.segs = nil
	c.sealedBytes = 0
}

// Release frees the Collector's memory.
func (c *Collector) Release() {
	if c.dead == "" {
		c.dead = "released"
	}
	c.free()
}

// Rows returns the number of rows collected.
func (c *Collector) Rows() int {
	n := c.rows
	for _, s := range c.segs {
		n += s.rows
	}
	return n
}

// ApproxBytes estimates the memory the collected rows hold: the capacity of their values, offsets and validity
// bitmaps.
func (c *Collector) ApproxBytes() int64 {
	return c.sealedBytes + c.openBytes()
}

func (c *Collector) openBytes() int64 { return c.sizeOf(true) }

// sizeOf adds up the open columns' values, offsets and validity bitmaps: as allocated (their
// capacity: buffers grow by doubling, and the memory budget must count what is taken), or as held
// (what a Builder would hold for the same rows: segments are sealed by that, so row groups are cut
// where a Builder cuts them).
func (c *Collector) sizeOf(allocated bool) int64 {
	var total int64
	for _, col := range c.cols {
		n, data := int64(c.rows), int64(0)
		if col.str != nil {
			data = int64(col.str.DataLen())
		}
		if allocated {
			n = int64(col.b.Cap())
			if col.str != nil {
				data = int64(col.str.DataCap())
			}
		}
		total += columnBytes(col.typ, n, data)
	}
	return total
}

// begin maps header positions to columns for one Observe call of data; a column seen for the first time gets
// nulls for the rows before it. Every column gets room for one value per record of data.
func (c *Collector) begin(header []string, data []byte) {
	if c.dead != "" {
		return
	}
	c.est = bytes.Count(data, nlByte) + 1
	c.colOf = c.colOf[:0]
	for _, name := range header {
		ci, ok := c.index[name]
		if !ok {
			ci = len(c.cols)
			c.index[name] = ci
			col := &collectColumn{name: name}
			col.strict = c.opts.Hints[name].Strict
			col.reset(c.mem, c.opts.Hints[name].Type) // a non-strict hint is the floor; Null without one
			c.cols = append(c.cols, col)
		}
		c.colOf = append(c.colOf, ci)
	}
	for _, col := range c.cols {
		col.padTo(c.rows)
		col.b.Reserve(c.est)
	}
}

// row counts an accepted row, once each of its fields was handed over.
func (c *Collector) row() {
	if c.dead == "" {
		c.rows++
	}
}

// end closes one Observe call: columns the header lacked get nulls for its rows; a segment that reached
// segmentBytes is sealed.
func (c *Collector) end() {
	if c.dead != "" {
		return
	}
	for _, col := range c.cols {
		col.padTo(c.rows)
	}
	if c.segmentBytes > 0 && c.sizeOf(false) >= c.segmentBytes {
		c.seal()
	}
}

// seal turns the open columns into a segment.
func (c *Collector) seal() {
	if c.rows == 0 {
		return
	}
	seg := collectSegment{rows: c.rows, cols: make(map[string]collectArray, len(c.cols))}
	c.sealedBytes += c.openBytes()
	for _, col := range c.cols {
		seg.cols[col.name] = collectArray{typ: col.typ, arr: col.b.NewArray(), flags: col.flags}
		col.flags, col.n = flags{}, 0
		if !col.strict && col.typ != String {
			// A new segment starts from the bottom again: its columns widen on their own values.
			col.b.Release()
			col.reset(c.mem, c.opts.Hints[col.name].Type)
		}
	}
	c.segs = append(c.segs, seg)
	c.rows = 0
}

func (col *collectColumn) padTo(rows int) {
	if k := rows - col.n; k > 0 {
		col.b.AppendNulls(k)
		col.n = rows
	}
}

// null appends a null token: the empty one is null; another one is held as text in a string column (unless
// StringsCanBeNull) and in a column of type Null (kept only if the column turns out to be a string column).
func (c *Collector) null(pos int, f []byte) {
	if c.dead != "" {
		return
	}
	col := c.cols[c.colOf[pos]]
	col.n++
	switch {
	case len(f) > 0 && !c.opts.StringsCanBeNull && (col.typ == String || col.typ == Null):
		col.str.BinaryBuilder.Append(f)
		col.tokens = col.tokens || col.typ == Null
	default:
		col.appendNull()
		col.nullTokens = col.nullTokens || len(f) > 0
	}
}

// text appends a value of a string column.
func (c *Collector) text(pos int, f []byte) {
	if c.dead != "" {
		return
	}
	col := c.cols[c.colOf[pos]]
	if col.typ != String && !c.widen(col, String) {
		return
	}
	col.n++
	col.str.BinaryBuilder.Append(f)
}

// value appends a classified value (f is its text, for a string column).
func (c *Collector) value(pos int, f []byte, v value) {
	if c.dead != "" {
		return
	}
	col := c.cols[c.colOf[pos]]
	if !col.strict {
		if w := Widen(col.typ, v.t); w != col.typ && !c.widen(col, w) {
			return
		}
	}
	switch {
	case col.typ == Int64 && (f[0] == '+' || v.i == 0 && f[0] == '-'):
		col.nonCanon = true
		col.negZero = col.negZero || f[0] == '-'
	case col.typ == Float64 && v.big:
		c.Kill(fmt.Sprintf("column %s: an integer beyond 2^53 in a float64 column", col.name))
		return
	}
	col.n++
	col.appendValue(f, &v)
}

// widen converts the open column to type w; it kills the Collector (and reports false) when the values held
// cannot be converted exactly.
func (c *Collector) widen(col *collectColumn, w Type) bool {
	if col.typ == Null {
		if w == String {
			col.typ, col.tokens = String, false // tokens held as text stay text
			return true
		}
		// Every value so far is null (tokens are null outside string columns: their text is lost).
		col.b.Release()
		col.nullTokens = col.nullTokens || col.tokens
		col.tokens = false
		col.reset(c.mem, w)
		col.b.AppendNulls(col.n)
		col.b.Reserve(c.est)
		return true
	}
	old := col.b.NewArray()
	defer old.Release()
	from := col.typ
	col.b.Release()
	col.reset(c.mem, w)
	if err := c.appendConverted(&col.typedBuilder, old, from, col.flags, col.name); err != nil {
		c.Kill(err.Error())
		return false
	}
	col.b.Reserve(c.est)
	return true
}

// Records returns the collected rows as record batches under s (one per segment; the caller releases them), or
// ErrNotCollected when they cannot be converted to s exactly (then nothing is returned). s must hold every column
// the Collector saw (it was evolved from the Inferer that fed it). The Collector is emptied either way.
func (c *Collector) Records(s *Schema) ([]arrow.RecordBatch, error) {
	if c.dead != "" {
		return nil, fmt.Errorf("%w: %s", ErrNotCollected, c.dead)
	}
	c.seal()
	defer c.Release()
	return c.records(c.segs, s)
}

// Sealed returns the number of sealed segments held.
func (c *Collector) Sealed() int { return len(c.segs) }

// TakeSealed returns the sealed segments as record batches under s, as Records does, and removes them from the
// Collector, which goes on collecting into its open segment; freed is the memory ApproxBytes counted for them
// (the records now hold it, until the caller releases them). On ErrNotCollected the Collector is killed.
func (c *Collector) TakeSealed(s *Schema) (recs []arrow.RecordBatch, freed int64, err error) {
	if c.dead != "" {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotCollected, c.dead)
	}
	recs, err = c.records(c.segs, s)
	if err != nil {
		c.Kill(err.Error())
		return nil, 0, err
	}
	for _, seg := range c.segs {
		for _, a := range seg.cols {
			a.arr.Release()
		}
	}
	freed = c.sealedBytes
	for _, seg := range c.segs {
		c.taken += seg.rows
	}
	c.segs, c.sealedBytes = nil, 0
	return recs, freed, nil
}

// Taken returns the rows TakeSealed handed out: Rows and Records no longer hold them.
func (c *Collector) Taken() int { return c.taken }

// records converts segs to s (see Records).
func (c *Collector) records(segs []collectSegment, s *Schema) ([]arrow.RecordBatch, error) {
	sc := s.Arrow()
	var out []arrow.RecordBatch
	fail := func(err error) ([]arrow.RecordBatch, error) {
		for _, r := range out {
			r.Release()
		}
		return nil, err
	}
	for _, seg := range segs {
		arrs := make([]arrow.Array, 0, len(s.Columns))
		release := func() {
			for _, a := range arrs {
				a.Release()
			}
		}
		for _, col := range s.Columns {
			a, err := c.convert(seg, col, sc.Field(len(arrs)).Type)
			if err != nil {
				release()
				return fail(err)
			}
			arrs = append(arrs, a)
		}
		for name := range seg.cols {
			if !slices.ContainsFunc(s.Columns, func(col Column) bool { return col.Name == name }) {
				release()
				return fail(fmt.Errorf("%w: column %s not in schema v%d", ErrNotCollected, name, s.Version))
			}
		}
		out = append(out, array.NewRecordBatch(sc, arrs, int64(seg.rows)))
		release()
	}
	return out, nil
}

// convert returns the segment's column under col's type (a new reference).
func (c *Collector) convert(seg collectSegment, col Column, dt arrow.DataType) (arrow.Array, error) {
	a, ok := seg.cols[col.Name]
	switch {
	case !ok: // not in this segment's members
		return array.MakeArrayOfNull(c.mem, dt, seg.rows), nil
	case a.typ == Null:
		// Only null tokens: null, except the non-empty ones in a string column that keeps them as text (the
		// array holds them as text, empty values as null).
		if col.Type == String && !c.opts.StringsCanBeNull && a.tokens {
			a.arr.Retain()
			return a.arr, nil
		}
		return array.MakeArrayOfNull(c.mem, dt, seg.rows), nil
	case a.typ == col.Type:
		a.arr.Retain()
		return a.arr, nil
	}
	var tb typedBuilder
	tb.reset(c.mem, col.Type)
	defer tb.b.Release()
	if err := c.appendConverted(&tb, a.arr, a.typ, a.flags, col.Name); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotCollected, err)
	}
	return tb.b.NewArray(), nil
}

// textExact reports whether the values of a column of type t with flags f read back as their text: integers
// written canonically (no '+', no "-0") and dates (always YYYY-MM-DD), with no null token lost to a null when
// string columns keep them as text.
func (c *Collector) textExact(t Type, f flags) bool {
	if f.nullTokens && !c.opts.StringsCanBeNull {
		return false
	}
	return t == Int64 && !f.nonCanon || t == Date
}

// appendConverted appends the values of a (a column of type from, with flags f) to dst, converted to dst's
// type: int64 to float64, date to timestamp, or (textExact) int64 and date to the text they were read from. It
// fails, having appended part of them, when the conversion is not one of these or a value would not convert
// exactly.
func (c *Collector) appendConverted(dst *typedBuilder, a arrow.Array, from Type, f flags, name string) error {
	switch {
	case from == Int64 && dst.typ == Float64 && !f.negZero:
	case from == Date && dst.typ == Timestamp:
	case dst.typ == String && c.textExact(from, f):
	default:
		return fmt.Errorf("column %s: its %s values cannot be written as %s exactly", name, from, dst.typ)
	}
	dst.b.Reserve(a.Len())
	var buf []byte
	for i := range a.Len() {
		if a.IsNull(i) {
			dst.appendNull()
			continue
		}
		switch a := a.(type) {
		case *array.Int64:
			v := a.Value(i)
			if dst.typ == String {
				dst.str.BinaryBuilder.Append(strconv.AppendInt(buf[:0], v, 10))
			} else if !exactFloat(v) {
				return fmt.Errorf("column %s: an integer beyond 2^53 in a float64 column", name)
			} else {
				dst.f64.UnsafeAppend(float64(v))
			}
		case *array.Date32:
			if dst.typ == String {
				dst.str.BinaryBuilder.Append(a.Value(i).ToTime().AppendFormat(buf[:0], "2006-01-02"))
			} else {
				dst.ts.UnsafeAppend(arrow.Timestamp(int64(a.Value(i)) * usPerDay))
			}
		}
	}
	return nil
}
