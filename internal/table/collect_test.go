package table

import (
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// collect runs the merger's arrival path: every chunk observed into a Collector sealing segments of segment
// bytes, the schema evolved from prev, the collected rows converted to it.
func collect(t *testing.T, mem memory.Allocator, opts Options, prev *Schema, segment int64, chunks []chunk) (*Schema, error, func()) {
	t.Helper()
	c := NewCollector(mem, opts, segment)
	in := NewInferer(opts)
	for _, ch := range chunks {
		if _, err := in.ObserveInto(ch.header, []byte(ch.data), ch.firstLine, c); err != nil {
			t.Fatal(err)
		}
	}
	if c.Dead() == "" && c.Rows() > 0 && c.ApproxBytes() <= 0 {
		t.Error("ApproxBytes")
	}
	s, _ := Evolve("t", prev, in.Columns(), opts)
	recs, err := c.Records(s)
	_, want, _, _ := pipeline(t, mem, opts, prev, chunks)
	if err == nil {
		sameRows(t, want, recs)
	}
	return s, err, func() {
		want.Release()
		for _, r := range recs {
			r.Release()
		}
	}
}

func TestCollector(t *testing.T) {
	prevFloat := &Schema{Table: "t", Version: 1, Columns: []Column{{Name: "n", Type: Float64}, {Name: "old", Type: Int64}}}
	prevString := &Schema{Table: "t", Version: 1, Columns: []Column{{Name: "n", Type: String}}}
	h := []string{"n", "s", "d"}
	cases := []struct {
		name      string
		opts      Options
		prev      *Schema
		chunks    []chunk
		collected bool // false: the batch must be built from its CSV
	}{
		{"ints then floats", Options{}, nil, []chunk{{h, "1,a,2024-01-01\n2,b,2024-01-02\n", 2}, {h, "2.5,c,2024-01-03 10:00:00\n,NA,\n", 4}}, true},
		{"null tokens: text in a string column, null elsewhere", Options{}, nil, []chunk{{h, "NA,NA,NA\n1,x,2024-01-01\nNULL,,N/A\n", 2}}, true},
		{"tokens first, then text", Options{}, nil, []chunk{{h, "NA,NA,\n", 2}, {h, ",hello,\nN/A,N/A,\n", 3}}, true},
		{"strings can be null", Options{StringsCanBeNull: true}, nil, []chunk{{h, "NA,NA,\n1,x,2024-01-01\n", 2}}, true},
		{"registry float64, batch ints", Options{}, prevFloat, []chunk{{h, "1,a,\n-7,b,\n", 2}}, true},
		{"columns added and dropped between members", Options{}, nil, []chunk{{h, "1,a,2024-01-01\n", 2}, {[]string{"s", "extra"}, "b,true\nc,false\n", 2}, {h, "3,d,\n", 5}}, true},
		{"hints", Options{Hints: map[string]Hint{"n": {Type: Float64, Strict: true}, "s": {Type: String}}}, nil, []chunk{{h, "1,007,2024-01-01\n2.5,08,\n", 2}}, true},
		{"int column widens to string", Options{}, nil, []chunk{{h, "1,a,\n2,b,\n", 2}, {h, "x,c,\n", 4}}, true},
		{"zip codes: ints, then one with a leading zero", Options{}, nil, []chunk{{h, "98101,a,\n10001,b,\n", 2}, {h, "02134,c,\n", 4}}, true},
		{"dates, then text", Options{}, nil, []chunk{{h, ",a,2024-02-29\n", 2}, {h, ",b,soon\n", 3}}, true},
		{"+5, then text", Options{}, nil, []chunk{{h, "+5,a,\n", 2}, {h, "x,b,\n", 3}}, false},
		{"NA in an int column, then text", Options{}, nil, []chunk{{h, "1,a,\nNA,b,\n", 2}, {h, "x,c,\n", 4}}, false},
		{"NA in an int column, then text; strings can be null", Options{StringsCanBeNull: true}, nil, []chunk{{h, "1,a,\nNA,b,\n", 2}, {h, "x,c,\n", 4}}, true},
		{"NA first, then ints, then text", Options{}, nil, []chunk{{h, "NA,a,\n1,b,\n", 2}, {h, "x,c,\n", 4}}, false},
		{"NA first, then ints, then a zip with a leading zero", Options{}, nil, []chunk{{h, "NA,a,\n12345,b,\n", 2}, {h, "01234,c,\n", 4}}, false},
		{"floats, then text", Options{}, nil, []chunk{{h, "1.50,a,\n", 2}, {h, "x,b,\n", 3}}, false},
		{"ints in a registry string column", Options{}, prevString, []chunk{{h, "1,a,\n", 2}}, true},
		{"+1 in a registry string column", Options{}, prevString, []chunk{{h, "+1,a,\n", 2}}, false},
		{"-0 in a column that becomes float64", Options{}, nil, []chunk{{h, "-0,a,\n1.5,b,\n", 2}}, false},
		{"-0 stays an integer", Options{}, nil, []chunk{{h, "-0,a,\n1,b,\n", 2}}, true},
		{"tokens in a null column of a string column of the registry", Options{}, prevString, []chunk{{h, "NA,a,\n", 2}}, true},
	}
	for _, tc := range cases {
		for _, segment := range []int64{0, 1} { // one segment; a segment per chunk
			t.Run(tc.name, func(t *testing.T) {
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				_, err, release := collect(t, mem, tc.opts, tc.prev, segment, tc.chunks)
				defer release()
				switch {
				case tc.collected && err != nil:
					t.Fatalf("segment %d: %v", segment, err)
				case !tc.collected && !errors.Is(err, ErrNotCollected):
					t.Fatalf("segment %d: err %v, want ErrNotCollected", segment, err)
				}
			})
		}
	}
}

// TestCollectorSegments: sealed segments are record batches of about segmentBytes, in row order.
func TestCollectorSegments(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var chunks []chunk
	for i := range 20 {
		chunks = append(chunks, chunk{[]string{"a", "b"}, "1,x\n2,y\n3,z\n", int64(2 + 3*i)})
	}
	c := NewCollector(mem, Options{}, 100)
	in := NewInferer(Options{})
	for _, ch := range chunks {
		if _, err := in.ObserveInto(ch.header, []byte(ch.data), ch.firstLine, c); err != nil {
			t.Fatal(err)
		}
	}
	if c.Rows() != 60 {
		t.Fatalf("rows %d", c.Rows())
	}
	s, _ := Evolve("t", nil, in.Columns(), Options{})
	recs, err := c.Records(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) < 3 {
		t.Errorf("%d segments of ~100 bytes for 60 rows", len(recs))
	}
	_, want, _, _ := pipeline(t, mem, Options{}, nil, chunks)
	sameRows(t, want, recs)
	want.Release()
	for _, r := range recs {
		r.Release()
	}
}

// TestCollectorKill: a killed Collector frees its memory at once and reports why: "+1" (not written back as it
// was read) in a column that turns into text, and an integer float64 cannot hold exactly arriving in a column
// of floats (a string column in the end: the Collector gives up at that value, not at the end of the batch).
func TestCollectorKill(t *testing.T) {
	for _, tc := range []struct{ name, data, why string }{
		{"non-canonical integer, then text", "+1\n2\nx\n3\n", "cannot be written as string exactly"},
		{"integer beyond 2^53 after a float", "1.5\n9007199254740993\n2.5\n", "an integer beyond 2^53 in a float64 column"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			c := NewCollector(mem, Options{}, 0)
			in := NewInferer(Options{})
			if _, err := in.ObserveInto([]string{"a"}, []byte(tc.data), 2, c); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(c.Dead(), tc.why) || mem.CurrentAlloc() != 0 {
				t.Fatalf("dead %q (want %q), %d bytes held", c.Dead(), tc.why, mem.CurrentAlloc())
			}
			s, _ := Evolve("t", nil, in.Columns(), Options{})
			if _, err := c.Records(s); !errors.Is(err, ErrNotCollected) {
				t.Fatal(err)
			}
		})
	}
}

// TestCollectorTakeSealed: the sealed segments taken while collecting, then Records for the rest, hold every row
// in order, as a Builder makes them; ApproxBytes no longer counts what was taken; a segment that does not convert
// to the schema kills the Collector.
func TestCollectorTakeSealed(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var chunks []chunk
	for i := range 20 {
		chunks = append(chunks, chunk{[]string{"a", "b"}, "1,x\n2,y\n3,z\n", int64(2 + 3*i)})
	}
	in := NewInferer(Options{})
	c := NewCollector(mem, Options{}, 100)
	var s *Schema
	var got []arrow.RecordBatch
	for i, ch := range chunks {
		if _, err := in.ObserveInto(ch.header, []byte(ch.data), ch.firstLine, c); err != nil {
			t.Fatal(err)
		}
		if i == 4 {
			s, _ = Evolve("t", nil, in.Columns(), Options{})
		}
		if s != nil && c.Sealed() > 0 {
			before := c.ApproxBytes()
			recs, freed, err := c.TakeSealed(s)
			if err != nil {
				t.Fatal(err)
			}
			if freed <= 0 || c.ApproxBytes() != before-freed || c.Sealed() != 0 {
				t.Fatalf("freed %d of %d, now %d, %d sealed", freed, before, c.ApproxBytes(), c.Sealed())
			}
			got = append(got, recs...)
		}
	}
	if len(got) < 2 {
		t.Fatalf("%d segments taken", len(got))
	}
	rest, err := c.Records(s)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, rest...)
	_, want, _, _ := pipeline(t, mem, Options{}, nil, chunks)
	sameRows(t, want, got)
	want.Release()
	for _, r := range got {
		r.Release()
	}

	// Taken under a schema the segment's values do not convert to exactly (float64 to int64).
	c = NewCollector(mem, Options{}, 1)
	in = NewInferer(Options{})
	if _, err := in.ObserveInto([]string{"a"}, []byte("1\n"), 2, c); err != nil {
		t.Fatal(err)
	}
	s, _ = Evolve("t", nil, in.Columns(), Options{})
	if _, err := in.ObserveInto([]string{"a"}, []byte("1.5\n"), 3, c); err != nil {
		t.Fatal(err)
	}
	recs, _, err := c.TakeSealed(s)
	if len(recs) != 0 || !errors.Is(err, ErrNotCollected) || c.Dead() == "" {
		t.Fatalf("took %d under int64 after 1.5: %v (dead %q)", len(recs), err, c.Dead())
	}
	c.Release()
}
