package objstore_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/objstore"
)

// metricValue returns the value of a counter (or a histogram's sample count) with the given
// operation label; -1 when absent.
func metricValue(t *testing.T, reg prometheus.Gatherer, name, op string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "operation" && l.GetValue() == op {
					if h := m.GetHistogram(); h != nil {
						return float64(h.GetSampleCount())
					}
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

func TestWrapWithMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := openBucket(t, t.TempDir(), objstore.Options{Registerer: reg}) // Open wraps
	ctx := t.Context()

	put(t, b, "a", []byte("hello"))
	w, err := b.Create(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("0123456789"))
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	_ = w.Abort(ctx) // deferred-style Abort after Commit: not an abort
	w2, _ := b.Create(ctx, "c")
	_, _ = w2.Write([]byte("dropped"))
	_ = w2.Abort(ctx)

	if _, err := b.Stat(ctx, "missing"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, "../bad"); err == nil {
		t.Fatal("stat of a bad key succeeded")
	}
	if got := get(t, b, "b"); string(got) != "0123456789" {
		t.Fatalf("get = %q", got)
	}
	rc, err := b.GetRange(ctx, "b", 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(rc)
	rc.Close()
	stop := errors.New("stop")
	_ = b.List(ctx, "", "", func(objstore.Attrs) error { return stop })
	_ = b.Delete(ctx, "a")

	// A second bucket on the same registerer shares the series instead of panicking.
	b2 := objstore.WrapWithMetrics(openBucket(t, t.TempDir(), objstore.Options{}), reg)
	put(t, b2, "x", []byte("12"))

	for _, tc := range []struct {
		name, op string
		want     float64
	}{
		{"sluice_objstore_operations_total", objstore.OpPut, 2},
		{"sluice_objstore_operations_total", objstore.OpCreate, 1},
		{"sluice_objstore_operations_total", objstore.OpAbort, 1},
		{"sluice_objstore_operations_total", objstore.OpStat, 2},
		{"sluice_objstore_operation_failures_total", objstore.OpStat, 1}, // the bad key, not the missing one
		{"sluice_objstore_operations_total", objstore.OpGet, 1},
		{"sluice_objstore_operations_total", objstore.OpGetRange, 1},
		{"sluice_objstore_operations_total", objstore.OpList, 1},
		{"sluice_objstore_operation_failures_total", objstore.OpList, 0}, // fn's error is not the store's
		{"sluice_objstore_operations_total", objstore.OpDelete, 1},
		{"sluice_objstore_operations_total", objstore.OpAbortStale, 0},
		{"sluice_objstore_written_bytes_total", objstore.OpPut, 7},
		{"sluice_objstore_written_bytes_total", objstore.OpCreate, 10},
		{"sluice_objstore_fetched_bytes_total", objstore.OpGet, 10},
		{"sluice_objstore_fetched_bytes_total", objstore.OpGetRange, 3},
		{"sluice_objstore_operation_duration_seconds", objstore.OpPut, 2},
		{"sluice_objstore_operation_duration_seconds", objstore.OpCreate, 1},
	} {
		if got := metricValue(t, reg, tc.name, tc.op); got != tc.want {
			t.Errorf("%s{operation=%q} = %v, want %v", tc.name, tc.op, got, tc.want)
		}
	}
	if objstore.WrapWithMetrics(b, nil) != b {
		t.Error("a nil registerer should return the bucket itself")
	}
	if !strings.HasPrefix(b.URI("k"), "file://") {
		t.Errorf("URI through the decorator = %q", b.URI("k"))
	}
}
