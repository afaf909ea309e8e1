package producer_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/producer"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// env is one test's bus, ledger and metrics registry.
type env struct {
	bus    *bus.Bus
	ledger *ledger.Ledger
	reg    *prometheus.Registry
	clock  *clock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	b := bustest.New(t)
	kv, err := b.Ledger(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &env{bus: b, ledger: ledger.New(kv, nil), reg: prometheus.NewRegistry()}
}

// deps returns producer dependencies; partners may be nil (default configuration).
func (e *env) deps(t *testing.T, partners *config.File) producer.Deps {
	d := producer.Deps{
		Bus:      e.bus,
		Ledger:   e.ledger,
		Partners: partners,
		Log:      slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		Metrics:  e.reg,
	}
	if e.clock != nil {
		d.Now = e.clock.Now
	}
	return d
}

func (e *env) producer(t *testing.T, cfg producer.Config, partners *config.File) *producer.Producer {
	t.Helper()
	p, err := producer.New(cfg, e.deps(t, partners))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// metric returns the value of a counter or gauge without labels (0 when absent).
func (e *env) metric(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil: // how many observations
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

// events returns the messages stored on one events subject, oldest first.
func (e *env) events(t *testing.T, subject string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := e.bus.JS.Stream(ctx, e.bus.Subjects.EventsStream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		if m.Subject == subject {
			out = append(out, m)
		}
	}
	return out
}

func (e *env) landed(t *testing.T) []*sluicev1.ArchiveLanded {
	t.Helper()
	var out []*sluicev1.ArchiveLanded
	for _, m := range e.events(t, e.bus.Subjects.Landed()) {
		ev := &sluicev1.ArchiveLanded{}
		if err := proto.Unmarshal(m.Data, ev); err != nil {
			t.Fatal(err)
		}
		if got, want := m.Header.Get("Nats-Msg-Id"), bus.LandedID(ev.ArchiveId, ev.Attempt).String(); got != want {
			t.Errorf("landed Msg-Id %q, want %q", got, want)
		}
		out = append(out, ev)
	}
	return out
}

func (e *env) record(t *testing.T, id string) ledger.Record {
	t.Helper()
	r, _, err := e.ledger.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// archive builds a small .tar.gz whose bytes depend on seed.
func archive(t *testing.T, seed string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	body := []byte("id,name\n1," + seed + "\n")
	if err := tw.WriteHeader(&tar.Header{Name: "t_20250101_1.csv", Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(1700000000, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func idOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])[:20]
}

var old = time.Now().Add(-time.Hour)

// write stores data at dir/rel with the given mtime (zero: an hour ago, i.e. long stable).
func write(t *testing.T, dir, rel string, data []byte, mtime time.Time) string {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if mtime.IsZero() {
		mtime = old
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return p
}

func scan(t *testing.T, p *producer.Producer) producer.ScanResult {
	t.Helper()
	res, err := p.Scan(context.Background())
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	return res
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}
