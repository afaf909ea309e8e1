package table

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrDuplicateColumn is returned by Observe and Append for a header that names a column twice (headers must come
// from ParseHeader).
var ErrDuplicateColumn = errors.New("table: duplicate column in header")

// ObserveStats counts the records of one Observe call. Rows counts every record except blank lines; a rejected
// row is counted once, under the first of Malformed, Ragged, InvalidUTF8, HintViolations that applies (the order
// the Builder checks them in). Accepted rows: Rows - Malformed - Ragged - InvalidUTF8 - HintViolations.
type ObserveStats struct {
	Rows, Ragged, InvalidUTF8 int64
	Malformed                 int64 // bad quoting (see the package documentation)
	HintViolations            int64 // a value that does not read as its column's strict hint
	Blank                     int64 // blank lines, skipped and not counted in Rows
}

// Rejected returns the rows the Builder will quarantine.
func (s ObserveStats) Rejected() int64 {
	return s.Malformed + s.Ragged + s.InvalidUTF8 + s.HintViolations
}

func (s *ObserveStats) add(o ObserveStats) {
	s.Rows += o.Rows
	s.Ragged += o.Ragged
	s.InvalidUTF8 += o.InvalidUTF8
	s.Malformed += o.Malformed
	s.HintViolations += o.HintViolations
	s.Blank += o.Blank
}

// ColumnType is what an Inferer learnt about one column.
type ColumnType struct {
	Name    string
	Type    Type
	NonNull int64 // values other than null tokens in accepted rows
	// LargeInt: an integer float64 cannot hold exactly (beyond ±2^53) was seen. Evolve turns a column that would
	// become float64 into string when it is set (Type already says string if the batch itself mixed them).
	LargeInt bool
}

type inferColumn struct {
	ColumnType
	strict bool // Type is fixed by a strict hint
}

// Inferer observes every value of every accepted record of a batch and tracks each column's type. It is not safe
// for concurrent use.
type Inferer struct {
	opts    Options
	optsErr error
	nulls   nullSet
	sc      *scanner

	cols  []inferColumn
	index map[string]int
	stats ObserveStats

	// per Observe call, reused
	colOf  []int // header position -> index in cols
	strict []int // header positions of strict columns
}

// NewInferer returns an Inferer for one batch. Invalid options (see Options.Validate) make Observe fail.
func NewInferer(opts Options) *Inferer {
	return &Inferer{
		opts:    opts,
		optsErr: opts.Validate(),
		nulls:   newNullSet(opts.NullTokens),
		sc:      newScanner(opts.delimiter()),
		index:   make(map[string]int),
	}
}

// Observe infers from the records in data (whole CSV records, see the package documentation) whose first record
// is on physical line firstLine, under header (column names as returned by ParseHeader). Every column of the
// header is registered even when data holds no record. Rejected rows (malformed, ragged, invalid UTF-8, strict
// hint violations) are skipped and counted. The error is only about the arguments (invalid options, duplicate
// names in header); data never makes Observe fail.
func (in *Inferer) Observe(header []string, data []byte, firstLine int64) (ObserveStats, error) {
	return in.ObserveInto(header, data, firstLine, nil)
}

// ObserveInto is Observe that also hands every accepted row to sink (nil for none), which keeps its values parsed:
// the fields are split and classified once for both. sink must have the same Options and see every call.
func (in *Inferer) ObserveInto(header []string, data []byte, firstLine int64, sink *Collector) (ObserveStats, error) {
	if in.optsErr != nil {
		return ObserveStats{}, in.optsErr
	}
	if name, dup := duplicate(header); dup {
		return ObserveStats{}, fmt.Errorf("%w: %q", ErrDuplicateColumn, name)
	}
	in.colOf = in.colOf[:0]
	in.strict = in.strict[:0]
	for pos, name := range header {
		ci, ok := in.index[name]
		if !ok {
			ci = len(in.cols)
			in.index[name] = ci
			c := inferColumn{ColumnType: ColumnType{Name: name}}
			if h, ok := in.opts.Hints[name]; ok {
				c.Type, c.strict = h.Type, h.Strict
			}
			in.cols = append(in.cols, c)
		}
		in.colOf = append(in.colOf, ci)
		if in.cols[ci].strict {
			in.strict = append(in.strict, pos)
		}
	}

	if sink != nil {
		sink.begin(header, data)
		defer sink.end()
	}
	var st ObserveStats
	sc := in.sc
	sc.reset(data, firstLine)
	for sc.next() {
		switch sc.kind {
		case recBlank:
			st.Blank++
			continue
		case recMalformed:
			st.Rows++
			st.Malformed++
			continue
		}
		st.Rows++
		if len(sc.fields) != len(header) {
			st.Ragged++
			continue
		}
		if !utf8.Valid(sc.raw) {
			st.InvalidUTF8++
			continue
		}
		if !in.strictOK(sc.fields) {
			st.HintViolations++
			continue
		}
		if sink != nil {
			in.observeRowInto(sc.fields, sink)
			continue
		}
		for pos, f := range sc.fields {
			if in.nulls.match(f) {
				continue
			}
			c := &in.cols[in.colOf[pos]]
			c.NonNull++
			if c.Type == String || c.strict {
				continue
			}
			v := classify(f)
			c.Type = Widen(c.Type, v.t)
			c.LargeInt = c.LargeInt || v.big
		}
	}
	in.stats.add(st)
	return st, nil
}

// observeRowInto is the loop of Observe over an accepted record's fields, handing each value to sink.
func (in *Inferer) observeRowInto(fields [][]byte, sink *Collector) {
	for pos, f := range fields {
		if in.nulls.match(f) {
			sink.null(pos, f)
			continue
		}
		c := &in.cols[in.colOf[pos]]
		c.NonNull++
		switch {
		case c.Type == String:
			sink.text(pos, f)
		case c.strict:
			sink.value(pos, f, classify(f))
		default:
			v := classify(f)
			c.Type = Widen(c.Type, v.t)
			c.LargeInt = c.LargeInt || v.big
			sink.value(pos, f, v)
		}
	}
	sink.row()
}

// duplicate returns a name header holds twice.
func duplicate(header []string) (string, bool) {
	if len(header) <= 16 {
		for i, a := range header {
			for _, b := range header[:i] {
				if a == b {
					return a, true
				}
			}
		}
		return "", false
	}
	seen := make(map[string]struct{}, len(header))
	for _, a := range header {
		if _, ok := seen[a]; ok {
			return a, true
		}
		seen[a] = struct{}{}
	}
	return "", false
}

// strictOK reports whether every strict column of the record reads as its hint.
func (in *Inferer) strictOK(fields [][]byte) bool {
	for _, pos := range in.strict {
		f := fields[pos]
		if in.nulls.match(f) {
			continue
		}
		if !accepts(in.cols[in.colOf[pos]].Type, classify(f)) {
			return false
		}
	}
	return true
}

// accepts reports whether a column of type col stores v without loss. A Null column is written as string.
func accepts(col Type, v value) bool {
	switch col {
	case Null, String:
		return true
	case Float64:
		return v.t == Float64 || v.t == Int64 && !v.big
	}
	return col.holds(v.t)
}

// Stats returns the sum of the stats of every Observe call.
func (in *Inferer) Stats() ObserveStats { return in.stats }

// Columns returns every column seen, in first-seen order across all headers observed.
func (in *Inferer) Columns() []ColumnType {
	out := make([]ColumnType, len(in.cols))
	for i, c := range in.cols {
		out[i] = c.ColumnType
		if !c.strict && c.Type == Float64 && c.LargeInt {
			out[i].Type = String
		}
	}
	return out
}
