package extractor

import "bytes"

// scanState is where the record scanner stands between two bytes of input.
type scanState uint8

const (
	stRecStart   scanState = iota // before the first byte of a record
	stRecStartCR                  // a record began with '\r': blank if '\n' or EOF follows
	stField                       // right after a delimiter: a '"' here opens a quoted field
	stUnquoted                    // inside an unquoted field: quotes are literal
	stQuoted                      // inside a quoted field
	stQuote                       // inside a quoted field, just past a '"'
	stQuoteCR                     // inside a quoted field, past '"' then '\r'
)

// recordScanner finds CSV record boundaries in a byte stream fed to it piece by piece. It follows
// encoding/csv with LazyQuotes=true exactly, so that a consumer parsing any chunk on its own with
// csv.Reader{Comma: delim, LazyQuotes: true, FieldsPerRecord: -1} sees the same records:
//
//   - a record ends at '\n' outside a quoted field ("\r\n" too: the '\r' belongs to the record);
//   - a field is quoted only when its first byte is '"'; a quote elsewhere in an unquoted field
//     is a literal character;
//   - inside a quoted field, `""` is an escaped quote; `"` closes the field when followed by the
//     delimiter, '\n', "\r\n", "\r"+EOF or EOF, and is otherwise a literal quote (lazy);
//   - a blank line ("\n", "\r\n", or "\r" at EOF) is not a record (encoding/csv skips it).
//
// For input encoding/csv accepts in strict mode (no bare quotes), these are exactly RFC 4180's
// records. The scanner holds no buffer; it is a few bytes of state.
type recordScanner struct {
	delim byte
	st    scanState
}

// next scans p from the current state. It returns the offset just past the first record
// terminator in p and whether that record was blank. ok is false when p ended inside a record;
// the state is kept, so the next call continues where this one stopped.
func (s *recordScanner) next(p []byte) (end int, blank, ok bool) {
	delim := s.delim
	i := 0
	for i < len(p) {
		switch s.st {
		case stRecStart:
			switch c := p[i]; c {
			case '\n':
				return i + 1, true, true
			case '\r':
				s.st = stRecStartCR
			case '"':
				s.st = stQuoted
			case delim:
				s.st = stField
			default:
				s.st = stUnquoted
			}
			i++
		case stRecStartCR:
			if p[i] == '\n' {
				s.st = stRecStart
				return i + 1, true, true
			}
			s.st = stUnquoted // the '\r' was data; look at p[i] again as part of the field
		case stField:
			if p[i] == '"' {
				s.st = stQuoted
				i++
				continue
			}
			s.st = stUnquoted // look at p[i] again as the field's first byte
		case stUnquoted:
			// The record ends at the next '\n' unless a quoted field opens before it, which
			// needs a '"' right after a delimiter. Two vectorised searches per record.
			rest := p[i:]
			seg := rest
			nl := bytes.IndexByte(rest, '\n')
			if nl >= 0 {
				seg = rest[:nl]
			}
			if q := openingQuote(seg, delim); q >= 0 {
				s.st = stQuoted
				i += q + 1
				continue
			}
			if nl >= 0 {
				s.st = stRecStart
				return i + nl + 1, false, true
			}
			if seg[len(seg)-1] == delim {
				s.st = stField
			}
			return 0, false, false
		case stQuoted:
			q := bytes.IndexByte(p[i:], '"')
			if q < 0 {
				return 0, false, false
			}
			s.st = stQuote
			i += q + 1
		case stQuote:
			switch c := p[i]; c {
			case '\n':
				s.st = stRecStart
				return i + 1, false, true
			case '\r':
				s.st = stQuoteCR
			case delim:
				s.st = stField
			default: // `""` (escaped quote) or a lazy literal quote followed by data
				s.st = stQuoted
			}
			i++
		case stQuoteCR:
			if p[i] == '\n' {
				s.st = stRecStart
				return i + 1, false, true
			}
			s.st = stQuoted // `"` and '\r' were data (lazy); look at p[i] again inside the field
		}
	}
	return 0, false, false
}

// openingQuote returns the index of the first '"' in seg that directly follows a delimiter, or
// -1. seg starts inside an unquoted field, so a quote at index 0 is literal.
func openingQuote(seg []byte, delim byte) int {
	k := 0
	for {
		q := bytes.IndexByte(seg[k:], '"')
		if q < 0 {
			return -1
		}
		q += k
		if q > 0 && seg[q-1] == delim {
			return q
		}
		k = q + 1
	}
}

// atEOF reports what the end of input means in the current state: whether a record ends there
// (record), whether that record is blank, and whether it ends inside an open quoted field.
func (s *recordScanner) atEOF() (record, blank, unterminated bool) {
	switch s.st {
	case stRecStart:
		return false, false, false
	case stRecStartCR:
		return true, true, false
	case stQuoted:
		return true, false, true
	default:
		return true, false, false
	}
}

func (s *recordScanner) reset() { s.st = stRecStart }
