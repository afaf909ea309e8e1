package quality

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
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
//
// Distinct values are counted exactly while there are at most exactMax of them (a set of their 64-bit hashes),
// then in HyperLogLog registers (precision 14, filled as axiomhq's dense sketch fills them). So a column of few
// values costs a small set and gives an exact count and a small sparse sketch; only a column of many values pays
// for 16 KiB of registers, and it has rows enough to spread that cost.
type colProfile struct {
	name string
	typ  table.Type
	kind valKind

	rows, nulls int64

	exact *hashSet // hashes of the distinct values while there are at most exactMax
	regs  []uint8  // HyperLogLog registers once there are more

	has        bool
	imin, imax int64 // int64, date32 (days), timestamp (column unit), bool (0/1)
	fmin, fmax float64
	smin, smax string
	kmin, kmax uint64 // prefixKey of smin, smax

	n        int64 // non-null values folded into mean/m2
	mean, m2 float64

	minLen, maxLen int64
	values         []string // string columns: the distinct values while at most MaxValues
	valuesOverflow bool
	valueBytes     int64

	tsUnit  arrow.TimeUnit
	tsZoned bool
}

const (
	hllP    = 14
	hllRegs = 1 << hllP
	// exactMax: distinct values counted exactly before switching to HyperLogLog registers.
	exactMax = 1024
)

func newColProfile(name string, typ table.Type, kind valKind) *colProfile {
	return &colProfile{name: name, typ: typ, kind: kind, exact: newHashSet(2 * exactMax * 8)}
}

func (p *colProfile) bytes() int64 {
	n := int64(len(p.regs)) + p.valueBytes
	if p.exact != nil {
		n += p.exact.bytes()
	}
	return n
}

// insert adds a hash to the registers: register = top 14 bits, value = 1 + leading zeros of the rest (as
// axiomhq's getPosVal).
func (p *colProfile) insert(x uint64) {
	i := x >> (64 - hllP)
	r := uint8(bits.LeadingZeros64(x<<hllP|1<<(hllP-1))) + 1
	if r > p.regs[i] {
		p.regs[i] = r
	}
}

// see counts a value by its hash; isNew reports (while counting exactly) that it was not seen before.
func (p *colProfile) see(h uint64) (isNew bool) {
	if p.regs != nil {
		p.insert(h)
		return false
	}
	if p.exact.add(h) {
		return false
	}
	if p.exact.n > exactMax {
		p.regs = make([]uint8, hllRegs)
		for _, x := range p.exact.slots {
			if x != 0 {
				p.insert(x)
			}
		}
		p.exact = nil
	}
	return true
}

// seeAll counts the values of the non-null rows of a, whose hashes are h (one per row).
func (p *colProfile) seeAll(h []uint64, a arrow.Array) {
	validRuns(a, func(from, to int) {
		for i := from; i < to; i++ {
			if p.regs == nil {
				p.see(h[i])
				continue
			}
			// registers from here on: the loop inlined
			regs := p.regs
			for _, x := range h[i:to] {
				k := x >> (64 - hllP)
				if r := uint8(bits.LeadingZeros64(x<<hllP|1<<(hllP-1))) + 1; r > regs[k] {
					regs[k] = r
				}
			}
			return
		}
	})
}

// add folds a column of a record batch; scratch is reusable space for one hash per row.
func (p *colProfile) add(a arrow.Array, scratch *[]uint64) {
	n := a.Len()
	p.rows += int64(n)
	nulls := a.NullN()
	p.nulls += int64(nulls)
	if nulls == n {
		return
	}
	if cap(*scratch) < n {
		*scratch = make([]uint64, n)
	}
	h := (*scratch)[:n]
	switch a := a.(type) {
	case *array.Int64:
		lo, hi, cnt, mean, m2 := numbers(a.Int64Values(), a)
		p.minMaxInt(lo)
		p.minMaxInt(hi)
		p.combine(cnt, mean, m2)
		for i, v := range a.Int64Values() {
			h[i] = hashFixed(uint64(v))
		}
	case *array.Float64:
		lo, hi, cnt, mean, m2 := numbers(a.Float64Values(), a)
		if !p.has {
			p.fmin, p.fmax, p.has = lo, hi, true
		}
		p.fmin, p.fmax = min(p.fmin, lo), max(p.fmax, hi)
		p.combine(cnt, mean, m2)
		for i, v := range a.Float64Values() {
			h[i] = hashFloat(v)
		}
	case *array.String:
		p.addString(a, nulls)
		return
	case *array.Date32:
		for i, v := range a.Date32Values() {
			h[i] = hashFixed(uint64(v))
			if nulls == 0 || a.IsValid(i) {
				p.minMaxInt(int64(v))
			}
		}
	case *array.Timestamp:
		t := a.DataType().(*arrow.TimestampType)
		p.tsUnit, p.tsZoned = t.Unit, t.TimeZone != ""
		for i, v := range a.TimestampValues() {
			h[i] = hashFixed(uint64(v))
			if nulls == 0 || a.IsValid(i) {
				p.minMaxInt(int64(v))
			}
		}
	case *array.Boolean:
		for i := range n {
			v := int64(0)
			if a.Value(i) {
				v = 1
			}
			h[i] = hashBool(v == 1)
			if nulls == 0 || a.IsValid(i) {
				p.minMaxInt(v)
			}
		}
	default:
		return
	}
	p.seeAll(h, a)
}

func (p *colProfile) minMaxInt(v int64) {
	if !p.has {
		p.imin, p.imax, p.has = v, v, true
		return
	}
	p.imin = min(p.imin, v)
	p.imax = max(p.imax, v)
}

// numbers returns the min, max, count, mean and m2 (sum of squared deviations) of the non-null values of a column
// (vals with a's validity; at least one value): two passes, exact, no division per value. The caller folds them
// into the running moments by Chan et al.'s rule (Welford's update for a group of values). The valid values are
// visited in runs (validRuns), so a column with a few nulls costs about what one without does.
func numbers[T int64 | float64](vals []T, a arrow.Array) (lo, hi T, cnt int64, mean, m2 float64) {
	first := true
	var sum float64
	// (the loops work on locals: variables the closures share would be read and written through memory)
	validRuns(a, func(from, to int) {
		if first {
			lo, hi, first = vals[from], vals[from], false
		}
		l, h, s := lo, hi, sum
		for _, v := range vals[from:to] {
			l, h = min(l, v), max(h, v)
			s += float64(v)
		}
		lo, hi, sum = l, h, s
		cnt += int64(to - from)
	})
	mean = sum / float64(cnt)
	validRuns(a, func(from, to int) {
		mu, acc := mean, m2
		for _, v := range vals[from:to] {
			d := float64(v) - mu
			acc += d * d
		}
		m2 = acc
	})
	return lo, hi, cnt, mean, m2
}

// validRuns calls f for each maximal run [from, to) of non-null rows of a, in order.
func validRuns(a arrow.Array, f func(from, to int)) {
	n := a.Len()
	if a.NullN() == 0 {
		if n > 0 {
			f(0, n)
		}
		return
	}
	bm, off := a.NullBitmapBytes(), a.Data().Offset()
	start := -1 // the open run's first row, -1 when none is open
	for i := 0; i < n; {
		// a whole byte of the bitmap at once where the rows are byte-aligned
		if j := off + i; j%8 == 0 && i+8 <= n {
			switch bm[j/8] {
			case 0xff:
				if start < 0 {
					start = i
				}
				i += 8
				continue
			case 0:
				if start >= 0 {
					f(start, i)
					start = -1
				}
				i += 8
				continue
			}
		}
		if bitutil.BitIsSet(bm, off+i) {
			if start < 0 {
				start = i
			}
		} else if start >= 0 {
			f(start, i)
			start = -1
		}
		i++
	}
	if start >= 0 {
		f(start, n)
	}
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

// prefixKey is the first 8 bytes of s, big-endian, zero-padded: prefixKey(a) < prefixKey(b) implies a < b, so
// most comparisons with the running min and max need no string comparison.
func prefixKey(s string) uint64 {
	if len(s) >= 8 {
		return uint64(s[0])<<56 | uint64(s[1])<<48 | uint64(s[2])<<40 | uint64(s[3])<<32 |
			uint64(s[4])<<24 | uint64(s[5])<<16 | uint64(s[6])<<8 | uint64(s[7])
	}
	var k uint64
	for i := range len(s) {
		k |= uint64(s[i]) << (56 - 8*i)
	}
	return k
}

func (p *colProfile) addString(a *array.String, nulls int) {
	off := a.ValueOffsets()
	ascii := isASCII(a.ValueBytes())
	i0 := 0
	if !p.has { // start from the first value
		for nulls > 0 && a.IsNull(i0) {
			i0++
		}
		s := a.Value(i0)
		p.smin, p.smax, p.kmin, p.kmax, p.has = clone(s), clone(s), prefixKey(s), prefixKey(s), true
		p.minLen, p.maxLen = math.MaxInt64, 0
	}
	for i := i0; i < a.Len(); i++ {
		if nulls > 0 && a.IsNull(i) {
			continue
		}
		s := a.Value(i)
		l := int64(off[i+1] - off[i])
		if !ascii {
			l = int64(utf8.RuneCountInString(s))
		}
		p.minLen, p.maxLen = min(p.minLen, l), max(p.maxLen, l)
		if k := prefixKey(s); k < p.kmin || (k == p.kmin && s < p.smin) {
			p.smin, p.kmin = clone(s), k
		} else if k > p.kmax || (k == p.kmax && s > p.smax) {
			p.smax, p.kmax = clone(s), k
		}
		if p.see(hashString(s)) && !p.valuesOverflow {
			if len(p.values) == MaxValues {
				p.valuesOverflow = true
				p.values = nil
				p.valueBytes = 0
			} else {
				p.values = append(p.values, clone(s))
				p.valueBytes += int64(len(s)) + 16
			}
		}
	}
}

func clone(s string) string { return string([]byte(s)) }

// isASCII reports whether b holds only ASCII bytes (8 at a time).
func isASCII(b []byte) bool {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:])&0x8080808080808080 != 0 {
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
	if p.kind == kString {
		pr.Values = slices.Clone(p.values)
		slices.Sort(pr.Values)
		pr.ValuesOverflow = p.valuesOverflow
	}
	if p.regs == nil {
		// a sparse sketch of the exact hashes: small, and (nearly) exact for so few values
		sk := hyperloglog.New14()
		for _, x := range p.exact.slots {
			if x != 0 {
				sk.InsertHash(x)
			}
		}
		pr.Distinct = int64(p.exact.n)
		pr.Sketch, _ = sk.MarshalBinary() // a sketch of precision 14 always marshals
	} else {
		pr.Distinct = int64(estimate(p.regs))
		pr.Sketch = marshalRegisters(p.regs)
	}
	return pr
}

// marshalRegisters writes dense registers in axiomhq's serialisation (version 2: version, precision, base 0,
// dense flag 0, the register count as 4 bytes big-endian, one byte per register), without building a Sketch.
// TestSketchFromRegisters checks it against the library's own MarshalBinary.
func marshalRegisters(regs []uint8) []byte {
	out := make([]byte, 0, 8+len(regs))
	n := len(regs)
	out = append(out, 2, hllP, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	return append(out, regs...)
}

// pow2neg[r] = 2^-r, exactly as axiomhq computes it.
var pow2neg = func() (t [65]float64) {
	for r := range t {
		t[r] = 1.0 / math.Pow(2.0, float64(r))
	}
	return t
}()

// estimate is axiomhq's dense Estimate (LogLog-Beta, precision 14) computed from registers with a table instead of
// a math.Pow per register: the same sums in the same order, so the same number. The beta polynomial is copied
// from github.com/axiomhq/hyperloglog v0.3.0 beta.go (MIT licence, © 2021 Axiom, Inc.).
func estimate(regs []uint8) uint64 {
	var sum, ez float64
	for _, v := range regs {
		if v == 0 {
			ez++
		}
		sum += pow2neg[v]
	}
	m := float64(len(regs))
	alpha := 0.7213 / (1 + 1.079/m)
	zl := math.Log(ez + 1)
	beta := -0.371009760230692*ez +
		0.00978811941207509*zl +
		0.185796293324165*math.Pow(zl, 2) +
		0.203015527328432*math.Pow(zl, 3) +
		-0.116710521803686*math.Pow(zl, 4) +
		0.0431106699492820*math.Pow(zl, 5) +
		-0.00599583540511831*math.Pow(zl, 6) +
		0.000449704299509437*math.Pow(zl, 7)
	return uint64(alpha*m*(m-ez)/(sum+beta) + 0.5)
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
