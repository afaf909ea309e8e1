package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/objstore/s3test"
)

// faultProxy sits between the client and versitygw on loopback and answers the first `left`
// requests that match with an injected S3 error (or a dropped connection when status is 0).
type faultProxy struct {
	rp       *httputil.ReverseProxy
	match    func(*http.Request) bool
	status   int
	code     string
	left     atomic.Int64
	requests atomic.Int64
	injected atomic.Int64
}

func startFaultProxy(t *testing.T, endpoint string, match func(*http.Request) bool, n int, status int, code string) (*faultProxy, string) {
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{rp: httputil.NewSingleHostReverseProxy(target), match: match, status: status, code: code}
	p.left.Store(int64(n))
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv.URL
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	if !p.match(r) || p.left.Add(-1) < 0 {
		p.rp.ServeHTTP(w, r) // the Host header is kept, so the signature still verifies
		return
	}
	p.injected.Add(1)
	_, _ = io.Copy(io.Discard, r.Body)
	if p.status == 0 {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(p.status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+
		`<Error><Code>%s</Code><Message>injected by test</Message><RequestId>fault</RequestId></Error>`, p.code)
}

func isPut(r *http.Request) bool {
	return r.Method == http.MethodPut && !r.URL.Query().Has("partNumber")
}
func isUploadPart(r *http.Request) bool { return r.URL.Query().Has("partNumber") }
func isComplete(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Query().Has("uploadId")
}
func isHead(r *http.Request) bool { return r.Method == http.MethodHead }
func always(*http.Request) bool   { return true }

// retryLog records OnRetry calls.
type retryLog struct {
	mu  sync.Mutex
	ops []string
}

func (l *retryLog) hook(op string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, op)
}

func (l *retryLog) calls() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ops...)
}

func TestS3Retries(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	big := randBytes(12<<20, 99)

	for _, tc := range []struct {
		name       string
		match      func(*http.Request) bool
		n          int
		status     int
		code       string
		maxElapse  time.Duration
		timeout    time.Duration
		op         func(ctx context.Context, b objstore.Bucket) error
		wantErr    string // "" for success
		wantRetry  string // an OnRetry op expected ("" for none)
		wantFaults int64
		wantReqs   int64 // exact number of requests seen by the proxy, when > 0
	}{
		{
			name: "put slowdown", match: isPut, n: 3, status: 503, code: "SlowDown",
			op:        func(ctx context.Context, b objstore.Bucket) error { return b.Put(ctx, "k", strings.NewReader("v")) },
			wantRetry: "PutObject", wantFaults: 3,
		},
		{
			name: "upload part 500", match: isUploadPart, n: 3, status: 500, code: "InternalError",
			op: func(ctx context.Context, b objstore.Bucket) error {
				w, err := b.Create(ctx, "big")
				if err != nil {
					return err
				}
				defer w.Abort(ctx)
				if _, err := w.Write(big); err != nil {
					return err
				}
				if err := w.Commit(ctx); err != nil {
					return err
				}
				return checkContent(ctx, b, "big", big)
			},
			wantRetry: "UploadPart", wantFaults: 3,
		},
		{
			name: "complete 503", match: isComplete, n: 3, status: 503, code: "ServiceUnavailable",
			op: func(ctx context.Context, b objstore.Bucket) error {
				if err := b.Put(ctx, "big", bytes.NewReader(big)); err != nil {
					return err
				}
				return checkContent(ctx, b, "big", big)
			},
			wantRetry: "CompleteMultipartUpload", wantFaults: 3,
		},
		{
			name: "head connection dropped", match: isHead, n: 3, status: 0,
			op: func(ctx context.Context, b objstore.Bucket) error {
				_, err := b.Stat(ctx, "missing")
				if !errors.Is(err, objstore.ErrNotFound) {
					return fmt.Errorf("want ErrNotFound, got %v", err)
				}
				return nil
			},
			wantRetry: "HeadObject", wantFaults: 3,
		},
		{
			name: "access denied is permanent", match: isPut, n: 100, status: 403, code: "AccessDenied",
			op:      func(ctx context.Context, b objstore.Bucket) error { return b.Put(ctx, "k", strings.NewReader("v")) },
			wantErr: "AccessDenied", wantFaults: 1,
		},
		{
			name: "bad request is permanent", match: isPut, n: 100, status: 400, code: "InvalidArgument",
			op:      func(ctx context.Context, b objstore.Bucket) error { return b.Put(ctx, "k", strings.NewReader("v")) },
			wantErr: "InvalidArgument", wantFaults: 1,
		},
		{
			name: "not found is permanent", match: always, n: 0,
			op: func(ctx context.Context, b objstore.Bucket) error {
				_, err := b.Get(ctx, "missing")
				return err
			},
			wantErr: objstore.ErrNotFound.Error(), wantReqs: 1,
		},
		{
			name: "budget spent", match: isPut, n: 1000, status: 503, code: "SlowDown", maxElapse: time.Second,
			op:        func(ctx context.Context, b objstore.Bucket) error { return b.Put(ctx, "k", strings.NewReader("v")) },
			wantErr:   "SlowDown",
			wantRetry: "PutObject",
		},
		{
			name: "context deadline", match: isPut, n: 1000, status: 503, code: "SlowDown", timeout: 700 * time.Millisecond,
			op:        func(ctx context.Context, b objstore.Bucket) error { return b.Put(ctx, "k", strings.NewReader("v")) },
			wantErr:   context.DeadlineExceeded.Error(),
			wantRetry: "PutObject",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy, proxyURL := startFaultProxy(t, endpoint, tc.match, tc.n, tc.status, tc.code)
			var retries retryLog
			opts := s3test.Options(t, proxyURL)
			opts.OnRetry = retries.hook
			reg := prometheus.NewRegistry()
			opts.Registerer = reg
			if tc.maxElapse > 0 {
				opts.RetryMaxElapsed = tc.maxElapse
			}
			b := s3test.Open(t, "s3://"+bucket+"/retries/"+strings.ReplaceAll(tc.name, " ", "-"), opts)

			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			start := time.Now()
			err := tc.op(ctx, b)
			elapsed := time.Since(start)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("operation failed: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
			}
			calls := retries.calls()
			if tc.wantRetry == "" && len(calls) > 0 {
				t.Errorf("OnRetry called for %v; the error is permanent", calls)
			}
			if tc.wantRetry != "" && !contains(calls, tc.wantRetry) {
				t.Errorf("OnRetry calls %v, want %s", calls, tc.wantRetry)
			}
			if tc.wantFaults > 0 && proxy.injected.Load() != tc.wantFaults {
				t.Errorf("%d faults injected, want %d", proxy.injected.Load(), tc.wantFaults)
			}
			if tc.wantReqs > 0 && proxy.requests.Load() != tc.wantReqs {
				t.Errorf("%d requests, want %d", proxy.requests.Load(), tc.wantReqs)
			}
			if tc.wantRetry != "" {
				if v := metricValue(t, reg, "sluice_objstore_s3_retries_total", tc.wantRetry); v < 1 {
					t.Errorf("sluice_objstore_s3_retries_total{operation=%q} = %v", tc.wantRetry, v)
				}
			}
			if elapsed > 5*time.Second {
				t.Errorf("took %s", elapsed)
			}
			t.Logf("%d requests, %d faults, retries %v, %s, err %v", proxy.requests.Load(), proxy.injected.Load(), calls, elapsed.Round(time.Millisecond), err)
		})
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func checkContent(ctx context.Context, b objstore.Bucket, key string, want []byte) error {
	rc, err := b.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s: %d bytes read, content differs from the %d written", key, len(got), len(want))
	}
	return nil
}

// TestS3FailedCommitLeavesNothing: a multipart upload whose part failed for good, or whose
// completion failed for good, fails its Commit, makes no object (not one missing that part) and
// leaves no unfinished upload behind.
func TestS3FailedCommitLeavesNothing(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	big := randBytes(12<<20, 7)
	for _, tc := range []struct {
		name  string
		match func(*http.Request) bool
	}{
		{"part refused", func(r *http.Request) bool { return isUploadPart(r) && r.URL.Query().Get("partNumber") == "1" }},
		{"completion refused", isComplete},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy, proxyURL := startFaultProxy(t, endpoint, tc.match, 100, 400, "InvalidArgument")
			b := s3test.Open(t, "s3://"+bucket+"/failed-commit/"+strings.ReplaceAll(tc.name, " ", "-"), s3test.Options(t, proxyURL))
			ctx := t.Context()
			w, err := b.Create(ctx, "obj")
			if err != nil {
				t.Fatal(err)
			}
			_, werr := w.Write(big)
			cerr := w.Commit(ctx)
			if cerr == nil || proxy.injected.Load() == 0 {
				t.Fatalf("commit after a refused request: write %v, commit %v, %d faults injected", werr, cerr, proxy.injected.Load())
			}
			if _, err := b.Stat(ctx, "obj"); !errors.Is(err, objstore.ErrNotFound) {
				t.Fatalf("object after a failed commit: %v", err)
			}
			if n, err := b.AbortStale(ctx, "", time.Now().Add(time.Hour)); err != nil || n != 0 {
				t.Fatalf("%d unfinished uploads left (%v)", n, err)
			}
		})
	}
}

// TestS3SilentEndpoint: an endpoint that accepts requests and never answers (a hung gateway) is
// given up on after the response-header timeout, retried with a retry reported, and failed within
// the retry budget — instead of waiting on one request for minutes without a sign.
func TestS3SilentEndpoint(t *testing.T) {
	release := make(chan struct{})
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		select { // hold the request unanswered until the client gives up, or the test ends
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "sk", "AWS_REGION": "us-east-1",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_PROFILE": "", "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"} {
		t.Setenv(k, v)
	}
	var retries atomic.Int64
	opts := objstore.WithHeaderTimeout(objstore.Options{Endpoint: srv.URL, PathStyle: true, RetryMaxElapsed: 2 * time.Second,
		OnRetry: func(string, error) { retries.Add(1) }}, 200*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := objstore.Open(ctx, "s3://silent/p", opts)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = b.Put(ctx, "k", strings.NewReader("v"))
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "timeout awaiting response headers") {
		t.Fatalf("put to a silent endpoint: %v (after %s)", err, time.Since(start))
	}
	if retries.Load() == 0 || requests.Load() < 2 {
		t.Fatalf("%d retries reported, %d requests seen: %#v", retries.Load(), requests.Load(), err)
	}
}
