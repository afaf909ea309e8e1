// Package s3test runs a real S3 server for tests: the versitygw gateway with its posix backend
// in t.TempDir(), listening on a free loopback port.
//
// versitygw is a separate binary (`make tools` installs it into $(go env GOPATH)/bin). When it
// is missing, tests using this package are skipped, or fail when env CI is set or
// SLUICE_REQUIRE_S3=1. SLUICE_VERSITYGW may name the binary explicitly.
//
// Start sets the AWS_* credential variables with t.Setenv, so it cannot be used from parallel
// tests (t.Parallel), and every server started in one test shares the same keys.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluice-dev/sluice/internal/objstore"
)

// Bucket is the name of the bucket Start creates.
const Bucket = "sluice-test"

const healthPath = "/_health"

// Binary returns the path of the versitygw binary: $SLUICE_VERSITYGW, $(go env GOPATH)/bin, or
// PATH; "" when not found.
func Binary() string {
	if p := os.Getenv("SLUICE_VERSITYGW"); p != "" {
		return p
	}
	if gp := goPath(); gp != "" {
		for dir := range strings.SplitSeq(gp, string(os.PathListSeparator)) {
			p := filepath.Join(dir, "bin", "versitygw")
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return p
			}
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	return ""
}

var goPath = sync.OnceValue(func() string {
	if gp := os.Getenv("GOPATH"); gp != "" {
		return gp
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
})

// Start runs versitygw on a free loopback port with a fresh posix root, creates the bucket
// Bucket, and stops the process when the test ends. It sets AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_REGION for the client (and hides the user's AWS config files),
// and returns the endpoint (http://127.0.0.1:port) and the bucket name.
func Start(t testing.TB) (endpoint, bucket string) {
	t.Helper()
	bin := Binary()
	if bin == "" {
		msg := "versitygw not found in $SLUICE_VERSITYGW, $(go env GOPATH)/bin or PATH; `make tools` installs it"
		if os.Getenv("CI") != "" || os.Getenv("SLUICE_REQUIRE_S3") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}

	access, secret := keys()
	home := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           access,
		"AWS_SECRET_ACCESS_KEY":       secret,
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  "us-east-1",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             filepath.Join(home, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(home, "aws-credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		t.Setenv(k, v)
	}

	var lastErr error
	for range 3 { // the free port may be taken before versitygw binds it
		endpoint, err := start(t, bin, access, secret)
		if err == nil {
			createBucket(t, endpoint)
			return endpoint, Bucket
		}
		lastErr = err
	}
	t.Fatalf("start versitygw: %v", lastErr)
	return "", ""
}

// start launches one versitygw process and waits for its health endpoint.
func start(t testing.TB, bin, access, secret string) (string, error) {
	root := t.TempDir()
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	// A health path of its own: when another test's versitygw took the free port first, its health
	// endpoint answers 404 here, so the check waits for this process (which then exits: address in
	// use) instead of handing out a server that does not know this test's keys.
	health := healthPath + "-" + randHex(8)
	args := []string{"--port", addr, "--health", health, "--quiet", "posix", root}
	cmd := exec.Command(bin, args...)
	// The root keys go through the environment, not argv (visible in ps).
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+access, "ROOT_SECRET_ACCESS_KEY="+secret)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("run %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}

	endpoint := "http://" + addr
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			return "", fmt.Errorf("versitygw %s exited early: %s", strings.Join(args, " "), out.String())
		default:
		}
		resp, err := client.Get(endpoint + health)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			stop()
			return "", fmt.Errorf("versitygw on %s not healthy after 15s: %v; output: %s", addr, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() && out.Len() > 0 {
			t.Logf("versitygw output:\n%s", out.String())
		}
	})
	return endpoint, nil
}

func createBucket(t testing.TB, endpoint string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatalf("load aws config: %v", err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
	})
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(Bucket)}); err != nil {
		t.Fatalf("create bucket %s on %s: %v", Bucket, endpoint, err)
	}
}

// Options returns objstore options for a versitygw endpoint: path style, 5 MiB parts, fast
// retries bounded at 10 s, logging to the test output.
func Options(t testing.TB, endpoint string) objstore.Options {
	return objstore.Options{
		Endpoint:        endpoint,
		Region:          "us-east-1",
		PathStyle:       true,
		PartSize:        objstore.MinPartSize,
		RetryMaxElapsed: 10 * time.Second,
		Logger:          slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// OpenS3 starts versitygw and opens its bucket with Options; the bucket is closed when the
// test ends.
func OpenS3(t testing.TB) objstore.Bucket {
	t.Helper()
	endpoint, bucket := Start(t)
	return Open(t, "s3://"+bucket, Options(t, endpoint))
}

// Open opens location (e.g. "s3://"+bucket+"/some/prefix") with opts, closing it when the test
// ends.
func Open(t testing.TB, location string, opts objstore.Options) objstore.Bucket {
	t.Helper()
	b, err := objstore.Open(context.Background(), location, opts)
	if err != nil {
		t.Fatalf("open %s: %v", location, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// keys are the root credentials of every versitygw started by this test binary, so that the
// environment set by one Start stays valid for servers started earlier in the same test.
var keys = sync.OnceValues(func() (access, secret string) {
	return "sluice" + randHex(6), randHex(20)
})

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// syncBuffer collects the process output.
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

func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

var _ io.Writer = (*syncBuffer)(nil)
