package merger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/semaphore"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/crashpoint"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// committer is the one commit path of a complete batch, shared by the merger's partitions and by
// Replay:
//
//	commit(batch) → admission → evolve the table schema → write the objects → publish BatchCommitted
//
// It holds what a commit needs and nothing else: the schema registry, the output bucket, the
// Arrow allocator, the memory budget, the commit admission semaphore and the Parquet writer
// settings. What happens around a commit is the caller's: the merger records it in the ledger,
// acks the batch's messages or dead-letters the batch; a replay reports it. A step added to every
// commit (e.g. a data-quality check of the rows before they are written) belongs in commit.
type committer struct {
	cfg     Config          // RowGroupBytes, MaxObjectBytes, SpillDir (quarantine scratch), Instance
	bus     *bus.Bus        // BatchCommitted is published here
	out     objstore.Bucket // the Parquet and quarantine objects, the _schemas/ copies
	schemas schemaStore     // the schema registry (SLUICE_SCHEMAS); set by open
	alloc   memory.Allocator
	mem     *spiller // the memory budget the Arrow builders are accounted against
	log     *slog.Logger
	now     func() time.Time

	// Commits are admitted by the memory they may need (commitWeight), up to half the budget:
	// many small batches commit side by side, one huge batch does not starve the rest.
	sem    *semaphore.Weighted
	semCap int64

	pqOpts     []parquet.WriterProperty // base Parquet writer properties; objectProps adds per-object ones
	arrowProps pqarrow.ArrowWriterProperties

	// replayID is set for a Replay: BatchCommitted says replay=true, with a message id of its own.
	replayID string

	schemaDocs sync.Map // _schemas/<table>/v<N>.json keys known to exist
}

// schemaStore is what the committer needs of the schema registry bucket.
type schemaStore interface {
	Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error)
	Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error)
	Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error)
}

var _ schemaStore = (jetstream.KeyValue)(nil)

// newCommitter builds the commit path from a prepared configuration and dependencies (prepare).
func newCommitter(cfg Config, deps Deps, mem *spiller) *committer {
	c := &committer{cfg: cfg, bus: deps.Bus, out: deps.Out, alloc: deps.Alloc, mem: mem, log: deps.Log, now: deps.Now}
	c.semCap = max(cfg.MemoryBudget/2, cfg.RowGroupBytes+commitOverhead)
	c.sem = semaphore.NewWeighted(c.semCap)
	c.pqOpts, c.arrowProps = writerProps(c.alloc, cfg.ZstdLevel)
	return c
}

// open opens the schema registry.
func (c *committer) open(ctx context.Context) error {
	kv, err := c.bus.Schemas(ctx)
	if err != nil {
		return fmt.Errorf("open schema registry: %w", err)
	}
	c.schemas = kv
	return nil
}

// retryPolicy says how commit retries a failed attempt: after first, doubling up to max, at most
// attempts times (0: until ctx is done).
type retryPolicy struct {
	first, max time.Duration
	attempts   int
}

// commit commits a complete batch: once admitted, it evolves the table's schema, writes and
// commits the objects (quarantine first, then Parquet) and publishes BatchCommitted. A failure
// that is neither permanent (a *permanentError) nor a shutdown is retried under retry with the
// same keys and message id, so a commit is repeatable: what a failed attempt made visible is
// rewritten with the same bytes. mk is the batch's marker, received when it arrived.
func (c *committer) commit(ctx context.Context, b *batch, mk *sluicev1.BatchComplete, received time.Time, retry retryPolicy) (*commitResult, error) {
	w := c.commitWeight(b)
	if err := c.sem.Acquire(ctx, w); err != nil {
		return nil, err
	}
	defer c.sem.Release(w)
	b.inCommit.Store(true)
	defer b.inCommit.Store(false)

	backoff := retry.first
	for attempt := 1; ; attempt++ {
		res, err := c.writeBatch(ctx, b)
		if err == nil {
			crashpoint.Hit("merger.uploaded") // fault tests only (SLUICE_CRASH_AT); no-op otherwise
			err = c.publishCommitted(ctx, b, mk, res, received)
		}
		if err == nil {
			crashpoint.Hit("merger.committed") // fault tests only (SLUICE_CRASH_AT); no-op otherwise
			return res, nil
		}
		var perm *permanentError
		if ctx.Err() != nil || errors.As(err, &perm) || attempt == retry.attempts {
			return nil, err
		}
		c.log.Warn("commit failed, retrying", "table", b.key.table, "archive", b.key.archive, "attempt", attempt,
			"retry_in", backoff, "err", err)
		sleepCtx(ctx, backoff)
		backoff = min(2*backoff, retry.max)
	}
}
