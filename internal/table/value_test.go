package table

import (
	"math"
	"strconv"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		in   string
		want Type
	}{
		// bool
		{"true", Bool}, {"false", Bool}, {"TRUE", Bool}, {"False", Bool}, {"tRuE", Bool},
		{"1", Int64}, {"0", Int64}, {"yes", String}, {"no", String}, {"t", String}, {"f", String},
		{"truee", String}, {"fals", String}, {" true", String},
		// int64
		{"42", Int64}, {"-42", Int64}, {"+42", Int64}, {"-0", Int64}, {"+0", Int64},
		{"9223372036854775807", Int64}, {"-9223372036854775808", Int64},
		{"9223372036854775808", String}, {"-9223372036854775809", String}, {"99999999999999999999", String},
		{"007", String}, {"00501", String}, {"-01", String}, {"00", String}, {"+007", String},
		{"1_000", String}, {"1,000", String}, {" 5", String}, {"5 ", String}, {"-", String}, {"+", String},
		{"0x1F", String}, {"1e", String},
		// float64
		{"1.5", Float64}, {"-1.5", Float64}, {"+1.5", Float64}, {"0.5", Float64}, {".5", Float64}, {"-.5", Float64},
		{"1.", Float64}, {"1e5", Float64}, {"1E5", Float64}, {"1.5e-3", Float64}, {"-2E+10", Float64},
		{"0e0", Float64}, {"1e400", String}, {"1e-400", String}, {"1234567890.123456789", String}, {"0.30000000000000004", Float64}, {"12345678901234567.0", String},
		{"0.10000000000000001", Float64}, {"1.000000000000000056e-01", Float64}, {"3.1415926535897931", Float64},
		{"0.1000000000000000055511151231257827021181583404541015625", Float64}, {"0.1000000000000000055511151231257827021181583404541015626", String},
		{"0.1", Float64}, {"-123456789.123456", Float64}, {"9007199254740993.5", String}, {"1.7976931348623157e308", Float64}, {"1.2e-00005", Float64}, {"-1.2e-00005", Float64},
		{"nan", String}, {"NaN", String}, {"inf", String}, {"-Inf", String}, {"infinity", String},
		{"0x1p-2", String}, {"1_0.5", String}, {"01.5", String}, {"00.5", String}, {".", String},
		{"1.5.", String}, {"1..5", String}, {"e5", String}, {".e5", String}, {"1.5 ", String},
		// date
		{"2024-02-29", Date}, {"2023-02-29", String}, {"2024-13-01", String}, {"2024-00-10", String},
		{"2024-04-31", String}, {"2024-01-00", String}, {"0000-01-01", Date}, {"9999-12-31", Date},
		{"2000-02-29", Date}, {"1900-02-29", String}, {"2024-1-01", String}, {"2024/01/01", String},
		{"20240101", Int64}, {" 2024-01-01", String}, {"2024-01-01 ", String},
		// timestamp
		{"2024-01-02 03:04:05", Timestamp}, {"2024-01-02T03:04:05", Timestamp},
		{"2024-01-02 03:04:05.1", Timestamp}, {"2024-01-02 03:04:05.123456789", Timestamp},
		{"2024-01-02 03:04:05.1234567890", String}, {"2024-01-02 03:04:05.", String},
		{"2024-01-02 24:00:00", String}, {"2024-01-02 23:60:00", String}, {"2024-01-02 23:59:60", String},
		{"2024-01-02 03:04", String}, {"2024-01-02t03:04:05", String}, {"2024-01-02  03:04:05", String},
		{"2024-02-30 03:04:05", String},
		// timestamptz
		{"2024-01-02 03:04:05Z", TimestampTZ}, {"2024-01-02T03:04:05.5Z", TimestampTZ},
		{"2024-01-02T03:04:05+02:00", TimestampTZ}, {"2024-01-02T03:04:05-0530", TimestampTZ},
		{"2024-01-02T03:04:05z", String}, {"2024-01-02T03:04:05+2", String}, {"2024-01-02T03:04:05+02", String},
		{"2024-01-02T03:04:05+24:00", String}, {"2024-01-02T03:04:05+02:60", String},
		{"2024-01-02T03:04:05 +02:00", String}, {"2024-01-02T03:04:05+02:00Z", String},
		{"2024-01-02T03:04:05 UTC", String},
		// strings
		{"", String}, {"abc", String}, {"NULL", String}, {"é", String},
	}
	for _, tt := range tests {
		v := classify([]byte(tt.in))
		if v.t != tt.want {
			t.Errorf("classify(%q) = %v, want %v", tt.in, v.t, tt.want)
		}
		if o, _ := oracle(tt.in); o != tt.want {
			t.Errorf("oracle(%q) = %v, want %v (test helper is wrong)", tt.in, o, tt.want)
		}
	}
}

func TestClassifyValues(t *testing.T) {
	if v := classify([]byte("-9223372036854775808")); v.i != math.MinInt64 || v.big { // -2^63 is exact
		t.Errorf("min int64: %+v", v)
	}
	if v := classify([]byte("9007199254740993")); v.i != 9007199254740993 || !v.big {
		t.Errorf("2^53+1: %+v", v)
	}
	if v := classify([]byte("9007199254740992")); v.big {
		t.Errorf("2^53 is exact: %+v", v)
	}
	if v := classify([]byte("1152921504606846976")); v.big { // 2^60
		t.Errorf("2^60 is exact: %+v", v)
	}
	if v := classify([]byte("9223372036854775807")); !v.big {
		t.Errorf("max int64 is not exact: %+v", v)
	}
	if v := classify([]byte("-1.25e2")); v.f != -125 {
		t.Errorf("float: %+v", v)
	}
	if v := classify([]byte("-0")); v.t != Int64 || v.i != 0 || !math.Signbit(v.f) {
		t.Errorf("-0: %+v", v)
	}
	if v := classify([]byte("-12")); v.f != -12 {
		t.Errorf("int as float: %+v", v)
	}
	if v := classify([]byte("TRUE")); v.i != 1 {
		t.Errorf("bool: %+v", v)
	}
	tests := []struct {
		in   string
		want time.Time
	}{
		{"1970-01-01", time.Unix(0, 0)},
		{"1969-12-31", time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)},
		{"0000-03-01", time.Date(0, 3, 1, 0, 0, 0, 0, time.UTC)},
		{"2024-02-29 23:59:59.999999", time.Date(2024, 2, 29, 23, 59, 59, 999999000, time.UTC)},
		{"1900-01-01T00:00:00.5", time.Date(1900, 1, 1, 0, 0, 0, 5e8, time.UTC)},
		{"2024-01-02 03:04:05.123456789", time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC)}, // truncated
		{"2024-01-02T03:04:05+02:00", time.Date(2024, 1, 2, 1, 4, 5, 0, time.UTC)},
		{"2024-01-02T03:04:05-0530", time.Date(2024, 1, 2, 8, 34, 5, 0, time.UTC)},
		{"2024-01-01T00:30:00+01:00", time.Date(2023, 12, 31, 23, 30, 0, 0, time.UTC)},
		{"9999-12-31 23:59:59.999999Z", time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)},
	}
	for _, tt := range tests {
		v := classify([]byte(tt.in))
		want := tt.want.UnixMicro()
		if v.t == Date {
			want = tt.want.Unix() / 86400
		}
		if v.i != want {
			t.Errorf("classify(%q).i = %d, want %d", tt.in, v.i, want)
		}
	}
}

// TestDaysFromCivil checks every day of years 0..9999 against the time package (a few years fully, the rest on
// the first of each month).
func TestDaysFromCivil(t *testing.T) {
	for y := 0; y <= 9999; y++ {
		for m := 1; m <= 12; m++ {
			days := daysIn(y, m)
			if want := time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day(); days != want {
				t.Fatalf("daysIn(%d, %d) = %d, want %d", y, m, days, want)
			}
			d := 1
			if y%397 == 0 {
				d = days
			}
			want := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC).Unix() / 86400
			if y < 1970 && time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC).Unix()%86400 != 0 {
				t.Fatal("unexpected")
			}
			if got := daysFromCivil(y, m, d); got != want {
				t.Fatalf("daysFromCivil(%d, %d, %d) = %d, want %d", y, m, d, got, want)
			}
		}
	}
}

func TestNullSet(t *testing.T) {
	def := newNullSet(nil)
	for _, s := range []string{"", "NULL", "null", "NA", "N/A"} {
		if !def.match([]byte(s)) {
			t.Errorf("%q should be null", s)
		}
	}
	for _, s := range []string{"Null", "na", " ", " NULL", "N/A ", "nil", "None"} {
		if def.match([]byte(s)) {
			t.Errorf("%q should not be null", s)
		}
	}
	none := newNullSet([]string{})
	if none.match(nil) || none.match([]byte("NULL")) {
		t.Error("empty token list should match nothing")
	}
	long := string(make([]byte, 70))
	custom := newNullSet([]string{"-", long})
	if !custom.match([]byte("-")) || !custom.match([]byte(long)) || custom.match(nil) {
		t.Error("custom tokens")
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{{}, {Delimiter: ';'}, {Delimiter: '\t'}, {Hints: map[string]Hint{"a": {Type: String}}}} {
		if err := o.Validate(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
	for _, o := range []Options{
		{Delimiter: '"'}, {Delimiter: '\n'}, {Delimiter: '\r'}, {Delimiter: 0xA7},
		{Hints: map[string]Hint{"a": {Type: Null, Strict: true}}},
		{Hints: map[string]Hint{"a": {Type: Type(9)}}},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v should be invalid", o)
		}
	}
}

// FuzzClassify checks classify against the independent oracle of helpers_test.go.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{
		"2024-02-29", "2024-01-02 03:04:05.123456789", "2024-01-02T03:04:05-0530", "2024-01-02T03:04:05+02:00",
		"0000-01-01 00:00:00Z", "9999-12-31T23:59:59.999999999+23:59", "-9223372036854775808", "1.5e-3", ".5", "007",
		"true", "FALSE", "1e400", "NaN",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v := classify([]byte(s))
		ot, ov := oracle(s)
		if v.t != ot {
			t.Fatalf("classify(%q) = %v, oracle %v", s, v.t, ot)
		}
		if ot >= Date && ot <= TimestampTZ && v.i != ov {
			t.Fatalf("classify(%q) = %d, oracle %d", s, v.i, ov)
		}
	})
}

// FuzzFloat checks the float fast path against strconv, bit for bit.
func FuzzFloat(f *testing.F) {
	for _, s := range []string{"1.5", "-0.0", "123456789012345", "0.000000000000000000001", "9.99e22", "1e-22", "4.35", "-.1e5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v := classify([]byte(s))
		if v.t != Float64 {
			return
		}
		want, err := strconv.ParseFloat(s, 64)
		if err != nil || math.Float64bits(v.f) != math.Float64bits(want) {
			t.Fatalf("classify(%q) = %v, strconv %v (%v)", s, v.f, want, err)
		}
	})
}

func TestTextNumberAndTime(t *testing.T) {
	for s, want := range map[string]any{"5": 5.0, "-2.5": -2.5, "1e2": 100.0, "+7": 7.0, "12345678901234567890": 1.2345678901234567e19,
		"-99999999999999999999": -1e20, "007": 7.0, "01.5": 1.5, ".5": 0.5, "5.": 5.0, "1234567890.123456789": 1234567890.1234567,
		"1,200": nil, " 7": nil, "NaN": nil, "Inf": nil, "1e999": nil, "+": nil, "-": nil, "": nil, "0x10": nil, "1_000": nil,
		"1e": nil, ".": nil, "1.2.3": nil} {
		f, ok := TextNumber(s)
		if want == nil && ok || want != nil && (!ok || f != want.(float64)) {
			t.Errorf("TextNumber(%q) = %v, %v; want %v", s, f, ok, want)
		}
	}
	for s, want := range map[string]int64{"2025-01-02": 1735776000_000000, "2025-01-02 03:04:05": 1735787045_000000,
		"2025-01-02T03:04:05+01:00": 1735783445_000000, "2025-02-30": -1, "yesterday": -1, "2025-01-02 3:04": -1} {
		us, date, ok := TextTime(s)
		if want < 0 && ok || want >= 0 && (!ok || us != want || date != (len(s) == 10)) {
			t.Errorf("TextTime(%q) = %d, %v, %v; want %d", s, us, date, ok, want)
		}
	}
}
