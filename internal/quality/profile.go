package quality

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/axiomhq/hyperloglog"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/table"
)

// MaxValues is how many distinct values a text column's profile keeps exactly (Profile.Values).
const MaxValues = 32

// Profile describes one column of the rows a batch wrote (after quarantine), or of several batches merged.
type Profile struct {
	Table       string
	ArchiveID   string // "" once merged across archives
	ProcessDate string // "" once merged across dates
	BatchID     string // "" once merged across batches
	Column      string
	Type        string // the column's type (internal/table names: int64, string, …)

	Rows     int64 // rows, nulls included
	Nulls    int64
	Distinct int64 // distinct non-null values: exact up to MaxValues, else the HyperLogLog estimate

	// Min and Max are the least and greatest non-null values as text ("" when there is none): numbers as Go
	// writes them, dates YYYY-MM-DD, timestamps YYYY-MM-DD HH:MM:SS[.ffffff][Z], text in byte order.
	Min, Max string

	// Mean and Stddev (population) of int64 and float64 columns; 0 for other types and without values.
	Mean, Stddev float64

	// MinLength and MaxLength of string values in characters; 0 for other types and without values.
	MinLength, MaxLength int64

	// Values are a string column's distinct values, sorted, while there are at most MaxValues; past that Values
	// is nil and ValuesOverflow true.
	Values         []string
	ValuesOverflow bool

	// Sketch is the HyperLogLog sketch of the distinct values (github.com/axiomhq/hyperloglog, precision 14,
	// MarshalBinary): what Merge merges. Hashes: XXH3-64 of a string's bytes, the murmur3 finalizer of a
	// fixed-width value's 64 bits xor 0x9e3779b97f4a7c15 (so sketches of the same column type merge across
	// batches and processes).
	Sketch []byte
}

// numeric reports whether Mean and Stddev apply.
func (p *Profile) numeric() bool { return p.Type == "int64" || p.Type == "float64" }

// text reports whether lengths and values apply (null-typed columns are written as strings).
func (p *Profile) text() bool { return p.Type == "string" || p.Type == "null" }

// colProfile accumulates a column's profile over record batches.
type colProfile struct {
	name string
	typ  table.Type
	kind valKind

	rows, nulls int64

	// HyperLogLog registers (precision 14), filled as axiomhq's dense sketch fills them; turned into its sketch by
	// profile(). Values go to the registers only once the column has more than MaxValues distinct values (until
	// then vals holds them exactly).
	regs []uint8

	has        bool
	imin, imax int64 // int64, date32 (days), timestamp (µs), bool (0/1)
	fmin, fmax float64
	smin, smax string

	n          int64 // non-null values folded into mean/m2
	mean, m2   float64
	minLen     int64
	maxLen     int64
	vals       smallSet
	overflow   bool
	tsUnit     arrow.TimeUnit
	tsZoned    bool
	valueBytes int64
}

const (
	hllP    = 14
	hllRegs = 1 << hllP
)

func newColProfile(name string, typ table.Type, kind valKind) *colProfile {
	return &colProfile{name: name, typ: typ, kind: kind}
}

func (p *colProfile) bytes() int64 { return int64(len(p.regs)) + p.valueBytes }

// insert adds a hash to the registers: register = top 14 bits, value = 1 + leading zeros of the rest (as
// axiomhq's getPosVal).
func (p *colProfile) insert(x uint64) {
	i := x >> (64 - hllP)
	r := uint8(bits.LeadingZeros64(x<<hllP|1<<(hllP-1))) + 1
	if r > p.regs[i] {
		p.regs[i] = r
	}
}

// add folds a column of a record batch.
func (p *colProfile) add(a arrow.Array) {
	n := a.Len()
	p.rows += int64(n)
	nulls := a.NullN()
	p.nulls += int64(nulls)
	if nulls == n {
		return
	}
	switch a := a.(type) {
	case *array.Int64:
		p.addInt64(a, nulls)
	case *array.Float64:
		p.addFloat64(a, nulls)
	case *array.String:
		p.addString(a, nulls)
	case *array.Date32:
		for i, v := range a.Date32Values() {
			if nulls > 0 && a.IsNull(i) {
				continue
			}
			p.minMaxInt(int64(v))
			p.see(hashFixed(uint64(v)), "")
		}
	case *array.Timestamp:
		t := a.DataType().(*arrow.TimestampType)
		p.tsUnit, p.tsZoned = t.Unit, t.TimeZone != ""
		for i, v := range a.TimestampValues() {
			if nulls > 0 && a.IsNull(i) {
				continue
			}
			p.minMaxInt(int64(v))
			p.see(hashFixed(uint64(v)), "")
		}
	case *array.Boolean:
		for i := range n {
			if nulls > 0 && a.IsNull(i) {
				continue
			}
			v := int64(0)
			if a.Value(i) {
				v = 1
			}
			p.minMaxInt(v)
			p.see(hashFixed(uint64(v)), "")
		}
	}
}

func (p *colProfile) minMaxInt(v int64) {
	if !p.has {
		p.imin, p.imax, p.has = v, v, true
		return
	}
	p.imin = min(p.imin, v)
	p.imax = max(p.imax, v)
}

// addInt64: min, max, sketch, and mean and m2 of this batch (two passes: exact, no division per value), combined
// with what came before by Chan et al.'s rule (Welford's update for a batch of values).
func (p *colProfile) addInt64(a *array.Int64, nulls int) {
	vals := a.Int64Values()
	lo, hi := vals[0], vals[0]
	if nulls > 0 {
		for i, v := range vals {
			if a.IsValid(i) {
				lo, hi = v, v
				break
			}
		}
	}
	var sum float64
	for i, v := range vals {
		if nulls > 0 && a.IsNull(i) {
			continue
		}
		lo, hi = min(lo, v), max(hi, v)
		sum += float64(v)
		p.see(hashFixed(uint64(v)), "")
	}
	cnt := int64(len(vals) - nulls)
	mean := sum / float64(cnt)
	var m2 float64
	for i, v := range vals {
		if nulls > 0 && a.IsNull(i) {
			continue
		}
		d := float64(v) - mean
		m2 += d * d
	}
	p.minMaxInt(lo)
	p.minMaxInt(hi)
	p.combine(cnt, mean, m2)
}

func (p *colProfile) addFloat64(a *array.Float64, nulls int) {
	vals := a.Float64Values()
	lo, hi := math.Inf(1), math.Inf(-1)
	var sum float64
	for i, v := range vals {
		if nulls > 0 && a.IsNull(i) {
			continue
		}
		lo, hi = min(lo, v), max(hi, v)
		sum += v
		p.see(hashFloat(v), "")
	}
	cnt := int64(len(vals) - nulls)
	mean := sum / float64(cnt)
	var m2 float64
	for i, v := range vals {
		if nulls > 0 && a.IsNull(i) {
			continue
		}
		d := v - mean
		m2 += d * d
	}
	if !p.has {
		p.fmin, p.fmax, p.has = lo, hi, true
	} else {
		p.fmin, p.fmax = min(p.fmin, lo), max(p.fmax, hi)
	}
	p.combine(cnt, mean, m2)
}

// combine folds a group of cnt values with mean and m2 (sum of squared deviations) into the running ones.
func (p *colProfile) combine(cnt int64, mean, m2 float64) {
	p.n, p.mean, p.m2 = combineMoments(p.n, p.mean, p.m2, cnt, mean, m2)
}

func combineMoments(na int64, ma, m2a float64, nb int64, mb, m2b float64) (int64, float64, float64) {
	if nb == 0 {
		return na, ma, m2a
	}
	if na == 0 {
		return nb, mb, m2b
	}
	n := na + nb
	d := mb - ma
	mean := ma + d*float64(nb)/float64(n)
	m2 := m2a + m2b + d*d*float64(na)*float64(nb)/float64(n)
	return n, mean, m2
}

func (p *colProfile) addString(a *array.String, nulls int) {
	off := a.ValueOffsets()
	ascii := isASCII(a.ValueBytes())
	for i := range a.Len() {
		if nulls > 0 && a.IsNull(i) {
			continue
		}
		s := a.Value(i)
		l := int64(off[i+1] - off[i])
		if !ascii {
			l = int64(utf8.RuneCountInString(s))
		}
		if !p.has {
			p.smin, p.smax, p.minLen, p.maxLen, p.has = clone(s), clone(s), l, l, true
		} else {
			if s < p.smin {
				p.smin = clone(s)
			} else if s > p.smax {
				p.smax = clone(s)
			}
			p.minLen, p.maxLen = min(p.minLen, l), max(p.maxLen, l)
		}
		p.see(hashString(s), s)
	}
}

// see counts a value of hash h (s: the value of a string column, else ""): exactly in the small set while there
// are at most MaxValues distinct values, in the registers from then on. For fixed-width values the hash (a
// bijection of the value's bits) stands for the value.
func (p *colProfile) see(h uint64, s string) {
	if p.overflow {
		p.insert(h)
		return
	}
	if p.vals.add(h, s) {
		p.valueBytes = p.vals.bytes
		return
	}
	// more than MaxValues distinct values: from now on the registers take every value
	p.overflow = true
	p.regs = make([]uint8, hllRegs)
	for _, e := range p.vals.entries {
		p.insert(e.h)
	}
	p.vals = smallSet{}
	p.valueBytes = 0
	p.insert(h)
}

func clone(s string) string { return string([]byte(s)) }

// isASCII reports whether b holds only ASCII bytes (8 at a time).
func isASCII(b []byte) bool {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		v := uint64(b[i]) | uint64(b[i+1])<<8 | uint64(b[i+2])<<16 | uint64(b[i+3])<<24 |
			uint64(b[i+4])<<32 | uint64(b[i+5])<<40 | uint64(b[i+6])<<48 | uint64(b[i+7])<<56
		if v&0x8080808080808080 != 0 {
			return false
		}
	}
	for ; i < len(b); i++ {
		if b[i] >= 0x80 {
			return false
		}
	}
	return true
}

// smallSet holds up to MaxValues distinct values by hash, in a 64-slot open-addressing table: a string column's
// with the strings (compared too), a fixed-width column's by their hash alone (a bijection of the value).
type smallSet struct {
	slots   [2 * MaxValues]int8 // index+1 into entries, 0 empty
	entries []smallEntry
	bytes   int64
}

type smallEntry struct {
	h uint64
	s string
}

// add adds s (hash h); false when the set would exceed MaxValues.
func (s *smallSet) add(h uint64, v string) bool {
	for i := h & (2*MaxValues - 1); ; i = (i + 1) & (2*MaxValues - 1) {
		e := s.slots[i]
		if e == 0 {
			if len(s.entries) == MaxValues {
				return false
			}
			s.entries = append(s.entries, smallEntry{h: h, s: clone(v)})
			s.slots[i] = int8(len(s.entries))
			s.bytes += int64(len(v)) + 24
			return true
		}
		if en := &s.entries[e-1]; en.h == h && en.s == v {
			return true
		}
	}
}

// profile returns the accumulated profile (without the batch's identity).
func (p *colProfile) profile() Profile {
	pr := Profile{Column: p.name, Type: p.typ.String(), Rows: p.rows, Nulls: p.nulls}
	if p.has {
		switch p.kind {
		case kInt64:
			pr.Min, pr.Max = strconv.FormatInt(p.imin, 10), strconv.FormatInt(p.imax, 10)
		case kFloat64:
			pr.Min, pr.Max = formatFloat(p.fmin), formatFloat(p.fmax)
		case kDate32:
			pr.Min, pr.Max = formatDate(int32(p.imin)), formatDate(int32(p.imax))
		case kTimestamp:
			pr.Min, pr.Max = formatMicros(toMicros(p.imin, p.tsUnit), p.tsZoned), formatMicros(toMicros(p.imax, p.tsUnit), p.tsZoned)
		case kBool:
			pr.Min, pr.Max = strconv.FormatBool(p.imin == 1), strconv.FormatBool(p.imax == 1)
		case kString:
			pr.Min, pr.Max = p.smin, p.smax
			pr.MinLength, pr.MaxLength = p.minLen, p.maxLen
		}
	}
	if p.n > 0 {
		pr.Mean, pr.Stddev = p.mean, math.Sqrt(p.m2/float64(p.n))
	}
	var sk *hyperloglog.Sketch
	if !p.overflow {
		// a sparse sketch of the exact hashes: small, and exact for so few values
		sk = hyperloglog.New14()
		for _, e := range p.vals.entries {
			sk.InsertHash(e.h)
			if p.kind == kString {
				pr.Values = append(pr.Values, e.s)
			}
		}
		slices.Sort(pr.Values)
		pr.Distinct = int64(len(p.vals.entries))
	} else {
		sk = sketchFromRegisters(p.regs)
		pr.Distinct = int64(sk.Estimate())
		pr.ValuesOverflow = p.kind == kString
	}
	pr.Sketch, _ = sk.MarshalBinary() // a sketch of precision 14 always marshals
	return pr
}

// sketchFromRegisters builds the axiomhq dense sketch whose registers are regs: for each register one hash that
// sets exactly that register to exactly that value (getPosVal inverted), so the sketch is the one inserting every
// value would have built.
func sketchFromRegisters(regs []uint8) *hyperloglog.Sketch {
	sk := hyperloglog.NewNoSparse()
	for i, r := range regs {
		if r == 0 {
			continue
		}
		// the 50 bits below the index: 1 followed by r-1 zeros from the top, or none for the largest value (51)
		var rest uint64
		if r < 64-hllP+1 {
			rest = 1 << (64 - hllP - int(r))
		}
		sk.InsertHash(uint64(i)<<(64-hllP) | rest)
	}
	return sk
}

// ErrMergeMismatch is returned by Merge for profiles of different columns or types.
var ErrMergeMismatch = errors.New("quality: profiles of different columns or types")

// Merge combines two profiles of the same column and type (of two batches, or two merged ranges): counts add up,
// min and max are compared as the type orders them, mean and stddev combine exactly (Chan et al.), the sketches
// merge (Distinct is re-estimated, or exact while the merged Values fit MaxValues). Identity fields that differ
// become "".
func Merge(a, b Profile) (Profile, error) {
	if a.Table != b.Table || a.Column != b.Column || a.Type != b.Type {
		return Profile{}, fmt.Errorf("%w: %s.%s (%s) and %s.%s (%s)", ErrMergeMismatch, a.Table, a.Column, a.Type, b.Table, b.Column, b.Type)
	}
	out := Profile{Table: a.Table, Column: a.Column, Type: a.Type,
		ArchiveID: same(a.ArchiveID, b.ArchiveID), ProcessDate: same(a.ProcessDate, b.ProcessDate), BatchID: same(a.BatchID, b.BatchID),
		Rows: a.Rows + b.Rows, Nulls: a.Nulls + b.Nulls}
	aHas, bHas := a.Rows > a.Nulls, b.Rows > b.Nulls
	switch {
	case aHas && bHas:
		less, err := lessFor(a.Type)
		if err != nil {
			return Profile{}, err
		}
		out.Min, out.Max = a.Min, a.Max
		if lt, err := less(b.Min, a.Min); err != nil {
			return Profile{}, err
		} else if lt {
			out.Min = b.Min
		}
		if lt, err := less(a.Max, b.Max); err != nil {
			return Profile{}, err
		} else if lt {
			out.Max = b.Max
		}
		if a.text() {
			out.MinLength, out.MaxLength = min(a.MinLength, b.MinLength), max(a.MaxLength, b.MaxLength)
		}
	case aHas:
		out.Min, out.Max, out.MinLength, out.MaxLength = a.Min, a.Max, a.MinLength, a.MaxLength
	case bHas:
		out.Min, out.Max, out.MinLength, out.MaxLength = b.Min, b.Max, b.MinLength, b.MaxLength
	}
	if a.numeric() {
		na, nb := a.Rows-a.Nulls, b.Rows-b.Nulls
		n, mean, m2 := combineMoments(na, a.Mean, a.Stddev*a.Stddev*float64(na), nb, b.Mean, b.Stddev*b.Stddev*float64(nb))
		if n > 0 {
			out.Mean, out.Stddev = mean, math.Sqrt(m2/float64(n))
		}
	}
	sk, err := mergeSketches(a.Sketch, b.Sketch)
	if err != nil {
		return Profile{}, fmt.Errorf("merge profiles of %s.%s: %w", a.Table, a.Column, err)
	}
	out.Sketch, _ = sk.MarshalBinary()
	out.Distinct = int64(sk.Estimate())
	if a.text() {
		if a.ValuesOverflow || b.ValuesOverflow {
			out.ValuesOverflow = true
		} else {
			vals := append(slices.Clone(a.Values), b.Values...)
			slices.Sort(vals)
			vals = slices.Compact(vals)
			if len(vals) > MaxValues {
				out.ValuesOverflow = true
			} else {
				out.Values = vals
				out.Distinct = int64(len(vals))
			}
		}
	}
	return out, nil
}

func same(a, b string) string {
	if a == b {
		return a
	}
	return ""
}

func mergeSketches(a, b []byte) (*hyperloglog.Sketch, error) {
	sk := hyperloglog.New14()
	for _, raw := range [][]byte{a, b} {
		if len(raw) == 0 {
			continue
		}
		var o hyperloglog.Sketch
		if err := o.UnmarshalBinary(raw); err != nil {
			return nil, fmt.Errorf("read sketch: %w", err)
		}
		if err := sk.Merge(&o); err != nil {
			return nil, err
		}
	}
	return sk, nil
}

// lessFor returns the order of a type's Min/Max text.
func lessFor(typ string) (func(x, y string) (bool, error), error) {
	t, err := table.ParseType(typ)
	if err != nil {
		return nil, err
	}
	switch t {
	case table.Int64:
		return func(x, y string) (bool, error) {
			a, err1 := strconv.ParseInt(x, 10, 64)
			b, err2 := strconv.ParseInt(y, 10, 64)
			return a < b, errors.Join(err1, err2)
		}, nil
	case table.Float64:
		return func(x, y string) (bool, error) {
			a, err1 := strconv.ParseFloat(x, 64)
			b, err2 := strconv.ParseFloat(y, 64)
			return a < b, errors.Join(err1, err2)
		}, nil
	case table.Date, table.Timestamp, table.TimestampTZ:
		return func(x, y string) (bool, error) {
			a, err1 := config.ParseBound(x)
			b, err2 := config.ParseBound(y)
			return a.Micros < b.Micros, errors.Join(err1, err2)
		}, nil
	case table.Bool:
		return func(x, y string) (bool, error) { return x == "false" && y == "true", nil }, nil
	}
	return func(x, y string) (bool, error) { return x < y, nil }, nil
}
