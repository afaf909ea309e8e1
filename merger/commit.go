package merger

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/table"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// permanentError marks a commit failure that retrying cannot fix; the batch is dead-lettered.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err: err} }

// errDeadLettered: the batch was dead-lettered during its commit (its state is already dropped).
var errDeadLettered = errors.New("batch dead-lettered")

// commitResult is what a batch's commit made visible.
type commitResult struct {
	schema        *table.Schema
	changed       bool
	objects       []*sluicev1.CommittedObject
	rowsOut       int64
	bytes         int64
	quarantined   int64
	kinds         map[string]int64
	quarantineKey string
}

// mergerRetry: a merger retries a commit until it succeeds, keeping the batch's messages alive
// meanwhile, so a commit is never half-acked.
var mergerRetry = retryPolicy{first: time.Second, max: 30 * time.Second}

// commitBatch commits a complete batch through the committer, then records it in the ledger and
// acks its messages; a batch whose commit failed permanently is dead-lettered.
func (m *Merger) commitBatch(ctx context.Context, b *batch, mk *sluicev1.BatchComplete, marker handle, msg jetstream.Msg, received time.Time) error {
	res, err := m.commit.commit(ctx, b, mk, received, mergerRetry)
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil { // permanent: the committer retries everything else
		if m.deadLetterBatch(ctx, b, marker, msg, "commit: "+err.Error()) {
			return errDeadLettered
		}
		return err
	}
	m.recordCommitted(ctx, b.key)
	m.ackBatch(ctx, b, marker)
	m.met.committed.Inc()
	m.met.rowsOut.Add(float64(res.rowsOut))
	m.met.bytesWritten.Add(float64(res.bytes))
	if res.quarantined > 0 {
		m.met.quarantined.WithLabelValues(b.key.table).Add(float64(res.quarantined))
	}
	m.met.commitSeconds.Observe(m.now().Sub(received).Seconds())
	m.log.Info("batch committed", "table", b.key.table, "archive", b.key.archive, "attempt", b.key.attempt,
		"objects", len(res.objects), "rows_in", mk.Rows, "rows_out", res.rowsOut, "quarantined", res.quarantined,
		"schema_version", res.schema.Version, "bytes", res.bytes)
	return nil
}

// recordCommitted notes the commit in the archive's ledger record (ledger.BatchCommitted), so a
// marker redelivered alone after a crash — its chunks already acked — is recognised as done
// instead of waiting for chunks that will never come. Best effort: without it such a marker is
// retried, then dead-lettered, as before.
func (m *Merger) recordCommitted(ctx context.Context, k batchKey) {
	if m.deps.Ledger == nil {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := m.deps.Ledger.BatchCommitted(lctx, k.archive, k.attempt, k.table); err != nil {
		m.log.Warn("record committed batch in the ledger", "batch", k.String(), "err", err)
	}
}

// ackBatch acks every chunk, then the marker synchronously: once the marker's ack is confirmed,
// the chunks' acks (sent before it on the same connection) were processed too.
func (m *Merger) ackBatch(ctx context.Context, b *batch, marker handle) {
	for _, h := range b.snapshotHandles() {
		if h.seq == marker.seq {
			continue
		}
		if err := m.ack.ack(h); err != nil {
			m.log.Warn("ack", "seq", h.seq, "err", err)
		}
	}
	if err := m.ack.ackSync(ctx, marker); err != nil {
		// The objects are committed and the event published; a redelivery rewrites the same
		// objects and the event is de-duplicated by its message id.
		m.log.Warn("ack marker", "batch", b.key.String(), "err", err)
	}
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

// tableDir is the table's top-level folder: the name as written, path-escaped when it could not
// be one key segment.
func tableDir(t string) string { return keySegment(t) }

// keySegment returns s when it is usable as one object key segment, else its URL path escape.
func keySegment(s string) string {
	switch {
	case s == "":
		return "_"
	case s == ".":
		return "%2E"
	case s == "..":
		return "%2E%2E"
	case strings.ContainsAny(s, "/\\") || strings.ContainsRune(s, 0):
		return url.PathEscape(strings.ReplaceAll(s, "\\", "%5C"))
	}
	return s
}

func groupPrefix(tbl, processDate, batchID string) string {
	return fmt.Sprintf("%s/process_date=%s/batch_id=%s/", tableDir(tbl), keySegment(processDate), keySegment(batchID))
}

func partName(archive string, i int) string {
	if i == 0 {
		return "part-" + archive + ".parquet"
	}
	return fmt.Sprintf("part-%s-%04d.parquet", archive, i)
}

// schemaKey is where the registry document of a version is copied to in the output.
func schemaKey(tbl string, version uint32) string {
	return fmt.Sprintf("_schemas/%s/v%d.json", tableDir(tbl), version)
}

// evolve merges cols into the table's registered schema with compare-and-set: on a conflict
// (another merger updated it first) it reloads and evolves again.
func (c *committer) evolve(ctx context.Context, tbl string, cols []table.ColumnType, opts table.Options) (*table.Schema, bool, error) {
	key := schemaRegistryKey(tbl)
	for range 100 {
		prev, rev, err := c.loadSchema(ctx, key)
		if err != nil {
			return nil, false, err
		}
		next, changed := table.Evolve(tbl, prev, cols, opts)
		if !changed {
			return next, false, nil
		}
		doc, err := json.Marshal(next)
		if err != nil {
			return nil, false, permanent(fmt.Errorf("encode schema: %w", err))
		}
		if prev == nil {
			_, err = c.schemas.Create(ctx, key, doc)
		} else {
			_, err = c.schemas.Update(ctx, key, doc, rev)
		}
		if err == nil {
			return next, true, nil
		}
		if !isConflict(err) {
			return nil, false, fmt.Errorf("write schema %s: %w", key, err)
		}
		c.log.Debug("schema registry conflict, retrying", "table", tbl)
	}
	return nil, false, fmt.Errorf("write schema %s: too many conflicts", key)
}

// schemaRegistryKey is the registry key of a table: "table.<table-token>" (docs/DESIGN.md), except
// that '~' (the token's escape character) is written '=': JetStream KV keys do not allow '~', and
// '=' never occurs in a token (TableToken escapes it), so the mapping stays reversible.
func schemaRegistryKey(tbl string) string {
	return "table." + strings.ReplaceAll(bus.TableToken(tbl), "~", "=")
}

func (c *committer) loadSchema(ctx context.Context, key string) (*table.Schema, uint64, error) {
	e, err := c.schemas.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, 0, permanent(fmt.Errorf("read schema %s: %w", key, err))
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read schema %s: %w", key, err)
	}
	var s table.Schema
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return nil, 0, permanent(fmt.Errorf("decode schema %s (revision %d): %w", key, e.Revision(), err))
	}
	return &s, e.Revision(), nil
}

func isConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// writeSchemaDoc copies the registry document of s to _schemas/<table>/v<N>.json: always when this
// batch changed the schema, else once per process when it is missing (a crash between the
// registry update and the copy).
func (c *committer) writeSchemaDoc(ctx context.Context, s *table.Schema, changed bool) error {
	key := schemaKey(s.Table, s.Version)
	if !changed {
		if _, ok := c.schemaDocs.Load(key); ok {
			return nil
		}
		if _, err := c.out.Stat(ctx, key); err == nil {
			c.schemaDocs.Store(key, true)
			return nil
		} else if !errors.Is(err, objstore.ErrNotFound) {
			return fmt.Errorf("stat %s: %w", key, err)
		}
	}
	doc, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return permanent(err)
	}
	if err := c.out.Put(ctx, key, bytes.NewReader(append(doc, '\n'))); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	c.schemaDocs.Store(key, true)
	return nil
}

// group is the chunks of one (process_date, batch_id) of a batch: one output object (or more,
// rotated at MaxObjectBytes).
type group struct {
	processDate, batchID string
	chunks               []*chunk
}

func groupsOf(cs []*chunk) []*group {
	idx := map[[2]string]*group{}
	var gs []*group
	for _, c := range cs { // cs is in chunk index order, so each group's chunks are too
		k := [2]string{c.processDate, c.batchID}
		g, ok := idx[k]
		if !ok {
			g = &group{processDate: c.processDate, batchID: c.batchID}
			idx[k] = g
			gs = append(gs, g)
		}
		g.chunks = append(g.chunks, c)
	}
	sort.Slice(gs, func(i, j int) bool {
		if gs[i].processDate != gs[j].processDate {
			return gs[i].processDate < gs[j].processDate
		}
		return gs[i].batchID < gs[j].batchID
	})
	return gs
}

// part is one Parquet object being written; visible only after commit.
type part struct {
	key  string
	w    objstore.Writer
	cw   *countingWriter
	fw   *pqarrow.FileWriter
	rows int64
	done bool // footer written
}

// groupOut is what writing a group produced, not yet committed.
type groupOut struct {
	g      *group
	prefix string
	parts  []*part
	qfile  *os.File
	qbuf   *bufio.Writer
	qrows  int64
	qkinds map[string]int64
	qerr   error
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// quarantineLine is one line of a quarantine object.
type quarantineLine struct {
	Table     string `json:"table"`
	ArchiveID string `json:"archive_id"`
	Member    string `json:"member"`
	Line      int64  `json:"line"`
	Kind      string `json:"kind"`
	Reason    string `json:"reason"`
	Raw       string `json:"raw"`
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
	if err := c.writeSchemaDoc(ctx, res.schema, res.changed); err != nil {
		return nil, err
	}

	var outs []*groupOut
	defer func() {
		for _, o := range outs {
			if o.qfile != nil {
				name := o.qfile.Name()
				_ = o.qfile.Close()
				_ = os.Remove(name)
			}
			if err != nil {
				actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				for _, p := range o.parts {
					if p.fw != nil && !p.done {
						_ = p.fw.Close()
					}
					if p.w != nil {
						_ = p.w.Abort(actx)
					}
				}
				cancel()
			}
		}
	}()
	for _, g := range groupsOf(chunks) {
		o := &groupOut{g: g, prefix: groupPrefix(b.key.table, g.processDate, g.batchID)}
		outs = append(outs, o)
		if err := c.writeGroup(ctx, b, res.schema, o); err != nil {
			return nil, err
		}
	}

	// Quarantine first, then the Parquet objects.
	for _, o := range outs {
		if o.qrows == 0 {
			continue
		}
		if err := o.qbuf.Flush(); err != nil {
			return nil, fmt.Errorf("write quarantine scratch: %w", err)
		}
		if _, err := o.qfile.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("rewind quarantine scratch: %w", err)
		}
		key := "_quarantine/" + o.prefix + "part-" + b.key.archive + ".jsonl"
		if err := c.out.Put(ctx, key, o.qfile); err != nil {
			return nil, fmt.Errorf("put %s: %w", key, err)
		}
		if res.quarantineKey == "" {
			res.quarantineKey = key
		}
		res.quarantined += o.qrows
		for k, n := range o.qkinds {
			res.kinds[k] += n
		}
	}
	for _, o := range outs {
		for _, p := range o.parts {
			if err := p.w.Commit(ctx); err != nil {
				return nil, fmt.Errorf("commit %s: %w", p.key, err)
			}
			p.w = nil
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

// commitWeight is the memory a commit of b may hold at once: its Arrow data grows to about 1.5×
// the CSV bytes it parses, but at most two row groups are alive (one being written, the next
// being built).
func (c *committer) commitWeight(b *batch) int64 {
	csv := b.csvBytes()
	return min(min(csv+csv/2, 2*c.cfg.RowGroupBytes)+commitOverhead, c.semCap)
}

// removeStaleParts deletes rotated parts beyond n left by an earlier commit of the same batch
// that rotated more (e.g. under a smaller MaxObjectBytes), so a replay never duplicates rows.
func (c *committer) removeStaleParts(ctx context.Context, prefix, archive string, n int) {
	base := prefix + "part-" + archive + "-"
	var stale []string
	err := c.out.List(ctx, base, "", func(a objstore.Attrs) error {
		rest, ok := strings.CutSuffix(strings.TrimPrefix(a.Key, base), ".parquet")
		if i, err := strconv.Atoi(rest); ok && err == nil && len(rest) == 4 && i >= n {
			stale = append(stale, a.Key)
		}
		return nil
	})
	if err != nil {
		c.log.Warn("list rotated parts", "prefix", base, "err", err)
		return
	}
	for _, k := range stale {
		if err := c.out.Delete(ctx, k); err != nil {
			c.log.Warn("delete stale part", "key", k, "err", err)
		} else {
			c.log.Info("deleted stale part", "key", k)
		}
	}
}

// writeGroup parses the group's chunks in chunk order through a Builder under s, cutting a row
// group every RowGroupBytes and rotating objects at MaxObjectBytes. Every object has every column
// of s, in registry order: a column no member of the group has is all null.
func (c *committer) writeGroup(ctx context.Context, b *batch, s *table.Schema, o *groupOut) error {
	bld := table.NewBuilder(c.alloc, s, b.opts)
	defer bld.Release()
	var accounted int64
	defer func() { c.mem.add(-accounted) }()

	var curMember string
	quarantine := func(q table.Quarantined) {
		if o.qerr != nil {
			return
		}
		if o.qfile == nil {
			f, err := os.CreateTemp(c.cfg.SpillDir, "quarantine-*.jsonl")
			if err != nil {
				o.qerr = fmt.Errorf("create quarantine scratch: %w", err)
				return
			}
			o.qfile, o.qbuf = f, bufio.NewWriterSize(f, 256<<10)
		}
		line, err := json.Marshal(quarantineLine{Table: b.key.table, ArchiveID: b.key.archive, Member: curMember,
			Line: q.Line, Kind: q.Kind, Reason: q.Reason, Raw: string(q.Raw)})
		if err != nil {
			o.qerr = err
			return
		}
		_, _ = o.qbuf.Write(line)
		if err := o.qbuf.WriteByte('\n'); err != nil {
			o.qerr = fmt.Errorf("write quarantine scratch: %w", err)
		}
		o.qrows++
		if o.qkinds == nil {
			o.qkinds = map[string]int64{}
		}
		o.qkinds[q.Kind]++
	}

	// Row groups are Parquet-encoded on their own goroutine while the next one is parsed: a large
	// batch uses two cores. The writer owns o.parts until finish returns.
	rw := c.startRowGroupWriter(ctx, b, bld.ArrowSchema(), o)
	finished := false
	defer func() {
		if !finished {
			_ = rw.finish()
		}
	}()
	flush := func() error {
		if bld.Len() == 0 {
			return nil
		}
		if err := rw.send(bld.NewRecordBatch(), accounted); err != nil {
			accounted = 0 // released by the writer
			return err
		}
		accounted = 0 // now the writer's, released once written
		return nil
	}

	var buf []byte
	for _, ch := range o.g.chunks {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, nbuf, err := b.payload(ch, buf)
		buf = nbuf
		if err != nil {
			return err
		}
		curMember = ch.memberName
		if _, err := bld.Append(b.members[ch.member].names, data, ch.firstLine, quarantine); err != nil {
			return permanent(fmt.Errorf("parse chunk %d of member %s: %w", ch.index, ch.memberName, err))
		}
		if o.qerr != nil {
			return o.qerr
		}
		sz := bld.ApproxBytes()
		c.mem.add(sz - accounted)
		accounted = sz
		if c.mem.over() {
			c.mem.relieve()
		}
		if sz >= c.cfg.RowGroupBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	finished = true
	if err := rw.finish(); err != nil {
		return err
	}
	if len(o.parts) == 0 { // every row quarantined, or header-only members: a zero-row object
		if _, err := c.currentPart(ctx, b, bld.ArrowSchema(), nil, o); err != nil {
			return err
		}
	}
	if last := o.parts[len(o.parts)-1]; !last.done {
		return c.finishPart(last)
	}
	return nil
}

// rowGroupWriter writes a group's row groups, in order, on a goroutine of its own.
type rowGroupWriter struct {
	ch   chan rowGroup // unbuffered: at most one row group written while the next is built
	done chan struct{}
	mu   sync.Mutex
	err  error
}

type rowGroup struct {
	rec  arrow.RecordBatch
	acct int64 // budget bytes accounted for rec, given back once it is written
}

func (c *committer) startRowGroupWriter(ctx context.Context, b *batch, sc *arrow.Schema, o *groupOut) *rowGroupWriter {
	w := &rowGroupWriter{ch: make(chan rowGroup), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for rg := range w.ch {
			if w.failed() == nil {
				if err := c.writeRowGroup(ctx, b, sc, rg.rec, o); err != nil {
					w.mu.Lock()
					w.err = err
					w.mu.Unlock()
				}
			}
			rg.rec.Release()
			c.mem.add(-rg.acct)
		}
	}()
	return w
}

func (w *rowGroupWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// send hands rec over (the writer releases it and its accounting, whatever happens); it returns
// the writer's error, if an earlier row group failed.
func (w *rowGroupWriter) send(rec arrow.RecordBatch, acct int64) error {
	w.ch <- rowGroup{rec: rec, acct: acct}
	return w.failed()
}

// finish waits until every row group sent is written and returns the first error.
func (w *rowGroupWriter) finish() error {
	close(w.ch)
	<-w.done
	return w.failed()
}

// writeRowGroup appends rec to the group's current part, starting one if needed, and finishes
// the part once it reaches MaxObjectBytes.
func (c *committer) writeRowGroup(ctx context.Context, b *batch, sc *arrow.Schema, rec arrow.RecordBatch, o *groupOut) error {
	p, err := c.currentPart(ctx, b, sc, rec, o)
	if err != nil {
		return err
	}
	err = p.fw.Write(rec)
	p.rows += rec.NumRows()
	if err != nil {
		return fmt.Errorf("write %s: %w", p.key, err)
	}
	if p.cw.n >= c.cfg.MaxObjectBytes {
		return c.finishPart(p)
	}
	return nil
}

// currentPart returns the open part of o, starting the next one when there is none; first is the
// record batch about to be written (nil for none), from which a new part's writer properties are
// chosen (objectProps).
func (c *committer) currentPart(ctx context.Context, b *batch, sc *arrow.Schema, first arrow.RecordBatch, o *groupOut) (*part, error) {
	if n := len(o.parts); n > 0 && !o.parts[n-1].done {
		return o.parts[n-1], nil
	}
	p := &part{key: o.prefix + partName(b.key.archive, len(o.parts))}
	w, err := c.out.Create(ctx, p.key)
	if err != nil {
		if errors.Is(err, objstore.ErrInvalidKey) {
			return nil, permanent(fmt.Errorf("create %s: %w", p.key, err))
		}
		return nil, fmt.Errorf("create %s: %w", p.key, err)
	}
	p.w = w
	p.cw = &countingWriter{w: w}
	o.parts = append(o.parts, p)
	fw, err := pqarrow.NewFileWriter(sc, p.cw, objectProps(c.pqOpts, first), c.arrowProps)
	if err != nil {
		return nil, fmt.Errorf("start parquet %s: %w", p.key, err)
	}
	p.fw = fw
	return p, nil
}

// finishPart writes the footer; the object stays invisible until committed.
func (c *committer) finishPart(p *part) error {
	p.done = true
	if err := p.fw.Close(); err != nil {
		return fmt.Errorf("finish parquet %s: %w", p.key, err)
	}
	return nil
}
