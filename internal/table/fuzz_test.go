package table

import (
	"errors"
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

var fuzzHints = []Hint{
	{}, {Type: Int64, Strict: true}, {Type: Float64, Strict: true}, {Type: Timestamp, Strict: true},
	{Type: String}, {Type: Float64}, {Type: Date}, {Type: Bool, Strict: true},
}

// FuzzInfer runs the merger's pipeline on arbitrary input: a first batch (one chunk), then a second batch of two
// chunks (the same data under the header and under the header rotated) evolved from the first schema. It checks
// that nothing panics, that the Builder quarantines exactly the rows the Inferer rejected (so never a row the
// Inferer accepted), that every accepted value reads back from Arrow as written (null tokens by the null rule,
// with Options.StringsCanBeNull set by one bit of sel), that classify agrees with an
// independent oracle, and that no Arrow memory leaks.
func FuzzInfer(f *testing.F) {
	f.Add("id,price,day", []byte("1,2.5,2024-01-01\n2,3,2024-01-02 10:00:00\n"), byte(0))
	f.Add("a;b", []byte("007;true\r\n\"x\ny\";FALSE\n"), byte(1))
	f.Add("a,a,", []byte("1,2,3\n1,2\n\"\"\"\",9223372036854775808,1e400\n"), byte(4))
	f.Add("ts,n", []byte("2024-01-01T00:00:00Z,9007199254740993\n2024-01-01T00:00:00+02:00,1.5\n"), byte(8))
	f.Add("n", []byte("1\nabc\n\n2\n"), byte(4|2<<2))
	f.Add("x|y", []byte("NULL|N/A\n\xff|1\n"), byte(3))
	f.Add("zip", []byte("NA\n12345\n01234\n"), byte(0))
	f.Add("n", []byte("-0\n+5\n1.5\n2024-01-01\nx\n"), byte(64))
	f.Fuzz(func(t *testing.T, header string, data []byte, sel byte) {
		delim := fuzzDelims[int(sel)%len(fuzzDelims)]
		names, _, err := ParseHeader([]byte(header), delim)
		if err != nil {
			return
		}
		opts := Options{Delimiter: delim, StringsCanBeNull: sel&(1<<5) != 0}
		if h := fuzzHints[int(sel>>2)%len(fuzzHints)]; h != (Hint{}) {
			opts.Hints = map[string]Hint{names[0]: h}
		}
		rotated := append(append([]string{}, names[1:]...), names[0])

		first := NewInferer(opts)
		if _, err := first.Observe(names, data, 2); err != nil {
			t.Fatal(err)
		}
		s1, _ := Evolve("t", nil, first.Columns(), opts)

		chunks := []struct {
			header []string
			line   int64
		}{{names, 2}, {rotated, 1000}}
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		// The second batch is also collected on arrival (sealed in tiny segments when bit 6 of sel is set): what
		// the Collector converts must be exactly what the Builder builds from the CSV.
		segment := int64(0)
		if sel&(1<<6) != 0 {
			segment = 64
		}
		coll := NewCollector(mem, opts, segment)
		defer coll.Release()
		in := NewInferer(opts)
		for _, c := range chunks {
			if _, err := in.ObserveInto(c.header, data, c.line, coll); err != nil {
				t.Fatal(err)
			}
		}
		s2, _ := Evolve("t", s1, in.Columns(), opts)
		b := NewBuilder(mem, s2, opts)
		defer b.Release()
		quarantined := map[int64]bool{}
		total := 0
		for _, c := range chunks {
			n, err := b.Append(c.header, data, c.line, func(q Quarantined) {
				if quarantined[q.Line] {
					t.Fatalf("line %d quarantined twice", q.Line)
				}
				quarantined[q.Line] = true
			})
			if err != nil {
				t.Fatal(err)
			}
			total += n
		}
		st := in.Stats()
		if int64(len(quarantined)) != st.Rejected() || int64(total) != st.Rows-st.Rejected() {
			t.Fatalf("built %d, quarantined %d; inferer %+v", total, len(quarantined), st)
		}
		rec := b.NewRecordBatch()
		defer rec.Release()
		collected, err := coll.Records(s2)
		if err == nil {
			sameRows(t, rec, collected)
		} else if !errors.Is(err, ErrNotCollected) {
			t.Fatal(err)
		}
		for _, r := range collected {
			r.Release()
		}

		nulls := newNullSet(nil)
		row := 0
		sc := newScanner(delim)
		for _, c := range chunks {
			sc.reset(data, c.line)
			for sc.next() {
				if sc.kind == recBlank || quarantined[sc.start] {
					continue
				}
				if sc.kind != recFields || len(sc.fields) != len(c.header) {
					t.Fatalf("line %d accepted: %v %q", sc.start, sc.kind, sc.raw)
				}
				for pos, name := range c.header {
					f := sc.fields[pos]
					if !nulls.match(f) {
						v := classify(f)
						if ot, ov := oracle(string(f)); ot != v.t || ot >= Date && ot <= TimestampTZ && ov != v.i {
							t.Fatalf("classify(%q) = %v %d, oracle %v %d", f, v.t, v.i, ot, ov)
						}
					}
					col := s2.Columns[rec.Schema().FieldIndices(name)[0]]
					checkValue(t, col.Type, &nulls, opts.StringsCanBeNull, colByName(t, rec, name), row, string(f),
						fmt.Sprintf("line %d column %q", sc.start, name))
				}
				row++
			}
		}
		if int64(row) != rec.NumRows() {
			t.Fatalf("%d rows read back, want %d", rec.NumRows(), row)
		}
	})
}
