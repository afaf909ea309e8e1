package table

import (
	"encoding/json"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

var allTypes = []Type{Null, Bool, Int64, Float64, Date, Timestamp, TimestampTZ, String}

func TestTypeNames(t *testing.T) {
	want := []string{"null", "bool", "int64", "float64", "date", "timestamp", "timestamptz", "string"}
	for i, typ := range allTypes {
		if typ.String() != want[i] {
			t.Errorf("%d.String() = %q, want %q", i, typ.String(), want[i])
		}
		got, err := ParseType(want[i])
		if err != nil || got != typ {
			t.Errorf("ParseType(%q) = %v, %v", want[i], got, err)
		}
	}
	if got, err := ParseType("INT64"); err != nil || got != Int64 {
		t.Errorf("ParseType(INT64) = %v, %v", got, err)
	}
	if _, err := ParseType("integer"); err == nil {
		t.Error("ParseType(integer) should fail")
	}
	if s := Type(42).String(); s != "Type(42)" {
		t.Errorf("Type(42).String() = %q", s)
	}
	if _, err := Type(42).MarshalText(); err == nil {
		t.Error("marshal of invalid type should fail")
	}
}

func TestTypeJSON(t *testing.T) {
	b, err := json.Marshal(Column{Name: "a", Type: TimestampTZ, AddedIn: 3})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"name":"a","type":"timestamptz","added_in":3}` {
		t.Errorf("json = %s", b)
	}
	var c Column
	if err := json.Unmarshal(b, &c); err != nil || c.Type != TimestampTZ {
		t.Errorf("unmarshal = %+v, %v", c, err)
	}
	if err := json.Unmarshal([]byte(`{"type":"decimal"}`), &c); err == nil {
		t.Error("unknown type should not unmarshal")
	}
}

func TestTypeArrow(t *testing.T) {
	tests := []struct {
		typ  Type
		want arrow.DataType
	}{
		{Null, arrow.BinaryTypes.String},
		{Bool, arrow.FixedWidthTypes.Boolean},
		{Int64, arrow.PrimitiveTypes.Int64},
		{Float64, arrow.PrimitiveTypes.Float64},
		{Date, arrow.FixedWidthTypes.Date32},
		{Timestamp, &arrow.TimestampType{Unit: arrow.Microsecond}},
		{TimestampTZ, &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
		{String, arrow.BinaryTypes.String},
	}
	for _, tt := range tests {
		if got := tt.typ.Arrow(); !arrow.TypeEqual(got, tt.want) {
			t.Errorf("%v.Arrow() = %v, want %v", tt.typ, got, tt.want)
		}
	}
}

func TestWiden(t *testing.T) {
	tests := []struct{ a, b, want Type }{
		{Null, Null, Null},
		{Null, Bool, Bool},
		{Null, Int64, Int64},
		{Null, String, String},
		{Null, TimestampTZ, TimestampTZ},
		{Bool, Bool, Bool},
		{Bool, Int64, String},
		{Bool, Float64, String},
		{Bool, Date, String},
		{Int64, Int64, Int64},
		{Int64, Float64, Float64},
		{Float64, Int64, Float64},
		{Int64, Date, String},
		{Float64, Timestamp, String},
		{Int64, TimestampTZ, String},
		{Date, Timestamp, Timestamp},
		{Timestamp, Date, Timestamp},
		{Date, TimestampTZ, String},
		{Timestamp, TimestampTZ, String},
		{TimestampTZ, TimestampTZ, TimestampTZ},
		{String, Int64, String},
		{Float64, String, String},
		{Type(99), Null, String},
		{Type(99), Type(99), String},
	}
	for _, tt := range tests {
		if got := Widen(tt.a, tt.b); got != tt.want {
			t.Errorf("Widen(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestWidenLattice checks the lattice laws over every pair and triple of types.
func TestWidenLattice(t *testing.T) {
	for _, a := range allTypes {
		if Widen(a, a) != a {
			t.Errorf("not idempotent on %v", a)
		}
		if Widen(a, Null) != a || Widen(a, String) != String {
			t.Errorf("%v: Null is not the bottom or String not the top", a)
		}
		for _, b := range allTypes {
			ab := Widen(a, b)
			if ab != Widen(b, a) {
				t.Errorf("not commutative on %v, %v", a, b)
			}
			if Widen(ab, a) != ab || Widen(ab, b) != ab || !ab.holds(a) || !ab.holds(b) {
				t.Errorf("Widen(%v, %v) = %v narrows", a, b, ab)
			}
			for _, c := range allTypes {
				if Widen(ab, c) != Widen(a, Widen(b, c)) {
					t.Errorf("not associative on %v, %v, %v", a, b, c)
				}
			}
		}
	}
}
