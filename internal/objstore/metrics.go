package objstore

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/promreg"
)

// Operation label values of the sluice_objstore_* metrics.
const (
	OpCreate     = "create" // Create … Commit: counted, timed and failed at Commit
	OpAbort      = "abort"
	OpPut        = "put"
	OpGet        = "get" // timed until the reader is closed
	OpGetRange   = "get_range"
	OpStat       = "stat"
	OpList       = "list"
	OpDelete     = "delete"
	OpAbortStale = "abort_stale"
)

var allOps = []string{OpCreate, OpAbort, OpPut, OpGet, OpGetRange, OpStat, OpList, OpDelete, OpAbortStale}

type bucketMetrics struct {
	ops      *prometheus.CounterVec
	failures *prometheus.CounterVec
	written  *prometheus.CounterVec
	fetched  *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// registerCollector registers c, or returns the collector already registered under the same
// description, so that several buckets opened on one registerer share (and sum into) one set.
func registerCollector[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	c, err := promreg.Register(reg, c)
	if err != nil {
		panic(err) // a name clash with a different metric type is a programming error
	}
	return c
}

func registerCounterVec(reg prometheus.Registerer, opts prometheus.CounterOpts, labels ...string) *prometheus.CounterVec {
	return registerCollector(reg, prometheus.NewCounterVec(opts, labels))
}

func newBucketMetrics(reg prometheus.Registerer) *bucketMetrics {
	m := &bucketMetrics{
		ops: registerCounterVec(reg, prometheus.CounterOpts{
			Name: "sluice_objstore_operations_total",
			Help: "Object store operations, by operation.",
		}, "operation"),
		failures: registerCounterVec(reg, prometheus.CounterOpts{
			Name: "sluice_objstore_operation_failures_total",
			Help: "Object store operations that failed (not-found answers excluded), by operation.",
		}, "operation"),
		written: registerCounterVec(reg, prometheus.CounterOpts{
			Name: "sluice_objstore_written_bytes_total",
			Help: "Bytes of objects committed, by operation.",
		}, "operation"),
		fetched: registerCounterVec(reg, prometheus.CounterOpts{
			Name: "sluice_objstore_fetched_bytes_total",
			Help: "Bytes read from objects, by operation.",
		}, "operation"),
		duration: registerCollector(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_objstore_operation_duration_seconds",
			Help:    "Duration of object store operations (Create: until Commit; Get: until Close).",
			Buckets: []float64{0.001, 0.005, 0.02, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"operation"})),
	}
	for _, op := range allOps {
		m.ops.WithLabelValues(op)
		m.failures.WithLabelValues(op)
		m.duration.WithLabelValues(op)
	}
	for _, op := range []string{OpCreate, OpPut} {
		m.written.WithLabelValues(op)
	}
	for _, op := range []string{OpGet, OpGetRange} {
		m.fetched.WithLabelValues(op)
	}
	return m
}

func (m *bucketMetrics) observe(op string, start time.Time, err error) {
	m.ops.WithLabelValues(op).Inc()
	if err != nil && !errors.Is(err, ErrNotFound) {
		m.failures.WithLabelValues(op).Inc()
	}
	m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

// WrapWithMetrics returns b instrumented with sluice_objstore_{operations_total,
// operation_failures_total, written_bytes_total, fetched_bytes_total,
// operation_duration_seconds}, labelled by operation (Op* constants). A nil reg returns b.
// Buckets wrapped on the same registerer share the series; tell them apart with
// prometheus.WrapRegistererWith(prometheus.Labels{"bucket": …}, reg).
func WrapWithMetrics(b Bucket, reg prometheus.Registerer) Bucket {
	if reg == nil {
		return b
	}
	return &metricBucket{b: b, m: newBucketMetrics(reg)}
}

type metricBucket struct {
	b Bucket
	m *bucketMetrics
}

var _ Bucket = (*metricBucket)(nil)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (mb *metricBucket) Create(ctx context.Context, key string) (Writer, error) {
	start := time.Now()
	w, err := mb.b.Create(ctx, key)
	if err != nil {
		mb.m.observe(OpCreate, start, err)
		return nil, err
	}
	return &metricWriter{w: w, m: mb.m, start: start}, nil
}

func (mb *metricBucket) Put(ctx context.Context, key string, r io.Reader) error {
	start := time.Now()
	cr := &countingReader{r: r}
	err := mb.b.Put(ctx, key, cr)
	mb.m.observe(OpPut, start, err)
	if err == nil {
		mb.m.written.WithLabelValues(OpPut).Add(float64(cr.n))
	}
	return err
}

func (mb *metricBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return mb.get(OpGet, func() (io.ReadCloser, error) { return mb.b.Get(ctx, key) })
}

func (mb *metricBucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	return mb.get(OpGetRange, func() (io.ReadCloser, error) { return mb.b.GetRange(ctx, key, off, length) })
}

func (mb *metricBucket) get(op string, open func() (io.ReadCloser, error)) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := open()
	if err != nil {
		mb.m.observe(op, start, err)
		return nil, err
	}
	return &metricReader{rc: rc, m: mb.m, op: op, start: start}, nil
}

func (mb *metricBucket) Stat(ctx context.Context, key string) (Attrs, error) {
	start := time.Now()
	a, err := mb.b.Stat(ctx, key)
	mb.m.observe(OpStat, start, err)
	return a, err
}

// List does not count an error returned by fn as a failure of the store.
func (mb *metricBucket) List(ctx context.Context, prefix, after string, fn func(Attrs) error) error {
	start := time.Now()
	var fnErr error
	err := mb.b.List(ctx, prefix, after, func(a Attrs) error {
		fnErr = fn(a)
		return fnErr
	})
	storeErr := err
	if fnErr != nil && errors.Is(err, fnErr) {
		storeErr = nil
	}
	mb.m.observe(OpList, start, storeErr)
	return err
}

func (mb *metricBucket) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := mb.b.Delete(ctx, key)
	mb.m.observe(OpDelete, start, err)
	return err
}

func (mb *metricBucket) AbortStale(ctx context.Context, prefix string, olderThan time.Time) (int, error) {
	start := time.Now()
	n, err := mb.b.AbortStale(ctx, prefix, olderThan)
	mb.m.observe(OpAbortStale, start, err)
	return n, err
}

func (mb *metricBucket) URI(key string) string { return mb.b.URI(key) }
func (mb *metricBucket) Close() error          { return mb.b.Close() }

// Unwrap returns the instrumented bucket.
func (mb *metricBucket) Unwrap() Bucket { return mb.b }

type metricWriter struct {
	w     Writer
	m     *bucketMetrics
	start time.Time
	n     int64
	done  bool // Commit was called
}

func (w *metricWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *metricWriter) Commit(ctx context.Context) error {
	err := w.w.Commit(ctx)
	if errors.Is(err, errWriterClosed) {
		return err // misuse, not an operation
	}
	w.done = true
	w.m.observe(OpCreate, w.start, err)
	if err == nil {
		w.m.written.WithLabelValues(OpCreate).Add(float64(w.n))
	}
	return err
}

func (w *metricWriter) Abort(ctx context.Context) error {
	if w.done {
		return w.w.Abort(ctx) // the deferred Abort after Commit: a no-op
	}
	start := time.Now()
	err := w.w.Abort(ctx)
	w.m.observe(OpAbort, start, err)
	return err
}

type metricReader struct {
	rc     io.ReadCloser
	m      *bucketMetrics
	op     string
	start  time.Time
	n      int64
	err    error // first read error other than io.EOF
	closed bool
}

func (r *metricReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.n += int64(n)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

func (r *metricReader) Close() error {
	err := r.rc.Close()
	if r.closed {
		return err
	}
	r.closed = true
	r.m.fetched.WithLabelValues(r.op).Add(float64(r.n))
	failure := r.err
	if failure == nil {
		failure = err
	}
	r.m.observe(r.op, r.start, failure)
	return err
}
