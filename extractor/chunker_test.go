package extractor

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// chunkResult is what chunking one member produced, decoded back from the wire format.
type chunkResult struct {
	stats  memberStats
	header []byte
	chunks []*sluicev1.Chunk
	data   [][]byte // each chunk's records, decoded (bus.ChunkData)
	sizes  []int    // NATS message size (payload + headers) of each chunk
	err    error
}

// testHeaders are NATS headers as wide as the extractor's for a chunk of table "t".
var testHeaders = nats.Header{
	"Sluice-Type":    {"chunk"},
	"Sluice-Archive": {"0123456789abcdef0123"},
	"Sluice-Table":   {"t"},
	"Nats-Msg-Id":    {"0123456789abcdef0123.4294967295.t.c.4294967295"},
}

// chunkMember runs the chunker with the real chunk encoder (S2 on, the default) and a message
// limit, the way the extractor does, and decodes every message it emitted.
func chunkMember(tb testing.TB, input []byte, delim byte, limit int, checkUTF8 bool) chunkResult {
	tb.Helper()
	var res chunkResult
	enc := &chunkEncoder{meta: sluicev1.Chunk{ArchiveId: "0123456789abcdef0123", Table: "t", Member: "dir/t_20250101_b1.csv",
		ProcessDate: "2025-01-01", BatchId: "b1", Delimiter: string(delim), Partner: "default"}, compress: true}
	hdrLen := headerSize(testHeaders)
	var chunkIndex uint32
	ck := &chunker{
		delim: delim, checkUTF8: checkUTF8, maxHeader: limit / 2,
		layout: func(header []byte) (int, int, error) {
			enc.meta.Header = header
			r := enc.reserve()
			return r, limit - hdrLen - r, nil
		},
		acquire: func() ([]byte, error) { return make([]byte, limit), nil },
		release: func([]byte) {},
		emit: func(c *chunkOut) error {
			raw := slices.Clone(c.data()) // encode may compress it in place
			msg, err := enc.encode(c, chunkIndex, chunkIndex)
			if err != nil {
				return err
			}
			chunkIndex++
			res.sizes = append(res.sizes, len(msg)+hdrLen)
			var m sluicev1.Chunk
			if err := proto.Unmarshal(msg, &m); err != nil {
				return fmt.Errorf("decode chunk: %w", err)
			}
			data, err := bus.ChunkData(&m, nil)
			if err != nil {
				return fmt.Errorf("decode chunk data: %w", err)
			}
			if !bytes.Equal(data, raw) {
				return errors.New("decoded data differs from the buffer")
			}
			res.chunks = append(res.chunks, &m)
			res.data = append(res.data, data)
			return nil
		},
	}
	res.stats, res.err = ck.run(&oneByteSometimes{r: bytes.NewReader(input)})
	res.header = res.stats.header
	return res
}

// oneByteSometimes returns short reads now and then, to exercise state carried across reads.
type oneByteSometimes struct {
	r io.Reader
	n int
}

func (o *oneByteSometimes) Read(p []byte) (int, error) {
	o.n++
	if o.n%3 == 0 && len(p) > 1 {
		p = p[:1+o.n%7]
	}
	return o.r.Read(p)
}

func joinData(data [][]byte) []byte { return bytes.Join(data, nil) }

// csvCount counts records with encoding/csv; ok is false when it rejects the input.
func csvCount(input []byte, delim byte, lazy bool) (int, bool) {
	r := csv.NewReader(bytes.NewReader(input))
	r.Comma, r.LazyQuotes, r.FieldsPerRecord, r.ReuseRecord = rune(delim), lazy, -1, true
	n := 0
	for {
		_, err := r.Read()
		if err == io.EOF {
			return n, true
		}
		if err != nil {
			return n, false
		}
		n++
	}
}

func TestChunkerCases(t *testing.T) {
	type want struct {
		header string
		data   string // concatenated chunk data
		rows   int64
		err    string
	}
	cases := []struct {
		name  string
		in    string
		delim byte
		want  want
	}{
		{"simple", "a,b\n1,2\n3,4\n", ',', want{"a,b", "1,2\n3,4\n", 2, ""}},
		{"no final newline", "a,b\n1,2\n3,4", ',', want{"a,b", "1,2\n3,4", 2, ""}},
		{"crlf", "a,b\r\n1,2\r\n3,4\r\n", ',', want{"a,b", "1,2\r\n3,4\r\n", 2, ""}},
		{"bom", "\xEF\xBB\xBFa,b\n1,2\n", ',', want{"a,b", "1,2\n", 1, ""}},
		{"quoted newline", "a,b\n\"x\ny\",2\n\"p\r\nq\",\"r,\"\"s\"\"\"\n", ',', want{"a,b", "\"x\ny\",2\n\"p\r\nq\",\"r,\"\"s\"\"\"\n", 2, ""}},
		{"header with quoted newline", "\"a\nb\",c\n1,2\n", ',', want{"\"a\nb\",c", "1,2\n", 1, ""}},
		{"blank lines not rows", "a\n\n1\n\r\n2\n\n", ',', want{"a", "\n1\n\r\n2\n\n", 2, ""}},
		{"leading blank lines", "\n\r\na,b\n1,2\n", ',', want{"a,b", "1,2\n", 1, ""}},
		{"header only", "a,b\n", ',', want{"a,b", "", 0, ""}},
		{"header only no newline", "a,b\r", ',', want{"a,b", "", 0, ""}},
		{"lazy bare quote", "a\n5\" pipe,x\n2\n", ',', want{"a", "5\" pipe,x\n2\n", 2, ""}},
		{"tab delimiter", "a\tb\n1\t\"x\ty\"\n", '\t', want{"a\tb", "1\t\"x\ty\"\n", 1, ""}},
		{"empty", "", ',', want{err: "empty file"}},
		{"only bom", "\xEF\xBB\xBF", ',', want{err: "empty file"}},
		{"only blank lines", "\n\r\n\r", ',', want{err: "empty file"}},
		{"unterminated", "a\n1\n\"open\n2\n", ',', want{err: "unterminated quoted field at line 3"}},
		{"unterminated header", "\"a\n", ',', want{err: "unterminated quoted field at line 1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := chunkMember(t, []byte(tc.in), tc.delim, 4096, true)
			if tc.want.err != "" {
				if res.err == nil || res.err.Error() != tc.want.err {
					t.Fatalf("err = %v, want %q", res.err, tc.want.err)
				}
				return
			}
			if res.err != nil {
				t.Fatal(res.err)
			}
			if string(res.header) != tc.want.header {
				t.Errorf("header %q, want %q", res.header, tc.want.header)
			}
			if got := string(joinData(res.data)); got != tc.want.data {
				t.Errorf("data %q, want %q", got, tc.want.data)
			}
			if res.stats.rows != tc.want.rows {
				t.Errorf("rows %d, want %d", res.stats.rows, tc.want.rows)
			}
			if len(res.chunks) != 1 || !res.chunks[0].LastInMember {
				t.Errorf("want one last chunk, got %d", len(res.chunks))
			}
		})
	}
}

func TestChunkerCutsAtRecordBoundaries(t *testing.T) {
	var b strings.Builder
	b.WriteString("id,text,n\n")
	for i := range 2000 {
		if i%7 == 0 {
			fmt.Fprintf(&b, "%d,\"multi\nline, with \"\"quotes\"\"\r\n\",%d\r\n", i, i*i)
		} else {
			fmt.Fprintf(&b, "%d,plain %d,%d\n", i, i, i*3)
		}
	}
	in := []byte(b.String())
	res := chunkMember(t, in, ',', 2048, true)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if len(res.chunks) < 20 {
		t.Fatalf("only %d chunks", len(res.chunks))
	}
	checkChunks(t, in, ',', 2048, res)
	if res.stats.rows != 2000 {
		t.Fatalf("rows %d", res.stats.rows)
	}
}

func TestChunkerOversizedRecord(t *testing.T) {
	in := "h\n" + "short\n" + strings.Repeat("x", 5000) + "\nafter\n"
	res := chunkMember(t, []byte(in), ',', 2048, false)
	var re *recordError
	if !errors.As(res.err, &re) || re.What != "record" || re.Line != 3 {
		t.Fatalf("err = %v, want record too large at line 3", res.err)
	}
	if res.err.Error() != "record at line 3 exceeds max message size" {
		t.Fatal(res.err)
	}
}

func TestChunkerInvalidUTF8Counted(t *testing.T) {
	in := "h\nok\nbad\xff\n\"also\nbad\xfe\"\nok é\n"
	res := chunkMember(t, []byte(in), ',', 4096, true)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.stats.invalidUTF8 != 2 || res.stats.rows != 4 {
		t.Fatalf("invalid %d rows %d", res.stats.invalidUTF8, res.stats.rows)
	}
	if got := string(joinData(res.data)); got != in[2:] {
		t.Fatalf("data changed: %q", got)
	}
}

// checkChunks verifies every property the merger relies on.
func checkChunks(t testing.TB, input []byte, delim byte, limit int, res chunkResult) {
	t.Helper()
	in := bytes.TrimPrefix(input, utf8BOM)
	data := joinData(res.data)
	if !bytes.HasSuffix(in, data) {
		t.Fatalf("concatenated chunks are not the input's tail")
	}
	// What precedes the data: blank lines, the header, its terminator.
	prefix := in[:len(in)-len(data)]
	prefix = bytes.TrimSuffix(prefix, []byte{'\n'})
	prefix = bytes.TrimSuffix(prefix, []byte{'\r'})
	if !bytes.HasSuffix(prefix, res.header) {
		t.Fatalf("header %q is not what precedes the data (%q)", res.header, prefix)
	}
	if lead := prefix[:len(prefix)-len(res.header)]; len(bytes.Trim(lead, "\r\n")) != 0 {
		t.Fatalf("non-blank bytes %q before the header", lead)
	}
	off := len(in) - len(data)
	var rows int64
	for i, c := range res.chunks {
		if res.sizes[i] > limit {
			t.Fatalf("chunk %d is %d bytes, limit %d", i, res.sizes[i], limit)
		}
		if want := int64(1 + bytes.Count(in[:off], []byte{'\n'})); c.FirstLine != want {
			t.Fatalf("chunk %d first_line %d, want %d", i, c.FirstLine, want)
		}
		if c.LastInMember != (i == len(res.chunks)-1) {
			t.Fatalf("chunk %d last_in_member %v", i, c.LastInMember)
		}
		if !bytes.Equal(c.Header, res.header) || c.ChunkIndex != uint32(i) {
			t.Fatalf("chunk %d metadata", i)
		}
		// Every chunk parses on its own into exactly its rows.
		if n, _ := csvCount(res.data[i], delim, true); n != int(c.Rows) {
			t.Fatalf("chunk %d: encoding/csv reads %d records, chunk says %d: %q", i, n, c.Rows, res.data[i])
		}
		rows += int64(c.Rows)
		off += len(res.data[i])
	}
	if rows != res.stats.rows {
		t.Fatalf("rows %d vs stats %d", rows, res.stats.rows)
	}
	if n, _ := csvCount(in, delim, true); int64(n) != rows+1 {
		t.Fatalf("lazy encoding/csv reads %d records, chunker %d+header", n, rows)
	}
	if n, ok := csvCount(in, delim, false); ok && int64(n) != rows+1 {
		t.Fatalf("strict encoding/csv reads %d records, chunker %d+header", n, rows)
	}
}

func FuzzChunker(f *testing.F) {
	for _, s := range []string{
		"a,b\n1,2\n", "a\n\"x\ny\"\n", "\xEF\xBB\xBFa\r\n1\r\n", "a\n\"unterminated\n", "a\n\n\r\n1\n\r",
		"a,\"b\"\"c\"\n1,\"2\r\n3\"\r\n", "a\n5\" x\n\"q\"z\",1\n", "\"h\"\r", "h\n\"a\"\rb\"\n",
	} {
		f.Add([]byte(s), byte(0), uint16(300), true)
	}
	f.Fuzz(fuzzChunkerOnce)
}

// fuzzChunkerOnce checks one input: no panic, every message within the limit, the chunks are the
// input's records exactly, and record counts agree with encoding/csv.
func fuzzChunkerOnce(t *testing.T, input []byte, delimSel byte, limitSel uint16, checkUTF8 bool) {
	{
		delim := []byte{',', ';', '\t', '|'}[delimSel%4]
		limit := 420 + int(limitSel%1500) // the fixed metadata takes ~200 bytes
		res := chunkMember(t, input, delim, limit, checkUTF8)
		in := bytes.TrimPrefix(input, utf8BOM)
		var re *recordError
		switch {
		case res.err == nil:
			checkChunks(t, input, delim, limit, res)
		case errors.Is(res.err, errEmptyMember):
			if n, _ := csvCount(in, delim, true); n != 0 {
				t.Fatalf("empty member, but encoding/csv reads %d records", n)
			}
		case errors.As(res.err, &re):
			if re.What == "unterminated" {
				if _, ok := csvCount(in, delim, false); ok {
					t.Fatalf("unterminated quote, but strict encoding/csv accepts the input")
				}
			}
			for i, size := range res.sizes {
				if size > limit {
					t.Fatalf("chunk %d is %d bytes, limit %d", i, size, limit)
				}
			}
		default:
			t.Fatalf("unexpected error %v", res.err)
		}
	}
}

func BenchmarkChunker(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString("id,name,amount,comment,ts\n")
	for i := 0; buf.Len() < 64<<20; i++ {
		if i%50 == 0 {
			fmt.Fprintf(&buf, "%d,\"Name, %d\",%d.%02d,\"multi\nline \"\"quoted\"\"\",2025-01-01T00:00:%02dZ\n", i, i, i, i%100, i%60)
		} else {
			fmt.Fprintf(&buf, "%d,name-%d,%d.%02d,plain comment number %d,2025-01-01T00:00:%02dZ\n", i, i, i, i%100, i, i%60)
		}
	}
	in := buf.Bytes()
	const limit = 1 << 20
	for _, codec := range []string{"none", "s2"} {
		b.Run("codec="+codec, func(b *testing.B) {
			bufA, bufB := make([]byte, limit), make([]byte, limit)
			enc := &chunkEncoder{meta: sluicev1.Chunk{ArchiveId: "0123456789abcdef0123", Table: "t", Delimiter: ","},
				compress: codec == "s2"}
			flip := false
			var wire int64
			ck := &chunker{delim: ',', checkUTF8: true, maxHeader: limit / 2,
				layout: func(h []byte) (int, int, error) {
					enc.meta.Header = h
					r := enc.reserve()
					return r, limit - 256 - r, nil
				},
				acquire: func() ([]byte, error) {
					flip = !flip
					if flip {
						return bufA, nil
					}
					return bufB, nil
				},
				release: func([]byte) {},
				emit: func(c *chunkOut) error {
					msg, err := enc.encode(c, 0, 0)
					wire += int64(len(msg))
					return err
				},
			}
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				wire = 0
				if _, err := ck.run(bytes.NewReader(in)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(wire)/float64(len(in)), "wire/raw")
		})
	}
}
