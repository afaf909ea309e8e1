//go:build faults

package faults

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Kinds of S3 fault the proxy injects.
const (
	fault503       = "s3 503 SlowDown"
	fault500       = "s3 500 InternalError"
	faultReset     = "s3 connection reset"
	faultSlow      = "s3 slow response"
	faultTruncated = "s3 truncated body"
	faultLost      = "s3 lost response" // forwarded (S3 did it), then the connection is reset
	faultDown      = "s3 down"
)

var faultKinds = []string{fault503, fault500, faultReset, faultSlow, faultTruncated, faultLost}

// faultProxy sits between the stages and versitygw on loopback. In faulty mode each request fails
// with probability rate, with one of faultKinds; in down mode every request fails (503 or reset).
type faultProxy struct {
	srv    *httptest.Server
	rp     *httputil.ReverseProxy
	rate   atomic.Uint64 // float64 bits
	down   atomic.Bool
	mu     sync.Mutex
	rng    *rand.Rand
	counts map[string]int64
	reqs   atomic.Int64
	ops    map[string]int64 // requests by S3 operation (multipart ones at least)
	// uploads created by CreateMultipartUpload requests whose answer the client never got: S3 made
	// them, nobody knows their id, only AbortStale (StaleUploadAge later) collects them.
	orphans map[string]bool
}

func startFaultProxy(t *testing.T, endpoint string, seed int64) *faultProxy {
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{rng: rand.New(rand.NewPCG(uint64(seed), 7)), counts: map[string]int64{}, orphans: map[string]bool{},
		ops: map[string]int64{}}
	p.rp = httputil.NewSingleHostReverseProxy(target) // keeps the Host header: signatures verify
	p.rp.ErrorLog = log.New(io.Discard, "", 0)        // aborted bodies are the point
	p.srv = httptest.NewServer(p)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *faultProxy) URL() string { return p.srv.URL }

func (p *faultProxy) setRate(r float64) { p.rate.Store(floatBits(r)) }
func (p *faultProxy) setDown(d bool)    { p.down.Store(d) }

func (p *faultProxy) count(kind string) {
	p.mu.Lock()
	p.counts[kind]++
	p.mu.Unlock()
}

func (p *faultProxy) snapshot() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int64, len(p.counts))
	for k, v := range p.counts {
		out[k] = v
	}
	return out
}

// pick decides the fate of one request: "" passes it through.
func (p *faultProxy) pick() (kind string, slow time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down.Load() {
		if p.rng.IntN(2) == 0 {
			return faultDown + " 503", 0
		}
		return faultDown + " reset", 0
	}
	if p.rng.Float64() >= floatFrom(p.rate.Load()) {
		return "", 0
	}
	k := faultKinds[p.rng.IntN(len(faultKinds))]
	return k, time.Duration(300+p.rng.IntN(2700)) * time.Millisecond
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.reqs.Add(1)
	p.mu.Lock()
	p.ops[operation(r)]++
	p.mu.Unlock()
	kind, slow := p.pick()
	if kind == faultTruncated && r.Method != http.MethodGet {
		kind = faultReset // only a body can be cut short
	}
	if kind != "" {
		p.count(kind)
	}
	switch kind {
	case "":
		p.rp.ServeHTTP(w, r)
	case fault503, faultDown + " 503":
		_, _ = io.Copy(io.Discard, r.Body)
		s3Error(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
	case fault500:
		_, _ = io.Copy(io.Discard, r.Body)
		s3Error(w, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
	case faultReset, faultDown + " reset":
		reset(w)
	case faultSlow:
		time.Sleep(slow)
		p.rp.ServeHTTP(w, r)
	case faultTruncated:
		rp := *p.rp
		rp.ModifyResponse = func(resp *http.Response) error {
			if resp.ContentLength > 1 {
				resp.Body = &cutBody{rc: resp.Body, left: resp.ContentLength / 2}
			}
			return nil
		}
		rp.ServeHTTP(w, r)
	case faultLost:
		rec := httptest.NewRecorder()
		p.rp.ServeHTTP(rec, r)
		if r.Method == http.MethodPost && r.URL.Query().Has("uploads") && rec.Code == http.StatusOK {
			var out struct {
				UploadID string `xml:"UploadId"`
			}
			if xml.Unmarshal(rec.Body.Bytes(), &out) == nil && out.UploadID != "" {
				p.mu.Lock()
				p.orphans[out.UploadID] = true
				p.mu.Unlock()
			}
		}
		reset(w)
	}
}

// reset drops the connection with a TCP RST, no answer.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><RequestId>faults</RequestId></Error>`, code, msg)
}

// cutBody returns an error once left bytes were read: the proxy then aborts the response.
type cutBody struct {
	rc   io.ReadCloser
	left int64
}

var errCut = errors.New("faults: body cut short")

func (c *cutBody) Read(b []byte) (int, error) {
	if c.left <= 0 {
		return 0, errCut
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.rc.Read(b)
	c.left -= int64(n)
	return n, err
}

func (c *cutBody) Close() error { return c.rc.Close() }

func isOrphan(p *faultProxy, uploadID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.orphans[strings.TrimSpace(uploadID)]
}

func floatBits(f float64) uint64 { return math.Float64bits(f) }
func floatFrom(b uint64) float64 { return math.Float64frombits(b) }

// operation names the S3 operation of a path-style request (roughly: enough for the figures).
func operation(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodPost && q.Has("uploads"):
		return "CreateMultipartUpload"
	case r.Method == http.MethodPost && q.Has("uploadId"):
		return "CompleteMultipartUpload"
	case r.Method == http.MethodPut && q.Has("partNumber"):
		return "UploadPart"
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		return "AbortMultipartUpload"
	case r.Method == http.MethodGet && q.Has("uploads"):
		return "ListMultipartUploads"
	case r.Method == http.MethodGet && q.Get("list-type") == "2":
		return "ListObjectsV2"
	case r.Method == http.MethodPut:
		return "PutObject"
	case r.Method == http.MethodGet:
		return "GetObject"
	case r.Method == http.MethodHead:
		return "HeadObject"
	case r.Method == http.MethodDelete:
		return "DeleteObject"
	}
	return r.Method
}

func (p *faultProxy) opCounts() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int64, len(p.ops))
	for k, v := range p.ops {
		out[k] = v
	}
	return out
}
