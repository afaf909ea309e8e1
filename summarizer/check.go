package summarizer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/parquet/file"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/crashpoint"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/internal/objstore"
	sluicev1 "github.com/sluice-dev/sluice/proto/sluicev1"
)

// retryAfter is how long a check waits after a transient read error.
const retryAfter = 5 * time.Second

// checkJob is one archive whose tables need a footer read.
type checkJob struct {
	a      *archive
	tables []*sluicev1.TableCount
	prior  map[string]*checkRecord // table → result read back from the stream (re-verification)
	out    []*checkRecord
	err    error // transient: retry later
}

// runChecks reads footers for every complete archive whose check is missing (or was read back
// failed from the stream), then applies the outcomes: ledger, CheckResult events, metrics.
func (s *Summarizer) runChecks(ctx context.Context) error {
	// Retry pacing is operational, not business time: it follows the wall clock so that a
	// frozen injected clock (tests, replays) cannot stall retries.
	nowMs := time.Now().UnixMilli()
	var jobs []*checkJob
	for _, id := range sortedKeys(s.st.archives) {
		a := s.st.archives[id]
		if !a.complete() || a.retryMs > nowMs {
			continue
		}
		j := &checkJob{a: a, prior: map[string]*checkRecord{}}
		for _, t := range a.extracted.GetTables() {
			r := a.check(t)
			switch {
			case r == nil:
				j.tables = append(j.tables, t)
			case !r.ok && r.footer == nil:
				j.tables = append(j.tables, t)
				j.prior[t.GetTable()] = r
			}
		}
		if len(j.tables) > 0 {
			jobs = append(jobs, j)
		} else if err := s.applyOutcome(ctx, a, nil); err != nil {
			return err // zero-table archives, or every result already in the stream
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.CheckParallelism)
	for _, j := range jobs {
		g.Go(func() error {
			for _, t := range j.tables {
				r, err := s.checkTable(gctx, j.a, t)
				if err != nil {
					j.err = err
					return nil
				}
				j.out = append(j.out, r)
			}
			return nil
		})
	}
	waitStart := time.Now()
	_ = g.Wait() // jobs record their own errors
	s.waited(waitStart)
	for _, j := range jobs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if j.err != nil {
			j.a.retryMs = nowMs + retryAfter.Milliseconds()
			if msg := j.err.Error(); msg != j.a.lastWarn { // do not repeat the same warning every tick
				j.a.lastWarn = msg
				s.log.Warn("post-merge check postponed", "archive", j.a.id, "err", j.err)
			}
			continue
		}
		j.a.lastWarn = ""
		var fresh []*checkRecord
		for _, r := range j.out {
			if p := j.prior[r.table]; p != nil && p.ok == r.ok && p.expected == r.expected && p.found == r.found && p.detail == r.detail {
				p.footer = r.footer // same verdict as before the restart: keep, do not re-publish
				continue
			}
			fresh = append(fresh, r)
		}
		if err := s.applyOutcome(ctx, j.a, fresh); err != nil {
			return err
		}
	}
	return nil
}

// applyOutcome records fresh check results of a: ledger first, then the CheckResult events,
// then the fold. With no fresh results it only makes sure this process applied the verdict once
// to the ledger when nothing in the stream says it was (archives with zero tables).
func (s *Summarizer) applyOutcome(ctx context.Context, a *archive, fresh []*checkRecord) error {
	// Project the verdict with the fresh results in place.
	view := func(t *sluicev1.TableCount) *checkRecord {
		fp := a.fingerprint(t)
		for _, r := range fresh {
			if r.fp == fp {
				return r
			}
		}
		return a.checks[fp]
	}
	var rowsIn, rowsOut int64
	var bad []string
	for _, t := range a.extracted.GetTables() {
		r := view(t)
		rowsIn += t.GetRows()
		rowsOut += r.found - a.tableCommit(t.GetTable()).GetQuarantined()
		if !r.ok {
			bad = append(bad, fmt.Sprintf("table %s: %s", t.GetTable(), r.detail))
		}
	}
	outcome := fmt.Sprintf("%d|%d|%d|%s", a.attempt, rowsIn, rowsOut, strings.Join(bad, "; "))
	if len(fresh) == 0 && (a.applied == outcome || len(a.extracted.GetTables()) > 0) {
		a.applied = outcome // results came from the stream: their effects were applied back then
		return nil
	}
	reason := ""
	if len(bad) > 0 {
		reason = "post-merge check failed: " + strings.Join(bad, "; ")
	}
	// A ledger or stream briefly without a leader (a node restarting on a cluster) is waited
	// out, logged once, rather than failing the summarizer. Waiting on them is not walking.
	defer s.waited(time.Now())
	if err := bus.Retry(ctx, s.log, "update ledger", func(ctx context.Context) error {
		return s.updateLedger(ctx, a, reason, rowsIn, rowsOut)
	}); err != nil {
		return err
	}
	crashpoint.Hit("summarizer.ledger") // fault tests only (SLUICE_CRASH_AT); no-op otherwise
	for _, r := range fresh {
		if err := bus.Retry(ctx, s.log, "publish check result", func(ctx context.Context) error {
			return s.publishCheck(ctx, a, r)
		}); err != nil {
			return err
		}
		a.checks[r.fp] = r
		if !r.ok {
			s.m.checkFailures.Inc()
			s.log.Error("post-merge check failed", "archive", a.id, "name", a.displayName(), "table", r.table,
				"rows_expected", r.expected, "rows_found", r.found, "detail", r.detail)
		}
	}
	a.applied = outcome
	s.m.rowsIn.Add(float64(rowsIn))
	s.m.rowsOut.Add(float64(rowsOut))
	if reason == "" {
		s.m.archivesCompleted.Inc()
		s.log.Info("archive committed", "archive", a.id, "name", a.displayName(), "rows_in", rowsIn, "rows_out", rowsOut)
	} else {
		s.m.archivesFailed.Inc()
	}
	return nil
}

// updateLedger moves the archive's record to committed or failed. A missing record (the ledger
// was reset, or a test without a producer) is logged, not fatal; a record already at a newer
// attempt is left alone.
func (s *Summarizer) updateLedger(ctx context.Context, a *archive, reason string, rowsIn, rowsOut int64) error {
	if s.ledger == nil {
		return nil
	}
	want := ledger.Committed
	if reason != "" {
		want = ledger.Failed
	}
	_, err := s.ledger.Update(ctx, a.id, func(r *ledger.Record) error {
		if r.Attempt > a.attempt {
			return ledger.ErrSkip
		}
		if r.State == want && r.Reason == reason && r.RowsIn == rowsIn && r.RowsOut == rowsOut {
			return ledger.ErrSkip
		}
		r.Tables, r.RowsIn, r.RowsOut = len(a.extracted.GetTables()), rowsIn, rowsOut
		r.SetState(want, reason, s.now())
		return nil
	})
	if errors.Is(err, ledger.ErrNotFound) {
		s.log.Warn("archive not in ledger", "archive", a.id)
		return nil
	}
	if err != nil {
		return fmt.Errorf("ledger %s → %s: %w", a.id, want, err)
	}
	return nil
}

func (s *Summarizer) publishCheck(ctx context.Context, a *archive, r *checkRecord) error {
	ev := &sluicev1.CheckResult{ArchiveId: a.id, Table: r.table, Ok: r.ok,
		RowsExpected: r.expected, RowsFound: r.found, Detail: r.detail}
	return s.bus.PublishEvent(ctx, s.bus.Subjects.Checked(), bus.CheckedID(a.id, a.attempt, r.table, r.fp, r.ok), a.id, ev,
		bus.WithTable(r.table), bus.WithHeader(HdrCheckOf, r.fp))
}

// checkTable reads the footer of every object of one table's commit and reconciles it with
// the extractor's count. A transient read error is returned as an error; everything that is
// wrong with the data itself is a failed check.
func (s *Summarizer) checkTable(ctx context.Context, a *archive, t *sluicev1.TableCount) (*checkRecord, error) {
	c := a.tableCommit(t.GetTable())
	r := &checkRecord{fp: a.fingerprint(t), table: t.GetTable(), expected: t.GetRows(), footer: map[string]int64{}}
	var problems []string // per object, sorted below
	var footerRows int64
	for _, o := range c.GetObjects() {
		n, err := footerRowCount(ctx, s.out, o.GetKey())
		var bad *badObjectError
		switch {
		case errors.As(err, &bad):
			problems = append(problems, fmt.Sprintf("object %s: %s", o.GetKey(), bad.reason))
			continue
		case err != nil:
			return nil, err
		}
		r.footer[o.GetKey()] = n
		footerRows += n
		if n != o.GetRows() {
			problems = append(problems, fmt.Sprintf("object %s: footer has %d rows, commit says %d", o.GetKey(), n, o.GetRows()))
		}
	}
	sort.Strings(problems) // deterministic detail whatever the order of the commit's objects
	r.found = footerRows + c.GetQuarantined()
	if r.found != r.expected {
		problems = append([]string{fmt.Sprintf("rows in %d != footer rows %d + quarantined %d", r.expected, footerRows, c.GetQuarantined())}, problems...)
	}
	r.ok = len(problems) == 0
	r.detail = strings.Join(problems, "; ")
	return r, nil
}

// badObjectError is an object that is missing or not Parquet: a check failure, not an outage.
type badObjectError struct{ reason string }

func (e *badObjectError) Error() string { return e.reason }

// footerRowCount returns the row count in the Parquet footer of key, reading only the tail of
// the object (objstore.ReaderAt caches it, so this is a Stat and usually one ranged GET).
func footerRowCount(ctx context.Context, b objstore.Bucket, key string) (int64, error) {
	rb := &readErrs{Bucket: b}
	ra, err := objstore.ReaderAt(ctx, rb, key)
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		return 0, &badObjectError{reason: "missing"}
	case errors.Is(err, objstore.ErrInvalidKey):
		return 0, &badObjectError{reason: "invalid key"}
	}
	if err != nil {
		return 0, err
	}
	defer ra.Close()
	rdr, err := file.NewParquetReader(ra)
	switch {
	case err == nil:
	case errors.Is(rb.err, objstore.ErrNotFound):
		return 0, &badObjectError{reason: "missing"}
	case rb.err != nil: // the store failed, not the file
		return 0, fmt.Errorf("read footer of %s: %w", key, rb.err)
	default:
		return 0, &badObjectError{reason: "unreadable footer: " + err.Error()}
	}
	defer rdr.Close()
	return rdr.NumRows(), nil
}

// readErrs remembers the first error of the store while a footer is read, so that a store
// outage (retry later) is told apart from a file that is not Parquet (a failed check). Only
// io.EOF (the end of a range) and an invalid range are the object's doing: a body cut short
// (io.ErrUnexpectedEOF from the store's reader: the connection dropped mid-response) is the
// store's failure, retried like any other.
type readErrs struct {
	objstore.Bucket
	err error
}

func (r *readErrs) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	rc, err := r.Bucket.GetRange(ctx, key, off, length)
	if err != nil {
		r.note(err)
		return nil, err
	}
	return &readErrsBody{ReadCloser: rc, r: r}, nil
}

func (r *readErrs) note(err error) {
	if r.err == nil && !errors.Is(err, io.EOF) && !errors.Is(err, objstore.ErrInvalidRange) {
		r.err = err
	}
}

type readErrsBody struct {
	io.ReadCloser
	r *readErrs
}

func (b *readErrsBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.r.note(err)
	}
	return n, err
}
