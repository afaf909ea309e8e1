package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/extractor"
	"github.com/sluice-dev/sluice/internal/pipeline"
	"github.com/sluice-dev/sluice/merger"
	"github.com/sluice-dev/sluice/producer"
	"github.com/sluice-dev/sluice/summarizer"
)

// stageFlags are the per-stage knobs, registered on the common flag set.
type stageFlags struct {
	landing, out       string
	once               bool
	poll, stableFor    time.Duration
	extractConcurrency int
	extractWindow      int
	chunkCodec         string
	memoryBudget       int64
	parseOnArrival     bool
	zstdLevel          int
	partitionsServed   string
	instance           string
	httpAddr           string // dashboard (internal/ui); empty: none
	groups             map[string]bool
}

func (s *stageFlags) register(fs *flag.FlagSet, want ...string) {
	s.groups = map[string]bool{}
	for _, w := range want {
		s.groups[w] = true
		switch w {
		case "landing":
			fs.StringVar(&s.landing, "landing", "", "landing area: a directory or s3://bucket/prefix")
		case "out":
			fs.StringVar(&s.out, "out", "", "output root: a directory or s3://bucket/prefix")
		case "once":
			fs.BoolVar(&s.once, "once", false, "take what is in the landing area now, finish it, then exit")
		case "poll":
			fs.DurationVar(&s.poll, "poll", 0, fmt.Sprintf("landing poll interval (default %s for a folder, %s for S3)",
				producer.DefaultDirPollInterval, producer.DefaultS3PollInterval))
			fs.DurationVar(&s.stableFor, "stable-for", 0, fmt.Sprintf("a local file must keep its size and mtime this long before it is taken (default %s)",
				producer.DefaultStableFor))
		case "extract":
			fs.IntVar(&s.extractConcurrency, "extract-concurrency", extractor.DefaultConcurrency, "archives extracted at once")
			fs.IntVar(&s.extractWindow, "publish-window", 0, fmt.Sprintf("chunks in flight per extractor (0 = default %d; memory ≈ window × chunk size)",
				extractor.DefaultPublishWindow))
			fs.StringVar(&s.chunkCodec, "chunk-codec", extractor.DefaultChunkCodec, "how chunk data is sent: s2 (each chunk compressed by the extractor when that saves at least 1/8) or none")
		case "http":
			fs.StringVar(&s.httpAddr, "http-addr", "", "serve the read-only dashboard on host:port (empty: off; a host-less :port binds 127.0.0.1)")
		case "merge":
			s.memoryBudget = merger.DefaultMemoryBudget
			fs.Var(sizeValue{&s.memoryBudget}, "memory-budget", "merger memory budget (buffered chunks and builders), bytes or with a unit: 256MiB, 1GiB")
			fs.BoolVar(&s.parseOnArrival, "parse-on-arrival", true, "parse a batch's rows into typed columns as its chunks arrive (fields split once for inference and Arrow), up to 3/4 of memory-budget per batch; false: parse every batch from its CSV at commit")
			fs.IntVar(&s.zstdLevel, "parquet-zstd-level", merger.DefaultZstdLevel, "zstd level of the Parquet objects: 1 fastest … 22 (2-5 ≈ zstd's default 3: ~2% smaller, ~20% more encoder CPU)")
			fs.StringVar(&s.partitionsServed, "serve-partitions", "", "comma-separated partitions this merger serves (default all)")
			fs.StringVar(&s.instance, "instance", "", "merger instance name (default hostname-pid)")
		}
	}
}

// options turns the flags into pipeline options, refusing values no stage could use (exit 64).
func (s *stageFlags) options(c *common) (pipeline.Options, error) {
	usage := func(format string, args ...any) (pipeline.Options, error) {
		return pipeline.Options{}, &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
	}
	for _, u := range []string{s.landing, s.out} {
		if strings.HasPrefix(strings.ToLower(u), "s3:") && !strings.HasPrefix(u, "s3://") {
			return usage("%q: an S3 location is written s3://bucket/prefix", u)
		}
	}
	if s.chunkCodec == "" {
		s.chunkCodec = extractor.DefaultChunkCodec // SLUICE_CHUNK_CODEC= (empty) is the default, as before
	}
	switch g := s.groups; {
	case s.poll < 0 || s.stableFor < 0:
		return usage("--poll %s, --stable-for %s: want 0 (the default) or a positive duration", s.poll, s.stableFor)
	case g["extract"] && s.extractConcurrency < 1:
		return usage("--extract-concurrency %d: want at least 1", s.extractConcurrency)
	case s.extractWindow < 0:
		return usage("--publish-window %d: want 0 (the default) or more", s.extractWindow)
	case g["extract"] && s.chunkCodec != "s2" && s.chunkCodec != "none":
		return usage("--chunk-codec %q: want s2 or none", s.chunkCodec)
	}
	if g := s.groups; g["merge"] {
		if err := checkMergeValues(s.memoryBudget, s.zstdLevel); err != nil {
			return pipeline.Options{}, err
		}
	}
	o := pipeline.Options{
		Landing: s.landing, Out: s.out, Once: s.once, Poll: s.poll, StableFor: s.stableFor,
		ExtractConcurrency: s.extractConcurrency, ExtractWindow: s.extractWindow, ChunkCodec: s.chunkCodec,
		MemoryBudget: s.memoryBudget, ZstdLevel: s.zstdLevel, Instance: s.instance,
		SpillDir: filepath.Join(c.state, "spill"),
	}
	if !s.parseOnArrival {
		o.ParseLimit = -1
	}
	o.S3.Endpoint, o.S3.PathStyle = c.s3Endpoint, c.s3PathStyle
	if s.partitionsServed != "" {
		for _, p := range strings.Split(s.partitionsServed, ",") {
			var n int
			if _, err := fmt.Sscanf(strings.TrimSpace(p), "%d", &n); err != nil {
				return o, &exitError{code: exitUsage, err: fmt.Errorf("serve-partitions %q: %w", p, err)}
			}
			if n < 0 || n >= c.partitions {
				return usage("--serve-partitions: partition %d does not exist (--partitions %d: 0 to %d)", n, c.partitions, c.partitions-1)
			}
			o.ServePartitions = append(o.ServePartitions, n)
		}
	}
	return o, nil
}

type runner interface{ Run(context.Context) error }

// stage runs one stage alone against a shared --nats.
func stage(name string, build func(ctx context.Context, e *pipeline.Env, o pipeline.Options) (runner, error)) func(ctx context.Context, args []string) error {
	return func(ctx context.Context, args []string) error {
		c := newCommon(name)
		var s stageFlags
		s.register(c.fs, stageWants[name]...)
		if err := c.parse(args); err != nil {
			return err
		}
		o, err := s.options(c)
		if err != nil {
			return err
		}
		e, closeAll, err := c.setup(ctx, name)
		if err != nil {
			return err
		}
		defer closeAll()
		if err := c.bindOut(ctx, e, s.out, name == "merger"); err != nil {
			return err
		}
		st, err := build(ctx, e, o)
		var pe *pipeline.ProbeError
		switch {
		case errors.As(err, &pe):
			return &exitError{code: exitFailure, err: err}
		case err != nil:
			return &exitError{code: exitUsage, err: err}
		}
		if s.httpAddr != "" {
			stopUI, err := startUI(ctx, e, o.Out, o.S3, s.httpAddr)
			if err != nil {
				return err
			}
			defer stopUI()
		}
		c.ops.stageReady(name, e.Bus, o)
		if sum, ok := st.(*summarizer.Summarizer); ok {
			c.ops.summarizerReady(sum)
		}
		e.Log.Info("started")
		err = st.Run(ctx)
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		e.Log.Info("stopped", "err", err)
		if err != nil {
			return stageFailure(err)
		}
		return nil
	}
}

// stageFailure is the exit of a stage that stopped with err: 78 when its configuration was refused
// (data-quality rules that do not fit the tables, merger.ErrRulesDoNotFit), else 1.
func stageFailure(err error) *exitError {
	if errors.Is(err, merger.ErrRulesDoNotFit) {
		return &exitError{code: exitConfig, err: err}
	}
	return &exitError{code: exitFailure, err: err}
}

// checkMergeValues refuses (64) a memory budget or zstd level no commit can use: the merger's
// flags and replay's.
func checkMergeValues(budget int64, zstdLevel int) error {
	switch {
	case budget <= 0:
		return &exitError{code: exitUsage, err: fmt.Errorf("--memory-budget %d: want a positive size, e.g. 96MiB", budget)}
	case zstdLevel < 1 || zstdLevel > 22:
		return &exitError{code: exitUsage, err: fmt.Errorf("--parquet-zstd-level %d: want 1 to 22", zstdLevel)}
	}
	return nil
}

var (
	cmdProducer = stage("producer", func(ctx context.Context, e *pipeline.Env, o pipeline.Options) (runner, error) {
		return pipeline.NewProducer(ctx, e, o)
	})
	cmdExtractor = stage("extractor", func(ctx context.Context, e *pipeline.Env, o pipeline.Options) (runner, error) {
		return pipeline.NewExtractor(ctx, e, o)
	})
	cmdMerger = stage("merger", func(ctx context.Context, e *pipeline.Env, o pipeline.Options) (runner, error) {
		return pipeline.NewMerger(ctx, e, o)
	})
	cmdSummarizer = stage("summarizer", func(ctx context.Context, e *pipeline.Env, o pipeline.Options) (runner, error) {
		return pipeline.NewSummarizer(ctx, e, o)
	})
)

// stageWants lists the stage-specific flag groups of each subcommand.
var stageWants = map[string][]string{
	"producer":   {"landing", "once", "poll"},
	"extractor":  {"extract"},
	"merger":     {"out", "merge"},
	"summarizer": {"out", "http"},
	"run":        {"landing", "out", "once", "poll", "extract", "merge", "http"},
}

// commandFlags builds the flag set of a subcommand (the compose test, docs/FLAGS.md).
func commandFlags(name string) *flag.FlagSet {
	if name == "run" {
		c, _, _, _ := newRunFlags()
		return c.fs
	}
	c := newCommon(name)
	var s stageFlags
	s.register(c.fs, stageWants[name]...)
	switch name {
	case "ui":
		registerUIFlags(c.fs, new(string), new(string))
	}
	return c.fs
}
