package summarizer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/crashpoint"
	"github.com/sluice-dev/sluice/internal/objstore"
	sluicev1 "github.com/sluice-dev/sluice/proto/sluicev1"
)

// archiveEntry renders archive a's contribution to date.
func (st *state) archiveEntry(a *archive, date string) ArchiveJSON {
	verdict, reason, checked := a.verdict()
	e := ArchiveJSON{ArchiveID: a.id, Name: a.displayName(), URI: a.uri, Partner: a.partner, Attempt: a.attempt,
		State: verdict, Reason: reason, Dates: a.dates(), LastEventUnixMs: a.eventMs, Tables: []ArchiveTableJSON{}}
	if checked {
		e.Check = CheckOK
		if verdict == StateFailed {
			e.Check = CheckFail
		}
	}
	ex := a.extracted
	tables := ex.GetTables()
	if ex == nil {
		// No extraction event for this attempt, but tables committed all the same: a run that
		// crashed after publishing every chunk and marker, whose re-extraction then failed (the
		// file gone or changed). Their objects are in the lake: listed, with what they hold.
		if tables = a.committedTables(); len(tables) == 0 {
			return e
		}
	}
	e.CompressedBytes, e.UncompressedBytes, e.ExtractMs = ex.GetCompressedBytes(), ex.GetUncompressedBytes(), ex.GetDurationMs()
	var lastCommit int64
	multi := len(e.Dates) > 1
	for _, t := range tables {
		c := a.tableCommit(t.GetTable())
		te := ArchiveTableJSON{Table: t.GetTable(), Objects: []ObjectJSON{}}
		// Rows in for this date: the members of this date; a table without member detail (and
		// an object without a date) counts on the archive's first date.
		first := len(e.Dates) > 0 && date == e.Dates[0]
		inDate := false
		if len(t.GetMembers()) == 0 && first {
			te.RowsIn, inDate = t.GetRows(), true
		}
		for _, m := range t.GetMembers() {
			if m.GetProcessDate() == date {
				te.RowsIn += m.GetRows()
				inDate = true
			}
		}
		var r *checkRecord
		if c != nil {
			te.Committed, te.Replayed = true, c.GetReplay()
			r = a.check(t)
			te.SchemaVersion, te.SchemaChanges, te.CommitMs = c.GetSchemaVersion(), c.GetSchemaChanges(), c.GetDurationMs()
			lastCommit = max(lastCommit, c.GetCommittedUnixMs())
			e.CommitMs += c.GetDurationMs()
			for _, o := range c.GetObjects() {
				if o.GetProcessDate() != date && (o.GetProcessDate() != "" || !first) {
					continue
				}
				inDate = true
				oe := ObjectJSON{Key: o.GetKey(), Rows: o.GetRows(), Bytes: o.GetBytes()}
				out := o.GetRows()
				if r != nil {
					n, ok := r.footer[o.GetKey()]
					if !ok && r.footer == nil && r.ok {
						n, ok = o.GetRows(), true // verified equal by a check read back from the stream
					}
					if ok {
						oe.FooterRows, out = &n, n
					}
				}
				te.Objects = append(te.Objects, oe)
				te.RowsOut += out
				te.Bytes += o.GetBytes()
			}
			if multi {
				// Quarantine is reported per batch; what this date's members lost is what they
				// did not write.
				te.Quarantined = max(0, te.RowsIn-te.RowsOut)
			} else {
				te.Quarantined = c.GetQuarantined()
			}
			for _, q := range c.GetQuarantineReasons() {
				te.QuarantineReasons = append(te.QuarantineReasons, ReasonJSON{Reason: q.GetReason(), Rows: q.GetRows()})
			}
			te.QuarantineKey = c.GetQuarantineKey()
			te.Quality = resultsQuality(c.GetQuality(), c.GetQualityForced(), date, first)
		} else if rs := a.mergerQuality[t.GetTable()]; rs != nil {
			te.Quality = resultsQuality(rs, false, date, first) // the fail rule that rejected the batch
		}
		if r != nil {
			te.Check, te.CheckDetail = CheckOK, r.detail
			if !r.ok {
				te.Check = CheckFail
			}
		}
		if !inDate {
			continue
		}
		e.Tables = append(e.Tables, te)
		e.RowsIn += te.RowsIn
		e.RowsOut += te.RowsOut
		e.Quarantined += te.Quarantined
	}
	for _, rj := range ex.GetRejected() {
		e.Rejected = append(e.Rejected, RejectedJSON{Member: rj.GetMember(), Kind: rj.GetKind(), Reason: rj.GetReason(), Size: rj.GetSize()})
	}
	if verdict == StateCommitted && len(ex.GetTables()) == 0 {
		// Done, with nothing taken: a finding of `run --once`, and said here with its reason.
		switch n := len(ex.GetRejected()); n {
		case 0:
			e.Reason = "no member was taken as a table: no members"
		case 1:
			e.Reason = "no member was taken as a table: its only member was skipped or rejected (see below)"
		default:
			e.Reason = fmt.Sprintf("no member was taken as a table: its %d members were skipped or rejected (see below)", n)
		}
	}
	if verdict == StateCommitted && a.landed != nil && a.landed.GetLandedUnixMs() > 0 && lastCommit > 0 {
		e.LandedToDoneMs = lastCommit - a.landed.GetLandedUnixMs()
	}
	return e
}

// buildSummary renders the summary of date from the fold plus the entries carried over from
// the summary already in Out.
func (s *Summarizer) buildSummary(date string, archives []*archive, dups []*duplicate, ds *dateState, names *nameIndex, now time.Time) SummaryJSON {
	st := s.st
	doc := SummaryJSON{ProcessDate: date, Tables: []TableJSON{}, Archives: []ArchiveJSON{}, Failed: []FailedJSON{},
		Duplicates: []DuplicateJSON{}, Rejected: []RejectedJSON{}}
	for _, a := range archives {
		doc.Archives = append(doc.Archives, st.archiveEntry(a, date))
	}
	// Archives carried over from the summary in Out arrived too, though the stream may have
	// dropped their events: a source they match must not turn missing on a later render.
	var carried []string
	for _, e := range ds.carried {
		if st.archives[e.ArchiveID] == nil {
			doc.Archives = append(doc.Archives, e)
			carried = append(carried, e.Name)
		}
	}
	for _, d := range dups {
		doc.Duplicates = append(doc.Duplicates, DuplicateJSON{ArchiveID: d.ev.GetArchiveId(), Name: path.Base(d.ev.GetUri()),
			URI: d.ev.GetUri(), FirstURI: d.ev.GetFirstUri(), SeenUnixMs: d.ev.GetSeenUnixMs()})
	}
	for _, d := range ds.dupsIn {
		if st.dups[d.ArchiveID+"\x00"+d.URI] == nil {
			doc.Duplicates = append(doc.Duplicates, d)
			carried = append(carried, d.Name)
		}
	}
	slices.SortFunc(doc.Archives, func(x, y ArchiveJSON) int {
		return cmpOr(strings.Compare(x.Name, y.Name), strings.Compare(x.ArchiveID, y.ArchiveID))
	})
	slices.SortFunc(doc.Duplicates, func(x, y DuplicateJSON) int {
		return cmpOr(strings.Compare(x.URI, y.URI), strings.Compare(x.ArchiveID, y.ArchiveID))
	})
	aggregate(&doc)
	doc.Sources = s.readiness(date, names, carried, now)
	doc.Complete = true
	for _, src := range doc.Sources {
		if len(src.Awaited)+len(src.Missing) > 0 {
			doc.Complete = false
		}
	}
	var asOf int64
	for _, e := range doc.Archives {
		asOf = max(asOf, e.LastEventUnixMs)
	}
	for _, d := range dups {
		asOf = max(asOf, d.ev.GetSeenUnixMs())
	}
	if asOf > 0 {
		doc.AsOf = time.UnixMilli(asOf).UTC().Format(time.RFC3339)
	}
	return doc
}

func cmpOr(c ...int) int {
	for _, x := range c {
		if x != 0 {
			return x
		}
	}
	return 0
}

// aggregate computes the date-level tables, lists and totals from the archive entries.
func aggregate(doc *SummaryJSON) {
	tables := map[string]*TableJSON{}
	reasons := map[string]map[string]int64{}
	t := &doc.Totals
	t.Archives, t.Duplicates = len(doc.Archives), len(doc.Duplicates)
	for _, e := range doc.Archives {
		switch e.State {
		case StateCommitted:
			t.Committed++
		case StateFailed:
			t.Failed++
			doc.Failed = append(doc.Failed, FailedJSON{ArchiveID: e.ArchiveID, Name: e.Name, Reason: e.Reason})
		default:
			t.Pending++
		}
		t.ExtractMs += e.ExtractMs
		t.CommitMs += e.CommitMs
		for _, r := range e.Rejected {
			r.Archive = e.Name
			doc.Rejected = append(doc.Rejected, r)
			if r.Kind == "skipped" {
				t.SkippedMembers++
			} else {
				t.RejectedMembers++
			}
		}
		for _, at := range e.Tables {
			tj := tables[at.Table]
			if tj == nil {
				tj = &TableJSON{Table: at.Table} // checked: OK, FAIL or PENDING; never checked: empty
				tables[at.Table] = tj
				reasons[at.Table] = map[string]int64{}
			}
			tj.Archives++
			tj.RowsIn += at.RowsIn
			tj.RowsOut += at.RowsOut
			tj.Quarantined += at.Quarantined
			tj.Objects += len(at.Objects)
			tj.Bytes += at.Bytes
			tj.CommitMs += at.CommitMs
			tj.SchemaVersion = max(tj.SchemaVersion, at.SchemaVersion)
			tj.SchemaChanges = append(tj.SchemaChanges, at.SchemaChanges...)
			for _, q := range at.QuarantineReasons {
				reasons[at.Table][q.Reason] += q.Rows
			}
			if at.Quality != nil {
				if tj.Quality == nil {
					tj.Quality = &QualityJSON{Results: []QualityResultJSON{}}
				}
				tj.Quality.add(at.Quality, e.Name, e.ArchiveID)
			}
			switch {
			case at.Check == CheckFail:
				tj.Check = CheckFail
				t.CheckFailures++
			case at.Check == "" && e.State == StateFailed:
				// A failed archive's tables are not checked (runChecks takes complete archives
				// only): the failure is the archive's, listed as such. They left the date PENDING
				// with nothing pending; nor are they OK.
			case at.Check == "" && tj.Check != CheckFail:
				tj.Check = CheckPending
			case at.Check == CheckOK && tj.Check == "":
				tj.Check = CheckOK
			}
			t.RowsIn += at.RowsIn
			t.RowsOut += at.RowsOut
			t.Quarantined += at.Quarantined
			t.Objects += len(at.Objects)
			t.Bytes += at.Bytes
		}
	}
	for _, name := range sortedKeys(tables) {
		tj := tables[name]
		slices.Sort(tj.SchemaChanges)
		tj.SchemaChanges = slices.Compact(tj.SchemaChanges)
		for _, r := range sortedKeys(reasons[name]) {
			tj.QuarantineReasons = append(tj.QuarantineReasons, ReasonJSON{Reason: r, Rows: reasons[name][r]})
		}
		doc.Tables = append(doc.Tables, *tj)
	}
	switch {
	case t.CheckFailures > 0:
		doc.Check = CheckFail
	case t.Pending > 0 || slices.ContainsFunc(doc.Tables, func(t TableJSON) bool { return t.Check == CheckPending }):
		doc.Check = CheckPending
	default:
		doc.Check = CheckOK
	}
}

// writeSummary renders date and writes it when Out does not already hold the same bytes.
func (s *Summarizer) writeSummary(ctx context.Context, date string, archives []*archive, dups []*duplicate, ds *dateState, names *nameIndex, now time.Time) error {
	if !ds.loaded {
		if err := s.loadSummary(ctx, date, ds); err != nil {
			return err
		}
	}
	doc := s.buildSummary(date, archives, dups, ds, names, now)
	s.st.setTotals(&doc)
	dateResults, err := s.dateQuality(ctx, date, &doc)
	if err != nil {
		return err
	}
	// Compared compact first: a settle renders every date (BenchmarkSettle), and indenting was
	// half of encoding. The indented bytes are a function of the compact ones (json.Indent is
	// what MarshalIndent does), so the same compact render as the last one whose indented bytes
	// Out holds needs neither indenting nor writing.
	compact, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encode summary %s: %w", date, err)
	}
	ch := hashOf(compact)
	ds.complete, ds.check, ds.missing, ds.missingBy = doc.Complete, doc.Check, nil, nil
	for _, src := range doc.Sources {
		ds.missing = append(ds.missing, src.Missing...)
		if len(src.Missing) > 0 {
			if ds.missingBy == nil {
				ds.missingBy = map[string]int{}
			}
			ds.missingBy[src.Partner] += len(src.Missing)
		}
	}
	ds.quality, ds.tableQuality = doc.Quality, nil
	for _, t := range doc.Tables {
		if t.Quality != nil {
			if ds.tableQuality == nil {
				ds.tableQuality = map[string]string{}
			}
			ds.tableQuality[t.Table] = t.Quality.Status
		}
	}
	if ch == ds.renderHash && ds.hash != "" {
		ds.current = true
		return nil
	}
	var indented bytes.Buffer
	indented.Grow(2 * len(compact))
	if err := json.Indent(&indented, compact, "", "  "); err != nil {
		return fmt.Errorf("encode summary %s: %w", date, err)
	}
	indented.WriteByte('\n')
	js := indented.Bytes()
	h := hashOf(js)
	if h == ds.hash {
		ds.current, ds.renderHash = true, ch
		return nil
	}
	// Date results, then text, json last: json is what a restart compares, so a crash in between
	// is repaired.
	defer s.waited(time.Now())
	if err := s.writeDateResults(ctx, date, dateResults); err != nil {
		return err
	}
	if err := s.out.Put(ctx, textKey(date), bytes.NewReader(renderText(doc))); err != nil {
		return fmt.Errorf("write %s: %w", textKey(date), err)
	}
	crashpoint.Hit("summarizer.summary_text") // fault tests only (SLUICE_CRASH_AT); no-op otherwise
	if err := s.out.Put(ctx, SummaryKey(date), bytes.NewReader(js)); err != nil {
		return fmt.Errorf("write %s: %w", SummaryKey(date), err)
	}
	ds.hash, ds.current, ds.renderHash = h, true, ch
	ds.carried, ds.dupsIn = doc.Archives, doc.Duplicates
	s.m.summariesWritten.Inc()
	ev := &sluicev1.SummaryWritten{ProcessDate: date, Key: SummaryKey(date), Complete: doc.Complete,
		MissingSources: ds.missing, CheckOk: doc.Check == CheckOK, Quality: doc.Quality}
	s.log.Info("summary written", "date", date, "check", doc.Check, "quality", doc.Quality, "complete", doc.Complete,
		"archives", doc.Totals.Archives, "rows_in", doc.Totals.RowsIn, "rows_out", doc.Totals.RowsOut, "missing", len(ev.MissingSources))
	err = s.bus.PublishEvent(ctx, s.bus.Subjects.Summary(), bus.SummaryID(date, h), "", ev)
	if errors.Is(err, bus.ErrEncode) {
		return err
	}
	if err != nil {
		// The summary is written; the event is repeated with the next write. Not worth failing for.
		s.log.Warn("publish summary event", "date", date, "err", err)
	}
	return nil
}

// loadSummary reads the summary.json already in Out, to compare with and to carry over
// archives the stream no longer holds.
func (s *Summarizer) loadSummary(ctx context.Context, date string, ds *dateState) error {
	defer s.waited(time.Now())
	rc, err := s.out.Get(ctx, SummaryKey(date))
	if errors.Is(err, objstore.ErrNotFound) {
		ds.loaded = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", SummaryKey(date), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("read %s: %w", SummaryKey(date), err)
	}
	ds.loaded, ds.hash = true, hashOf(b)
	var prev SummaryJSON
	if err := json.Unmarshal(b, &prev); err != nil {
		s.log.Warn("existing summary unreadable; it will be replaced", "date", date, "err", err)
		return nil
	}
	ds.carried, ds.dupsIn = prev.Archives, prev.Duplicates
	return nil
}

func hashOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
