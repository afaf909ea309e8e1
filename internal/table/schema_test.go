package table

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func fixClock(t *testing.T) {
	t.Helper()
	old := now
	now = func() time.Time { return time.UnixMilli(1_700_000_000_000) }
	t.Cleanup(func() { now = old })
}

func TestEvolve(t *testing.T) {
	fixClock(t)
	first, changed := Evolve("orders", nil, []ColumnType{
		{Name: "id", Type: Int64}, {Name: "price", Type: Int64}, {Name: "note", Type: Null},
	}, Options{})
	want := &Schema{Table: "orders", Version: 1, Columns: []Column{
		{Name: "id", Type: Int64, AddedIn: 1}, {Name: "price", Type: Int64, AddedIn: 1}, {Name: "note", Type: Null, AddedIn: 1},
	}, Changes: []string{"created with 3 columns"}, UpdatedUnixMs: 1_700_000_000_000}
	if !changed || !reflect.DeepEqual(first, want) {
		t.Fatalf("first: %v %+v", changed, first)
	}

	t.Run("no change keeps version", func(t *testing.T) {
		next, changed := Evolve("orders", first, []ColumnType{
			{Name: "price", Type: Int64}, {Name: "id", Type: Null}, // reordered, id all null here
		}, Options{})
		if changed || next != first {
			t.Errorf("changed %v: %+v", changed, next)
		}
	})
	t.Run("drop", func(t *testing.T) {
		next, changed := Evolve("orders", first, []ColumnType{{Name: "id", Type: Int64}}, Options{})
		if changed || next != first {
			t.Errorf("a missing column changed the schema: %+v", next)
		}
	})
	t.Run("add and widen", func(t *testing.T) {
		next, changed := Evolve("orders", first, []ColumnType{
			{Name: "shipped", Type: Date}, {Name: "price", Type: Float64}, {Name: "note", Type: String}, {Name: "id", Type: Int64},
		}, Options{})
		want := &Schema{Table: "orders", Version: 2, Columns: []Column{
			{Name: "id", Type: Int64, AddedIn: 1}, {Name: "price", Type: Float64, AddedIn: 1},
			{Name: "note", Type: String, AddedIn: 1}, {Name: "shipped", Type: Date, AddedIn: 2},
		}, Changes: []string{
			`added column "shipped" (date)`, `widened column "price": int64 -> float64`, `widened column "note": null -> string`,
		}, UpdatedUnixMs: 1_700_000_000_000}
		if !changed || !reflect.DeepEqual(next, want) {
			t.Errorf("got %+v\nwant %+v", next, want)
		}
		if first.Version != 1 || first.Columns[1].Type != Int64 || len(first.Columns) != 3 {
			t.Errorf("prev modified: %+v", first)
		}
	})
	t.Run("never narrows", func(t *testing.T) {
		s2, _ := Evolve("orders", first, []ColumnType{{Name: "price", Type: Float64}}, Options{})
		next, changed := Evolve("orders", s2, []ColumnType{{Name: "price", Type: Int64}}, Options{})
		if changed || next.Columns[1].Type != Float64 {
			t.Errorf("%v %+v", changed, next)
		}
	})
	t.Run("conflict widens to string", func(t *testing.T) {
		next, _ := Evolve("orders", first, []ColumnType{{Name: "id", Type: Date}}, Options{})
		if next.Columns[0].Type != String || next.Version != 2 {
			t.Errorf("%+v", next)
		}
	})
	t.Run("large int into float column", func(t *testing.T) {
		s2, _ := Evolve("orders", first, []ColumnType{{Name: "price", Type: Float64}}, Options{})
		next, _ := Evolve("orders", s2, []ColumnType{{Name: "price", Type: Int64, LargeInt: true}}, Options{})
		if next.Columns[1].Type != String {
			t.Errorf("%+v", next)
		}
		next, changed := Evolve("orders", first, []ColumnType{{Name: "price", Type: Int64, LargeInt: true}}, Options{})
		if changed {
			t.Errorf("int64 stays int64: %+v", next)
		}
	})
	t.Run("strict hint", func(t *testing.T) {
		opts := Options{Hints: map[string]Hint{"price": {Type: Float64, Strict: true}, "id": {Type: String, Strict: true}}}
		// id is not in this batch: the strict hint still fixes it
		next, changed := Evolve("orders", first, []ColumnType{{Name: "price", Type: Float64}}, opts)
		if !changed || next.Columns[0].Type != String || next.Columns[1].Type != Float64 {
			t.Errorf("%+v", next)
		}
		// and may narrow
		s2, _ := Evolve("orders", first, []ColumnType{{Name: "price", Type: String}}, Options{})
		next, _ = Evolve("orders", s2, []ColumnType{{Name: "price", Type: Float64}}, opts)
		if next.Columns[1].Type != Float64 || next.Changes[0] != `column "price": string -> float64 (strict hint)` {
			t.Errorf("%+v", next)
		}
		// a new column takes the hint's type
		next, _ = Evolve("t", nil, []ColumnType{{Name: "price", Type: Int64}}, opts)
		if next.Columns[0].Type != Float64 {
			t.Errorf("%+v", next)
		}
	})
	t.Run("soft hint is a floor", func(t *testing.T) {
		opts := Options{Hints: map[string]Hint{"zip": {Type: String}, "n": {Type: Float64}}}
		next, _ := Evolve("t", nil, []ColumnType{{Name: "zip", Type: Int64}, {Name: "n", Type: Int64}, {Name: "d", Type: Date}}, opts)
		if next.Columns[0].Type != String || next.Columns[1].Type != Float64 || next.Columns[2].Type != Date {
			t.Errorf("%+v", next)
		}
	})
}

func TestSchemaJSONAndArrow(t *testing.T) {
	s := &Schema{Table: "t", Version: 7, Columns: []Column{
		{Name: "a", Type: Int64, AddedIn: 1}, {Name: "b", Type: Null, AddedIn: 7}, {Name: "c", Type: TimestampTZ, AddedIn: 3},
	}, Changes: []string{"x"}, UpdatedUnixMs: 5}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"table":"t","version":7,"columns":[{"name":"a","type":"int64","added_in":1},{"name":"b","type":"null","added_in":7},{"name":"c","type":"timestamptz","added_in":3}],"changes":["x"],"updated_unix_ms":5}`
	if string(b) != want {
		t.Errorf("json %s", b)
	}
	var back Schema
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(&back, s) {
		t.Errorf("round trip %+v %v", back, err)
	}

	as := s.Arrow()
	if as.NumFields() != 3 || as.Field(1).Type.ID() != String.Arrow().ID() || !as.Field(0).Nullable {
		t.Errorf("arrow %v", as)
	}
	if v, ok := as.Metadata().GetValue(MetaSchemaVersion); !ok || v != "7" {
		t.Errorf("metadata %v", as.Metadata())
	}
}
