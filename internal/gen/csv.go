package gen

import (
	"io"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

var pow10 = [...]int64{1, 10, 100, 1000, 10000, 100000, 1000000}

// digits2 holds "00" … "99".
var digits2 = func() string {
	var b strings.Builder
	for i := range 100 {
		b.WriteByte(byte('0' + i/10))
		b.WriteByte(byte('0' + i%10))
	}
	return b.String()
}()

const (
	flushAt   = 64 << 10 // hand rows to the sink in chunks of about this size
	textRate  = 24       // /1024: share of rows whose drifting numeric column holds a word
	forcedMax = 64       // the first word of a drifting column is within the first forcedMax rows
)

// field is a column prepared for one member: pools encoded for its line ending, dates rendered for its date.
type field struct {
	kind     kind
	lo, span int64
	dec      int
	width    int
	prefix   []byte
	hourly   bool
	null     uint32
	enc      [][]byte
	multiEnc [][]byte
	multi    uint32
	dates    [][]byte // kDate: lo..hi days; timestamps: the days the seconds range covers
	dayLo    int64
	anchor   bool    // another field follows this one: its value is drawn at the start of the row
	ref      int     // index of the field this one follows, -1 if none
	dlo, dsp int64   // delta from ref: dlo + [0, dsp)
	set      []int64 // column.distinct values to pick from
}

// memberGen writes the CSV of one member. Everything random comes from its own rng, so running it twice with the
// same arguments produces the same bytes (the streamed path relies on it: one pass to measure, one to write).
type memberGen struct {
	r       rng
	fields  []field
	header  []byte
	eol     []byte
	bom     bool
	noEOL   bool
	textIdx int
	forced  int
	idBase  int64
	anchors []int   // fields that others follow
	vals    []int64 // this row's values of the anchors, by field index
	defects []defect
}

type memberStyle struct{ bom, crlf, noEOL bool }

func newMemberGen(seed int64, cols []*column, textIdx int, date time.Time, key string, st memberStyle, rows int) *memberGen {
	g := &memberGen{r: *newRNG(seed, "rows", key), bom: st.bom, noEOL: st.noEOL, textIdx: textIdx, eol: []byte("\n")}
	if st.crlf {
		g.eol = []byte("\r\n")
	}
	for i, c := range cols {
		if i > 0 {
			g.header = append(g.header, ',')
		}
		g.header = append(g.header, csvField(c.name, st.crlf)...)
		f := field{kind: c.kind, lo: c.lo, span: c.hi - c.lo + 1, dec: c.dec, width: c.width, prefix: []byte(c.prefix),
			hourly: c.hourly, null: c.null, multi: c.multi, ref: -1}
		for _, s := range c.pool {
			f.enc = append(f.enc, csvField(s, st.crlf))
		}
		for _, s := range c.multiPool {
			f.multiEnc = append(f.multiEnc, csvField(s, st.crlf))
		}
		if c.distinct > 0 {
			cr := newRNG(seed, "values", c.name)
			for range c.distinct {
				f.set = append(f.set, c.lo+cr.below(c.hi-c.lo+1))
			}
		}
		vlo, vhi := c.lo, c.hi // range of the values written
		if j := indexOf(cols, c.follows); c.follows != "" && j >= 0 && cols[j].follows == "" {
			f.ref, f.dlo, f.dsp = j, c.dlo, c.dhi-c.dlo+1
			vlo, vhi = cols[j].lo+c.dlo, cols[j].hi+c.dhi
		}
		switch c.kind {
		case kDate:
			f.dayLo = vlo
			f.dates = renderDates(date, vlo, vhi)
		case kTimestamp, kTimestampZ:
			f.dayLo = floorDiv(vlo, 86400)
			f.dates = renderDates(date, f.dayLo, floorDiv(vhi, 86400))
		}
		g.fields = append(g.fields, f)
	}
	g.vals = make([]int64, len(g.fields))
	for i := range g.fields {
		if j := g.fields[i].ref; j >= 0 && !g.fields[j].anchor {
			g.fields[j].anchor = true
			g.anchors = append(g.anchors, j)
		}
	}
	g.idBase = 1 + g.r.between(0, 899_999_999)
	lim := forcedMax
	if rows > 0 && rows < lim {
		lim = rows
	}
	g.forced = g.r.intn(lim)
	return g
}

func renderDates(date time.Time, lo, hi int64) [][]byte {
	out := make([][]byte, 0, hi-lo+1)
	for d := lo; d <= hi; d++ {
		out = append(out, date.AddDate(0, 0, int(d)).AppendFormat(nil, "2006-01-02"))
	}
	return out
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// csvField encodes s as one CSV field (RFC 4180), with embedded newlines as \r\n in CRLF members.
func csvField(s string, crlf bool) []byte {
	if !strings.ContainsAny(s, ",\"\r\n") {
		return []byte(s)
	}
	s = strings.ReplaceAll(s, `"`, `""`)
	if crlf {
		s = strings.ReplaceAll(s, "\n", "\r\n")
	}
	return []byte(`"` + s + `"`)
}

// write generates the member into w: exactly rows records if rows > 0, else records until the member holds at
// least target bytes (at least one record). buf is scratch space, returned for reuse. With w == nil nothing is
// flushed: the returned buffer holds the whole member.
func (g *memberGen) write(w io.Writer, buf []byte, rows int, target int64) (n int, size int64, _ []byte, err error) {
	b := buf[:0]
	if g.bom {
		b = append(b, 0xEF, 0xBB, 0xBF)
	}
	b = append(b, g.header...)
	for ; ; n++ {
		if rows > 0 {
			if n >= rows {
				break
			}
		} else if n > 0 && size+int64(len(b)) >= target {
			break
		}
		b = append(b, g.eol...)
		b = g.appendRow(b, n)
		if w != nil && len(b) >= flushAt {
			if _, err = w.Write(b); err != nil {
				return n, size, b, err
			}
			size += int64(len(b))
			b = b[:0]
		}
	}
	if !g.noEOL {
		b = append(b, g.eol...)
	}
	size += int64(len(b))
	if w == nil {
		return n, size, b, nil
	}
	if _, err = w.Write(b); err != nil {
		return n, size, b, err
	}
	return n, size, b[:0], nil
}

func (g *memberGen) appendRow(b []byte, row int) []byte {
	r := &g.r
	for _, i := range g.anchors {
		f := &g.fields[i]
		if f.set != nil {
			g.vals[i] = f.set[r.intn(len(f.set))]
		} else {
			g.vals[i] = f.lo + r.below(f.span)
		}
	}
	for i := range g.fields {
		f := &g.fields[i]
		if i > 0 {
			b = append(b, ',')
		}
		if d := g.defectAt(i, row); d != nil {
			b = append(b, d...)
			continue
		}
		if i == g.textIdx && (row == g.forced || r.chance(textRate)) {
			b = append(b, textTokens[r.intn(len(textTokens))]...)
			continue
		}
		if f.null != 0 && r.chance(f.null) {
			continue // null: an empty field, never a token such as NULL or NA
		}
		switch f.kind {
		case kID:
			b = strconv.AppendInt(b, g.idBase+int64(row), 10)
			continue
		case kEnum:
			b = append(b, f.enc[r.intn(len(f.enc))]...)
			continue
		case kText:
			if f.multi != 0 && r.chance(f.multi) {
				b = append(b, f.multiEnc[r.intn(len(f.multiEnc))]...)
			} else {
				b = append(b, f.enc[r.intn(len(f.enc))]...)
			}
			continue
		}
		var v int64
		switch {
		case f.anchor:
			v = g.vals[i]
		case f.ref >= 0:
			v = g.vals[f.ref] + f.dlo + r.below(f.dsp)
		case f.set != nil:
			v = f.set[r.intn(len(f.set))]
		default:
			v = f.lo + r.below(f.span)
		}
		switch f.kind {
		case kInt:
			b = strconv.AppendInt(b, v, 10)
		case kFloat:
			b = appendFixed(b, v, f.dec)
		case kDate:
			b = append(b, f.dates[v-f.dayLo]...)
		case kTimestamp, kTimestampZ:
			day := floorDiv(v, 86400)
			sod := v - day*86400
			if f.hourly {
				sod -= sod % 3600
			}
			b = append(b, f.dates[day-f.dayLo]...)
			if f.kind == kTimestampZ {
				b = append(b, 'T')
			} else {
				b = append(b, ' ')
			}
			h, m, sec := sod/3600, sod/60%60, sod%60
			b = append(b, digits2[2*h], digits2[2*h+1], ':', digits2[2*m], digits2[2*m+1], ':', digits2[2*sec], digits2[2*sec+1])
			if f.kind == kTimestampZ {
				b = append(b, 'Z')
			}
		case kCode:
			b = append(b, f.prefix...)
			b = appendPadded(b, v, f.width)
		}
	}
	return b
}

// below returns a value in [0, n); n > 0.
func (r *rng) below(n int64) int64 {
	hi, _ := bits.Mul64(r.u64(), uint64(n))
	return int64(hi)
}

// appendFixed writes v / 10^dec with exactly dec decimals ("-3.050"), without going through float formatting.
func appendFixed(b []byte, v int64, dec int) []byte {
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	p := pow10[dec]
	b = strconv.AppendInt(b, v/p, 10)
	if dec > 0 {
		b = append(b, '.')
		f := v % p
		for q := p / 10; q > 0; q /= 10 {
			b = append(b, byte('0'+f/q))
			f %= q
		}
	}
	return b
}

func appendPadded(b []byte, v int64, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], v, 10)
	for k := len(s); k < width; k++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// countWriter counts what would be written.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
