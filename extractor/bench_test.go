package extractor

import (
	"archive/tar"
	"bufio"
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// benchServerEnv, when set in the environment, turns the test binary into a nats-server for
// BenchmarkExtract1GiB (see startServerProcess): the server's memory is then not mixed into the
// extractor's heap figures.
const benchServerEnv = "SLUICE_EXTRACTOR_BENCH_NATS_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(benchServerEnv); dir != "" {
		os.Exit(serveNATS(dir))
	}
	os.Exit(m.Run())
}

// serveNATS runs an embedded nats-server until stdin closes, printing its URL on stdout.
func serveNATS(dir string) int {
	srv, err := bus.StartEmbedded(bus.Config{StateDir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if p := os.Getenv(benchServerEnv + "_CPUPROFILE"); p != "" { // profile the server side
		if f, err := os.Create(p); err == nil {
			_ = pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	fmt.Println(srv.ClientURL())
	_, _ = io.Copy(io.Discard, os.Stdin)
	srv.Shutdown()
	srv.WaitForShutdown()
	return 0
}

// rowGen writes deterministic, realistic-looking CSV rows: ids, pseudo-random hex keys and
// amounts (so the data compresses like real exports, about 3-4x) and, every 100th row, a quoted
// field holding a newline, escaped quotes and a comma.
type rowGen struct {
	x uint64
	i int64
}

const (
	benchHeader = "id,key,amount,note,ts\n"
	plainNote   = "plain note without any quotes"
	quotedNote  = "\"multi-line\nnote, \"\"quoted\"\"\""
)

func (g *rowGen) append(b []byte) []byte {
	g.i++
	g.x ^= g.x << 13
	g.x ^= g.x >> 7
	g.x ^= g.x << 17
	b = appendPadded(b, uint64(g.i), 10)
	b = append(b, ',')
	b = appendPadded(b, g.x>>40, 8) // 24 random bits, decimal
	b = append(b, ',')
	b = appendPadded(b, (g.x>>8)%100000, 5)
	b = append(b, '.')
	b = appendPadded(b, g.x%100, 2)
	b = append(b, ',')
	if g.i%100 == 0 {
		b = append(b, quotedNote...)
	} else {
		b = append(b, plainNote...)
	}
	b = append(b, ",2025-01-01T"...)
	b = appendPadded(b, (g.x>>16)%24, 2)
	b = append(b, ':')
	b = appendPadded(b, (g.x>>24)%60, 2)
	b = append(b, ':')
	b = appendPadded(b, (g.x>>32)%60, 2)
	return append(b, "Z\n"...)
}

func appendPadded(b []byte, v uint64, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendUint(tmp[:0], v, 10)
	for range width - len(s) {
		b = append(b, '0')
	}
	return append(b, s...)
}

// benchMemberSize returns how many rows make at least size bytes, and their exact byte count.
func benchMemberSize(size int64) (rows, total int64) {
	g := rowGen{x: 88172645463325252}
	plain := int64(len(g.append(nil)))
	g.i = 99
	quoted := int64(len(g.append(nil)))
	total = int64(len(benchHeader))
	for rows = 0; total < size; rows++ {
		if (rows+1)%100 == 0 {
			total += quoted
		} else {
			total += plain
		}
	}
	return rows, total
}

// writeBenchArchive streams a .tar.gz with one member of at least size bytes to w.
func writeBenchArchive(w io.Writer, size int64, level int) (memberBytes int64, err error) {
	rows, total := benchMemberSize(size)
	gz, err := gzip.NewWriterLevel(w, level)
	if err != nil {
		return 0, err
	}
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Name: "export/big_20250101_b1.csv", Typeflag: tar.TypeReg, Size: total, Mode: 0o644,
		ModTime: time.Unix(1700000000, 0)}); err != nil {
		return 0, err
	}
	g := rowGen{x: 88172645463325252}
	buf := append(make([]byte, 0, 1<<20+256), benchHeader...)
	for r := int64(0); r < rows; r++ {
		buf = g.append(buf)
		if len(buf) >= 1<<20 {
			if _, err := tw.Write(buf); err != nil {
				return 0, err
			}
			buf = buf[:0]
		}
	}
	if _, err := tw.Write(buf); err != nil {
		return 0, err
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	return total, gz.Close()
}

// BenchmarkGunzip compares the two gzip decoders on the extractor's access pattern (32 KiB reads
// through a bufio.Reader). The extractor uses the faster one: klauspost.
func BenchmarkGunzip(b *testing.B) {
	var archive bytes.Buffer
	size, err := writeBenchArchive(&archive, 64<<20, gzip.DefaultCompression)
	if err != nil {
		b.Fatal(err)
	}
	readAll := func(r io.Reader) {
		buf := make([]byte, 32<<10)
		for {
			if _, err := r.Read(buf); err == io.EOF {
				return
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("stdlib", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			gz, err := stdgzip.NewReader(bufio.NewReaderSize(bytes.NewReader(archive.Bytes()), sourceBufferSize))
			if err != nil {
				b.Fatal(err)
			}
			readAll(gz)
		}
	})
	b.Run("klauspost", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			gz, err := gzip.NewReader(bufio.NewReaderSize(bytes.NewReader(archive.Bytes()), sourceBufferSize))
			if err != nil {
				b.Fatal(err)
			}
			readAll(gz)
		}
	})
}

// startServerProcess runs nats-server in a child process (this test binary, see TestMain) and
// connects to it. The rows stream keeps at most 256 MiB so the benchmark's disk use stays sane.
func startServerProcess(b *testing.B) (*bus.Bus, *os.Process) {
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), benchServerEnv+"="+b.TempDir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	url, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("nats-server child: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bb, err := bus.Connect(ctx, bus.Config{URL: strings.TrimSpace(url), RowsMaxBytes: 256 << 20,
		Subjects: bus.Subjects{Prefix: "sluice", Partitions: 8}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := bb.Ensure(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		bb.Close()
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	return bb, cmd.Process
}

// peakRSS reads VmHWM (peak resident set) of a process, in bytes.
func peakRSS(pid string) int64 {
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuTime returns the user+system CPU time a process has used so far ("self" or a pid).
func cpuTime(pid string) time.Duration {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// memSampler records the peak of the Go heap while it runs.
type memSampler struct {
	stop              chan struct{}
	wg                sync.WaitGroup
	heapInuse, sysMem uint64
}

func sampleMemory(every time.Duration) *memSampler {
	s := &memSampler{stop: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			s.heapInuse = max(s.heapInuse, ms.HeapInuse)
			s.sysMem = max(s.sysMem, ms.Sys)
			select {
			case <-t.C:
			case <-s.stop:
				return
			}
		}
	}()
	return s
}

func (s *memSampler) done() { close(s.stop); s.wg.Wait() }

// timeGzip times `gzip -dc file > /dev/null`: wall clock and CPU.
func timeGzip(b *testing.B, file string) (wall, cpu time.Duration) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	cmd := exec.Command("gzip", "-dc", file)
	cmd.Stdout = devnull
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("gzip -dc: %v", err)
	}
	return time.Since(start), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// BenchmarkExtract1GiB extracts a generated archive with a 1 GiB member through a nats-server
// (in a child process, so its memory and CPU are reported apart) with the default extractor
// configuration. It reports throughput, the ratio to `gzip -dc` on the same file (wall clock and
// CPU), and the extractor process's peak memory. Two rows-stream set-ups:
//
//   - file: the production stream (bus.Ensure: file storage, server-side compression as the bus
//     default has it: none, the chunks arrive S2-compressed by the extractor), limited to 256 MiB;
//   - memory: a memory stream without compression, limited to 128 MiB, which shows what the
//     extractor itself can do when the server is not the bottleneck.
//
// Benchmarks never run in a plain `go test`; -short skips this one. Run it alone:
//
//	go test -run '^$' -bench Extract1GiB -benchtime 1x ./extractor/
func BenchmarkExtract1GiB(b *testing.B) {
	if testing.Short() {
		b.Skip("1 GiB benchmark skipped in -short mode")
	}
	if _, err := exec.LookPath("gzip"); err != nil {
		b.Skip("gzip not installed")
	}
	path := filepath.Join(b.TempDir(), "big.tar.gz")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	member, err := writeBenchArchive(bw, 1<<30, gzip.DefaultCompression)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		b.Fatal(err)
	}
	st, _ := os.Stat(path)
	sum := hex.EncodeToString(h.Sum(nil))
	ev := &sluicev1.ArchiveLanded{ArchiveId: sum[:20], Sha256: sum, Uri: path, Name: "big.tar.gz", Size: st.Size()}
	for _, storage := range []string{"file", "memory"} {
		b.Run("stream="+storage, func(b *testing.B) { benchExtract(b, ev, member, storage) })
	}
}

func benchExtract(b *testing.B, ev *sluicev1.ArchiveLanded, member int64, storage string) {
	gzipWall, gzipCPU := timeGzip(b, ev.Uri)
	bb, server := startServerProcess(b)
	if storage == "memory" {
		ctx := context.Background()
		s := bb.Subjects
		if err := bb.JS.DeleteStream(ctx, s.RowsStream()); err != nil {
			b.Fatal(err)
		}
		if _, err := bb.JS.CreateStream(ctx, jetstream.StreamConfig{Name: s.RowsStream(), Subjects: []string{s.RowsAll()},
			Storage: jetstream.MemoryStorage, MaxBytes: 128 << 20, Discard: jetstream.DiscardOld, Duplicates: time.Hour}); err != nil {
			b.Fatal(err)
		}
	}
	e, err := New(Config{}, Deps{Bus: bb})
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset VmHWM
	serverPid := strconv.Itoa(server.Pid)
	cpu0, srvCPU0 := cpuTime("self"), cpuTime(serverPid)
	mem := sampleMemory(10 * time.Millisecond)
	b.SetBytes(member)
	b.ResetTimer()
	var out *sluicev1.ArchiveExtracted
	for i := 0; b.Loop(); i++ {
		ev := proto.CloneOf(ev)
		ev.Attempt = uint32(i) // a new attempt each round: nothing is de-duplicated away
		if out, err = e.Extract(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	mem.done()
	cpu, srvCPU := (cpuTime("self")-cpu0)/time.Duration(b.N), (cpuTime(serverPid)-srvCPU0)/time.Duration(b.N)
	elapsed := b.Elapsed() / time.Duration(b.N)
	if w, c := timeGzip(b, ev.Uri); w < gzipWall {
		gzipWall, gzipCPU = w, c
	}
	mbps := float64(member) / elapsed.Seconds() / 1e6
	gzipMBps := float64(member) / gzipWall.Seconds() / 1e6
	b.ReportMetric(mbps, "extract-MB/s")
	b.ReportMetric(gzipMBps, "gzip-dc-MB/s")
	b.ReportMetric(mbps/gzipMBps, "ratio-vs-gzip")
	b.ReportMetric(cpu.Seconds(), "extract-cpu-s")
	b.ReportMetric(gzipCPU.Seconds(), "gzip-cpu-s")
	b.ReportMetric(srvCPU.Seconds(), "server-cpu-s")
	b.ReportMetric(float64(mem.heapInuse)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(mem.sysMem)/(1<<20), "peak-sys-MiB")
	b.ReportMetric(float64(peakRSS("self"))/(1<<20), "peak-rss-MiB")
	b.ReportMetric(float64(peakRSS(serverPid))/(1<<20), "server-rss-MiB")
	b.Logf("member %d bytes, %d rows, %d chunks; archive %d bytes; extract %s (cpu %s), gzip -dc %s (cpu %s), server cpu %s",
		member, out.Tables[0].Rows, out.Tables[0].Chunks, ev.Size, elapsed, cpu, gzipWall, gzipCPU, srvCPU)
}
