package merger

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/table"
)

// Writing a large group early: a group (one process date and batch id of a batch) whose rows
// parsed on arrival fill more than one row group has its sealed segments written as they fill,
// as the row groups of its objects (a multipart upload, or a temporary file), under the schema
// its batch would commit under if it ended now: the registry's current schema evolved with what
// the batch has inferred so far. Its memory is then one open segment and one row group being
// encoded, however large the member, and its encoding runs while the rest of the archive is
// still being extracted instead of after the marker.
//
// Nothing becomes visible early: the objects are committed by the batch's commit, which adopts
// them only if the batch commits under exactly that schema (same version, columns and types), the
// group's absent columns are the same and every row parsed on arrival was written; otherwise (a
// column widened after the start, another batch changed the table's schema, a write failed,
// the rows were given up) the early objects are aborted and the group is written from its CSV
// as without this (the chunks are kept until the commit, as always). The output is the same as
// the commit would write from the rows parsed on arrival.

// earlyConfig is how a merger's batches write large groups early.
type earlyConfig struct {
	c     *committer
	ctx   context.Context // the merger's run context: early writes end with it
	slots chan struct{}   // one token per group being written early

	aborting sync.WaitGroup   // aborts in progress (Run waits for them before it returns)
	gauge    prometheus.Gauge // sluice_merger_early_groups
}

// earlyStartSegments is how many sealed segments a group holds before it is written early.
const earlyStartSegments = 1

// newEarlyConfig returns how the merger writes groups early (nil when Config.EarlyGroups < 0).
func newEarlyConfig(ctx context.Context, c *committer, gauge prometheus.Gauge) *earlyConfig {
	if c.cfg.EarlyGroups < 0 {
		return nil
	}
	return &earlyConfig{c: c, ctx: ctx, slots: make(chan struct{}, c.cfg.EarlyGroups), gauge: gauge}
}

// earlyGroup is a group being written early.
type earlyGroup struct {
	cfg    *earlyConfig
	s      *table.Schema
	absent []string
	o      *groupOut

	mu     sync.Mutex // taken by write, finish and abort: one at a time
	gw     *groupWriter
	rowsIn int64 // rows handed to the writer (before the data-quality rules)
	err    error // the first failed write: the group is then not adopted
	done   bool  // finished or aborted
}

// startEarly starts writing the group (processDate, batchID) early, under the registry's schema
// evolved with cols (the batch's inferred columns); nil when it cannot (no slot free, or the
// registry not answering: then the group is marked not to try again). Called by writeEarly with
// no lock held.
func (b *batch) startEarly(cols []table.ColumnType, processDate, batchID string) *earlyGroup {
	ec := b.collect.early
	select {
	case ec.slots <- struct{}{}:
	default:
		return nil
	}
	c := ec.c
	gctx, cancel := context.WithTimeout(ec.ctx, 5*time.Second)
	prev, _, err := c.loadSchema(gctx, schemaRegistryKey(b.key.table))
	cancel()
	if err != nil {
		<-ec.slots
		b.collectMu.Lock()
		if g := b.collected[[2]string{processDate, batchID}]; g != nil {
			g.noEarly = true
		}
		b.collectMu.Unlock()
		c.log.Debug("not writing early: schema registry", "table", b.key.table, "err", err)
		return nil
	}
	s, _ := table.Evolve(b.key.table, prev, cols, b.opts)
	g := &group{processDate: processDate, batchID: batchID}
	absent := b.groupAbsent(g, s)
	o := &groupOut{g: g, prefix: groupPrefix(b.key.table, g.processDate, g.batchID)}
	// The run's context, not one of the group's own: the objects' uploads, started by its writes,
	// must outlive the group until the batch's commit completes them. An abort ends them.
	gw, err := c.newGroupWriter(ec.ctx, b, s, absent, o)
	if err != nil {
		<-ec.slots
		return nil
	}
	ec.gauge.Inc()
	c.log.Info("writing a group early", "table", b.key.table, "archive", b.key.archive, "process_date", g.processDate,
		"batch_id", g.batchID, "schema_version", s.Version)
	return &earlyGroup{cfg: ec, s: s, absent: absent, o: o, gw: gw}
}

// groupAbsent is absentColumns for the chunks of g received so far.
func (b *batch) groupAbsent(g *group, s *table.Schema) []string {
	var chunks []*chunk
	b.mu.Lock()
	for _, ch := range b.chunks {
		if ch.processDate == g.processDate && ch.batchID == g.batchID {
			chunks = append(chunks, ch)
		}
	}
	b.mu.Unlock()
	return absentColumns(b, chunks, s)
}

// write writes recs (taken from the group's Collector) as the next row groups; acct is the
// budget bytes they hold, given back as they are written (or dropped).
func (e *earlyGroup) write(recs []arrow.RecordBatch, acct int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, rec := range recs {
		share := acct*int64(i+1)/int64(len(recs)) - acct*int64(i)/int64(len(recs))
		if e.done || e.err != nil {
			rec.Release()
			e.cfg.c.mem.add(-share)
			continue
		}
		e.rowsIn += rec.NumRows()
		if err := e.gw.emit(rec, share); err != nil {
			e.err = err
			e.cfg.c.log.Info("writing a group early failed: it is written at commit", "table", e.gw.b.key.table,
				"archive", e.gw.b.key.archive, "process_date", e.o.g.processDate, "batch_id", e.o.g.batchID, "err", err)
		}
	}
}

// adoptable converts the rest of the group's rows parsed on arrival (coll, consumed) to s for
// the commit; it returns why the early objects cannot be the group's when the batch commits
// under s with the group's columns absent and rows rows in its chunks.
func (e *earlyGroup) adoptable(s *table.Schema, absent []string, rows int64, coll *table.Collector) ([]arrow.RecordBatch, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.err != nil:
		return nil, "an early write failed: " + e.err.Error()
	case coll == nil:
		return nil, "rows parsed on arrival given up"
	case !sameSchema(e.s, s):
		return nil, "the batch commits under another schema"
	case !slices.Equal(e.absent, absent):
		return nil, "other members joined the group"
	case e.rowsIn+int64(coll.Rows()) != rows || int64(coll.Taken()) != e.rowsIn:
		// Never expected: every row of the chunks is in the objects or in the Collector, once.
		return nil, fmt.Sprintf("%d rows written early and %d held, of %d (%d taken)", e.rowsIn, coll.Rows(), rows, coll.Taken())
	}
	recs, err := coll.Records(s)
	if err != nil {
		return nil, err.Error()
	}
	return recs, ""
}

// sameSchema reports whether objects written under a are what writing under b makes.
func sameSchema(a, b *table.Schema) bool {
	return a.Table == b.Table && a.Version == b.Version &&
		slices.EqualFunc(a.Columns, b.Columns, func(x, y table.Column) bool { return x.Name == y.Name && x.Type == y.Type })
}

// finishEarly writes recs (the rest of the group's rows) and finishes the group written early;
// its objects and quarantine scratch become o's, committed (or aborted) with the batch's.
func (c *committer) finishEarly(ctx context.Context, e *earlyGroup, recs []arrow.RecordBatch, o *groupOut) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	defer e.release()
	e.done = true
	e.o.added, e.o.widened = o.added, o.widened
	err := e.gw.emitAll(ctx, recs)
	if err == nil {
		err = e.gw.finish(ctx)
	}
	e.gw.close()
	g := o.g
	*o = *e.o
	o.g = g
	if err == nil {
		c.countParsed("early")
	}
	return err
}

// abort stops writing early and aborts what was written (the group is written at commit).
func (e *earlyGroup) abort(why string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done {
		return
	}
	e.done = true
	defer e.release()
	e.gw.close()
	e.o.abortParts(e.cfg.ctx)
	e.o.removeScratch()
	b := e.gw.b
	e.cfg.c.log.Info("stopped writing a group early: it is written at commit", "table", b.key.table, "archive", b.key.archive,
		"process_date", e.o.g.processDate, "batch_id", e.o.g.batchID, "why", why)
}

// release frees the group's slot (e.mu held, once).
func (e *earlyGroup) release() {
	e.cfg.gauge.Dec()
	<-e.cfg.slots
}
