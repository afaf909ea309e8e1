package table

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
)

// Type is a column type. The values form a lattice ordered by Widen: Null is the bottom, String the top.
type Type uint8

// Column types, from the bottom of the lattice up (the numeric order is not the lattice order: use Widen).
const (
	Null        Type = iota // no non-null value seen
	Bool                    // true/false
	Int64                   // signed 64-bit integer
	Float64                 // IEEE 754 double
	Date                    // calendar date, no time
	Timestamp               // date and time of day, no zone (wall clock)
	TimestampTZ             // an instant: date, time and zone, stored as UTC
	String                  // UTF-8 text
)

var typeNames = [...]string{
	Null:        "null",
	Bool:        "bool",
	Int64:       "int64",
	Float64:     "float64",
	Date:        "date",
	Timestamp:   "timestamp",
	TimestampTZ: "timestamptz",
	String:      "string",
}

// String returns the type's name as used in schemas and hints: "null", "bool", "int64", "float64", "date",
// "timestamp", "timestamptz", "string".
func (t Type) String() string {
	if t.valid() {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

func (t Type) valid() bool { return t <= String }

// ParseType reads a type name as written by Type.String (letter case ignored).
func ParseType(s string) (Type, error) {
	for t, name := range typeNames {
		if strings.EqualFold(s, name) {
			return Type(t), nil
		}
	}
	return 0, fmt.Errorf("table: unknown type %q", s)
}

// MarshalText writes the type's name, so that JSON holds "int64" rather than a number.
func (t Type) MarshalText() ([]byte, error) {
	if !t.valid() {
		return nil, fmt.Errorf("table: marshal invalid type %d", uint8(t))
	}
	return []byte(typeNames[t]), nil
}

// UnmarshalText reads a type name (see ParseType).
func (t *Type) UnmarshalText(b []byte) error {
	v, err := ParseType(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

var (
	arrowTimestamp   = &arrow.TimestampType{Unit: arrow.Microsecond}
	arrowTimestampTZ = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
)

// Arrow returns the Arrow type a column of type t is written as. Null (a column with no value yet) is written as
// string; timestamps are microseconds, without zone for Timestamp and with zone "UTC" for TimestampTZ.
func (t Type) Arrow() arrow.DataType {
	switch t {
	case Bool:
		return arrow.FixedWidthTypes.Boolean
	case Int64:
		return arrow.PrimitiveTypes.Int64
	case Float64:
		return arrow.PrimitiveTypes.Float64
	case Date:
		return arrow.FixedWidthTypes.Date32
	case Timestamp:
		return arrowTimestamp
	case TimestampTZ:
		return arrowTimestampTZ
	default: // Null, String
		return arrow.BinaryTypes.String
	}
}

// Widen returns the least type that holds every value of a and of b:
//
//	Null ∪ X = X, X ∪ X = X, X ∪ String = String
//	Int64 ∪ Float64 = Float64
//	Date ∪ Timestamp = Timestamp
//	anything else (Bool with any other non-null type, numeric with temporal, Timestamp or Date with
//	TimestampTZ) = String
//
// Widen never narrows: Widen(Widen(a, b), a) == Widen(a, b). It is commutative, associative and idempotent.
// An invalid type widens to String.
func Widen(a, b Type) Type {
	if a == b {
		if !a.valid() {
			return String
		}
		return a
	}
	if a > b {
		a, b = b, a
	}
	switch {
	case b >= String:
		return String
	case a == Null:
		return b
	case a == Int64 && b == Float64:
		return Float64
	case a == Date && b == Timestamp:
		return Timestamp
	}
	return String
}

// holds reports whether a column of type t can hold a value of type v without loss: Widen(t, v) == t.
func (t Type) holds(v Type) bool { return Widen(t, v) == t }
