package merger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/crashpoint"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/quality"
	"github.com/sluice-dev/sluice/internal/table"
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
	mem     *relief // the memory budget the Arrow builders are accounted against
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
	// quality holds the partners' data-quality rules; force commits a batch although a fail rule
	// failed (a forced replay: `sluice dlq retry --force`), which the event records.
	quality *qualityRules
	force   bool

	blockMu      sync.Mutex
	blocked      string                 // why the output refuses writes ("" when it does not)
	blockedGauge prometheus.Gauge       // sluice_merger_output_blocked; nil for a replay
	parsed       *prometheus.CounterVec // sluice_merger_groups_parsed_total; nil for a replay
	retries      prometheus.Counter     // sluice_merger_commit_retries_total; nil for a replay

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
func newCommitter(cfg Config, deps Deps, mem *relief) *committer {
	c := &committer{cfg: cfg, bus: deps.Bus, out: deps.Out, alloc: deps.Alloc, mem: mem, log: deps.Log, now: deps.Now,
		quality: &qualityRules{partners: deps.Partners}}
	c.semCap = max(cfg.MemoryBudget/2, cfg.RowGroupBytes+commitOverhead)
	c.sem = semaphore.NewWeighted(c.semCap)
	c.pqOpts, c.arrowProps = writerProps(c.alloc, cfg.ZstdLevel)
	return c
}

// collectConfig is how the batches committed here parse their rows on arrival.
func (c *committer) collectConfig() collectConfig {
	return collectConfig{alloc: c.alloc, segment: c.cfg.RowGroupBytes, limit: c.cfg.ParseLimit}
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
// rewritten with the same rows. mk is the batch's marker, received when it arrived.
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
			c.outputBlocked("", nil)
			return res, nil
		}
		var perm *permanentError
		if ctx.Err() != nil || errors.As(err, &perm) || attempt == retry.attempts {
			return nil, err
		}
		if c.retries != nil {
			c.retries.Inc()
		}
		if problem := objstore.AccessProblem(err); problem != "" {
			// The output refuses every write until an operator fixes credentials or the bucket:
			// said once, loudly, and shown by sluice_merger_output_blocked; the batch is held and
			// retried, nothing is dead-lettered for it.
			c.outputBlocked(problem, err)
		} else {
			c.log.Warn("commit failed, retrying", "table", b.key.table, "archive", b.key.archive, "attempt", attempt,
				"retry_in", backoff, "err", err)
		}
		sleepCtx(ctx, backoff)
		backoff = min(2*backoff, retry.max)
	}
}

// outputBlocked records whether the output refuses writes (problem "" when a commit succeeded):
// the first refusal of an outage is logged at error level, the recovery at info.
func (c *committer) outputBlocked(problem string, err error) {
	c.blockMu.Lock()
	prev := c.blocked
	c.blocked = problem
	c.blockMu.Unlock()
	switch {
	case problem != "" && prev == "":
		c.log.Error("output refuses writes: batches are held until it is fixed", "output", c.out.URI(""), "problem", problem, "err", err)
	case problem == "" && prev != "":
		c.log.Info("output accepts writes again", "output", c.out.URI(""))
	}
	if c.blockedGauge != nil {
		v := 0.0
		if problem != "" {
			v = 1
		}
		c.blockedGauge.Set(v)
	}
}

// permanentError marks a commit failure that retrying cannot fix; the batch is dead-lettered.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err: err} }

// commitResult is what a batch's commit made visible.
type commitResult struct {
	schema        *table.Schema
	changed       bool
	objects       []*sluicev1.CommittedObject
	rowsOut       int64
	bytes         int64
	quarantined   int64
	quality       []quality.Result // every rule's outcome, group by group
	qualityKey    string           // the first group's _dq/results object
	qualityFailed bool             // a fail rule failed (the commit was forced)
	kinds         map[string]int64
	quarantineKey string
}

// publishCommitted publishes BatchCommitted synchronously, de-duplicated by its message id.
func (c *committer) publishCommitted(ctx context.Context, b *batch, mk *sluicev1.BatchComplete, res *commitResult, received time.Time) error {
	ev := &sluicev1.BatchCommitted{
		ArchiveId:       b.key.archive,
		Attempt:         b.key.attempt,
		Table:           b.key.table,
		Objects:         res.objects,
		RowsIn:          mk.Rows,
		RowsOut:         res.rowsOut,
		Bytes:           res.bytes,
		Quarantined:     res.quarantined,
		QuarantineKey:   res.quarantineKey,
		DurationMs:      c.now().Sub(received).Milliseconds(),
		CommittedUnixMs: c.now().UnixMilli(),
		Merger:          c.cfg.Instance,
		Replay:          b.key.attempt > 0 || c.replayID != "", // attempts are bumped only by re-extraction
		Quality:         protoResults(res.quality),
		QualityKey:      res.qualityKey,
		QualityForced:   res.qualityFailed,
	}
	if res.schema != nil {
		ev.SchemaVersion = res.schema.Version
		if res.changed {
			ev.SchemaChanges = res.schema.Changes
		}
	}
	kinds := make([]string, 0, len(res.kinds))
	for k := range res.kinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		ev.QuarantineReasons = append(ev.QuarantineReasons, &sluicev1.QuarantineCount{Reason: k, Rows: res.kinds[k]})
	}
	id := bus.CommittedID(b.key.archive, b.key.attempt, b.key.table)
	if c.replayID != "" { // a replay's event must not be swallowed by de-duplication
		id = bus.ReplayCommittedID(b.key.archive, b.key.attempt, b.key.table, c.replayID)
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := c.bus.PublishEvent(pctx, c.bus.Subjects.Committed(), id, b.key.archive, ev, bus.WithTable(b.key.table))
	if errors.Is(err, bus.ErrEncode) {
		return permanent(err)
	}
	return err
}

// writeBatch evolves the schema and writes every group's objects; it commits them (quarantine
// first, then Parquet) only when all were written.
func (c *committer) writeBatch(ctx context.Context, b *batch) (res *commitResult, err error) {
	res = &commitResult{kinds: map[string]int64{}}
	chunks := b.orderedChunks()
	if len(chunks) == 0 { // a batch with no chunk (no member had a record nor a header)
		s, _, err := c.loadSchema(ctx, schemaRegistryKey(b.key.table))
		res.schema = s
		return res, err
	}
	res.schema, res.changed, err = c.evolve(ctx, b.key.table, b.columns(), b.opts)
	if err != nil {
		return nil, err
	}
	var outs []*groupOut
	defer func() {
		for _, o := range outs {
			o.removeScratch()
			if err != nil {
				o.abortParts(ctx)
			}
		}
	}()
	// The schema document, the quarantine, the data-quality results and the profiles are written
	// concurrently, and only then the Parquet objects: a reader that finds an object finds what
	// goes with it (a crash in between rewrites the same keys). Writes that need no order between
	// them wait for their durability together: a request each for S3, the fsyncs of file and
	// directory for a folder. The schema document goes first, while the groups are encoded, and
	// also when the batch then fails (its version is in the registry already).
	var aux errgroup.Group
	waited := false
	defer func() {
		if !waited { // an early return: the writes read the groups' scratch files
			_ = aux.Wait()
		}
	}()
	schema, changed := res.schema, res.changed // res is nil once an early return sets it
	aux.Go(func() error { return c.writeSchemaDoc(ctx, schema, changed) })

	added, widened := schemaChanges(res.schema, res.changed)
	for _, g := range groupsOf(chunks) {
		o := &groupOut{g: g, prefix: groupPrefix(b.key.table, g.processDate, g.batchID), added: added, widened: widened}
		outs = append(outs, o)
		if err := c.writeGroup(ctx, b, res.schema, o); err != nil {
			return nil, err
		}
	}

	type object struct {
		key string
		r   io.Reader
	}
	var objects []object
	for _, o := range outs {
		if o.qrows > 0 {
			if err := o.qbuf.Flush(); err != nil {
				return nil, fmt.Errorf("write quarantine scratch: %w", err)
			}
			if _, err := o.qfile.Seek(0, io.SeekStart); err != nil {
				return nil, fmt.Errorf("rewind quarantine scratch: %w", err)
			}
			key := "_quarantine/" + o.prefix + "part-" + b.key.archive + ".jsonl"
			objects = append(objects, object{key, o.qfile})
			if res.quarantineKey == "" {
				res.quarantineKey = key
			}
			res.quarantined += o.qrows
			for k, n := range o.qkinds {
				res.kinds[k] += n
			}
		}
		resBytes, profBytes, err := c.qualityObjects(o.results, o.profiles)
		if err != nil {
			return nil, permanent(err)
		}
		if len(resBytes) > 0 {
			key := quality.ResultsKey(b.key.table, o.g.processDate, o.g.batchID, b.key.archive)
			objects = append(objects, object{key, bytes.NewReader(resBytes)})
			if res.qualityKey == "" {
				res.qualityKey = key
			}
		}
		if len(profBytes) > 0 {
			key := quality.ProfilesKey(b.key.table, o.g.processDate, o.g.batchID, b.key.archive)
			objects = append(objects, object{key, bytes.NewReader(profBytes)})
		}
		res.quality = append(res.quality, o.results...)
		res.qualityFailed = res.qualityFailed || o.failed
	}
	for _, obj := range objects {
		aux.Go(func() error {
			if err := c.out.Put(ctx, obj.key, obj.r); err != nil {
				return fmt.Errorf("put %s: %w", obj.key, err)
			}
			return nil
		})
	}
	waited = true
	if err := aux.Wait(); err != nil {
		return nil, err
	}

	// The Parquet objects become visible together (a batch's parts and groups need no order).
	var parts errgroup.Group
	parts.SetLimit(8)
	for _, o := range outs {
		for _, p := range o.parts {
			parts.Go(func() error {
				if err := p.w.Commit(ctx); err != nil {
					return fmt.Errorf("commit %s: %w", p.key, err)
				}
				p.w = nil
				return nil
			})
		}
	}
	if err := parts.Wait(); err != nil {
		return nil, err
	}
	for _, o := range outs {
		for _, p := range o.parts {
			res.objects = append(res.objects, &sluicev1.CommittedObject{
				Key: p.key, ProcessDate: o.g.processDate, BatchId: o.g.batchID, Rows: p.rows, Bytes: p.cw.n,
			})
			res.rowsOut += p.rows
			res.bytes += p.cw.n
		}
		c.removeStaleParts(ctx, o.prefix, b.key.archive, len(o.parts))
	}
	return res, nil
}

// commitOverhead is what a commit holds besides its Arrow builder: encoder pages and
// dictionaries, the output writer's buffer, scratch for one decoded chunk.
const commitOverhead = 2 << 20

// commitWeight is the memory a commit of b may hold at once: parsed from the CSV, its Arrow data
// grows to about 1.5× the CSV bytes it parses, but at most two row groups are alive (one being
// written, the next being built). A batch parsed on arrival weighs the same: its rows are counted
// in the budget already, but admitting such commits by what they add (the encoders' buffers)
// measured slower on the flights preset (more commits at once, more memory, a busier collector).
func (c *committer) commitWeight(b *batch) int64 {
	csv := b.csvBytes()
	return min(min(csv+csv/2, 2*c.cfg.RowGroupBytes)+commitOverhead, c.semCap)
}
