package table

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func inferOne(t *testing.T, opts Options, header []string, data string) ([]ColumnType, ObserveStats) {
	t.Helper()
	in := NewInferer(opts)
	st, err := in.Observe(header, []byte(data), 2)
	if err != nil {
		t.Fatal(err)
	}
	return in.Columns(), st
}

func TestInferTypes(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   Type
	}{
		{"all null", []string{"N/A", "NULL", "NA"}, Null},
		{"ints", []string{"1", "-2", "NULL", "30"}, Int64},
		{"ints and floats", []string{"1", "2.5", "NULL"}, Float64},
		{"leading zero", []string{"10", "007"}, String},
		{"zip codes", []string{"00501", "10001"}, String},
		{"bools", []string{"true", "FALSE", "N/A"}, Bool},
		{"bool and int", []string{"true", "1"}, String},
		{"dates", []string{"2024-01-01", "2024-12-31"}, Date},
		{"dates and timestamps", []string{"2024-01-01", "2024-12-31 10:00:00"}, Timestamp},
		{"zoned", []string{"2024-01-01T00:00:00Z", "2024-01-01T00:00:00+02:00"}, TimestampTZ},
		{"zoned and not", []string{"2024-01-01T00:00:00Z", "2024-01-01T00:00:00"}, String},
		{"date and zoned", []string{"2024-01-01", "2024-01-01T00:00:00Z"}, String},
		{"number and date", []string{"1", "2024-01-01"}, String},
		{"spaces", []string{"1", " 2"}, String},
		{"nan", []string{"1.5", "NaN"}, String},
		{"large int alone", []string{"9007199254740993"}, Int64},
		{"large int and float", []string{"9007199254740993", "1.5"}, String},
		{"float then large int", []string{"1.5", "-9007199254740993"}, String},
		{"exact large int and float", []string{"9007199254740992", "1.5"}, Float64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cols, st := inferOne(t, Options{}, []string{"v"}, strings.Join(tt.values, "\n")+"\n")
			if st.Rows != int64(len(tt.values)) {
				t.Errorf("rows %d", st.Rows)
			}
			if cols[0].Type != tt.want {
				t.Errorf("type %v, want %v", cols[0].Type, tt.want)
			}
		})
	}
}

// TestInferAllValues: the last value of 10,000 decides as much as the first.
func TestInferAllValues(t *testing.T) {
	var sb strings.Builder
	for i := range 10000 {
		sb.WriteString(strconv.Itoa(i) + "," + strconv.Itoa(i) + ".5\n")
	}
	sb.WriteString("abc,1\n")
	cols, st := inferOne(t, Options{}, []string{"n", "f"}, sb.String())
	if st.Rows != 10001 {
		t.Errorf("rows %d", st.Rows)
	}
	want := []ColumnType{{Name: "n", Type: String, NonNull: 10001}, {Name: "f", Type: Float64, NonNull: 10001}}
	if !reflect.DeepEqual(cols, want) {
		t.Errorf("got %+v, want %+v", cols, want)
	}
}

func TestInferRejectedRows(t *testing.T) {
	data := "1,a\n" +
		"x,y,z\n" + // ragged: not inferred
		"2,\xff\n" + // invalid utf-8
		"\n" + // blank
		"3,\"b\"c\",d\n" + // malformed
		"5,b\"c\n" + // a bare quote is data
		"4,b\n"
	cols, st := inferOne(t, Options{}, []string{"n", "s"}, data)
	want := ObserveStats{Rows: 6, Ragged: 1, InvalidUTF8: 1, Malformed: 1, Blank: 1}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	if cols[0].Type != Int64 || cols[0].NonNull != 3 || cols[1].NonNull != 3 {
		t.Errorf("cols %+v", cols)
	}
}

func TestInferHints(t *testing.T) {
	opts := Options{Hints: map[string]Hint{
		"zip":   {Type: String},
		"price": {Type: Float64},
		"qty":   {Type: Int64, Strict: true},
		"empty": {Type: Int64},
	}}
	header := []string{"zip", "price", "qty", "empty", "other"}
	data := "10001,1,5,,x\n" +
		"10002,2,abc,,y\n" + // strict violation: the whole row is skipped
		"10003,3,007,,z\n" + // strict violation: "007" is not an int64
		"10004,4,,,1\n"
	cols, st := inferOne(t, opts, header, data)
	if st.HintViolations != 2 || st.Rows != 4 {
		t.Errorf("stats %+v", st)
	}
	want := []ColumnType{
		{Name: "zip", Type: String, NonNull: 2},
		{Name: "price", Type: Float64, NonNull: 2},
		{Name: "qty", Type: Int64, NonNull: 1},
		{Name: "empty", Type: Int64},
		{Name: "other", Type: String, NonNull: 2},
	}
	if !reflect.DeepEqual(cols, want) {
		t.Errorf("got %+v\nwant %+v", cols, want)
	}
}

// TestInferHeaders: columns are tracked by name across chunks whose headers differ.
func TestInferHeaders(t *testing.T) {
	in := NewInferer(Options{Delimiter: ';'})
	mustObserve := func(h []string, data string) {
		t.Helper()
		if _, err := in.Observe(h, []byte(data), 2); err != nil {
			t.Fatal(err)
		}
	}
	mustObserve([]string{"a", "b"}, "1;x\n")
	mustObserve([]string{"b", "a", "c"}, "y;2.5;true\n")
	mustObserve([]string{"c"}, "") // header only
	mustObserve([]string{"d", "a"}, "")
	want := []ColumnType{
		{Name: "a", Type: Float64, NonNull: 2},
		{Name: "b", Type: String, NonNull: 2},
		{Name: "c", Type: Bool, NonNull: 1},
		{Name: "d", Type: Null},
	}
	if got := in.Columns(); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if st := in.Stats(); st.Rows != 2 {
		t.Errorf("stats %+v", st)
	}
	if _, err := in.Observe([]string{"e", "e"}, nil, 2); !errors.Is(err, ErrDuplicateColumn) {
		t.Errorf("duplicate: %v", err)
	}
	if len(in.Columns()) != 4 {
		t.Errorf("a failed Observe registered columns: %+v", in.Columns())
	}
	if _, err := NewInferer(Options{Delimiter: '"'}).Observe([]string{"a"}, nil, 2); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("options: %v", err)
	}
}

func TestInferNullTokens(t *testing.T) {
	cols, _ := inferOne(t, Options{NullTokens: []string{"-"}}, []string{"v"}, "1\n-\n\n2\n")
	// "" is no longer null, but a blank line is not a value at all.
	if cols[0].Type != Int64 || cols[0].NonNull != 2 {
		t.Errorf("%+v", cols)
	}
	cols, _ = inferOne(t, Options{NullTokens: []string{"-"}}, []string{"v", "w"}, "1,\n-,2\n")
	if cols[0].Type != Int64 || cols[1].Type != String || cols[1].NonNull != 2 {
		t.Errorf("%+v", cols)
	}
}
