package table

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Quarantine kinds: Quarantined.Kind is one of these; group counts by Kind, not by Reason (Reason may quote the
// offending value).
const (
	KindMalformed   = "malformed csv"
	KindRagged      = "ragged row"
	KindInvalidUTF8 = "invalid utf-8"
	KindType        = "type mismatch"
)

// Quarantined is a record the Builder set aside instead of writing it.
type Quarantined struct {
	Line   int64  // physical line where the record starts
	Reason string // e.g. "ragged row: 5 fields, header has 4", "invalid utf-8", `value "abc" is not int64 (strict hint) in column price`
	Raw    []byte // the record's bytes as in data, without its line terminator; aliases data (copy to keep it)
	Kind   string // KindMalformed, KindRagged, KindInvalidUTF8 or KindType
}

// ErrUnknownColumn is returned by Append for a header that names a column the schema does not have (the schema
// was not evolved from an Inferer that observed that header).
var ErrUnknownColumn = errors.New("table: column not in schema")

// maxReasonValue bounds how much of a value a quarantine reason quotes.
const maxReasonValue = 64

// Builder parses records into Arrow under a fixed Schema. Columns are matched by header name, not position;
// columns of the schema absent from a header are null in its records. Arrow builders are reused across Append and
// NewRecordBatch calls. A Builder is not safe for concurrent use.
type Builder struct {
	schema  *Schema
	arrow   *arrow.Schema
	opts    Options
	optsErr error
	nulls   nullSet
	sc      *scanner
	cols    []buildColumn
	index   map[string]int
	rows    int

	// per header, reused
	header []string
	colOf  []int // header position -> schema column
	absent []int // schema columns not in header
	cells  []value
	isNull []bool
	str    [][]byte
}

type buildColumn struct {
	typedBuilder
	name   string
	strict bool
	text   bool // null tokens other than "" are values (a string column, Options.StringsCanBeNull false)
}

// NewBuilder returns a Builder of Arrow record batches under s (s must not change while the Builder is used).
// Invalid options (see Options.Validate) make Append fail. Release it when done.
func NewBuilder(mem memory.Allocator, s *Schema, opts Options) *Builder {
	b := &Builder{
		schema:  s,
		arrow:   s.Arrow(),
		opts:    opts,
		optsErr: opts.Validate(),
		nulls:   newNullSet(opts.NullTokens),
		sc:      newScanner(opts.delimiter()),
		cols:    make([]buildColumn, len(s.Columns)),
		index:   make(map[string]int, len(s.Columns)),
		cells:   make([]value, len(s.Columns)),
		isNull:  make([]bool, len(s.Columns)),
		str:     make([][]byte, len(s.Columns)),
	}
	for i, c := range s.Columns {
		bc := &b.cols[i]
		bc.reset(mem, c.Type)
		bc.name = c.Name
		if h, ok := opts.Hints[c.Name]; ok && h.Strict {
			bc.strict = true
		}
		bc.text = c.Type == String && !opts.StringsCanBeNull
		if _, dup := b.index[c.Name]; !dup {
			b.index[c.Name] = i
		}
	}
	return b
}

// Schema returns the schema the Builder writes under.
func (b *Builder) Schema() *Schema { return b.schema }

// ArrowSchema returns the Arrow schema of the record batches (s.Arrow()).
func (b *Builder) ArrowSchema() *arrow.Schema { return b.arrow }

// Append parses the records in data (whole CSV records; the first on physical line firstLine) under header
// (column names as returned by ParseHeader) and buffers the accepted ones. Rows are rejected for the reasons in
// the package documentation and handed to quarantine (which may be nil to drop them; it must not keep q.Raw
// beyond the life of data without copying it). Blank lines are skipped. rows is the number of rows buffered by
// this call. The error is only about the arguments (invalid options, a header with a duplicate or a name the
// schema lacks); then nothing is buffered.
func (b *Builder) Append(header []string, data []byte, firstLine int64, quarantine func(Quarantined)) (rows int, err error) {
	if b.optsErr != nil {
		return 0, b.optsErr
	}
	if err := b.setHeader(header); err != nil {
		return 0, err
	}
	// Every record but the last ends in '\n': reserve room for that many rows in the fixed-width builders, so that
	// appendRow can use their unchecked appends.
	est := bytes.Count(data, nlByte) + 1
	for i := range b.cols {
		if c := &b.cols[i]; c.str == nil {
			c.b.Reserve(est)
		}
	}
	sc := b.sc
	sc.reset(data, firstLine)
	for sc.next() {
		switch sc.kind {
		case recBlank:
			continue
		case recMalformed:
			b.reject(quarantine, KindMalformed, "malformed csv: "+sc.reason)
			continue
		}
		if len(sc.fields) != len(header) {
			b.reject(quarantine, KindRagged, fmt.Sprintf("ragged row: %d fields, header has %d", len(sc.fields), len(header)))
			continue
		}
		if !utf8.Valid(sc.raw) {
			b.reject(quarantine, KindInvalidUTF8, "invalid utf-8")
			continue
		}
		if pos, ok := b.parseRow(sc.fields); !ok {
			c := &b.cols[b.colOf[pos]]
			b.reject(quarantine, KindType, typeReason(sc.fields[pos], c, b.schema.Version))
			continue
		}
		b.appendRow()
		rows++
	}
	b.rows += rows
	return rows, nil
}

func (b *Builder) reject(quarantine func(Quarantined), kind, reason string) {
	if quarantine != nil {
		quarantine(Quarantined{Line: b.sc.start, Reason: reason, Raw: b.sc.raw, Kind: kind})
	}
}

func typeReason(f []byte, c *buildColumn, version uint32) string {
	v := f
	cut := ""
	if len(v) > maxReasonValue {
		n := maxReasonValue
		for n > 0 && !utf8.RuneStart(v[n]) {
			n--
		}
		v, cut = v[:n], "…"
	}
	if c.strict {
		return fmt.Sprintf("value %s%s is not %s (strict hint) in column %s", strconv.Quote(string(v)), cut, c.typ, c.name)
	}
	return fmt.Sprintf("value %s%s is not %s in column %s (schema v%d)", strconv.Quote(string(v)), cut, c.typ, c.name, version)
}

// setHeader maps header positions to schema columns, reusing the mapping of the previous call when the header is
// the same.
func (b *Builder) setHeader(header []string) error {
	if equalStrings(header, b.header) && b.header != nil {
		return nil
	}
	if name, dup := duplicate(header); dup {
		return fmt.Errorf("%w: %q", ErrDuplicateColumn, name)
	}
	colOf := make([]int, len(header))
	present := make([]bool, len(b.cols))
	for pos, name := range header {
		ci, ok := b.index[name]
		if !ok {
			return fmt.Errorf("%w: %q (table %s, schema v%d)", ErrUnknownColumn, name, b.schema.Table, b.schema.Version)
		}
		colOf[pos] = ci
		present[ci] = true
	}
	b.absent = b.absent[:0]
	for ci, p := range present {
		if !p {
			b.absent = append(b.absent, ci)
		}
	}
	b.colOf = colOf
	b.header = append(b.header[:0:0], header...)
	return nil
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// parseRow reads every field of a record into the staging cells; on a value its column cannot hold it returns the
// field's position and false (nothing is appended: a row goes in whole or not at all). A null token is null,
// except a non-empty one in a column that keeps them as text (buildColumn.text).
func (b *Builder) parseRow(fields [][]byte) (int, bool) {
	for pos, f := range fields {
		ci := b.colOf[pos]
		c := &b.cols[ci]
		if b.nulls.match(f) && (len(f) == 0 || !c.text) {
			b.isNull[ci] = true
			continue
		}
		b.isNull[ci] = false
		switch c.typ {
		case String, Null:
			b.str[ci] = f
			continue
		}
		v := classify(f)
		if !accepts(c.typ, v) {
			return pos, false
		}
		b.cells[ci] = v
	}
	return 0, true
}

// appendRow appends the staged row to the Arrow builders. Fixed-width builders have room (Append reserved it).
func (b *Builder) appendRow() {
	for _, ci := range b.colOf {
		if c := &b.cols[ci]; b.isNull[ci] {
			c.appendNull()
		} else {
			c.appendValue(b.str[ci], &b.cells[ci]) // str: the text of a String or Null column
		}
	}
	for _, ci := range b.absent {
		b.cols[ci].appendNull()
	}
}

// Len returns the number of rows buffered.
func (b *Builder) Len() int { return b.rows }

// ApproxBytes estimates the size of the buffered rows once built (values, offsets and validity bitmaps), so that
// the caller can cut record batches (row groups) by size.
func (b *Builder) ApproxBytes() int64 {
	var total int64
	for i := range b.cols {
		c := &b.cols[i]
		var data int64
		if c.str != nil {
			data = int64(c.str.DataLen())
		}
		total += columnBytes(c.typ, int64(b.rows), data)
	}
	return total
}

// NewRecordBatch returns the buffered rows as a record batch under ArrowSchema (the caller releases it) and
// resets the Builder, which keeps its Arrow builders for the next rows.
func (b *Builder) NewRecordBatch() arrow.RecordBatch {
	arrs := make([]arrow.Array, len(b.cols))
	for i := range b.cols {
		arrs[i] = b.cols[i].b.NewArray()
	}
	rec := array.NewRecordBatch(b.arrow, arrs, int64(b.rows))
	for _, a := range arrs {
		a.Release()
	}
	b.rows = 0
	return rec
}

// Release frees the Arrow builders' memory. The Builder cannot be used afterwards.
func (b *Builder) Release() {
	for i := range b.cols {
		if c := &b.cols[i]; c.b != nil {
			c.b.Release()
			c.b = nil
		}
	}
}
