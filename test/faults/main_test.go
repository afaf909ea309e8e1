//go:build faults

// Package faults holds sluice's fault tests (issue #5): the stages run as separate `sluice`
// processes against one nats-server (in this test process), on generated archives, with output
// to a folder or to S3 (versitygw); faults are injected (kill -9 at random moments or at named
// crash points, a second merger taking over, nats-server restarted, S3 errors and outages
// through a fault-injecting proxy, poison messages), and every table is then read back and
// compared row by row with the input: nothing lost, nothing duplicated, every visible object
// complete.
//
//	make test-faults                      # go test -tags faults -count=1 -timeout 25m ./test/faults/
//	FAULT_SEEDS=7,8,9 make test-faults    # explicit seeds (a number N means seeds 1..N)
//	FAULT_MB=40 FAULT_SEEDS=5 make test-faults
//
// The cluster cases (cluster_test.go, issue #14) run three nats-server nodes in this process
// instead of one, streams and buckets with three replicas, and stop a node mid-run.
//
// Knobs (environment): FAULT_SEEDS (default 3), FAULT_SLOW_SEEDS (seeds of the slow cases:
// S3 outage, poison; default 1), FAULT_MB (CSV megabytes per run, default 4), FAULT_S3_RATE
// (share of S3 requests that fail, default 0.15), FAULT_S3_OUTAGE (default 150s, longer than the
// 2 min S3 retry budget), FAULT_HUGE_MB (the one member large enough for multipart uploads in the
// S3 case, default 72), FAULT_PARALLEL (runs at once, default 8; the mostly idle outage and poison
// runs do not count), FAULT_RACE=1 (build sluice with -race), FAULT_REPORT (write the figures as
// JSON to this file), FAULT_CLUSTER_SEEDS (seeds of the cluster cases, default 1),
// FAULT_CLUSTER_MB (CSV megabytes of a cluster run, default 24), FAULT_KEEP (keep each run's
// folder — logs, store, output — under this folder). docs/RELIABILITY.md explains the cases.
package faults

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/objstore/s3test"
)

// knobs are read once from the environment.
var knobs struct {
	seeds      []int64
	slowSeeds  []int64
	csvBytes   int64
	hugeBytes  int64
	s3Rate     float64
	outage     time.Duration
	parallel   int
	race       bool
	reportPath string
	// cluster cases (cluster_test.go)
	clusterSeeds []int64
	clusterBytes int64
}

// Shared by every run: the sluice binary, one versitygw, the child environment.
var (
	sluiceBin  string
	s3Endpoint string // versitygw itself (the proxies sit in front of it)
	s3Client   *s3.Client
	childEnv   []string
	runSlots   chan struct{}
	setupErr   error
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	// The runs mostly wait (AckWait, pin TTL, outages): FAULT_PARALLEL bounds them, not
	// -test.parallel, which defaults to GOMAXPROCS (2 in CI).
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", "64")
	}
	readKnobs()
	runSlots = make(chan struct{}, knobs.parallel)
	tmp, err := os.MkdirTemp("", "sluice-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	var stop func()
	setupErr = setup(tmp, &stop)
	if stop != nil {
		defer stop()
	}
	code := m.Run()
	report.print(os.Stdout)
	if knobs.reportPath != "" {
		if err := report.write(knobs.reportPath); err != nil {
			fmt.Fprintln(os.Stderr, "faults: write report:", err)
		}
	}
	return code
}

func readKnobs() {
	knobs.seeds = parseSeeds(os.Getenv("FAULT_SEEDS"), 3)
	knobs.slowSeeds = parseSeeds(os.Getenv("FAULT_SLOW_SEEDS"), 1)
	knobs.csvBytes = int64(envFloat("FAULT_MB", 4) * 1e6)
	knobs.hugeBytes = int64(envFloat("FAULT_HUGE_MB", 72) * 1e6)
	knobs.s3Rate = envFloat("FAULT_S3_RATE", 0.15)
	knobs.outage = envDuration("FAULT_S3_OUTAGE", 150*time.Second)
	knobs.parallel = int(envFloat("FAULT_PARALLEL", 8))
	if knobs.parallel < 1 {
		knobs.parallel = 1
	}
	knobs.race = os.Getenv("FAULT_RACE") == "1"
	knobs.reportPath = os.Getenv("FAULT_REPORT")
	knobs.clusterSeeds = parseSeeds(os.Getenv("FAULT_CLUSTER_SEEDS"), 1)
	knobs.clusterBytes = int64(envFloat("FAULT_CLUSTER_MB", 24) * 1e6)
}

// parseSeeds reads "N" (seeds 1..N) or "a,b,c" (those seeds).
func parseSeeds(s string, def int) []int64 {
	s = strings.TrimSpace(s)
	if s == "" {
		s = strconv.Itoa(def)
	}
	if !strings.Contains(s, ",") {
		if n, err := strconv.Atoi(s); err == nil {
			out := make([]int64, 0, n)
			for i := 1; i <= n; i++ {
				out = append(out, int64(i))
			}
			return out
		}
	}
	var out []int64
	for _, f := range strings.Split(s, ",") {
		if v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64); err == nil {
			out = append(out, v)
		}
	}
	return out
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// setup builds sluice and starts versitygw. Its failure is reported by every test (so that
// `go test` prints it), not by TestMain.
func setup(tmp string, stop *func()) error {
	sluiceBin = filepath.Join(tmp, "sluice")
	args := []string{"build", "-o", sluiceBin}
	if knobs.race {
		args = append(args, "-race")
	}
	args = append(args, "github.com/sluice-dev/sluice/cmd/sluice")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("build sluice: %v\n%s", err, out)
	}

	bin := s3test.Binary()
	if bin == "" {
		return fmt.Errorf("versitygw not found ($SLUICE_VERSITYGW, $(go env GOPATH)/bin or PATH); `make tools` installs it")
	}
	access, secret := "faults"+randHex(4), randHex(20)
	home := filepath.Join(tmp, "aws")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	// The children (and this process, for the read-back) take credentials from the AWS chain.
	awsEnv := map[string]string{
		"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret, "AWS_REGION": "us-east-1",
		"AWS_CONFIG_FILE": filepath.Join(home, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(home, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true",
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "SLUICE_") || strings.HasPrefix(k, "AWS_") {
			_ = os.Unsetenv(k)
			continue
		}
		childEnv = append(childEnv, kv)
	}
	for k, v := range awsEnv {
		_ = os.Setenv(k, v)
		childEnv = append(childEnv, k+"="+v)
	}

	addr, err := freeAddr()
	if err != nil {
		return err
	}
	root := filepath.Join(tmp, "s3root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(tmp, "versitygw.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "--port", addr, "--health", "/_health", "--quiet", "posix", root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+access, "ROOT_SECRET_ACCESS_KEY="+secret)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start versitygw: %w", err)
	}
	*stop = func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() }
	s3Endpoint = "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s3Endpoint + "/_health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("versitygw on %s not healthy: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		return err
	}
	s3Client = s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s3Endpoint)
		o.UsePathStyle = true
	})
	return nil
}

// newBucket creates a fresh bucket for one run.
func newBucket(t *testing.T) string {
	t.Helper()
	name := "faults-" + randHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s3Client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

func needSetup(t *testing.T) {
	t.Helper()
	if setupErr != nil {
		t.Fatal(setupErr)
	}
}

// freeAddr is bustest.FreeAddr: a loopback port below the kernel's ephemeral range, which no
// outgoing connection can take before the listener binds it.
func freeAddr() (string, error) { return bustest.FreeAddr() }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ---- figures ----

// runFigures is what one run did and found.
type runFigures struct {
	Case       string           `json:"case"`
	Seed       int64            `json:"seed"`
	Output     string           `json:"output"` // dir | s3
	Faults     map[string]int64 `json:"faults"` // injected, by kind
	Archives   int              `json:"archives"`
	Tables     int              `json:"tables"`
	RowsWant   int64            `json:"rows_expected"`
	RowsRead   int64            `json:"rows_checked"`
	Lost       int64            `json:"lost"`
	Duplicated int64            `json:"duplicated"`
	Foreign    int64            `json:"foreign"` // rows read back that match no input row
	Objects    int              `json:"objects"`
	Seconds    float64          `json:"seconds"`
	// RecoverySeconds (cluster cases): from stopping a node to the next batch committed.
	RecoverySeconds float64 `json:"recovery_seconds,omitempty"`
	Passed          bool    `json:"passed"`
	Note            string  `json:"note,omitempty"`
}

type reportT struct {
	mu   sync.Mutex
	runs []*runFigures
}

var report reportT

func (r *reportT) add(f *runFigures) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs = append(r.runs, f)
}

func (r *reportT) sorted() []*runFigures {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]*runFigures(nil), r.runs...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Case != out[j].Case {
			return out[i].Case < out[j].Case
		}
		return out[i].Seed < out[j].Seed
	})
	return out
}

func (r *reportT) print(w *os.File) {
	runs := r.sorted()
	if len(runs) == 0 {
		return
	}
	fmt.Fprintf(w, "\nfault runs (%s, %d CPUs, GOOS=%s):\n", time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), runtime.GOOS)
	fmt.Fprintf(w, "%-28s %5s %-4s %8s %8s %5s %5s %5s %5s %6s %s\n", "case", "seed", "out", "rows", "checked", "lost", "dup", "alien", "pass", "secs", "faults")
	var tot runFigures
	tot.Faults = map[string]int64{}
	for _, f := range runs {
		fmt.Fprintf(w, "%-28s %5d %-4s %8d %8d %5d %5d %5d %5v %6.0f %s\n", f.Case, f.Seed, f.Output, f.RowsWant, f.RowsRead,
			f.Lost, f.Duplicated, f.Foreign, f.Passed, f.Seconds, faultString(f.Faults))
		if f.Note != "" {
			fmt.Fprintf(w, "%-28s %5s   %s\n", "", "", f.Note)
		}
		tot.RowsWant += f.RowsWant
		tot.RowsRead += f.RowsRead
		tot.Lost += f.Lost
		tot.Duplicated += f.Duplicated
		tot.Foreign += f.Foreign
		for k, v := range f.Faults {
			tot.Faults[k] += v
		}
	}
	fmt.Fprintf(w, "%-28s %5d %-4s %8d %8d %5d %5d %5d %5s %6s %s\n", "TOTAL", len(runs), "", tot.RowsWant, tot.RowsRead,
		tot.Lost, tot.Duplicated, tot.Foreign, "", "", faultString(tot.Faults))
}

func faultString(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func (r *reportT) write(path string) error {
	data, err := json.MarshalIndent(map[string]any{
		"date": time.Now().UTC().Format(time.RFC3339), "cpus": runtime.NumCPU(), "goos": runtime.GOOS, "goarch": runtime.GOARCH,
		"csv_bytes_per_run": knobs.csvBytes, "s3_fault_rate": knobs.s3Rate, "runs": r.sorted(),
	}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
