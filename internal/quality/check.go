package quality

import (
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/table"
)

// The row kernels. Each runs over a whole column of a record batch in one tight loop per Arrow type; a failing row
// calls Batch.fail (rare: it formats the value only when it needs it). Nulls pass every rule but not_null and key;
// a value is compared first and its validity looked up only when it fails (a null slot holds some value).

const (
	minInt64 = math.MinInt64
	maxInt64 = math.MaxInt64
)

var (
	negInf = math.Inf(-1)
	posInf = math.Inf(1)
	ceil   = math.Ceil
	floor  = math.Floor

	float64frombits = math.Float64frombits
)

func (b *Batch) checkRule(st *ruleState, rec arrow.RecordBatch) {
	a := rec.Column(st.cols[0])
	switch st.r.name {
	case RuleNotNull:
		b.checkNotNull(st, rec, a)
	case RuleRange:
		b.checkRange(st, rec, a)
	case RuleAllowed:
		b.checkAllowed(st, rec, a)
	case RuleRegex:
		b.checkRegex(st, rec, a.(*array.String))
	case RuleMaxLength:
		b.checkMaxLength(st, rec, a.(*array.String))
	case RuleUnique:
		b.checkUnique(st, rec, a)
	case RuleKey:
		b.checkKey(st, rec)
	}
}

func (b *Batch) checkNotNull(st *ruleState, rec arrow.RecordBatch, a arrow.Array) {
	st.checked += int64(a.Len())
	nulls := a.NullN()
	if nulls == 0 {
		return
	}
	if !st.r.quarantines() {
		st.failed += int64(nulls)
		return
	}
	for i := range a.Len() {
		if a.IsNull(i) {
			b.fail(st, rec, i)
		}
	}
}

func (b *Batch) checkRange(st *ruleState, rec arrow.RecordBatch, a arrow.Array) {
	st.checked += int64(a.Len() - a.NullN())
	if st.empty {
		for i := range a.Len() {
			if a.IsValid(i) {
				b.fail(st, rec, i)
			}
		}
		return
	}
	lo, hi := st.ilo, st.ihi
	switch a := a.(type) {
	case *array.Int64:
		for i, v := range a.Int64Values() {
			if (v < lo || v > hi) && a.IsValid(i) {
				b.fail(st, rec, i)
			}
		}
	case *array.Float64:
		flo, fhi := st.flo, st.fhi
		for i, v := range a.Float64Values() {
			if (v < flo || v > fhi) && a.IsValid(i) {
				b.fail(st, rec, i)
			}
		}
	case *array.Date32:
		for i, v := range a.Date32Values() {
			if (int64(v) < lo || int64(v) > hi) && a.IsValid(i) {
				b.fail(st, rec, i)
			}
		}
	case *array.Timestamp:
		for i, v := range a.TimestampValues() {
			if (int64(v) < lo || int64(v) > hi) && a.IsValid(i) {
				b.fail(st, rec, i)
			}
		}
	case *array.String: // st.text: a column widened to string
		flo, fhi := st.flo, st.fhi
		for i := range a.Len() {
			if a.IsNull(i) {
				continue
			}
			if st.textTime {
				if us, _, ok := table.TextTime(a.Value(i)); !ok || us < lo || us > hi {
					b.fail(st, rec, i)
				}
			} else if f, ok := table.TextNumber(a.Value(i)); !ok || f < flo || f > fhi {
				b.fail(st, rec, i)
			}
		}
	}
}

func (b *Batch) checkAllowed(st *ruleState, rec arrow.RecordBatch, a arrow.Array) {
	st.checked += int64(a.Len() - a.NullN())
	switch a := a.(type) {
	case *array.String:
		n := a.Len()
		nulls := a.NullN() > 0
		if m := st.allowStrM; m != nil {
			for i := range n {
				if nulls && a.IsNull(i) {
					continue
				}
				if _, ok := m[a.Value(i)]; !ok {
					b.fail(st, rec, i)
				}
			}
			return
		}
		for i := range n {
			if nulls && a.IsNull(i) {
				continue
			}
			if !st.allowsStr(a.Value(i)) {
				b.fail(st, rec, i)
			}
		}
	case *array.Int64:
		for i, v := range a.Int64Values() {
			if !st.allowsInt(v) && a.IsValid(i) {
				b.fail(st, rec, i)
			}
		}
	case *array.Date32:
		for i, v := range a.Date32Values() {
			if !st.allowsInt(int64(v)) && a.IsValid(i) {
				b.fail(st, rec, i)
			}
		}
	case *array.Timestamp:
		for i, v := range a.TimestampValues() {
			if !st.allowsInt(int64(v)) && a.IsValid(i) {
				b.fail(st, rec, i)
			}
		}
	case *array.Boolean:
		for i := range a.Len() {
			v := int64(0)
			if a.Value(i) {
				v = 1
			}
			if !st.allowsInt(v) && a.IsValid(i) {
				b.fail(st, rec, i)
			}
		}
	case *array.Float64:
		for i, v := range a.Float64Values() {
			if !slices.Contains(st.allowFloat, v) && a.IsValid(i) {
				b.fail(st, rec, i)
			}
		}
	}
}

// allowsStr looks s up among the allowed values that start with its first byte (sorted by it at bind): usually
// one comparison.
func (st *ruleState) allowsStr(s string) bool {
	if len(s) == 0 {
		return slices.Contains(st.allowStr, s)
	}
	c := s[0]
	for _, v := range st.allowStr[st.allowFrom[c]:st.allowFrom[int(c)+1]] {
		if v == s {
			return true
		}
	}
	return false
}

func (st *ruleState) allowsInt(v int64) bool {
	if st.allowIntM != nil {
		_, ok := st.allowIntM[v]
		return ok
	}
	return slices.Contains(st.allowInt, v)
}

// parseAllowed reads an allowed value as a column of kind k holds it (float64 as its bits; a date as days; a
// timestamp as µs, a column in another unit is not expected from internal/table).
func parseAllowed(s string, k valKind) (uint64, bool) {
	switch k {
	case kInt64:
		i, err := strconv.ParseInt(s, 10, 64)
		return uint64(i), err == nil
	case kFloat64:
		f, err := strconv.ParseFloat(s, 64)
		return math.Float64bits(f), err == nil
	case kBool:
		v, err := strconv.ParseBool(s)
		if v {
			return 1, err == nil
		}
		return 0, err == nil
	case kDate32:
		t, err := time.Parse(time.DateOnly, s)
		return uint64(floorDiv(t.Unix(), 86400)), err == nil
	case kTimestamp:
		b, err := config.ParseBound(s)
		return uint64(b.Micros), err == nil && b.Kind == config.BoundTime
	}
	return 0, false
}

// regexCacheMax bounds the memo of regex outcomes per rule; when it is full and less than half the lookups hit it,
// it is dropped (a column of mostly distinct values gains nothing from it).
const regexCacheMax = 4096

func (b *Batch) checkRegex(st *ruleState, rec arrow.RecordBatch, a *array.String) {
	st.checked += int64(a.Len() - a.NullN())
	nulls := a.NullN() > 0
	re := st.r.re
	for i := range a.Len() {
		if nulls && a.IsNull(i) {
			continue
		}
		s := a.Value(i)
		ok, hit := false, false
		if st.reCache != nil {
			ok, hit = st.reCache[s]
		}
		if hit {
			st.reHits++
		} else {
			ok = re.MatchString(s)
			if c := st.reCache; c != nil {
				if len(c) < regexCacheMax {
					c[string([]byte(s))] = ok // copy: s aliases Arrow memory
				} else if st.reHits < regexCacheMax/2 {
					st.reCache = nil
				}
			}
		}
		if !ok {
			b.fail(st, rec, i)
		}
	}
}

// checkMaxLength counts characters (code points); a value no longer in bytes than the limit is not decoded.
func (b *Batch) checkMaxLength(st *ruleState, rec arrow.RecordBatch, a *array.String) {
	st.checked += int64(a.Len() - a.NullN())
	max := st.r.maxLen
	off := a.ValueOffsets()
	for i := range a.Len() {
		if int(off[i+1]-off[i]) <= max {
			continue
		}
		if utf8.RuneCountInString(a.Value(i)) > max && a.IsValid(i) {
			b.fail(st, rec, i)
		}
	}
}

// hashColumn writes the hash of every row of a into dst (nulls too: their hash is meaningless).
func hashColumn(a arrow.Array, dst []uint64) {
	switch a := a.(type) {
	case *array.String:
		for i := range dst {
			dst[i] = hashString(a.Value(i))
		}
	case *array.Int64:
		for i, v := range a.Int64Values() {
			dst[i] = hashFixed(uint64(v))
		}
	case *array.Float64:
		for i, v := range a.Float64Values() {
			dst[i] = hashFloat(v)
		}
	case *array.Date32:
		for i, v := range a.Date32Values() {
			dst[i] = hashFixed(uint64(v))
		}
	case *array.Timestamp:
		for i, v := range a.TimestampValues() {
			dst[i] = hashFixed(uint64(v))
		}
	case *array.Boolean:
		for i := range dst {
			dst[i] = hashBool(a.Value(i))
		}
	default: // a type internal/table does not write: its text
		for i := range dst {
			if a.IsValid(i) {
				dst[i] = hashString(a.ValueStr(i))
			}
		}
	}
}

func (b *Batch) hashBuf(n int) []uint64 {
	if cap(b.hashes) < n {
		b.hashes = make([]uint64, n)
	}
	return b.hashes[:n]
}

// checkUnique: the first occurrence of a value in the batch passes, every later one fails. Rows already removed by
// a quarantine rule are neither checked nor remembered, so what is written is unique.
func (b *Batch) checkUnique(st *ruleState, rec arrow.RecordBatch, a arrow.Array) {
	n := a.Len()
	h := b.hashBuf(n)
	hashColumn(a, h)
	nulls := a.NullN() > 0
	set := st.set
	set.reserve(n)
	for i := range n {
		if (b.anyMasked && b.mask[i]) || (nulls && a.IsNull(i)) {
			continue
		}
		st.checked++
		if set.add(h[i]) {
			b.fail(st, rec, i)
		}
	}
}

// checkKey: a row with a null in a key column fails (and is not remembered); otherwise its tuple must not have been
// seen before in the batch.
func (b *Batch) checkKey(st *ruleState, rec arrow.RecordBatch) {
	n := int(rec.NumRows())
	h := b.hashBuf(n)
	clear(h)
	if cap(b.scratch) < n {
		b.scratch = make([]uint64, n)
	}
	tmp := b.scratch[:n]
	if cap(b.nullKey) < n {
		b.nullKey = make([]bool, n)
	}
	nullKey := b.nullKey[:n]
	clear(nullKey)
	anyNull := false
	for _, c := range st.cols {
		a := rec.Column(c)
		hashColumn(a, tmp)
		for i, t := range tmp {
			h[i] = h[i]*0x9e3779b97f4a7c15 + t
		}
		if a.NullN() > 0 {
			anyNull = true
			for i := range n {
				if a.IsNull(i) {
					nullKey[i] = true
				}
			}
		}
	}
	set := st.set
	set.reserve(n)
	for i := range n {
		if b.anyMasked && b.mask[i] {
			continue
		}
		st.checked++
		if anyNull && nullKey[i] {
			st.nullKeys++
			b.fail(st, rec, i)
			continue
		}
		if set.add(mix64(h[i])) {
			b.fail(st, rec, i)
		}
	}
}
