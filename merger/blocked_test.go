package merger

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-dev/sluice/internal/objstore"
)

// TestOutputBlockedSaidOnce: an output that refuses writes is logged once per outage at error
// level, shown by the gauge, and its recovery is logged once.
func TestOutputBlockedSaidOnce(t *testing.T) {
	var logs bytes.Buffer
	out, err := objstore.Open(t.Context(), t.TempDir(), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "blocked"})
	c := &committer{out: out, log: slog.New(slog.NewTextHandler(&logs, nil)), blockedGauge: g}
	denied := errors.New("403 access denied")
	for range 5 {
		c.outputBlocked("access denied", denied)
	}
	if v := testutil.ToFloat64(g); v != 1 {
		t.Errorf("gauge %v while blocked", v)
	}
	c.outputBlocked("", nil)
	c.outputBlocked("", nil)
	if v := testutil.ToFloat64(g); v != 0 {
		t.Errorf("gauge %v after recovery", v)
	}
	if n := strings.Count(logs.String(), "output refuses writes"); n != 1 {
		t.Errorf("%d error lines for one outage:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "output accepts writes again"); n != 1 {
		t.Errorf("%d recovery lines:\n%s", n, logs.String())
	}
}

// failFirstPut refuses the first Put of a key under prefix, then behaves.
type failFirstPut struct {
	objstore.Bucket
	prefix string
	failed atomic.Bool
}

func (b *failFirstPut) Put(ctx context.Context, key string, r io.Reader) error {
	if strings.HasPrefix(key, b.prefix) && b.failed.CompareAndSwap(false, true) {
		return errors.New("injected: put refused")
	}
	return b.Bucket.Put(ctx, key, r)
}

// TestCommitRetryLeavesNothingUnfinished: a commit that fails after its Parquet objects were
// written (the quarantine's Put is refused) aborts them before it is retried: the retry commits
// the batch and no unfinished upload (S3 multipart upload, temporary file) of the failed attempt
// is left in the output.
func TestCommitRetryLeavesNothingUnfinished(t *testing.T) {
	for _, sk := range sinks {
		t.Run(sk.name, func(t *testing.T) {
			var fb *failFirstPut
			e := newEnv(t, sink{sk.name, func(t *testing.T) objstore.Bucket {
				fb = &failFirstPut{Bucket: sk.open(t), prefix: "_quarantine/"}
				return fb
			}})
			ev := e.committedEvents()
			r := e.start(restartConfig("m1"), nil, nil)
			e.publishBatch(restartBatch())
			bc := ev.nextCommitted(t, 60*time.Second)
			if !fb.failed.Load() || bc.RowsOut != 4000 || bc.Quarantined != 1 || len(bc.Objects) < 4 {
				t.Fatalf("commit after a refused put (refused: %v): %v", fb.failed.Load(), bc)
			}
			if n := r.metric(t, "sluice_merger_commit_retries_total"); n != 1 {
				t.Fatalf("%v commit retries, want 1", n)
			}
			e.cleared(r)
		})
	}
}
