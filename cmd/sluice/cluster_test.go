package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/statedir"
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
	var routes, listen, metrics []string
	for range 3 {
		addr, err := bustest.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		listen, routes = append(listen, addr), append(routes, "nats-route://"+addr)
		if addr, err = bustest.FreeAddr(); err != nil {
			t.Fatal(err)
		}
		metrics = append(metrics, addr)
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
			"--nats-routes", strings.Join(routes, ","), "--metrics-addr", metrics[i], "--progress", "off", "--log-level", "info")
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
	// The node killed is the events stream's leader: the ephemeral consumers of every node's
	// summarizer live there.
	v := eventsLeader(t, filepath.Join(c.dir, "state0"), listen)
	var survivors []int
	for i := range nodes {
		if i != v {
			survivors = append(survivors, i)
		}
	}
	victim := nodes[v]
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.exited
	killed := time.Now()
	t.Logf("node %d (the events stream's leader) killed at %s, after the first Parquet object", v, killed.Sub(start).Round(time.Millisecond))

	// Its --state now holds a cluster node's store that nobody runs: a command that would start a
	// server alone on it — answering from a stale copy, or writing a re-extraction the cluster
	// discards when the node rejoins — is refused.
	for _, args := range [][]string{{"status"}, {"reextract", "00000000000000000001"}} {
		cmd := exec.Command(bin, append([]string{args[0], "--state", filepath.Join(c.dir, fmt.Sprintf("state%d", v))}, args[1:]...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitFailure || !bytes.Contains(out, []byte("JetStream cluster node that is not running")) {
			t.Errorf("sluice %s on the killed node's state: %v\n%s", args[0], err, out)
		}
	}

	// The nodes left say they are ready again, on JetStream information read after the kill: a
	// listing of a stream's consumers waited on the killed node's ephemeral consumers (its
	// summarizer's) until the cluster marked it offline, minutes later, and /readyz failed on
	// every node left meanwhile (a user trial).
	for _, i := range survivors {
		var why string
		if !waitFor(t, time.Minute, fmt.Sprintf("node %d ready after the kill", i), func() bool {
			why = readyAfter(metrics[i], killed)
			return why == ""
		}) {
			t.Errorf("node %d not ready a minute after the kill: %s", i, why)
		}
	}

	want := map[string]int64{}
	for table, tt := range c.m.Tables {
		want[table] = int64(tt.Rows)
	}
	// Done: every summary says check OK (cheap to read) and then every row is there; or one of the
	// two nodes left exited, which fails the test.
	survivorExited := func() bool { return len(nodes[survivors[0]].exited) > 0 || len(nodes[survivors[1]].exited) > 0 }
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
	for _, i := range survivors {
		select {
		case err := <-nodes[i].exited:
			t.Fatalf("node %d exited before the work was done: %v\n%s", i, err, logs())
		default:
		}
	}
	t.Logf("every row committed and every summary OK %s after the kill", time.Since(killed).Round(time.Millisecond))
	stopping := time.Now()
	for _, i := range survivors {
		_ = nodes[i].cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, i := range survivors {
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

// readyAfter is "" when the process serving metrics on addr answers /readyz 200 with JetStream
// information read after t (sluice_jetstream_info_timestamp_seconds), else why not.
func readyAfter(addr string, t time.Time) string {
	get := func(path string) (int, string, error) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	code, body, err := get("/readyz")
	if err != nil || code != http.StatusOK {
		return fmt.Sprintf("/readyz: %d %q %v", code, body, err)
	}
	_, body, err = get("/metrics")
	if err != nil {
		return err.Error()
	}
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(line, "sluice_jetstream_info_timestamp_seconds "); ok {
			at, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || at < float64(t.UnixNano())/1e9 {
				return fmt.Sprintf("JetStream information read at %s (%v), before the kill", strings.TrimSpace(v), err)
			}
			return ""
		}
	}
	return "no sluice_jetstream_info_timestamp_seconds"
}

// eventsLeader is the index of the node (its cluster listen address in listen) that leads the
// events stream, asked of the server of the node whose --state is state: a node's server name is
// sluice-<host>-<cluster port> (bus.Config.ServerName).
func eventsLeader(t *testing.T, state string, listen []string) int {
	t.Helper()
	srv, err := statedir.ReadServer(state)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Connect(t.Context(), bus.Config{URL: srv.URL, Token: srv.Token, Subjects: bus.DefaultSubjects}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var leader string
	if !waitFor(t, time.Minute, "the events stream's leader", func() bool {
		st, err := b.JS.Stream(t.Context(), b.Subjects.EventsStream())
		if err == nil && st.CachedInfo().Cluster != nil {
			leader = st.CachedInfo().Cluster.Leader
		}
		return leader != ""
	}) {
		t.Fatal("no leader of the events stream")
	}
	for i, addr := range listen {
		if strings.HasSuffix(leader, "-"+addr[strings.LastIndexByte(addr, ':')+1:]) {
			return i
		}
	}
	t.Fatalf("leader %q is none of the nodes %q", leader, listen)
	return -1
}
