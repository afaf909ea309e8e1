package main

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/bus/bustest"
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
	var routes, listen []string
	for range 3 {
		addr, err := bustest.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		listen, routes = append(listen, addr), append(routes, "nats-route://"+addr)
	}
	type node struct {
		cmd    *exec.Cmd
		log    string // its stdout and stderr
		exited chan error
	}
	nodes := make([]*node, 3)
	start := time.Now()
	for i := range nodes {
		state := filepath.Join(c.dir, fmt.Sprintf("state%d", i))
		cmd := exec.Command(bin, "run", "--landing", c.landing, "--out", c.out, "--state", state,
			"--replicas", "3", "--nats-cluster-listen", listen[i],
			"--nats-routes", strings.Join(routes, ","), "--progress", "off", "--log-level", "info")
		n := &node{cmd: cmd, log: filepath.Join(c.dir, fmt.Sprintf("node%d.log", i)), exited: make(chan error, 1)}
		f, err := os.Create(n.log)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		f.Close() // the process has its own descriptor
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
			b, _ := os.ReadFile(n.log)
			fmt.Fprintf(&sb, "──── node %d ────\n%s\n", i, b)
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
	// Done: every summary says check OK (cheap to read) and then every row is there; or one of the
	// two nodes left exited, which fails the test.
	survivorExited := func() bool { return len(nodes[0].exited) > 0 || len(nodes[2].exited) > 0 }
	done := func() bool {
		if !summariesOK(c.out, []string{"2025-03-01", "2025-03-02"}) {
			return false
		}
		rows, _, _ := parquetRows(c.out)
		return maps.Equal(rows, want)
	}
	if !waitFor(t, 4*time.Minute, "every row and every summary", func() bool { return survivorExited() || done() }) {
		rows, _, _ := parquetRows(c.out)
		t.Fatalf("the two nodes left did not ingest everything in 4 minutes: rows %v, want %v\n%s", rows, want, logs())
	}
	for _, i := range []int{0, 2} {
		select {
		case err := <-nodes[i].exited:
			t.Fatalf("node %d exited before the work was done: %v\n%s", i, err, logs())
		default:
		}
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
	// output); the mergers' hourly sweep removes it once it is an hour old (merger.Config.StaleSweep).
	rows, tmp, bad := parquetRows(c.out)
	for _, rel := range tmp {
		t.Logf("temporary file left by the killed node: %s", rel)
	}
	for _, err := range bad {
		t.Error(err)
	}
	if !maps.Equal(rows, want) {
		t.Errorf("rows after the stop %v, want %v", rows, want)
	}
	if t.Failed() {
		t.Log(logs())
	}
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
