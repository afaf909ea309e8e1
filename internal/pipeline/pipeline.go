// Package pipeline wires the four stages together: what `sluice run` does, in a form tests can
// call. It owns no behaviour of its own beyond orchestration: start the stages, (in once mode)
// scan the landing area, wait until every archive found is terminal and summarized, and turn
// the outcome into an exit code.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-dev/sluice/extractor"
	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/merger"
	"github.com/sluice-dev/sluice/producer"
	"github.com/sluice-dev/sluice/summarizer"
)

// Options are the stage settings of one process.
type Options struct {
	Landing            string // directory or s3://bucket/prefix
	Out                string // directory or s3://bucket/prefix
	Once               bool
	Poll               time.Duration
	StableFor          time.Duration // how long a local file must keep its size and mtime (0 = producer default)
	ExtractConcurrency int
	ExtractWindow      int    // chunks in flight per extractor (0 = extractor default)
	ChunkCodec         string // how the extractor sends chunk data: "s2" or "none" ("" = extractor default, s2)
	MemoryBudget       int64
	ZstdLevel          int // Parquet zstd level (0 = merger default)
	SpillDir           string
	ServePartitions    []int
	Instance           string
	S3                 objstore.Options // endpoint, path style; Logger/Registerer are filled from Env
}

// Env is what the stages share in one process.
type Env struct {
	Log      *slog.Logger
	Bus      *bus.Bus
	Partners *config.File
	Ledger   *ledger.Ledger
	Reg      prometheus.Registerer // may be nil

	mu      sync.Mutex
	buckets map[string]objstore.Bucket
}

// NewEnv builds an Env over a connected bus (streams ensured).
func NewEnv(ctx context.Context, b *bus.Bus, partners *config.File, log *slog.Logger, reg prometheus.Registerer) (*Env, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if partners == nil {
		var err error
		if partners, err = config.Load(""); err != nil {
			return nil, err
		}
	}
	kv, err := b.Ledger(ctx)
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	return &Env{Log: log, Bus: b, Partners: partners, Ledger: ledger.New(kv, nil), Reg: reg, buckets: map[string]objstore.Bucket{}}, nil
}

// Close closes the buckets the Env opened.
func (e *Env) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, b := range e.buckets {
		_ = b.Close()
		delete(e.buckets, k)
	}
}

// Bucket opens (once) the bucket at location: a directory (created if missing) or s3://bucket/prefix.
func (e *Env) Bucket(ctx context.Context, location string, o objstore.Options) (objstore.Bucket, error) {
	if location == "" {
		return nil, errors.New("location required")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if b, ok := e.buckets[location]; ok {
		return b, nil
	}
	if !strings.HasPrefix(location, "s3://") {
		dir := location
		if u, err := url.Parse(location); err == nil && u.Scheme == "file" {
			dir = u.Path
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	o.Logger, o.Registerer = e.Log, e.Reg
	b, err := objstore.Open(ctx, location, o)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", location, err)
	}
	e.buckets[location] = b
	return b, nil
}

// OpenURI opens an archive named by an ArchiveLanded event (file:// or s3://).
func (e *Env) OpenURI(ctx context.Context, uri string, o objstore.Options) (io.ReadCloser, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", uri, err)
	}
	switch u.Scheme {
	case "s3":
		b, err := e.Bucket(ctx, "s3://"+u.Host, o)
		if err != nil {
			return nil, err
		}
		return b.Get(ctx, strings.TrimPrefix(u.Path, "/"))
	case "file":
		return os.Open(u.Path)
	case "":
		return os.Open(uri)
	}
	return nil, fmt.Errorf("open %s: unsupported scheme %q", uri, u.Scheme)
}

// NewProducer builds the producer for o.Landing.
func NewProducer(ctx context.Context, e *Env, o Options) (*producer.Producer, error) {
	if o.Landing == "" {
		return nil, errors.New("landing area required")
	}
	deps := producer.Deps{Bus: e.Bus, Ledger: e.Ledger, Partners: e.Partners, Log: e.Log.With("stage", "producer"), Metrics: e.Reg}
	if strings.HasPrefix(o.Landing, "s3://") {
		b, err := e.Bucket(ctx, o.Landing, o.S3)
		if err != nil {
			return nil, err
		}
		deps.Landing = b
	}
	return producer.New(producer.Config{Landing: o.Landing, Once: o.Once, PollInterval: o.Poll, StableFor: o.StableFor}, deps)
}

// NewExtractor builds the extractor.
func NewExtractor(_ context.Context, e *Env, o Options) (*extractor.Extractor, error) {
	cfg := extractor.Config{Concurrency: o.ExtractConcurrency, PublishWindow: o.ExtractWindow, ChunkCodec: o.ChunkCodec}
	return extractor.New(cfg, extractor.Deps{
		Bus: e.Bus, Partners: e.Partners, Ledger: e.Ledger, Log: e.Log, Metrics: e.Reg, // the extractor adds stage=extractor itself
		Open: func(ctx context.Context, uri string) (io.ReadCloser, error) { return e.OpenURI(ctx, uri, o.S3) },
	})
}

// NewMerger builds a merger writing to o.Out.
func NewMerger(ctx context.Context, e *Env, o Options) (*merger.Merger, error) {
	if o.Out == "" {
		return nil, errors.New("output location required")
	}
	out, err := e.Bucket(ctx, o.Out, o.S3)
	if err != nil {
		return nil, err
	}
	return merger.New(merger.Config{Instance: o.Instance, Partitions: o.ServePartitions, MemoryBudget: o.MemoryBudget, ZstdLevel: o.ZstdLevel, SpillDir: o.SpillDir},
		merger.Deps{Bus: e.Bus, Out: out, Partners: e.Partners, Log: e.Log.With("stage", "merger"), Metrics: e.Reg})
}

// NewSummarizer builds the summarizer writing to o.Out.
func NewSummarizer(ctx context.Context, e *Env, o Options) (*summarizer.Summarizer, error) {
	if o.Out == "" {
		return nil, errors.New("output location required")
	}
	out, err := e.Bucket(ctx, o.Out, o.S3)
	if err != nil {
		return nil, err
	}
	return summarizer.New(summarizer.Config{}, summarizer.Deps{Bus: e.Bus, Ledger: e.Ledger, Out: out, Partners: e.Partners,
		Log: e.Log.With("stage", "summarizer"), Metrics: e.Reg})
}

// Result is the outcome of a once run.
type Result struct {
	Scan   producer.ScanResult
	Status summarizer.Status
	Took   time.Duration
	Code   int // 0 all ingested, 2 finished with recorded rejections/quarantine, 1 failure
}

// Run starts every stage. In once mode it returns when every archive found at start is
// terminal and summarized; otherwise it runs until ctx is done. started, when non-nil, is
// called with the summarizer once the stages run (for a progress display).
func Run(ctx context.Context, e *Env, o Options, started func(*summarizer.Summarizer)) (*Result, error) {
	begin := time.Now()
	if o.SpillDir == "" {
		o.SpillDir = filepath.Join(os.TempDir(), "sluice-spill")
	}
	prod, err := NewProducer(ctx, e, o)
	if err != nil {
		return nil, err
	}
	ext, err := NewExtractor(ctx, e, o)
	if err != nil {
		return nil, err
	}
	mrg, err := NewMerger(ctx, e, o)
	if err != nil {
		return nil, err
	}
	sum, err := NewSummarizer(ctx, e, o)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(runCtx)
	for name, st := range map[string]interface{ Run(context.Context) error }{"extractor": ext, "merger": mrg, "summarizer": sum} {
		g.Go(func() error {
			if err := st.Run(gctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	if started != nil {
		started(sum)
	}
	if !o.Once {
		g.Go(func() error {
			if err := prod.Run(gctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("producer: %w", err)
			}
			return nil
		})
		err := g.Wait()
		return &Result{Status: sum.Status(), Took: time.Since(begin)}, err
	}

	res := &Result{}
	res.Scan, err = prod.Scan(gctx)
	if err != nil {
		cancel()
		_ = g.Wait()
		return nil, fmt.Errorf("scan landing: %w", err)
	}
	e.Log.Info("landing scanned", "new", len(res.Scan.Landed), "pending", len(res.Scan.Pending),
		"duplicates", len(res.Scan.Duplicates), "unchanged", res.Scan.Unchanged)
	wait := append(append([]string{}, res.Scan.Landed...), res.Scan.Pending...)
	type waited struct {
		st  summarizer.Status
		err error
	}
	done := make(chan waited, 1)
	go func() {
		st, err := sum.WaitFor(gctx, wait)
		done <- waited{st, err}
	}()
	var w waited
	select {
	case w = <-done:
	case <-gctx.Done():
		cancel()
		werr := g.Wait()
		if werr == nil {
			werr = ctx.Err()
		}
		return nil, fmt.Errorf("pipeline stopped before finishing: %w", werr)
	}
	cancel()
	werr := g.Wait()
	if w.err != nil {
		return nil, w.err
	}
	if werr != nil {
		return nil, werr
	}
	res.Status, res.Took = w.st, time.Since(begin)
	res.Code = ExitCode(w.st, wait)
	return res, nil
}

// ExitCode maps a final status to the process exit code of a once run: 1 when a check failed
// (rows in != rows out), 2 when anything was rejected, quarantined or failed with a recorded
// reason, else 0. Only the archives of this run (ids) count.
func ExitCode(st summarizer.Status, ids []string) int {
	code := 0
	for _, id := range ids {
		a, ok := st.Archives[id]
		if !ok {
			continue
		}
		switch {
		case a.Checked && !a.CheckOK:
			return 1
		case a.State == summarizer.StateFailed, a.Quarantined > 0, a.Rejected > 0:
			code = 2
		}
	}
	return code
}
