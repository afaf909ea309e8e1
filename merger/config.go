package merger

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/internal/objstore"
)

// Defaults of Config.
const (
	DefaultMemoryBudget   = 256 << 20
	DefaultAckWait        = 60 * time.Second
	DefaultPinnedTTL      = 30 * time.Second
	DefaultMaxAckPending  = 200_000
	DefaultMaxDeliver     = 5
	DefaultRowGroupBytes  = 32 << 20
	DefaultMaxObjectBytes = 1 << 30
	DefaultStaleUploadAge = time.Hour
	DefaultStaleSweep     = time.Hour
	DefaultZstdLevel      = 1
)

// Config configures a Merger. The zero value is usable.
type Config struct {
	// Instance names this process; unique per process. Default hostname-pid.
	Instance string
	// Partitions to serve; nil serves every partition (bus.Subjects.Partitions).
	Partitions []int
	// MemoryBudget bounds buffered chunk bytes plus Arrow builders across ALL open batches of this
	// process (default 256 MiB). Over it, the largest in-memory batch's chunks are released (they
	// stay in the rows stream, fetched back by a commit that needs them), then rows parsed on
	// arrival are given up, then fetching pauses until memory is back under the budget.
	MemoryBudget int64
	// SpillDir holds quarantine scratch files (default
	// os.TempDir()/sluice-spill-<instance>). Files of ours left there by a crash are removed at
	// start; the directory is removed when Run returns if it is empty.
	SpillDir string
	// AckWait of the consumers (default 60s). Held messages are kept alive with InProgress every
	// AckWait/3.
	AckWait time.Duration
	// PinnedTTL: after this long without a pull from the owner, a partition's pin moves to another
	// merger (default 30s).
	PinnedTTL time.Duration
	// MaxAckPending of each partition consumer (default 200 000).
	//
	// Rule: a held (un-acked) message carries no payload in memory once its chunk is released, so
	// MaxAckPending bounds handles, not bytes. It must exceed the largest number of chunks that can
	// be outstanding on one partition before their markers arrive: roughly the sum, over archives
	// being extracted at the same time, of their chunks on that partition. With 1 MiB chunks,
	// 200 000 covers 200 GiB of in-flight CSV per partition. Should the server stop delivering
	// because ack-pending reached the limit while no held batch can complete, the merger breaks the
	// deadlock by moving the batch that started last to the tail of the stream (republish its
	// chunks, ack the originals), so the older batches can receive their remaining chunks and
	// markers.
	MaxAckPending int
	// MaxDeliver of the consumers (default 5). A marker whose counts still do not match on its
	// MaxDeliver-th delivery is dead-lettered.
	MaxDeliver int
	// RowGroupBytes of Arrow data per Parquet row group (default 32 MiB, at most MemoryBudget/4).
	RowGroupBytes int64
	// ParseLimit: a batch's rows are parsed into typed Arrow columns as its chunks arrive (split and
	// classified once, with type inference; table.Collector), up to this many bytes of parsed rows
	// per batch, counted as allocated (default MemoryBudget·3/4); beyond it, or when its columns
	// cannot be converted to the schema the batch commits under, the batch is parsed from its CSV at
	// commit. Negative: always parse at commit.
	ParseLimit int64
	// EarlyGroups: how many groups (a table's process date and batch id in one batch) larger than a
	// row group may be written early at once, their row groups encoded and uploaded as their chunks
	// arrive (merger/early.go; default max(2, MemoryBudget / (2·RowGroupBytes))). Negative: none.
	EarlyGroups int
	// MaxObjectBytes: a Parquet object is rotated (part-<archive>-0001.parquet, …) once it holds
	// this many bytes (default 1 GiB).
	MaxObjectBytes int64
	// StaleUploadAge: unfinished uploads older than this are aborted at start-up (default 1h).
	StaleUploadAge time.Duration
	// StaleSweep: while running, every StaleSweep the merger aborts the unfinished uploads older
	// than StaleSweepAge (default 1h; negative: never). Those are what a killed writer left (an
	// S3 multipart upload, billed until aborted; a temporary file), on a merger that does not
	// restart: a cluster node, a long-running `sluice run`. On S3 a sweep lists the unfinished
	// uploads only; in a folder it walks the output tree, as the start-up sweep does.
	StaleSweep time.Duration
	// StaleSweepAge (default DefaultStaleUploadAge, 1h) must be well past the longest write: an
	// S3 upload's age counts from its creation, and a write whose upload is aborted fails (an
	// early write then falls back to writing the group at commit; a commit is retried).
	StaleSweepAge time.Duration
	// RetryDelay is the Nak delay of a marker whose counts do not match yet (default AckWait/2).
	// (MaxDeliver-1)·RetryDelay must exceed AckWait: when an owner dies holding some chunks of a
	// batch, its successor may receive the marker before those chunks, which come back only when
	// their AckWait runs out; the marker must not be dead-lettered before that.
	RetryDelay time.Duration
	// ZstdLevel of the Parquet objects (default 1). arrow-go maps it onto klauspost/compress's
	// encoder speeds: 1 fastest, 2–5 default (≈ zstd 3), 6–9 better, 10+ best. On the bench
	// corpus level 3 makes objects ~2% smaller for ~20% more encoder CPU (docs/BENCHMARKS.md).
	ZstdLevel int
}

// Deps are the merger's collaborators.
type Deps struct {
	Bus      *bus.Bus
	Out      objstore.Bucket
	Partners *config.File          // nil: defaults
	Log      *slog.Logger          // nil: discarded
	Metrics  prometheus.Registerer // nil: no metrics
	Alloc    memory.Allocator      // nil: memory.DefaultAllocator
	Now      func() time.Time      // nil: time.Now
	// Ledger, when set, lets the merger skip a redelivered batch whose archive the ledger already
	// shows committed at that attempt (or superseded by a newer attempt), and lets Replay record
	// each replayed archive. Nil: every batch is merged; replays are not recorded.
	Ledger *ledger.Ledger
}

// withDefaults checks the required dependencies and fills the optional ones.
func (d Deps) withDefaults() (Deps, error) {
	switch {
	case d.Bus == nil || d.Bus.JS == nil || d.Bus.NC == nil:
		return d, errors.New("a connected bus is required")
	case d.Out == nil:
		return d, errors.New("an output bucket is required")
	}
	d.Log = cmp.Or(d.Log, slog.New(slog.DiscardHandler))
	d.Alloc = cmp.Or(d.Alloc, memory.DefaultAllocator)
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Partners == nil {
		d.Partners = &config.File{}
		if err := d.Partners.Validate(); err != nil {
			return d, err
		}
	}
	return d, nil
}

// prepare validates cfg and deps and fills their defaults, and reads the partners' table
// settings: where New and Replay start.
func prepare(cfg Config, deps Deps) (Config, Deps, *tableSettings, error) {
	deps, err := deps.withDefaults()
	if err != nil {
		return cfg, deps, nil, err
	}
	nparts := deps.Bus.Subjects.Partitions
	if err := cfg.Validate(nparts); err != nil {
		return cfg, deps, nil, fmt.Errorf("config: %w", err)
	}
	tables, err := newTableSettings(deps.Partners)
	return cfg.withDefaults(nparts), deps, tables, err
}

func defaultInstance() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "merger"
	}
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}

// withDefaults fills zero values; partitions is the bus partition count.
func (c Config) withDefaults(partitions int) Config {
	if c.Instance == "" {
		c.Instance = defaultInstance()
	}
	if c.Partitions == nil {
		c.Partitions = make([]int, partitions)
		for i := range c.Partitions {
			c.Partitions[i] = i
		}
	}
	if c.MemoryBudget == 0 {
		c.MemoryBudget = DefaultMemoryBudget
	}
	if c.SpillDir == "" {
		c.SpillDir = filepath.Join(os.TempDir(), "sluice-spill-"+safeName(c.Instance))
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.PinnedTTL == 0 {
		c.PinnedTTL = DefaultPinnedTTL
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = DefaultMaxAckPending
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if c.RowGroupBytes == 0 {
		c.RowGroupBytes = min(int64(DefaultRowGroupBytes), c.MemoryBudget/4)
	}
	if c.ParseLimit == 0 {
		c.ParseLimit = c.MemoryBudget / 4 * 3
	}
	if c.EarlyGroups == 0 {
		c.EarlyGroups = max(2, int(c.MemoryBudget/(2*c.RowGroupBytes)))
	}
	if c.MaxObjectBytes == 0 {
		c.MaxObjectBytes = DefaultMaxObjectBytes
	}
	if c.StaleUploadAge == 0 {
		c.StaleUploadAge = DefaultStaleUploadAge
	}
	if c.StaleSweep == 0 {
		c.StaleSweep = DefaultStaleSweep
	}
	if c.StaleSweepAge == 0 {
		c.StaleSweepAge = DefaultStaleUploadAge
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = c.AckWait / 2
	}
	if c.ZstdLevel == 0 {
		c.ZstdLevel = DefaultZstdLevel
	}
	return c
}

// Validate reports a configuration that cannot work; partitions is the bus partition count.
func (c Config) Validate(partitions int) error {
	c = c.withDefaults(partitions)
	var errs []error
	if len(c.Partitions) == 0 {
		errs = append(errs, errors.New("no partition to serve"))
	}
	seen := map[int]bool{}
	for _, p := range c.Partitions {
		if p < 0 || p >= partitions {
			errs = append(errs, fmt.Errorf("partition %d out of range [0,%d)", p, partitions))
		}
		if seen[p] {
			errs = append(errs, fmt.Errorf("partition %d listed twice", p))
		}
		seen[p] = true
	}
	if c.MemoryBudget < 1<<20 {
		errs = append(errs, fmt.Errorf("memory budget %d is below 1 MiB", c.MemoryBudget))
	}
	if c.RowGroupBytes <= 0 || c.RowGroupBytes > c.MemoryBudget/2 {
		errs = append(errs, fmt.Errorf("row group bytes %d must be in (0, memory budget/2]", c.RowGroupBytes))
	}
	if c.MaxObjectBytes <= 0 {
		errs = append(errs, fmt.Errorf("max object bytes %d <= 0", c.MaxObjectBytes))
	}
	if c.AckWait < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("ack wait %s is too short", c.AckWait))
	}
	if c.PinnedTTL < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("pinned ttl %s is too short", c.PinnedTTL))
	}
	if c.MaxAckPending < 1 {
		errs = append(errs, fmt.Errorf("max ack pending %d < 1", c.MaxAckPending))
	}
	if c.MaxDeliver < 1 {
		errs = append(errs, fmt.Errorf("max deliver %d < 1", c.MaxDeliver))
	}
	if c.ZstdLevel < 1 || c.ZstdLevel > 22 {
		errs = append(errs, fmt.Errorf("zstd level %d outside [1,22]", c.ZstdLevel))
	}
	if c.StaleUploadAge < 0 || c.StaleSweepAge < 0 || c.RetryDelay < 0 {
		errs = append(errs, errors.New("negative duration"))
	}
	if c.MaxDeliver > 1 && time.Duration(c.MaxDeliver-1)*c.RetryDelay <= c.AckWait {
		errs = append(errs, fmt.Errorf("(max deliver-1)×retry delay = %s must exceed ack wait %s, or a dead owner's chunks come back after their marker was dead-lettered",
			time.Duration(c.MaxDeliver-1)*c.RetryDelay, c.AckWait))
	}
	return errors.Join(errs...)
}

// safeName keeps [A-Za-z0-9._-] and replaces anything else with '_'.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '_'
	}, s)
}
