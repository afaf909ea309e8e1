package table

import (
	"math"
	"strconv"
	"unsafe"
)

// value is a classified non-null value: its own (narrowest) type and the parsed payload.
type value struct {
	t   Type
	big bool    // t == Int64 and float64 cannot hold i exactly
	i   int64   // Bool (0/1), Int64, Date (days since 1970-01-01), Timestamp and TimestampTZ (µs since epoch, UTC)
	f   float64 // Float64, and Int64 as a float64
}

// classify returns the narrowest type of a non-null value (see the package documentation for the rules).
func classify(b []byte) value {
	if len(b) == 0 {
		return value{t: String}
	}
	switch c := b[0]; {
	case c >= '0' && c <= '9':
		if len(b) >= 10 && b[4] == '-' && isDigit(b[1]) && isDigit(b[2]) && isDigit(b[3]) {
			return classifyTemporal(b)
		}
		return classifyNumber(b)
	case c == '-' || c == '+' || c == '.':
		return classifyNumber(b)
	case c|0x20 == 't':
		if len(b) == 4 && b[1]|0x20 == 'r' && b[2]|0x20 == 'u' && b[3]|0x20 == 'e' {
			return value{t: Bool, i: 1}
		}
	case c|0x20 == 'f':
		if len(b) == 5 && b[1]|0x20 == 'a' && b[2]|0x20 == 'l' && b[3]|0x20 == 's' && b[4]|0x20 == 'e' {
			return value{t: Bool}
		}
	}
	return value{t: String}
}

func isDigit(c byte) bool { return c-'0' < 10 }

// maxExact is the largest magnitude below which every integer is a float64.
const maxExact = 1 << 53

func classifyNumber(b []byte) value {
	n := len(b)
	i := 0
	neg := false
	if b[0] == '+' || b[0] == '-' {
		neg = b[0] == '-'
		i = 1
	}
	ds := i
	var u uint64
	for i < n && isDigit(b[i]) {
		if i-ds < 19 { // 19 digits always fit a uint64
			u = u*10 + uint64(b[i]-'0')
		}
		i++
	}
	intDigits := i - ds
	if intDigits > 1 && b[ds] == '0' {
		return value{t: String} // "007", "-01", "00.5": identifiers keep their zeros
	}
	if i == n {
		if intDigits == 0 || intDigits > 19 {
			return value{t: String}
		}
		var v int64
		switch {
		case !neg && u <= 1<<63-1:
			v = int64(u)
		case neg && u <= 1<<63:
			v = int64(-u) // -(1<<63) wraps to itself
		default:
			return value{t: String} // does not fit int64 (and a float64 could not hold it)
		}
		f := float64(v) // the value in a float64 column
		if neg && v == 0 {
			f = math.Copysign(0, -1) // "-0" reads as -0.0, as strconv.ParseFloat reads it
		}
		return value{t: Int64, i: v, f: f, big: !exactFloat(v)}
	}

	// Float: [. digits] [(e|E) [+-] digits], at least one mantissa digit. u keeps accumulating the mantissa
	// digits for the exact fast path below.
	mantissa := intDigits
	fracDigits := 0
	if b[i] == '.' {
		i++
		fs := i
		for i < n && isDigit(b[i]) {
			if mantissa < 19 {
				u = u*10 + uint64(b[i]-'0')
			}
			mantissa++
			i++
		}
		fracDigits = i - fs
	}
	if mantissa == 0 {
		return value{t: String}
	}
	exp := 0
	if i < n && (b[i] == 'e' || b[i] == 'E') {
		i++
		eneg := false
		if i < n && (b[i] == '+' || b[i] == '-') {
			eneg = b[i] == '-'
			i++
		}
		es := i
		for i < n && isDigit(b[i]) {
			if exp < 10000 {
				exp = exp*10 + int(b[i]-'0')
			}
			i++
		}
		if i == es {
			return value{t: String}
		}
		if eneg {
			exp = -exp
		}
	}
	if i != n {
		return value{t: String}
	}
	// Exact fast path (Clinger): a mantissa below 2^53 times an exact power of ten rounds once, correctly.
	if mantissa <= 15 {
		if e10 := exp - fracDigits; e10 >= -22 && e10 <= 22 {
			f := float64(u)
			if e10 < 0 {
				f /= pow10[-e10]
			} else {
				f *= pow10[e10]
			}
			if neg {
				f = -f
			}
			return value{t: Float64, f: f}
		}
	}
	// The syntax was checked above, so strconv only fails on overflow (±Inf), which is a string.
	f, err := strconv.ParseFloat(unsafe.String(&b[0], n), 64)
	if err != nil || !sameNumber(b[ds:], f) {
		return value{t: String} // a float64 cannot hold it to the digit: kept as text, as a big integer is
	}
	return value{t: Float64, f: f}
}

// sameNumber reports whether the unsigned decimal m (digits [. digits] [exponent], checked) is f to as many
// significant digits as m has: f written with that precision gives m's digits at m's magnitude. So "0.1",
// "0.10000000000000001" (%.17g), "1.000000000000000056e-01" (%.18e) and the exact expansion of the float64 all
// hold (each reads back as the float64 it names, and writes back as itself), while "1234567890.123456789" does not
// (no float64 has those 19 digits), nor "1e-400" (zero). False means a float64 would change the number.
func sameNumber(m []byte, f float64) bool {
	var wbuf, fbuf, gbuf [40]byte
	want, wexp := sigDigits(m, wbuf[:0])
	if len(want) == 0 {
		return f == 0
	}
	if f == 0 {
		return false // underflowed
	}
	got, gexp := sigDigits(strconv.AppendFloat(fbuf[:0], math.Abs(f), 'e', len(want)-1, 64), gbuf[:0])
	return wexp == gexp && string(want) == string(got)
}

// sigDigits returns the significant digits of a decimal (no leading or trailing zero) appended to dst, and the
// power of ten of the first of them. A long mantissa may need more than dst's capacity.
func sigDigits(m []byte, dst []byte) ([]byte, int) {
	point, exp, i := -1, 0, 0
	first := -1 // position, among the mantissa digits, of the first non-zero one
	pos := 0
	for ; i < len(m); i++ {
		c := m[i]
		switch {
		case c == '.':
			point = pos
			continue
		case c == 'e' || c == 'E':
			e, _ := strconv.Atoi(string(m[i+1:]))
			exp = e
			i = len(m)
			continue
		}
		if first < 0 && c != '0' {
			first = pos
		}
		if first >= 0 {
			dst = append(dst, c)
		}
		pos++
	}
	if point < 0 {
		point = pos
	}
	for len(dst) > 0 && dst[len(dst)-1] == '0' {
		dst = dst[:len(dst)-1]
	}
	if first < 0 {
		return dst, 0
	}
	return dst, point - first - 1 + exp
}

var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
	1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// exactFloat reports whether float64(v) == v exactly.
func exactFloat(v int64) bool {
	if v >= -maxExact && v <= maxExact {
		return true
	}
	f := float64(v)
	if f >= 1<<63 { // rounded up past MaxInt64
		return false
	}
	return int64(f) == v
}

func digits2(b []byte) (int, bool) {
	if !isDigit(b[0]) || !isDigit(b[1]) {
		return 0, false
	}
	return int(b[0]-'0')*10 + int(b[1]-'0'), true
}

const (
	usPerSecond = 1_000_000
	usPerDay    = 86_400 * usPerSecond
)

// classifyTemporal reads YYYY-MM-DD[( |T)HH:MM:SS[.f{1,9}][Z|±HH:MM|±HHMM]]; b[4] is '-' and len(b) >= 10.
func classifyTemporal(b []byte) value {
	n := len(b)
	y1, ok1 := digits2(b[0:2])
	y2, ok2 := digits2(b[2:4])
	mo, ok3 := digits2(b[5:7])
	d, ok4 := digits2(b[8:10])
	if !ok1 || !ok2 || !ok3 || !ok4 || b[7] != '-' {
		return value{t: String}
	}
	y := y1*100 + y2
	if mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) {
		return value{t: String}
	}
	days := daysFromCivil(y, mo, d)
	if n == 10 {
		return value{t: Date, i: days}
	}
	if n < 19 || (b[10] != ' ' && b[10] != 'T') || b[13] != ':' || b[16] != ':' {
		return value{t: String}
	}
	hh, ok1 := digits2(b[11:13])
	mm, ok2 := digits2(b[14:16])
	ss, ok3 := digits2(b[17:19])
	if !ok1 || !ok2 || !ok3 || hh > 23 || mm > 59 || ss > 59 {
		return value{t: String}
	}
	us := days*usPerDay + int64(hh*3600+mm*60+ss)*usPerSecond
	i := 19
	if i < n && b[i] == '.' {
		i++
		fs := i
		frac := int64(0)
		for i < n && isDigit(b[i]) && i-fs < 9 {
			if i-fs < 6 {
				frac = frac*10 + int64(b[i]-'0')
			}
			i++
		}
		k := i - fs
		if k == 0 || (i < n && isDigit(b[i])) {
			return value{t: String} // no digit, or more than 9
		}
		for ; k < 6; k++ {
			frac *= 10
		}
		us += frac
	}
	if i == n {
		return value{t: Timestamp, i: us}
	}
	switch b[i] {
	case 'Z':
		if i+1 == n {
			return value{t: TimestampTZ, i: us}
		}
	case '+', '-':
		z := b[i+1:]
		var oh, om int
		var ok bool
		switch {
		case len(z) == 5 && z[2] == ':':
			oh, ok1 = digits2(z[0:2])
			om, ok2 = digits2(z[3:5])
			ok = ok1 && ok2
		case len(z) == 4:
			oh, ok1 = digits2(z[0:2])
			om, ok2 = digits2(z[2:4])
			ok = ok1 && ok2
		}
		if !ok || oh > 23 || om > 59 {
			break
		}
		off := int64(oh*3600+om*60) * usPerSecond
		if b[i] == '+' {
			off = -off // local = UTC + offset
		}
		return value{t: TimestampTZ, i: us + off}
	}
	return value{t: String}
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(y, m int) int {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era*146097 + doe - 719468)
}

// TextNumber reads s as a decimal number: [+-] digits [. digits] [(e|E) [+-] digits] (at least one mantissa
// digit), its value as the nearest float64 — also where the inferer keeps the text (leading zeros as in "007" or
// "01.5", more digits than a float64 holds, an integer beyond int64). False for anything else: surrounding spaces,
// thousands separators, NaN, infinities, hex, and a value beyond float64. The data-quality rules read a column
// widened to string with it. strconv.ParseFloat checks the syntax: written with these characters only, what it
// accepts is a decimal (hex, '_', "nan" and "inf" need others).
func TextNumber(s string) (float64, bool) {
	for i := range len(s) {
		if c := s[i]; !isDigit(c) && c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-' {
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// TextTime reads s as the inferer reads a date or a timestamp: microseconds since 1970-01-01 UTC (a date at its
// midnight, a timestamp without a zone as UTC) and whether it is a date. False for anything else.
func TextTime(s string) (us int64, date, ok bool) {
	if len(s) < 10 {
		return 0, false, false
	}
	switch v := classify(unsafe.Slice(unsafe.StringData(s), len(s))); v.t {
	case Date:
		return v.i * usPerDay, true, true
	case Timestamp, TimestampTZ:
		return v.i, false, true
	}
	return 0, false, false
}
