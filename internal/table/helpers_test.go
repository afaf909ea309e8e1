package table

import (
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// The oracle classifies values with regexp, strconv and time: an implementation independent of value.go.
var (
	reInt   = regexp.MustCompile(`^[+-]?(0|[1-9][0-9]*)$`)
	reFloat = regexp.MustCompile(`^[+-]?((0|[1-9][0-9]*)(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$`)
	reDate  = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
	reTS    = regexp.MustCompile(`^([0-9]{4}-[0-9]{2}-[0-9]{2})[ T]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:?[0-9]{2})?$`)
)

// oracle returns the type of a non-null value and, for temporal types, its days or µs.
func oracle(s string) (Type, int64) {
	switch {
	case strings.EqualFold(s, "true") || strings.EqualFold(s, "false"):
		return Bool, 0
	case reInt.MatchString(s):
		if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			return String, 0
		}
		return Int64, 0
	case reFloat.MatchString(s):
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return String, 0
		}
		// lossless: f, rounded (by math/big, exactly) to as many significant digits as s has, is the
		// number written (math/big reads it exactly too)
		m, _, _ := strings.Cut(strings.ToLower(strings.TrimLeft(s, "+-")), "e")
		digits := strings.Trim(strings.ReplaceAll(m, ".", ""), "0")
		if digits == "" {
			if f != 0 {
				return String, 0
			}
			return Float64, 0 // zero, at any exponent (not handed to big.Rat, which would expand it)
		}
		if f == 0 {
			return String, 0
		}
		want, ok1 := new(big.Rat).SetString(strings.TrimLeft(s, "+-"))
		got, ok2 := new(big.Rat).SetString(new(big.Float).SetFloat64(math.Abs(f)).Text('e', len(digits)-1))
		if !ok1 || !ok2 || want.Cmp(got) != 0 {
			return String, 0
		}
		return Float64, 0
	case reDate.MatchString(s):
		t, err := time.Parse("2006-01-02", s)
		if err != nil {
			return String, 0
		}
		return Date, t.Unix() / 86400
	}
	m := reTS.FindStringSubmatch(s)
	if m == nil {
		return String, 0
	}
	t, err := time.Parse("2006-01-02 15:04:05", m[1]+" "+m[2])
	if err != nil {
		return String, 0
	}
	frac := int64(0)
	if m[3] != "" {
		digits := (m[3][1:] + "000000")[:6]
		frac, _ = strconv.ParseInt(digits, 10, 64)
	}
	us := t.UnixMicro() + frac
	if m[4] == "" {
		return Timestamp, us
	}
	if m[4] == "Z" {
		return TimestampTZ, us
	}
	z := strings.ReplaceAll(m[4][1:], ":", "")
	hh, _ := strconv.Atoi(z[:2])
	mm, _ := strconv.Atoi(z[2:])
	if hh > 23 || mm > 59 {
		return String, 0
	}
	off := int64(hh*3600+mm*60) * 1e6
	if m[4][0] == '+' {
		return TimestampTZ, us - off
	}
	return TimestampTZ, us + off
}

// wantNull is the null rule, written independently of the Builder: the empty token is null in every column, the
// others in every column but a string one (unless stringsNull).
func wantNull(col Type, nulls *nullSet, stringsNull bool, field string) bool {
	if !nulls.match([]byte(field)) {
		return false
	}
	return field == "" || col != String || stringsNull
}

// checkValue asserts that arr[row] holds field (a CSV value) under column type col.
func checkValue(t testing.TB, col Type, nulls *nullSet, stringsNull bool, arr arrow.Array, row int, field, where string) {
	t.Helper()
	if wantNull(col, nulls, stringsNull, field) {
		if !arr.IsNull(row) {
			t.Fatalf("%s: %q should be null, got %v", where, field, arr.ValueStr(row))
		}
		return
	}
	if arr.IsNull(row) {
		t.Fatalf("%s: %q read back as null", where, field)
	}
	vt, tv := oracle(field)
	switch col {
	case String, Null:
		if got := arr.(*array.String).Value(row); got != field {
			t.Fatalf("%s: got %q, want %q", where, got, field)
		}
	case Int64:
		want, err := strconv.ParseInt(field, 10, 64)
		if got := arr.(*array.Int64).Value(row); err != nil || got != want {
			t.Fatalf("%s: got %d, want %q", where, got, field)
		}
	case Float64:
		want, err := strconv.ParseFloat(field, 64)
		if got := arr.(*array.Float64).Value(row); err != nil || math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%s: got %v, want %q", where, got, field)
		}
	case Bool:
		if got := arr.(*array.Boolean).Value(row); got != strings.EqualFold(field, "true") {
			t.Fatalf("%s: got %v, want %q", where, got, field)
		}
	case Date:
		if got := arr.(*array.Date32).Value(row); vt != Date || int64(got) != tv {
			t.Fatalf("%s: got %v, want %q (%v %d)", where, got, field, vt, tv)
		}
	case Timestamp, TimestampTZ:
		want := tv
		if vt == Date {
			want *= 86400e6
		} else if vt != col {
			t.Fatalf("%s: %q is %v, stored in %v", where, field, vt, col)
		}
		if got := arr.(*array.Timestamp).Value(row); int64(got) != want {
			t.Fatalf("%s: got %v, want %q (%d)", where, got, field, want)
		}
	default:
		t.Fatalf("%s: unexpected column type %v", where, col)
	}
}

// colByName returns the column named name of rec.
func colByName(t testing.TB, rec arrow.RecordBatch, name string) arrow.Array {
	t.Helper()
	idx := rec.Schema().FieldIndices(name)
	if len(idx) != 1 {
		t.Fatalf("column %q: %d matches in %v", name, len(idx), rec.Schema())
	}
	return rec.Column(idx[0])
}

// readCSV reads well-formed CSV data by the rules of the package documentation, written independently of the
// scanner: blank lines are skipped, a field that starts with '"' is quoted and every byte inside the quotes is
// data except that '""' is one '"', records end in '\n', '\r\n' or at the end of the data (a '\r' ending the data
// is dropped). A '"' inside an unquoted field is data. ok is false for malformed data (a quoted field not
// followed by the delimiter or a record end, or not closed).
func readCSV(data string, delim byte) (recs [][]string, ok bool) {
	i, n := 0, len(data)
	atEnd := func(i int) bool {
		return i == n || data[i] == '\n' || data[i] == '\r' && (i+1 == n || data[i+1] == '\n')
	}
	skipEnd := func(i int) int {
		if i < n && data[i] == '\r' {
			i++
		}
		if i < n && data[i] == '\n' {
			i++
		}
		return i
	}
	for i < n {
		if atEnd(i) { // blank line
			i = skipEnd(i)
			continue
		}
		var rec []string
		for {
			var f []byte
			if data[i] == '"' {
				i++
				for {
					if i == n {
						return nil, false
					}
					if data[i] == '"' {
						if i+1 < n && data[i+1] == '"' {
							f = append(f, '"')
							i += 2
							continue
						}
						i++
						break
					}
					f = append(f, data[i])
					i++
				}
				if i < n && data[i] != delim && !atEnd(i) {
					return nil, false
				}
			} else {
				for i < n && data[i] != delim && !atEnd(i) {
					f = append(f, data[i])
					i++
				}
			}
			rec = append(rec, string(f))
			if i < n && data[i] == delim {
				i++
				if i == n { // a delimiter ending the data: one more, empty field
					rec = append(rec, "")
					break
				}
				continue
			}
			i = skipEnd(i)
			break
		}
		recs = append(recs, rec)
	}
	return recs, true
}

// sameRows asserts that the record batches got hold, one after the other, exactly the rows of want: the same
// schema, nulls and values (floats bit for bit, so -0.0 is not 0).
func sameRows(t testing.TB, want arrow.RecordBatch, got []arrow.RecordBatch) {
	t.Helper()
	var n int64
	for _, g := range got {
		if !g.Schema().Equal(want.Schema()) {
			t.Fatalf("schema %v, want %v", g.Schema(), want.Schema())
		}
		for ci := range int(want.NumCols()) {
			w, a := want.Column(ci), g.Column(ci)
			for i := range int(g.NumRows()) {
				wi := int(n) + i
				if w.IsNull(wi) != a.IsNull(i) {
					t.Fatalf("column %s row %d: null %v, want %v", want.ColumnName(ci), wi, a.IsNull(i), w.IsNull(wi))
				}
				if w.IsNull(wi) {
					continue
				}
				if wf, ok := w.(*array.Float64); ok {
					if x, y := math.Float64bits(a.(*array.Float64).Value(i)), math.Float64bits(wf.Value(wi)); x != y {
						t.Fatalf("column %s row %d: %v, want %v", want.ColumnName(ci), wi, a.(*array.Float64).Value(i), wf.Value(wi))
					}
					continue
				}
				if x, y := a.ValueStr(i), w.ValueStr(wi); x != y {
					t.Fatalf("column %s row %d: %q, want %q", want.ColumnName(ci), wi, x, y)
				}
			}
		}
		n += g.NumRows()
	}
	if n != want.NumRows() {
		t.Fatalf("%d rows collected, want %d", n, want.NumRows())
	}
}
