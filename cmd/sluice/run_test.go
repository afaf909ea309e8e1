package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/pipeline"
	"github.com/sluice-dev/sluice/producer"
)

// TestRunSummaryVerdict: a --once run that found nothing to take says so instead of claiming
// everything was ingested; one that took archives keeps the usual verdict.
func TestRunSummaryVerdict(t *testing.T) {
	var empty bytes.Buffer
	printRunSummary(&empty, &pipeline.Result{}, "/lake/")
	if got := empty.String(); !strings.Contains(got, "OK: nothing new to ingest") || strings.Contains(got, "every archive committed") {
		t.Fatalf("empty run summary:\n%s", got)
	}
	var some bytes.Buffer
	printRunSummary(&some, &pipeline.Result{Scan: producer.ScanResult{Landed: []string{"a1"}}, Found: []string{"a1"}, Taken: []string{"a1"}}, "/lake")
	if got := some.String(); !strings.Contains(got, "OK: every archive committed and checked; Parquet under /lake/<table>/") {
		t.Fatalf("run summary:\n%s", got)
	}
}

// TestSoleServer: only an embedded server no other process's stages use makes its owner hand back
// every outstanding delivery at start and reclaim --out's unfinished uploads; a host other stages
// join (--nats-listen) did both to stages still alive (a user trial).
func TestSoleServer(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{nil, true},
		{[]string{"--nats-listen", "0.0.0.0:4222"}, false},
		{[]string{"--nats", "nats://nats:4222"}, false},
		{[]string{"--nats-cluster-listen", "127.0.0.1:6222", "--nats-routes", "nats-route://127.0.0.1:6223"}, false},
		{[]string{"--metrics-addr", "127.0.0.1:9090"}, true},
	} {
		cm, _, _, _ := newRunFlags()
		if err := cm.fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		if got := cm.soleServer(); got != c.want {
			t.Errorf("%q: soleServer %v, want %v", c.args, got, c.want)
		}
	}
}

// TestEveryCommandHelpExitsZero: `sluice <command> -h` is a usage asked for, exit 0, for every
// command (dlq, dq and version exited 64, as for a wrong command line).
func TestEveryCommandHelpExitsZero(t *testing.T) {
	for _, c := range commands() {
		if err := c.run(t.Context(), []string{"-h"}); exitCode(err) != 0 {
			t.Errorf("sluice %s -h: %v (exit %d)", c.name, err, exitCode(err))
		}
	}
}
