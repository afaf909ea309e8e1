package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet/file"
)

// TestRunClusterSurvivesKill: three `sluice run` processes whose embedded servers form a JetStream
// cluster (--nats-cluster-listen, --nats-routes, --replicas 3), as docs/SCALING.md describes for
// deployments without a separate NATS, share one landing folder and one output folder. One of them
// is killed with SIGKILL (its node, its merger's pins and whatever its stages held die with it)
// once the first Parquet object is written. The two left (a quorum of two nodes) ingest every
// archive: every row is in the Parquet exactly once, every object whole, every date's summary says
// check OK, and both stop cleanly on SIGTERM.
func TestRunClusterSurvivesKill(t *testing.T) {
	bin := buildSluice(t)
	c := newCorpus(t, 41, 2, 3, 5, 20000, nil)
	ports := freePorts(t, 3)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	type node struct {
		cmd    *exec.Cmd
		log    *syncBuffer
		exited chan error
	}
	nodes := make([]*node, 3)
	start := time.Now()
	for i := range nodes {
		state := filepath.Join(c.dir, fmt.Sprintf("state%d", i))
		cmd := exec.Command(bin, "run", "--landing", c.landing, "--out", c.out, "--state", state,
			"--replicas", "3", "--nats-cluster-listen", fmt.Sprintf("127.0.0.1:%d", ports[i]),
			"--nats-routes", strings.Join(routes, ","), "--progress", "off", "--log-level", "info")
		n := &node{cmd: cmd, log: &syncBuffer{}, exited: make(chan error, 1)}
		cmd.Stdout, cmd.Stderr = n.log, n.log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { n.exited <- cmd.Wait() }()
		nodes[i] = n
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			_ = n.cmd.Process.Kill()
		}
	})
	logs := func() string {
		var sb strings.Builder
		for i, n := range nodes {
			fmt.Fprintf(&sb, "──── node %d ────\n%s\n", i, n.log.String())
		}
		return sb.String()
	}
	if !waitFor(t, 3*time.Minute, "the first Parquet object", anyFile(c.out, ".parquet")) {
		t.Fatalf("no Parquet object was written:\n%s", logs())
	}
	victim := nodes[1]
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.exited
	killed := time.Now()
	t.Logf("node 1 killed at %s, after the first Parquet object", killed.Sub(start).Round(time.Millisecond))

	want := map[string]int64{}
	for table, tt := range c.m.Tables {
		want[table] = int64(tt.Rows)
	}
	done := func() bool {
		rows, _, _ := parquetRows(c.out) // an object being renamed into place may not open yet
		return sameRows(rows, want) && summariesOK(c.out, []string{"2025-03-01", "2025-03-02"})
	}
	deadline := time.Now().Add(4 * time.Minute)
	for !done() {
		for _, i := range []int{0, 2} {
			select {
			case err := <-nodes[i].exited:
				t.Fatalf("node %d exited before the work was done: %v\n%s", i, err, logs())
			default:
			}
		}
		if time.Now().After(deadline) {
			rows, _, _ := parquetRows(c.out)
			t.Fatalf("the two nodes left did not ingest everything in 4 minutes: rows %v, want %v\n%s", rows, want, logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("every row committed and every summary OK %s after the kill", time.Since(killed).Round(time.Millisecond))
	stopping := time.Now()
	for _, i := range []int{0, 2} {
		_ = nodes[i].cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, i := range []int{0, 2} {
		select {
		case err := <-nodes[i].exited:
			if err != nil {
				t.Errorf("node %d on SIGTERM: %v", i, err)
			}
		case <-time.After(time.Minute):
			t.Errorf("node %d did not stop within a minute of SIGTERM", i)
		}
	}
	t.Logf("both stopped %s after SIGTERM", time.Since(stopping).Round(time.Millisecond))
	// Every visible object whole and every row once. A temporary file the killed node was writing
	// may be left: on a cluster node no merger clears --out at start (the others write the same
	// output); the next merger start-up after StaleUploadAge (1 h) removes it.
	rows, tmp, bad := parquetRows(c.out)
	for _, rel := range tmp {
		t.Logf("temporary file left by the killed node: %s", rel)
	}
	for _, err := range bad {
		t.Error(err)
	}
	if !sameRows(rows, want) {
		t.Errorf("rows after the stop %v, want %v", rows, want)
	}
	if t.Failed() {
		t.Log(logs())
	}
}

// freePorts returns n loopback TCP ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ports
}

// parquetRows sums the footers' row counts of every table's Parquet objects under out (a folder
// that may still be written), and lists the temporary files and the objects that do not open.
func parquetRows(out string) (rows map[string]int64, tmp []string, bad []error) {
	rows = map[string]int64{}
	_ = filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(out, p)
		switch {
		case strings.HasPrefix(d.Name(), ".tmp-"):
			tmp = append(tmp, rel)
			return nil
		case !strings.HasSuffix(p, ".parquet") || strings.HasPrefix(rel, "_"):
			return nil
		}
		r, err := file.OpenParquetFile(p, false)
		if err != nil {
			bad = append(bad, fmt.Errorf("%s: %w", rel, err))
			return nil
		}
		rows[strings.Split(rel, string(filepath.Separator))[0]] += r.NumRows()
		r.Close()
		return nil
	})
	return rows, tmp, bad
}

func sameRows(got, want map[string]int64) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// summariesOK reports whether every date's summary.txt under out says check OK.
func summariesOK(out string, dates []string) bool {
	for _, d := range dates {
		b, err := os.ReadFile(filepath.Join(out, "_summaries", "process_date="+d, "summary.txt"))
		if err != nil || !bytes.Contains(b, []byte("check OK")) {
			return false
		}
	}
	return true
}

// syncBuffer is a bytes.Buffer a process writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
