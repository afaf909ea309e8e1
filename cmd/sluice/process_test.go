package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/gen"
	"github.com/sluice-dev/sluice/internal/ledger"
)

// TestStagesAsSeparateProcesses runs producer, extractor, two mergers and the summarizer as
// separate `sluice` processes sharing one nats-server, and checks every table's rows.
func TestStagesAsSeparateProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "sluice")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	b := bustest.New(t)
	url := b.Server.ClientURL()
	landing, out := filepath.Join(dir, "landing"), filepath.Join(dir, "out")
	cfg := gen.DefaultConfig()
	cfg.Out, cfg.Seed, cfg.Days, cfg.Archives, cfg.Tables, cfg.RowsPerMember = landing, 21, 2, 2, 4, 300
	m, err := gen.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	common := []string{"--nats", url, "--partitions", "4", "--log-format", "json"}
	start := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(bin, append(args, common...)...)
		cmd.Env = append(os.Environ(), "SLUICE_STATE="+filepath.Join(dir, "state-"+name))
		logf, _ := os.Create(filepath.Join(dir, name+".log"))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); logf.Close() })
		return cmd
	}
	metricsAddr, err := bustest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	procs := []*exec.Cmd{
		start("extractor", "extractor", "--metrics-addr", metricsAddr),
		start("merger1", "merger", "--out", out, "--instance", "m1"),
		start("merger2", "merger", "--out", out, "--instance", "m2"),
		start("summarizer", "summarizer", "--out", out),
	}
	if outp, err := exec.Command(bin, append([]string{"producer", "--landing", landing, "--once"}, common...)...).CombinedOutput(); err != nil {
		t.Fatalf("producer --once: %v\n%s", err, outp)
	}
	ctx := context.Background()
	kv, err := b.Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(kv, nil)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		recs, err := l.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, r := range recs {
			if r.State == ledger.Committed {
				done++
			}
			if r.State == ledger.Failed {
				t.Fatalf("archive %s failed: %s", r.Name, r.Reason)
			}
		}
		if done == len(m.Archives) {
			break
		}
		if time.Now().After(deadline) {
			for _, n := range []string{"extractor", "merger1", "merger2", "summarizer"} {
				log, _ := os.ReadFile(filepath.Join(dir, n+".log"))
				t.Logf("%s log:\n%s", n, log)
			}
			t.Fatalf("only %d/%d archives committed", done, len(m.Archives))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// the stage's metrics and health endpoints
	for path, want := range map[string]string{"/healthz": "ok", "/metrics": "sluice_extractor_"} {
		resp, err := http.Get("http://" + metricsAddr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
	// every table's rows, counted from the Parquet footers
	for table, tt := range m.Tables {
		var rows int64
		filepath.Walk(filepath.Join(out, table), func(p string, info os.FileInfo, err error) error {
			if err == nil && strings.HasSuffix(p, ".parquet") {
				r, err := file.OpenParquetFile(p, false)
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				rows += r.NumRows()
				r.Close()
			}
			return nil
		})
		if rows != int64(tt.Rows) {
			t.Errorf("table %s: %d rows, want %d", table, rows, tt.Rows)
		}
	}
	// clean shutdown on SIGTERM
	for _, p := range procs {
		_ = p.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range procs {
		errc := make(chan error, 1)
		go func() { errc <- p.Wait() }()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("%s exited with %v", p.Args[1], err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop on SIGTERM", p.Args[1])
		}
	}
}
