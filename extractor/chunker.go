package extractor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// headerReadStep is how much the chunker reads at a time while looking for the header record.
const headerReadStep = 32 << 10

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// errEmptyMember means a member holds no record at all (zero bytes, a BOM, blank lines).
var errEmptyMember = errors.New("empty file")

// recordError is a member that cannot be chunked: a record too large for one message, a quoted
// field still open at the end of the member, or an oversized header. Line is the physical line
// (1-based, BOM excluded) where the offending record starts.
type recordError struct {
	Line int64
	What string // "record", "header", "unterminated"
	Max  int    // the limit that was exceeded (bytes), for "record" and "header"
}

func (e *recordError) Error() string {
	switch e.What {
	case "unterminated":
		return fmt.Sprintf("unterminated quoted field at line %d", e.Line)
	case "header":
		return fmt.Sprintf("header at line %d exceeds max message size", e.Line)
	default:
		return fmt.Sprintf("record at line %d exceeds max message size", e.Line)
	}
}

// chunkOut is one chunk as the chunker hands it over: data = buf[off:off+n], whole records only.
// The bytes before off are free for the message prefix (see chunkEncoder). Ownership of buf
// passes to the emit callback.
type chunkOut struct {
	buf         []byte
	off, n      int
	rows        int   // non-blank records in data
	firstLine   int64 // physical line of data's first byte
	last        bool  // last chunk of the member
	invalidUTF8 int   // records holding invalid UTF-8 (only counted when checkUTF8)
}

func (c *chunkOut) data() []byte { return c.buf[c.off : c.off+c.n] }

// chunker splits one CSV member (already UTF-8) into chunks cut only at record boundaries.
//
// It reads straight into the buffer that becomes the chunk's message: no record is copied
// except the partial one at a cut, which moves to the next buffer. Memory per member is the
// buffers it holds (one, two while cutting) plus the header.
type chunker struct {
	delim     byte
	checkUTF8 bool
	maxHeader int // largest header record accepted, terminator included

	// layout returns, for a member's header, how many bytes each buffer keeps free in front of
	// the data (for the message prefix) and the most data bytes one chunk may carry.
	layout func(header []byte) (reserve, maxData int, err error)
	// acquire returns a buffer of at least reserve+maxData bytes; release gives back one that
	// was not emitted.
	acquire func() ([]byte, error)
	release func([]byte)
	// emit takes ownership of c.buf.
	emit func(c *chunkOut) error

	hbuf []byte // header scratch, reused across members
}

// memberStats is what a chunked member amounted to.
type memberStats struct {
	header      []byte // raw header record, terminator removed (aliases chunker scratch)
	headerLine  int64
	rows        int64
	chunks      int
	dataBytes   int64
	invalidUTF8 int64
}

// pendingReader serves leftover bytes before reading on from r.
type pendingReader struct {
	pending []byte
	r       io.Reader
}

func (p *pendingReader) Read(b []byte) (int, error) {
	if len(p.pending) > 0 {
		n := copy(b, p.pending)
		p.pending = p.pending[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// readHeader finds the first non-blank record. It returns the header (terminator removed), the
// bytes read past it, the physical line of the header and of the first byte after it, and
// whether the input ended.
func (c *chunker) readHeader(r io.Reader) (header, rest []byte, headerLine, nextLine int64, eof bool, err error) {
	s := recordScanner{delim: c.delim}
	buf := c.hbuf[:0]
	defer func() { c.hbuf = buf[:0] }()
	start, scanned := 0, 0
	line := int64(1)
	bomDone := false
	for {
		if cap(buf)-len(buf) < headerReadStep {
			nb := make([]byte, len(buf), 2*cap(buf)+headerReadStep)
			copy(nb, buf)
			buf = nb
		}
		n, rerr := r.Read(buf[len(buf) : len(buf)+headerReadStep])
		buf = buf[:len(buf)+n]
		if !bomDone && (len(buf) >= len(utf8BOM) || rerr != nil) {
			bomDone = true
			if bytes.HasPrefix(buf, utf8BOM) {
				start, scanned = len(utf8BOM), len(utf8BOM)
			}
		}
		for bomDone && scanned < len(buf) {
			end, blank, ok := s.next(buf[scanned:])
			if !ok {
				scanned = len(buf)
				break
			}
			scanned += end
			if blank {
				line += int64(bytes.Count(buf[start:scanned], []byte{'\n'}))
				start = scanned
				continue
			}
			if scanned-start > c.maxHeader {
				return nil, nil, 0, 0, false, &recordError{Line: line, What: "header", Max: c.maxHeader}
			}
			h := trimTerminator(buf[start:scanned])
			next := line + int64(bytes.Count(buf[start:scanned], []byte{'\n'}))
			return h, buf[scanned:], line, next, false, nil
		}
		if bomDone && scanned-start > c.maxHeader {
			return nil, nil, 0, 0, false, &recordError{Line: line, What: "header", Max: c.maxHeader}
		}
		if rerr == io.EOF {
			rec, blank, unterminated := s.atEOF()
			switch {
			case unterminated:
				return nil, nil, 0, 0, false, &recordError{Line: line, What: "unterminated"}
			case !rec || blank:
				return nil, nil, 0, 0, false, errEmptyMember
			}
			h := buf[start:]
			if h[len(h)-1] == '\r' { // encoding/csv drops a '\r' before EOF
				h = h[:len(h)-1]
			}
			return h, nil, line, line + int64(bytes.Count(h, []byte{'\n'})), true, nil
		}
		if rerr != nil {
			return nil, nil, 0, 0, false, rerr
		}
	}
}

// trimTerminator removes a record's "\n" or "\r\n".
func trimTerminator(rec []byte) []byte {
	rec = bytes.TrimSuffix(rec, []byte{'\n'})
	return bytes.TrimSuffix(rec, []byte{'\r'})
}

// run chunks one member read from r. On error, chunks already emitted stay emitted: the caller
// decides what they mean (see Extractor: the table's batch is aborted).
func (c *chunker) run(r io.Reader) (st memberStats, err error) {
	header, rest, headerLine, line, eof, err := c.readHeader(r)
	if err != nil {
		return st, err
	}
	st.header, st.headerLine = header, headerLine
	reserve, maxData, err := c.layout(header)
	if err != nil {
		return st, err
	}
	if maxData <= 0 {
		return st, &recordError{Line: headerLine, What: "header", Max: reserve}
	}
	src := io.Reader(&pendingReader{pending: rest, r: r})
	if eof {
		src = eofReader{}
	}

	buf, err := c.acquire()
	if err != nil {
		return st, err
	}
	var pend *chunkOut // a full chunk kept until we know whether more data follows
	defer func() {
		if err != nil {
			if buf != nil {
				c.release(buf)
			}
			if pend != nil {
				c.release(pend.buf)
			}
		}
	}()
	s := recordScanner{delim: c.delim}
	n, scanned, lastEnd, rows := 0, 0, 0, 0
	emit := func(ch *chunkOut) error {
		if c.checkUTF8 {
			ch.invalidUTF8 = countInvalidUTF8(ch.data(), c.delim)
			st.invalidUTF8 += int64(ch.invalidUTF8)
		}
		st.rows += int64(ch.rows)
		st.chunks++
		st.dataBytes += int64(ch.n)
		return c.emit(ch)
	}
	emitPending := func() error {
		p := pend
		pend = nil
		return emit(p)
	}
	for {
		if pend != nil && n > 0 {
			if err := emitPending(); err != nil {
				return st, err
			}
		}
		if n == maxData { // full: cut after the last whole record
			if lastEnd == 0 {
				return st, &recordError{Line: line, What: "record", Max: maxData}
			}
			nb, aerr := c.acquire()
			if aerr != nil {
				return st, aerr
			}
			tail := copy(nb[reserve:], buf[reserve+lastEnd:reserve+n])
			pend = &chunkOut{buf: buf, off: reserve, n: lastEnd, rows: rows, firstLine: line}
			line += int64(bytes.Count(buf[reserve:reserve+lastEnd], []byte{'\n'}))
			buf, n, scanned, lastEnd, rows = nb, tail, scanned-lastEnd, 0, 0
			continue
		}
		k, rerr := src.Read(buf[reserve+n : reserve+maxData])
		n += k
		for scanned < n {
			end, blank, ok := s.next(buf[reserve+scanned : reserve+n])
			if !ok {
				scanned = n
				break
			}
			scanned += end
			lastEnd = scanned
			if !blank {
				rows++
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return st, rerr
		}
	}
	rec, blank, unterminated := s.atEOF()
	if unterminated {
		return st, &recordError{Line: line + int64(bytes.Count(buf[reserve:reserve+lastEnd], []byte{'\n'})), What: "unterminated"}
	}
	if rec && !blank {
		rows++
	}
	if pend != nil {
		if n > 0 {
			if err := emitPending(); err != nil {
				return st, err
			}
		} else { // nothing followed the last cut: that chunk is the member's last
			c.release(buf)
			buf = nil
			pend.last = true
			return st, emitPending()
		}
	}
	last := &chunkOut{buf: buf, off: reserve, n: n, rows: rows, firstLine: line, last: true}
	buf = nil
	return st, emit(last)
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// countInvalidUTF8 counts the records of data (whole records) that are not valid UTF-8. Record
// boundaries are ASCII bytes, so a valid multi-byte sequence never straddles two records and the
// common case is one vectorised utf8.Valid over the chunk.
func countInvalidUTF8(data []byte, delim byte) int {
	if utf8.Valid(data) {
		return 0
	}
	s := recordScanner{delim: delim}
	bad, start := 0, 0
	for start < len(data) {
		end, blank, ok := s.next(data[start:])
		if !ok {
			end = len(data) - start
		}
		if !blank && !utf8.Valid(data[start:start+end]) {
			bad++
		}
		start += end
	}
	return bad
}
