package table

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

var benchHeader = []string{"id", "sku", "price", "qty", "day", "at", "at_tz", "ok", "name", "note"}

// benchCSV generates about size bytes of mixed-type CSV records, split into chunks of about 1 MiB at record
// boundaries (as the extractor does).
func benchCSV(size int) (chunks [][]byte, total int) {
	r := rand.New(rand.NewPCG(1, 2))
	names := []string{"widget", "gadget, large", `the "best" one`, "multi\nline", "ünïcödé", "plain name here"}
	var buf bytes.Buffer
	for i := 0; buf.Len() < size; i++ {
		fmt.Fprintf(&buf, "%d,%05d,%d.%02d,%d,2024-%02d-%02d,2024-01-%02d %02d:%02d:%02d.%03d,2024-03-%02dT%02d:00:00%+03d:00,%v,",
			i, r.IntN(100000), r.IntN(10000), r.IntN(100), r.IntN(1000)-500, 1+r.IntN(12), 1+r.IntN(28),
			1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1000), 1+r.IntN(28), r.IntN(24), r.IntN(25)-12,
			r.IntN(2) == 0)
		switch n := names[r.IntN(len(names))]; {
		case bytes.ContainsAny([]byte(n), ",\"\n"):
			buf.WriteString(`"` + string(bytes.ReplaceAll([]byte(n), []byte(`"`), []byte(`""`))) + `"`)
		default:
			buf.WriteString(n)
		}
		if r.IntN(10) == 0 {
			buf.WriteString(",some note\r\n")
		} else {
			buf.WriteString(",\r\n")
		}
	}
	data := buf.Bytes()
	for len(data) > 0 {
		n := min(len(data), 1<<20)
		// cut after a record terminator outside quotes (records are generated so that "\r\n" only ends records)
		if n < len(data) {
			n = bytes.LastIndex(data[:n], []byte("\r\n")) + 2
		}
		chunks = append(chunks, data[:n])
		data = data[n:]
	}
	return chunks, buf.Len()
}

// cpuTime returns the CPU time (user + system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measureCPU sets the benchmark's bytes per op and returns the function (to defer) that reports throughput per
// CPU second as well as b.SetBytes' wall-clock MB/s: on a shared machine the wall clock counts time spent waiting
// for a core. GC workers count, so the figure is conservative.
func measureCPU(b *testing.B, bytesPerOp int) func() {
	b.SetBytes(int64(bytesPerOp))
	start := cpuTime()
	return func() {
		if d := cpuTime() - start; d > 0 {
			b.ReportMetric(float64(bytesPerOp)*float64(b.N)/1e6/d.Seconds(), "MB/cpu-s")
		}
	}
}

// BenchmarkInferAndBuild measures the merger's per-batch work on ~8 MiB of CSV: infer every chunk, evolve, build
// every chunk into Arrow, cutting a record batch every 64 MiB of builder memory.
func BenchmarkInferAndBuild(b *testing.B) {
	chunks, total := benchCSV(8 << 20)
	mem := memory.NewGoAllocator()
	b.ReportAllocs()
	defer measureCPU(b, total)()
	for b.Loop() {
		in := NewInferer(Options{})
		line := int64(2)
		for _, c := range chunks {
			if _, err := in.Observe(benchHeader, c, line); err != nil {
				b.Fatal(err)
			}
		}
		s, _ := Evolve("bench", nil, in.Columns(), Options{})
		bld := NewBuilder(mem, s, Options{})
		for _, c := range chunks {
			if _, err := bld.Append(benchHeader, c, line, nil); err != nil {
				b.Fatal(err)
			}
			if bld.ApproxBytes() > 64<<20 {
				bld.NewRecordBatch().Release()
			}
		}
		rec := bld.NewRecordBatch()
		if rec.NumRows() == 0 {
			b.Fatal("no rows")
		}
		rec.Release()
		bld.Release()
	}
}

// BenchmarkCollect is BenchmarkInferAndBuild's work done the other way: every chunk inferred and collected in
// the same pass (Inferer.ObserveInto), the collected rows converted to the evolved schema.
func BenchmarkCollect(b *testing.B) {
	chunks, total := benchCSV(8 << 20)
	mem := memory.NewGoAllocator()
	b.ReportAllocs()
	defer measureCPU(b, total)()
	for b.Loop() {
		in := NewInferer(Options{})
		c := NewCollector(mem, Options{}, 64<<20)
		line := int64(2)
		for _, ch := range chunks {
			if _, err := in.ObserveInto(benchHeader, ch, line, c); err != nil {
				b.Fatal(err)
			}
		}
		s, _ := Evolve("bench", nil, in.Columns(), Options{})
		recs, err := c.Records(s)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range recs {
			r.Release()
		}
	}
}

// BenchmarkInfer and BenchmarkBuild split the work of BenchmarkInferAndBuild.
func BenchmarkInfer(b *testing.B) {
	chunks, total := benchCSV(8 << 20)
	b.ReportAllocs()
	defer measureCPU(b, total)()
	for b.Loop() {
		in := NewInferer(Options{})
		for _, c := range chunks {
			if _, err := in.Observe(benchHeader, c, 2); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkBuild(b *testing.B) {
	chunks, total := benchCSV(8 << 20)
	in := NewInferer(Options{})
	for _, c := range chunks {
		if _, err := in.Observe(benchHeader, c, 2); err != nil {
			b.Fatal(err)
		}
	}
	s, _ := Evolve("bench", nil, in.Columns(), Options{})
	mem := memory.NewGoAllocator()
	b.ReportAllocs()
	defer measureCPU(b, total)()
	for b.Loop() {
		bld := NewBuilder(mem, s, Options{})
		for _, c := range chunks {
			if _, err := bld.Append(benchHeader, c, 2, nil); err != nil {
				b.Fatal(err)
			}
		}
		bld.NewRecordBatch().Release()
		bld.Release()
	}
}

func BenchmarkScan(b *testing.B) {
	chunks, total := benchCSV(8 << 20)
	s := newScanner(',')
	defer measureCPU(b, total)()
	for b.Loop() {
		for _, c := range chunks {
			s.reset(c, 2)
			for s.next() {
			}
		}
	}
}

func TestBenchData(t *testing.T) {
	chunks, _ := benchCSV(1 << 20)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := NewInferer(Options{})
	for _, c := range chunks {
		st, err := in.Observe(benchHeader, c, 2)
		if err != nil || st.Rejected() != 0 {
			t.Fatalf("%+v %v", st, err)
		}
	}
	want := []Type{Int64, String, Float64, Int64, Date, Timestamp, TimestampTZ, Bool, String, String}
	for i, c := range in.Columns() {
		if c.Type != want[i] {
			t.Errorf("%s: %v, want %v", c.Name, c.Type, want[i])
		}
	}
}

// BenchmarkScanQuoted scans CSV whose every field is quoted, as many exporters write it.
func BenchmarkScanQuoted(b *testing.B) {
	chunks, _ := benchCSV(8 << 20)
	var buf bytes.Buffer
	s := newScanner(',')
	for _, c := range chunks {
		s.reset(c, 2)
		for s.next() {
			for i, f := range s.fields {
				if i > 0 {
					buf.WriteByte(',')
				}
				buf.WriteString(`"` + string(bytes.ReplaceAll(f, []byte(`"`), []byte(`""`))) + `"`)
			}
			buf.WriteString("\r\n")
		}
	}
	data := buf.Bytes()
	defer measureCPU(b, len(data))()
	for b.Loop() {
		s.reset(data, 2)
		for s.next() {
		}
	}
}
