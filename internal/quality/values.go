package quality

import (
	"math"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/zeebo/xxh3"

	"github.com/sluice-dev/sluice/internal/table"
)

// valKind is how the engine reads an Arrow column: the types internal/table writes.
type valKind uint8

const (
	kOther valKind = iota // a type the engine does not read: only not_null, unique and key apply
	kString
	kInt64
	kFloat64
	kBool
	kDate32
	kTimestamp // microseconds (internal/table writes µs; other units are converted)
)

const usPerDay = 86400 * 1_000_000

func kindOf(t arrow.DataType) valKind {
	switch t.ID() {
	case arrow.STRING:
		return kString
	case arrow.INT64:
		return kInt64
	case arrow.FLOAT64:
		return kFloat64
	case arrow.BOOL:
		return kBool
	case arrow.DATE32:
		return kDate32
	case arrow.TIMESTAMP:
		return kTimestamp
	}
	return kOther
}

// tableType returns the internal/table type of an Arrow type (string for the Null type, which is written as
// string; the caller knows better from the registry schema).
func tableType(t arrow.DataType) table.Type {
	switch kindOf(t) {
	case kInt64:
		return table.Int64
	case kFloat64:
		return table.Float64
	case kBool:
		return table.Bool
	case kDate32:
		return table.Date
	case kTimestamp:
		if t.(*arrow.TimestampType).TimeZone != "" {
			return table.TimestampTZ
		}
		return table.Timestamp
	}
	return table.String
}

// toMicros converts a timestamp column's value to µs since the epoch (sub-µs digits truncated towards zero).
func toMicros(v int64, unit arrow.TimeUnit) int64 {
	switch unit {
	case arrow.Second:
		return v * 1_000_000
	case arrow.Millisecond:
		return v * 1000
	case arrow.Nanosecond:
		return v / 1000
	}
	return v
}

// fromMicros converts a range bound in µs to a timestamp column's unit, rounding up for a lower bound (ceil) and
// down for an upper one, so that comparing in the column's unit is exact.
func fromMicros(us int64, unit arrow.TimeUnit, ceil bool) int64 {
	div := floorDiv
	if ceil {
		div = ceilDiv
	}
	switch unit {
	case arrow.Second:
		return div(us, 1_000_000)
	case arrow.Millisecond:
		return div(us, 1000)
	case arrow.Nanosecond:
		if us > math.MaxInt64/1000 {
			return math.MaxInt64
		}
		if us < math.MinInt64/1000 {
			return math.MinInt64
		}
		return us * 1000
	}
	return us
}

// floorDiv and ceilDiv divide rounding down and up.
func floorDiv(a, b int64) int64 {
	q := a / b
	if r := a % b; r != 0 && (r < 0) != (b < 0) {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func formatDate(days int32) string {
	return time.Unix(int64(days)*86400, 0).UTC().Format(time.DateOnly)
}

// formatMicros writes a timestamp as YYYY-MM-DD HH:MM:SS[.ffffff], with a Z when zoned (stored as UTC).
func formatMicros(us int64, zoned bool) string {
	s := time.UnixMicro(us).UTC().Format("2006-01-02 15:04:05.999999")
	if zoned {
		s += "Z"
	}
	return s
}

// formatValue writes the value at row i of a as text ("" for null): what RowFailure.Value, the examples of a
// result and the min/max of a profile hold.
func formatValue(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return ""
	}
	switch a := a.(type) {
	case *array.String:
		return a.Value(i)
	case *array.Int64:
		return strconv.FormatInt(a.Value(i), 10)
	case *array.Float64:
		return formatFloat(a.Value(i))
	case *array.Boolean:
		return strconv.FormatBool(a.Value(i))
	case *array.Date32:
		return formatDate(int32(a.Value(i)))
	case *array.Timestamp:
		t := a.DataType().(*arrow.TimestampType)
		return formatMicros(toMicros(int64(a.Value(i)), t.Unit), t.TimeZone != "")
	}
	return a.ValueStr(i)
}

// Hashes. The same value always hashes the same, in every process (sketches are serialised and merged): strings
// with XXH3-64, fixed-width values with the murmur3 64-bit finalizer of their bits xor a constant (a bijection, well mixed).

func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// hashFixed hashes a fixed-width value's 64 bits: a bijection (mix64 of the bits xor a constant, so that 0 does not
// hash to 0).
func hashFixed(x uint64) uint64 { return mix64(x ^ 0x9e3779b97f4a7c15) }

func hashString(s string) uint64 { return xxh3.HashString(s) }

func hashFloat(f float64) uint64 {
	if f == 0 {
		f = 0 // -0 == 0
	}
	return hashFixed(math.Float64bits(f))
}

func hashBool(v bool) uint64 {
	if v {
		return hashFixed(1)
	}
	return hashFixed(0)
}
