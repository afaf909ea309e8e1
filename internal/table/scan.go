package table

import (
	"bytes"
)

// recordKind says what the scanner found.
type recordKind uint8

const (
	recFields    recordKind = iota // a well-formed record: fields are set
	recBlank                       // a blank line: not a row
	recMalformed                   // a malformed record: reason is set, fields are not usable
)

// Reasons a record is malformed; the wording follows encoding/csv.
const (
	malformedQuote        = `extraneous or missing " in quoted field`
	malformedUnterminated = `quoted field not closed before the end of the data`
)

// scanner splits RFC 4180 records out of a byte slice. It does not allocate per field: fields are sub-slices of
// the data, except quoted fields that hold '""', which are unescaped into a buffer reused from record to record.
// Fields are valid until the next call to next. Inside quotes every byte is data: '\r\n' in a quoted field stays
// '\r\n' (only '""' is unescaped); outside quotes '\r\n' ends a record like '\n'.
//
// On input that encoding/csv (LazyQuotes=false, FieldsPerRecord=-1) accepts, it returns the same records with the
// same fields, except that encoding/csv turns '\r\n' inside a quoted field into '\n' (FuzzScanner checks it).
// Beyond that:
//   - a '"' inside an unquoted field is a literal character (as with LazyQuotes=true), not an error;
//   - a quoted field whose closing quote is followed by anything but the delimiter or a line end, or that is not
//     closed, makes the record malformed (recMalformed). Its extent is the one encoding/csv with LazyQuotes=true
//     gives it, which is also how the extractor splits chunks, so record counts and line numbers agree with it
//     and every byte of the data belongs to exactly one record.
type scanner struct {
	data    []byte
	delim   byte
	pos     int   // start of the next record in data
	line    int64 // physical line of the next record
	special [256]bool

	// The current record.
	kind   recordKind
	fields [][]byte
	raw    []byte // the record without its terminator ('\n' or '\r\n'); aliases data
	start  int64  // physical line where the record starts
	reason string // recMalformed only
	buf    []byte // unescaped fields
}

func newScanner(delim byte) *scanner {
	s := &scanner{delim: delim}
	s.special[delim] = true
	s.special['\n'] = true
	return s
}

func (s *scanner) reset(data []byte, firstLine int64) {
	s.data, s.pos, s.line = data, 0, firstLine
}

// next scans the next record; false at the end of the data.
func (s *scanner) next() bool {
	d := s.data
	i := s.pos
	if i >= len(d) {
		return false
	}
	s.start = s.line
	s.fields = s.fields[:0]
	s.buf = s.buf[:0]
	s.reason = ""

	// Blank line: "\n", "\r\n", or a lone "\r" ending the data (dropped like encoding/csv drops it).
	if d[i] == '\n' || d[i] == '\r' && (i+1 == len(d) || d[i+1] == '\n') {
		s.kind = recBlank
		s.raw = d[i:i]
		if d[i] == '\r' {
			i++
		}
		if i < len(d) { // d[i] == '\n'
			i++
			s.line++
		}
		s.pos = i
		return true
	}

	s.kind = recFields

	// Fast path: no '"' before the end of the line, so the record is that line.
	lineEnd := len(d)
	if e := bytes.IndexByte(d[i:], '\n'); e >= 0 {
		lineEnd = i + e
	}
	if bytes.IndexByte(d[i:lineEnd], '"') < 0 {
		delim := s.delim
		fs := i
		for k := i; k < lineEnd; k++ {
			if d[k] == delim {
				s.fields = append(s.fields, d[fs:k])
				fs = k + 1
			}
		}
		end := lineEnd
		if end > fs && d[end-1] == '\r' { // '\r\n' terminator, or a '\r' ending the data
			end--
		}
		s.fields = append(s.fields, d[fs:end])
		if lineEnd < len(d) {
			s.finish(i, end, lineEnd+1, 0, true)
		} else {
			s.finish(i, end, len(d), 0, false)
		}
		return true
	}

	var nl int64 // '\n' inside quoted fields
	start := i
	for {
		if i < len(d) && d[i] == '"' {
			// Quoted field: find the closing quote, skipping '""'.
			j := i + 1
			escaped := false
			var end int // index of the closing quote
			for {
				q := bytes.IndexByte(d[j:], '"')
				if q < 0 {
					nl += int64(bytes.Count(d[i:], nlByte))
					s.finishMalformed(start, len(d), nl, malformedUnterminated)
					return true
				}
				end = j + q
				if end+1 < len(d) && d[end+1] == '"' {
					escaped = true
					j = end + 2
					continue
				}
				break
			}
			content := d[i+1 : end]
			nl += int64(bytes.Count(content, nlByte))
			if escaped {
				s.fields = append(s.fields, s.unescape(content))
			} else {
				s.fields = append(s.fields, content)
			}
			k := end + 1
			switch {
			case k == len(d) || k+1 == len(d) && d[k] == '\r':
				s.finish(start, k, len(d), nl, false)
				return true
			case d[k] == s.delim:
				i = k + 1
				continue
			case d[k] == '\n':
				s.finish(start, k, k+1, nl, true)
				return true
			case d[k] == '\r' && d[k+1] == '\n':
				s.finish(start, k, k+2, nl, true)
				return true
			default:
				s.recoverLazy(start, k, nl)
				return true
			}
		}

		// Unquoted field: a '"' in it is data.
		j := i
		for j < len(d) && !s.special[d[j]] {
			j++
		}
		if j == len(d) {
			end := j
			if end > i && d[end-1] == '\r' { // encoding/csv drops a '\r' ending the data
				end--
			}
			s.fields = append(s.fields, d[i:end])
			s.finish(start, end, len(d), nl, false)
			return true
		}
		if d[j] == s.delim {
			s.fields = append(s.fields, d[i:j])
			i = j + 1
			continue
		}
		end := j // d[j] == '\n'
		if end > i && d[end-1] == '\r' {
			end--
		}
		s.fields = append(s.fields, d[i:end])
		s.finish(start, end, j+1, nl, true)
		return true
	}
}

var nlByte = []byte{'\n'}

// finish ends a record whose content is data[start:end] and whose next record starts at next.
func (s *scanner) finish(start, end, next int, nl int64, terminated bool) {
	s.raw = s.data[start:end]
	s.pos = next
	s.line += nl
	if terminated {
		s.line++
	}
}

func (s *scanner) finishMalformed(start, end int, nl int64, reason string) {
	s.kind = recMalformed
	s.reason = reason
	s.finish(start, end, end, nl, false)
}

// recoverLazy finds the end of a malformed record: data[at] follows a '"' that closes a quoted field in strict
// mode but is not followed by the delimiter or a line end. Like encoding/csv with LazyQuotes=true (and the
// extractor), it takes that quote as data and goes on inside the quoted field, and reads any later field by the
// same lazy rules, up to the end of the record.
func (s *scanner) recoverLazy(start, at int, nl int64) {
	d := s.data
	s.kind = recMalformed
	s.reason = malformedQuote
	k := at
	quoted := true
	for {
		if quoted {
			q := bytes.IndexByte(d[k:], '"')
			if q < 0 {
				nl += int64(bytes.Count(d[k:], nlByte))
				s.finish(start, len(d), len(d), nl, false)
				return
			}
			p := k + q
			nl += int64(bytes.Count(d[k:p], nlByte))
			n := p + 1
			switch {
			case n == len(d) || n+1 == len(d) && d[n] == '\r':
				s.finish(start, n, len(d), nl, false)
				return
			case d[n] == '"': // escaped quote
				k = n + 1
			case d[n] == s.delim:
				k = n + 1
				quoted = false
			case d[n] == '\n':
				s.finish(start, n, n+1, nl, true)
				return
			case d[n] == '\r' && d[n+1] == '\n':
				s.finish(start, n, n+2, nl, true)
				return
			default: // a literal quote
				k = n
			}
			continue
		}
		// At the start of a field.
		if k < len(d) && d[k] == '"' {
			quoted = true
			k++
			continue
		}
		f := k
		for k < len(d) && !s.special[d[k]] {
			k++
		}
		switch {
		case k == len(d):
			end := k
			if end > f && d[end-1] == '\r' {
				end--
			}
			s.finish(start, end, len(d), nl, false)
			return
		case d[k] == s.delim:
			k++
		default: // '\n'
			end := k
			if end > f && d[end-1] == '\r' {
				end--
			}
			s.finish(start, end, k+1, nl, true)
			return
		}
	}
}

// unescape copies a quoted field's content into s.buf, turning '""' into '"'; every other byte is copied as it
// is. The returned slice stays valid if s.buf grows later in the record (the old array is kept by the slice).
func (s *scanner) unescape(content []byte) []byte {
	off := len(s.buf)
	for len(content) > 0 {
		q := bytes.IndexByte(content, '"')
		if q < 0 {
			s.buf = append(s.buf, content...)
			break
		}
		s.buf = append(s.buf, content[:q+1]...) // always the first of a pair inside content
		content = content[q+2:]
	}
	return s.buf[off:len(s.buf):len(s.buf)]
}
