package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/pipeline"
	"github.com/sluice-dev/sluice/summarizer"
)

// TestEndpointsOfARunningPipeline: /healthz answers while nothing runs, /readyz says why the
// process is not ready until every stage of `sluice run` has set itself up (their consumers exist,
// the summarizer has caught up), then answers ready; /metrics serves sluice's metrics.
func TestEndpointsOfARunningPipeline(t *testing.T) {
	b := bustest.New(t)
	reg := prometheus.NewRegistry()
	o, err := newOps(b, reg, reg)
	if err != nil {
		t.Fatal(err)
	}
	env, err := pipeline.NewEnv(context.Background(), b, nil, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	dir := t.TempDir()
	opts := pipeline.Options{Landing: filepath.Join(dir, "landing"), Out: filepath.Join(dir, "out"), SpillDir: t.TempDir(),
		MemoryBudget: 64 << 20, ServePartitions: []int{1, 2}}
	if err := os.MkdirAll(opts.Landing, 0o755); err != nil {
		t.Fatal(err)
	}
	o.stageReady("extractor", b, opts)
	o.stageReady("merger", b, opts)
	srv := httptest.NewServer(metricsMux(reg, &o.ready))
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	if code, body := get("/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	code, body := get("/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "extractor: consumers not created yet on SLUICE_EVENTS: extractor") ||
		!strings.Contains(body, "merger: consumers not created yet on SLUICE_ROWS: merger-p1, merger-p2") {
		t.Fatalf("/readyz before the stages: %d %q", code, body)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := pipeline.Run(ctx, env, opts, func(s *summarizer.Summarizer) { o.summarizerReady(s) })
		done <- err
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("pipeline: %v", err)
		}
	}()
	// The checks read the collector's snapshot, refreshed every few seconds.
	if !waitFor(t, 30*time.Second, "ready", func() bool { code, body = get("/readyz"); return code == http.StatusOK }) {
		t.Fatalf("/readyz with every stage running: %d %q", code, body)
	}
	if body != "ready\n" {
		t.Fatalf("/readyz body %q", body)
	}
	code, body = get("/metrics")
	for _, want := range []string{`sluice_build_info{goversion="go`, `sluice_consumer_pending_messages{consumer="merger-p1",partition="1",stream="SLUICE_ROWS"} 0`,
		`sluice_summarizer_caught_up 1`, `sluice_stream_missing{stream="SLUICE_DLQ"} 0`} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestToolsCreateNoStreams: the operator's tools use the streams the stages made. `status --nats`
// against a server the stages have not set up fails instead of creating them (it created them
// with its own default of one replica, which a cluster's stages then found and kept).
func TestToolsCreateNoStreams(t *testing.T) {
	b := bustest.New(t)
	ctx := t.Context()
	for name := range b.JS.StreamNames(ctx).Name() {
		if err := b.JS.DeleteStream(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"status"}, {"dlq", "list"}} {
		var err error
		switch args[0] {
		case "status":
			err = cmdStatus(ctx, []string{"--nats", b.Server.ClientURL(), "--log-level", "error"})
		case "dlq":
			err = cmdDLQ(ctx, []string{"list", "--nats", b.Server.ClientURL(), "--log-level", "error"})
		}
		if exitCode(err) != exitFailure {
			t.Errorf("%s on a server without sluice's streams: %v, want exit %d", args[0], err, exitFailure)
		}
	}
	var names []string
	for name := range b.JS.StreamNames(ctx).Name() {
		names = append(names, name)
	}
	if len(names) > 0 {
		t.Errorf("the tools created streams %q", names)
	}
}
