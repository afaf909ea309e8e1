package table

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

type scanned struct {
	kind   recordKind
	line   int64
	fields []string
	raw    string
}

func scanAll(data []byte, delim byte, firstLine int64) []scanned {
	s := newScanner(delim)
	s.reset(data, firstLine)
	var out []scanned
	for s.next() {
		r := scanned{kind: s.kind, line: s.start, raw: string(s.raw)}
		if s.kind == recFields {
			r.fields = []string{}
			for _, f := range s.fields {
				r.fields = append(r.fields, string(f))
			}
		}
		out = append(out, r)
	}
	return out
}

func TestScanner(t *testing.T) {
	F := func(line int64, raw string, fields ...string) scanned {
		return scanned{kind: recFields, line: line, fields: fields, raw: raw}
	}
	B := func(line int64) scanned { return scanned{kind: recBlank, line: line} }
	M := func(line int64, raw string) scanned { return scanned{kind: recMalformed, line: line, raw: raw} }
	tests := []struct {
		name string
		in   string
		want []scanned
	}{
		{"simple", "a,b\nc,d\n", []scanned{F(2, "a,b", "a", "b"), F(3, "c,d", "c", "d")}},
		{"no final terminator", "a,b\nc,d", []scanned{F(2, "a,b", "a", "b"), F(3, "c,d", "c", "d")}},
		{"crlf", "a,b\r\nc,d\r\n", []scanned{F(2, "a,b", "a", "b"), F(3, "c,d", "c", "d")}},
		{"cr before eof dropped", "a,b\r", []scanned{F(2, "a,b", "a", "b")}},
		{"lone cr kept", "a\rb,c\n", []scanned{F(2, "a\rb,c", "a\rb", "c")}},
		{"empty fields", ",,\n", []scanned{F(2, ",,", "", "", "")}},
		{"trailing delimiter", "a,\n", []scanned{F(2, "a,", "a", "")}},
		{"trailing delimiter eof", "a,", []scanned{F(2, "a,", "a", "")}},
		{"quoted", `"a,b","c""d",""` + "\n", []scanned{F(2, `"a,b","c""d",""`, "a,b", `c"d`, "")}},
		{"quoted newline", "\"a\nb\",c\nd,e\n", []scanned{F(2, "\"a\nb\",c", "a\nb", "c"), F(4, "d,e", "d", "e")}},
		{"quoted crlf", "\"a\r\nb\",c\r\nd,e\r\n", []scanned{F(2, "\"a\r\nb\",c", "a\r\nb", "c"), F(4, "d,e", "d", "e")}},
		{"quoted crlf escaped", "\"a\"\"\r\n\"\"b\r\n\"\r\n", []scanned{F(2, "\"a\"\"\r\n\"\"b\r\n\"", "a\"\r\n\"b\r\n")}},
		{"quoted crlf only", "\"\r\n\",\"\r\r\n\"\n", []scanned{F(2, "\"\r\n\",\"\r\r\n\"", "\r\n", "\r\r\n")}},
		{"quoted cr", "\"a\rb\"\n", []scanned{F(2, "\"a\rb\"", "a\rb")}},
		{"quoted at eof", `a,"b"`, []scanned{F(2, `a,"b"`, "a", "b")}},
		{"quoted then cr eof", "\"b\"\r", []scanned{F(2, `"b"`, "b")}},
		{"blank lines", "a\n\n\r\nb\n", []scanned{F(2, "a", "a"), B(3), B(4), F(5, "b", "b")}},
		{"blank cr at eof", "a\n\r", []scanned{F(2, "a", "a"), B(3)}},
		{"bare quote is data", "a\"b,c\nd\n", []scanned{F(2, "a\"b,c", "a\"b", "c"), F(3, "d", "d")}},
		{"bare quotes", "a\"b\",c\nd\n", []scanned{F(2, "a\"b\",c", "a\"b\"", "c"), F(3, "d", "d")}},
		{"text after quote", "\"a\"b\",c\nd\n", []scanned{M(2, "\"a\"b\",c"), F(3, "d", "d")}},
		{"text after quote to eof", "\"a\"b,c\nd\n", []scanned{M(2, "\"a\"b,c\nd\n")}},
		{"text after quote then fields", "\"a\"b\"\r\nx\",\"y\",z\r\nd\n", []scanned{M(2, "\"a\"b\""), F(3, "x\",\"y\",z", "x\"", "y", "z"), F(4, "d", "d")}},
		{"cr after quote", "\"a\"\rb\"\nd\n", []scanned{M(2, "\"a\"\rb\""), F(3, "d", "d")}},
		{"unterminated", "x\n\"a\nb,c\n", []scanned{F(2, "x", "x"), M(3, "\"a\nb,c\n")}},
		{"malformed crlf", "\"a\"b\"\r\nc\r\n", []scanned{M(2, "\"a\"b\""), F(3, "c", "c")}},
		{"escaped quote after stray", "\"a\"b\"\"\n\",x\nd\n", []scanned{M(2, "\"a\"b\"\"\n\",x"), F(4, "d", "d")}},
		{"many lines in quotes", "\"1\n2\n3\n\",x\ny\n", []scanned{F(10, "\"1\n2\n3\n\",x", "1\n2\n3\n", "x"), F(14, "y", "y")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := int64(2)
			if tt.name == "many lines in quotes" {
				first = 10
			}
			got := scanAll([]byte(tt.in), ',', first)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("\ngot  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestScannerDelimiters(t *testing.T) {
	for _, d := range []byte{';', '\t', '|', ' '} {
		in := []byte("a" + string(d) + `"b` + string(d) + `c"` + string(d) + "\n")
		got := scanAll(in, d, 1)
		want := []string{"a", "b" + string(d) + "c", ""}
		if len(got) != 1 || !reflect.DeepEqual(got[0].fields, want) {
			t.Errorf("delimiter %q: %+v", d, got)
		}
	}
}

// TestScannerNoAlloc: scanning does not allocate per field once its buffers have grown.
func TestScannerNoAlloc(t *testing.T) {
	data := bytes.Repeat([]byte("1,\"a\"\"b\",\"x\ny\",2024-01-01,plain text\r\n"), 100)
	s := newScanner(',')
	allocs := testing.AllocsPerRun(10, func() {
		s.reset(data, 2)
		for s.next() {
		}
	})
	if allocs > 0 {
		t.Errorf("%v allocations per scan", allocs)
	}
}

var fuzzDelims = []byte{',', ';', '\t', '|'}

// FuzzScanner checks the scanner against encoding/csv: on every input that encoding/csv accepts with
// LazyQuotes=false and FieldsPerRecord=-1, the same records with the same fields once '\r\n' inside fields is read
// as '\n' (encoding/csv's normalization, which the scanner does not do), and exactly readCSV's fields; on every
// input, the same records (start lines) as encoding/csv with LazyQuotes=true (the extractor's chunking rule), with
// the same (normalized) fields for the records the scanner does not find malformed. It also checks that every
// byte belongs to exactly one record, that line numbers count physical lines, and that a well-formed record's
// fields hold every '\r' and '\n' of the record (the terminator is not part of the record).
func FuzzScanner(f *testing.F) {
	for _, s := range []string{
		"a,b\nc,d\n", "a,b\r\nc,d", `"a""b",c` + "\n", "\"a\nb\"\r\n,\n", "\n\n\r\n", "a\r", "\"\"\r",
		"a\"b\n", "\"a\"b\n", "\"abc", "x;\"y;z\"\n", "a\tb\t\"c\r\n\"\n", "\r\r\n", "\"\r\n\"\r\n",
	} {
		f.Add([]byte(s), byte(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, sel byte) {
		delim := fuzzDelims[int(sel)%len(fuzzDelims)]
		data = data[:len(data):len(data)]

		s := newScanner(delim)
		s.reset(data, 1)
		var got [][]string // nil for a malformed record
		var lines []int64
		malformed := false
		for {
			pos := s.pos
			if !s.next() {
				break
			}
			if s.pos <= pos {
				t.Fatalf("no progress at %d", pos)
			}
			off := len(data) - cap(s.raw)
			if s.kind != recBlank && off != pos {
				t.Fatalf("record at %d starts at %d", pos, off)
			}
			if want := 1 + int64(bytes.Count(data[:pos], nlByte)); s.start != want {
				t.Fatalf("record at %d: line %d, want %d", pos, s.start, want)
			}
			if s.kind != recBlank {
				switch gap := string(data[off+len(s.raw) : s.pos]); gap {
				case "\n", "\r\n":
				case "", "\r":
					if s.pos != len(data) {
						t.Fatalf("record at %d: gap %q before %d", pos, gap, s.pos)
					}
				default:
					t.Fatalf("record at %d: gap %q", pos, gap)
				}
			}
			switch s.kind {
			case recMalformed:
				malformed = true
				got = append(got, nil)
				lines = append(lines, s.start)
			case recFields:
				rec := make([]string, len(s.fields))
				var cr, lf int
				for i, f := range s.fields {
					rec[i] = string(f)
					cr += bytes.Count(f, []byte{'\r'})
					lf += bytes.Count(f, nlByte)
				}
				if cr != bytes.Count(s.raw, []byte{'\r'}) || lf != bytes.Count(s.raw, nlByte) {
					t.Fatalf("record at %d: fields %q lose line-end bytes of %q", pos, rec, s.raw)
				}
				got = append(got, rec)
				lines = append(lines, s.start)
			}
		}
		if s.pos != len(data) {
			t.Fatalf("stopped at %d of %d", s.pos, len(data))
		}

		read := func(lazy bool) (recs [][]string, lines []int64, err error) {
			r := csv.NewReader(bytes.NewReader(data))
			r.Comma = rune(delim)
			r.FieldsPerRecord = -1
			r.LazyQuotes = lazy
			for {
				rec, err := r.Read()
				if errors.Is(err, io.EOF) {
					return recs, lines, nil
				}
				if err != nil {
					return nil, nil, err
				}
				line, _ := r.FieldPos(0)
				recs = append(recs, rec)
				lines = append(lines, int64(line))
			}
		}

		lazy, lazyLines, err := read(true)
		if err != nil {
			t.Fatalf("lazy encoding/csv: %v", err)
		}
		if !reflect.DeepEqual(lines, lazyLines) {
			t.Fatalf("input %q: record lines %v, lazy encoding/csv %v", data, lines, lazyLines)
		}
		for i, rec := range got {
			if rec != nil && !reflect.DeepEqual(csvNormalized(rec), lazy[i]) {
				t.Fatalf("input %q record %d: got %q, lazy encoding/csv %q", data, i, rec, lazy[i])
			}
		}

		strict, _, err := read(false)
		if err != nil {
			return // only the checks above apply
		}
		if malformed {
			t.Fatalf("encoding/csv accepts %q, the scanner found a malformed record", data)
		}
		var normalized [][]string
		for _, rec := range got {
			normalized = append(normalized, csvNormalized(rec))
		}
		if !reflect.DeepEqual(normalized, strict) {
			t.Fatalf("input %q\ngot  %q\nwant %q", data, got, strict)
		}
		if ref, ok := readCSV(string(data), delim); !ok || !reflect.DeepEqual(got, ref) {
			t.Fatalf("input %q\ngot     %q\nreadCSV %q (%v)", data, got, ref, ok)
		}
	})
}

// csvNormalized returns rec as encoding/csv reads it: '\r\n' inside a field becomes '\n'.
func csvNormalized(rec []string) []string {
	out := make([]string, len(rec))
	for i, f := range rec {
		out[i] = strings.ReplaceAll(f, "\r\n", "\n")
	}
	return out
}
