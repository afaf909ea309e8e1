package table

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// typedBuilder is the Arrow builder of one column of type typ, with its concrete type at hand: the Builder's
// columns and the Collector's share it.
type typedBuilder struct {
	typ  Type
	b    array.Builder
	str  *array.StringBuilder // String and Null columns
	i64  *array.Int64Builder
	f64  *array.Float64Builder
	bl   *array.BooleanBuilder
	date *array.Date32Builder
	ts   *array.TimestampBuilder
}

// reset replaces the builder with an empty one for type t (the old one, if any, is the caller's to release).
func (tb *typedBuilder) reset(mem memory.Allocator, t Type) {
	*tb = typedBuilder{typ: t, b: array.NewBuilder(mem, t.Arrow())}
	switch bb := tb.b.(type) {
	case *array.StringBuilder:
		tb.str = bb
	case *array.Int64Builder:
		tb.i64 = bb
	case *array.Float64Builder:
		tb.f64 = bb
	case *array.BooleanBuilder:
		tb.bl = bb
	case *array.Date32Builder:
		tb.date = bb
	case *array.TimestampBuilder:
		tb.ts = bb
	}
}

// appendNull appends a null. A fixed-width builder must have room (Reserve).
func (tb *typedBuilder) appendNull() {
	if tb.str != nil {
		tb.str.AppendNull()
	} else {
		tb.b.UnsafeAppendBoolToBitmap(false)
	}
}

// appendValue appends a value the column's type holds (accepts): its text f for a string or null column, the
// classified v otherwise. A fixed-width builder must have room (Reserve).
func (tb *typedBuilder) appendValue(f []byte, v *value) {
	switch tb.typ {
	case String, Null:
		tb.str.BinaryBuilder.Append(f)
	case Int64:
		tb.i64.UnsafeAppend(v.i)
	case Float64:
		tb.f64.UnsafeAppend(v.f) // Int64 values carry their float64 too
	case Bool:
		tb.bl.UnsafeAppend(v.i != 0)
	case Date:
		tb.date.UnsafeAppend(arrow.Date32(v.i))
	case Timestamp, TimestampTZ:
		us := v.i
		if v.t == Date {
			us *= usPerDay
		}
		tb.ts.UnsafeAppend(arrow.Timestamp(us))
	}
}

// columnBytes is the size of n values of a column of type t whose string data is data bytes: values, offsets
// and validity bitmap.
func columnBytes(t Type, n, data int64) int64 {
	total := (n + 7) / 8 // validity
	switch t {
	case String, Null:
		total += data + 4*(n+1)
	case Bool:
		total += (n + 7) / 8
	case Date:
		total += 4 * n
	default:
		total += 8 * n
	}
	return total
}
