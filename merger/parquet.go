package merger

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/quality"
	"github.com/sluice-dev/sluice/internal/table"
)

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
	fw   *pqFile
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
	qparse int64 // of qrows, rows the parser set aside (the rest: data-quality rules)

	added, widened []string          // columns the batch's schema change added and widened
	results        []quality.Result  // the group's data-quality outcomes
	profiles       []quality.Profile // its column profiles
	failed         bool              // a fail rule failed (only when the commit is forced)
}

// abortParts abandons the group's objects: their uploads are aborted (also when ctx is done, for
// up to 30 s), nothing of them becomes visible.
func (o *groupOut) abortParts(ctx context.Context) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for _, p := range o.parts {
		if p.fw != nil && !p.done {
			_ = p.fw.Close()
		}
		if p.w != nil {
			_ = p.w.Abort(actx)
		}
	}
}

// removeScratch deletes the group's quarantine scratch file, if any.
func (o *groupOut) removeScratch() {
	if o.qfile != nil {
		name := o.qfile.Name()
		_ = o.qfile.Close()
		_ = os.Remove(name)
	}
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
	Raw       string `json:"raw,omitempty"` // the record as text (invalid UTF-8 replaced by U+FFFD)
	// RawBase64 holds the record's exact bytes when they are not valid UTF-8 (a JSON string cannot).
	RawBase64 string `json:"raw_base64,omitempty"`
	// A row a data-quality rule quarantined: the rule, the column, the offending value and the
	// row as written (column → value, nulls left out); Line is 0.
	Rule   string            `json:"rule,omitempty"`
	Column string            `json:"column,omitempty"`
	Value  string            `json:"value,omitempty"`
	Row    map[string]string `json:"row,omitempty"`
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

// writeGroup writes the group's rows under s: the rows written early (early.go) when they were
// written under s, else the rows parsed on arrival when its columns convert to s exactly, else
// its chunks parsed in chunk order through a Builder under s, cutting a row group every
// RowGroupBytes. Objects rotate at MaxObjectBytes. Every object has every column of s, in registry
// order: a column no member of the group has is all null.
func (c *committer) writeGroup(ctx context.Context, b *batch, s *table.Schema, o *groupOut) error {
	absent := absentColumns(b, o.g.chunks, s)
	coll, collBytes, why := b.takeCollected(o.g.processDate, o.g.batchID)
	defer c.mem.add(-collBytes)
	if e := b.takeEarly(o.g.processDate, o.g.batchID); e != nil {
		var rows int64
		for _, ch := range o.g.chunks {
			rows += ch.rows
		}
		recs, ewhy := e.adoptable(s, absent, rows, coll)
		if ewhy == "" {
			return c.finishEarly(ctx, e, recs, o)
		}
		e.abort(ewhy)
		if coll != nil {
			coll.Release() // its sealed segments were written early: it no longer holds every row
			coll, why = nil, "written early, then "+ewhy
		}
	}
	if coll != nil && coll.Taken() > 0 { // rows handed to an early writer that is gone: never used alone
		coll.Release()
		coll, why = nil, "its first rows were written early, then abandoned"
	}

	gw, err := c.newGroupWriter(ctx, b, s, absent, o)
	if err != nil {
		return err
	}
	defer gw.close()
	// The rows parsed on arrival, when the group's columns convert to s exactly; otherwise the
	// group is parsed from its CSV.
	if coll != nil {
		recs, err := coll.Records(s)
		if err == nil {
			c.countParsed("arrival")
			if err := gw.emitAll(ctx, recs); err != nil {
				return err
			}
			return gw.finish(ctx)
		}
		why = err.Error()
	}
	c.countParsed("commit")
	c.log.Debug("group parsed at commit", "table", b.key.table, "archive", b.key.archive, "process_date", o.g.processDate,
		"batch_id", o.g.batchID, "why", why)
	bld := table.NewBuilder(c.alloc, s, b.opts)
	defer bld.Release()
	var accounted int64
	defer func() { c.mem.add(-accounted) }()
	quarantine := func(q table.Quarantined) {
		o.qparse++
		ql := quarantineLine{Table: b.key.table, ArchiveID: b.key.archive, Member: gw.curMember,
			Line: q.Line, Kind: q.Kind, Reason: q.Reason, Raw: string(q.Raw)}
		if !utf8.Valid(q.Raw) {
			ql.RawBase64 = base64.StdEncoding.EncodeToString(q.Raw)
		}
		gw.writeQ(ql, q.Kind)
	}
	flush := func() error {
		if bld.Len() == 0 {
			return nil
		}
		acct := accounted
		accounted = 0
		return gw.emit(bld.NewRecordBatch(), acct)
	}
	var buf []byte
	for _, ch := range o.g.chunks {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, nbuf, err := b.payload(ctx, ch, buf)
		buf = nbuf
		if err != nil {
			return err
		}
		gw.curMember = ch.memberName
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
	return gw.finish(ctx)
}

// groupWriter writes one group's record batches: each is checked by the data-quality rules
// (the rows a rule quarantines go to the group's quarantine scratch) and handed to a
// rowGroupWriter, which Parquet-encodes it on a goroutine of its own while the next one is made.
type groupWriter struct {
	c         *committer
	b         *batch
	s         *table.Schema
	o         *groupOut
	qb        *quality.Batch
	rw        *rowGroupWriter // owns o.parts until finished
	curMember string          // the member being parsed, for the parser's quarantine lines
	finished  bool
}

func (c *committer) newGroupWriter(ctx context.Context, b *batch, s *table.Schema, absent []string, o *groupOut) (*groupWriter, error) {
	rules, err := c.quality.get(b.partner, b.key.table)
	if err != nil {
		return nil, permanent(err)
	}
	qb := rules.NewBatch(c.alloc, quality.BatchMeta{ArchiveID: b.key.archive, ProcessDate: o.g.processDate,
		BatchID: o.g.batchID, Schema: s, Absent: absent})
	return &groupWriter{c: c, b: b, s: s, o: o, qb: qb, rw: c.startRowGroupWriter(ctx, b, s.Arrow(), o)}, nil
}

// writeQ appends a line to the group's quarantine scratch.
func (w *groupWriter) writeQ(ql quarantineLine, kind string) {
	o := w.o
	if o.qerr != nil {
		return
	}
	if o.qfile == nil {
		f, err := os.CreateTemp(w.c.cfg.SpillDir, "quarantine-*.jsonl")
		if err != nil {
			o.qerr = fmt.Errorf("create quarantine scratch: %w", err)
			return
		}
		o.qfile, o.qbuf = f, bufio.NewWriterSize(f, 256<<10)
	}
	line, err := json.Marshal(ql)
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
	o.qkinds[kind]++
}

// emit checks a record batch with the data-quality rules and hands the rows kept to the writer,
// with the budget bytes accounted for it (acct, given back whatever happens). It takes rec.
func (w *groupWriter) emit(rec arrow.RecordBatch, acct int64) error {
	b := w.b
	keep, failures, err := w.qb.Check(rec)
	for _, f := range failures {
		kind := "quality:" + f.Rule
		w.writeQ(quarantineLine{Table: b.key.table, ArchiveID: b.key.archive, Kind: kind,
			Reason: fmt.Sprintf("%s failed on column %s", f.Rule, f.Column), Rule: f.Rule, Column: f.Column,
			Value: f.Value, Row: rowOf(rec, f.Row)}, kind)
	}
	rec.Release()
	if err != nil {
		w.c.mem.add(-acct)
		return permanent(fmt.Errorf("data-quality check: %w", err))
	}
	if w.o.qerr != nil {
		keep.Release()
		w.c.mem.add(-acct)
		return w.o.qerr
	}
	return w.rw.send(keep, acct) // now the writer's, released (and acct given back) once written
}

// emitAll emits recs (each accounted elsewhere), releasing those not emitted on an error.
func (w *groupWriter) emitAll(ctx context.Context, recs []arrow.RecordBatch) error {
	for i, rec := range recs {
		if err := ctx.Err(); err != nil {
			releaseAll(recs[i:])
			return err
		}
		if err := w.emit(rec, 0); err != nil {
			releaseAll(recs[i+1:])
			return err
		}
	}
	return nil
}

// close stops the row group writer if finish was not reached (an error path).
func (w *groupWriter) close() {
	if !w.finished {
		w.finished = true
		_ = w.rw.finish()
	}
}

func releaseAll(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}

// countParsed counts a group committed from rows parsed on arrival or at commit.
func (c *committer) countParsed(when string) {
	if c.parsed != nil {
		c.parsed.WithLabelValues(when).Inc()
	}
}

// finish waits for the group's row groups to be written, applies the data-quality verdict and
// finishes the group's last part.
func (w *groupWriter) finish(ctx context.Context) error {
	c, o := w.c, w.o
	w.finished = true
	if err := w.rw.finish(); err != nil {
		return err
	}
	results, failed, profiles := w.qb.Finish(quality.FinishInput{QuarantinedOther: o.qparse,
		SchemaAdded: o.added, SchemaWidened: o.widened})
	if len(failed) > 0 && !c.force {
		return permanent(&qualityFailure{failed: failed})
	}
	o.results, o.profiles, o.failed = results, profiles, len(failed) > 0
	if len(o.parts) == 0 { // every row quarantined, or header-only members: a zero-row object
		if _, err := c.currentPart(ctx, w.b, w.s.Arrow(), nil, o); err != nil {
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
	fw, err := newPQFile(sc, p.cw, objectProps(c.pqOpts, first), c.arrowProps)
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
