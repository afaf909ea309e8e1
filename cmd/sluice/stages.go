package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/extractor"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/merger"
	"github.com/sluice-dev/sluice/producer"
	"github.com/sluice-dev/sluice/summarizer"
)

// stageFlags are the per-stage knobs, registered on the common flag set.
type stageFlags struct {
	landing, out       string
	once               bool
	poll               time.Duration
	extractConcurrency int
	memoryBudget       int64
	partitionsServed   string
	instance           string
}

func (s *stageFlags) register(fs *flag.FlagSet, want ...string) {
	for _, w := range want {
		switch w {
		case "landing":
			fs.StringVar(&s.landing, "landing", "", "landing area: a directory or s3://bucket/prefix")
		case "out":
			fs.StringVar(&s.out, "out", "", "output root: a directory or s3://bucket/prefix")
		case "once":
			fs.BoolVar(&s.once, "once", false, "take what is in the landing area now, finish it, then exit")
		case "poll":
			fs.DurationVar(&s.poll, "poll", 0, "landing poll interval (default 250ms for a folder, 2s for S3)")
		case "extract":
			fs.IntVar(&s.extractConcurrency, "extract-concurrency", 2, "archives extracted at once")
		case "merge":
			fs.Int64Var(&s.memoryBudget, "memory-budget", 256<<20, "merger memory budget in bytes (buffered chunks and builders)")
			fs.StringVar(&s.partitionsServed, "serve-partitions", "", "comma-separated partitions this merger serves (default all)")
			fs.StringVar(&s.instance, "instance", "", "merger instance name (default hostname-pid)")
		}
	}
}

func (s *stageFlags) partitionsList() ([]int, error) {
	if s.partitionsServed == "" {
		return nil, nil
	}
	var out []int
	for _, p := range strings.Split(s.partitionsServed, ",") {
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(p), "%d", &n); err != nil {
			return nil, fmt.Errorf("serve-partitions %q: %w", p, err)
		}
		out = append(out, n)
	}
	return out, nil
}

func openBucket(ctx context.Context, c *common, e *env, location string) (objstore.Bucket, error) {
	if location == "" {
		return nil, errors.New("location required")
	}
	if !strings.HasPrefix(location, "s3://") {
		if err := os.MkdirAll(strings.TrimPrefix(location, "file://"), 0o755); err != nil {
			return nil, err
		}
	}
	b, err := objstore.Open(ctx, location, c.objOptions(e.log, e.reg))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", location, err)
	}
	return objstore.WrapWithMetrics(b, e.reg), nil
}

func newProducer(ctx context.Context, c *common, s *stageFlags, e *env) (*producer.Producer, error) {
	if s.landing == "" {
		return nil, &exitError{code: 2, err: errors.New("--landing is required")}
	}
	deps := producer.Deps{Bus: e.bus, Ledger: e.ledger, Partners: e.partners, Log: e.log.With("stage", "producer"), Metrics: e.reg}
	if strings.HasPrefix(s.landing, "s3://") {
		b, err := openBucket(ctx, c, e, s.landing)
		if err != nil {
			return nil, err
		}
		deps.Landing = b
	}
	return producer.New(producer.Config{Landing: s.landing, Once: s.once, PollInterval: s.poll}, deps)
}

func newExtractor(ctx context.Context, c *common, s *stageFlags, e *env) (*extractor.Extractor, error) {
	deps := extractor.Deps{Bus: e.bus, Partners: e.partners, Ledger: e.ledger, Log: e.log.With("stage", "extractor"), Metrics: e.reg,
		Open: func(ctx context.Context, uri string) (ioReadCloser, error) { return openURI(ctx, c, e, uri) }}
	return extractor.New(extractor.Config{Concurrency: s.extractConcurrency}, deps)
}

func newMerger(ctx context.Context, c *common, s *stageFlags, e *env) (*merger.Merger, error) {
	if s.out == "" {
		return nil, &exitError{code: 2, err: errors.New("--out is required")}
	}
	out, err := openBucket(ctx, c, e, s.out)
	if err != nil {
		return nil, err
	}
	parts, err := s.partitionsList()
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	cfg := merger.Config{Instance: s.instance, Partitions: parts, MemoryBudget: s.memoryBudget, SpillDir: filepath.Join(c.state, "spill")}
	return merger.New(cfg, merger.Deps{Bus: e.bus, Out: out, Partners: e.partners, Log: e.log.With("stage", "merger"), Metrics: e.reg})
}

func newSummarizer(ctx context.Context, c *common, s *stageFlags, e *env) (*summarizer.Summarizer, error) {
	if s.out == "" {
		return nil, &exitError{code: 2, err: errors.New("--out is required")}
	}
	out, err := openBucket(ctx, c, e, s.out)
	if err != nil {
		return nil, err
	}
	return summarizer.New(summarizer.Config{}, summarizer.Deps{Bus: e.bus, Ledger: e.ledger, Out: out, Partners: e.partners, Log: e.log.With("stage", "summarizer"), Metrics: e.reg})
}

// stage runs one stage alone against a shared --nats.
func stage(name string, want []string, build func(ctx context.Context, c *common, s *stageFlags, e *env) (interface{ Run(context.Context) error }, error)) func(ctx context.Context, args []string) error {
	return func(ctx context.Context, args []string) error {
		c := newCommon(name)
		var s stageFlags
		s.register(c.fs, want...)
		if err := c.parse(args); err != nil {
			return err
		}
		e, closeAll, err := c.setup(ctx, name)
		if err != nil {
			return err
		}
		defer closeAll()
		st, err := build(ctx, c, &s, e)
		if err != nil {
			return err
		}
		e.log.Info("started")
		err = st.Run(ctx)
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		e.log.Info("stopped", "err", err)
		return err
	}
}

var (
	cmdProducer = stage("producer", stageWants["producer"], func(ctx context.Context, c *common, s *stageFlags, e *env) (interface{ Run(context.Context) error }, error) {
		return newProducer(ctx, c, s, e)
	})
	cmdExtractor = stage("extractor", stageWants["extractor"], func(ctx context.Context, c *common, s *stageFlags, e *env) (interface{ Run(context.Context) error }, error) {
		return newExtractor(ctx, c, s, e)
	})
	cmdMerger = stage("merger", stageWants["merger"], func(ctx context.Context, c *common, s *stageFlags, e *env) (interface{ Run(context.Context) error }, error) {
		return newMerger(ctx, c, s, e)
	})
	cmdSummarizer = stage("summarizer", stageWants["summarizer"], func(ctx context.Context, c *common, s *stageFlags, e *env) (interface{ Run(context.Context) error }, error) {
		return newSummarizer(ctx, c, s, e)
	})
)

// stageWants lists the stage-specific flag groups of each subcommand.
var stageWants = map[string][]string{
	"producer":   {"landing", "once", "poll"},
	"extractor":  {"extract"},
	"merger":     {"out", "merge"},
	"summarizer": {"out"},
	"run":        {"landing", "out", "once", "poll", "extract", "merge"},
}

// commandFlags builds the flag set of a stage subcommand (used by the compose test).
func commandFlags(name string) *flag.FlagSet {
	c := newCommon(name)
	var s stageFlags
	s.register(c.fs, stageWants[name]...)
	if name == "run" {
		registerRunFlags(c.fs, new(string))
	}
	return c.fs
}
