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

// Check verdicts in summaries.
const (
	CheckOK      = "OK"
	CheckFail    = "FAIL"
	CheckPending = "PENDING"
)

// SummaryKey is the key of a process date's summary.json (summary.txt sits next to it).
func SummaryKey(date string) string { return "_summaries/process_date=" + date + "/summary.json" }

func textKey(date string) string { return "_summaries/process_date=" + date + "/summary.txt" }

// SummaryJSON is the content of summary.json. Per-table figures are for this process date
// only: an archive spanning several dates contributes the rows of its members of this date.
type SummaryJSON struct {
	ProcessDate string          `json:"process_date"`
	AsOf        string          `json:"as_of,omitempty"` // newest event time that contributed (RFC 3339)
	Check       string          `json:"check"`           // OK | FAIL | PENDING
	Complete    bool            `json:"complete"`        // every expected source in, or none expected
	Totals      TotalsJSON      `json:"totals"`
	Tables      []TableJSON     `json:"tables"`
	Archives    []ArchiveJSON   `json:"archives"`
	Failed      []FailedJSON    `json:"failed_archives"`
	Duplicates  []DuplicateJSON `json:"duplicates_skipped"`
	Rejected    []RejectedJSON  `json:"rejected_members"`
	Sources     []SourcesJSON   `json:"expected_sources,omitempty"`
}

// TotalsJSON sums a date.
type TotalsJSON struct {
	Archives        int   `json:"archives"`
	Committed       int   `json:"committed"`
	Failed          int   `json:"failed"`
	Pending         int   `json:"pending"`
	Duplicates      int   `json:"duplicates_skipped"`
	RowsIn          int64 `json:"rows_in"`
	RowsOut         int64 `json:"rows_out"`
	Quarantined     int64 `json:"quarantined"`
	Objects         int   `json:"objects"`
	Bytes           int64 `json:"bytes"`
	RejectedMembers int   `json:"rejected_members"`
	SkippedMembers  int   `json:"skipped_members"`
	CheckFailures   int   `json:"check_failures"`
	ExtractMs       int64 `json:"extract_ms"`
	CommitMs        int64 `json:"commit_ms"`
}

// TableJSON aggregates one table over the date's archives.
type TableJSON struct {
	Table             string       `json:"table"`
	Archives          int          `json:"archives"`
	RowsIn            int64        `json:"rows_in"`
	RowsOut           int64        `json:"rows_out"`
	Quarantined       int64        `json:"quarantined"`
	QuarantineReasons []ReasonJSON `json:"quarantine_reasons,omitempty"`
	Objects           int          `json:"objects"`
	Bytes             int64        `json:"bytes"`
	SchemaVersion     uint32       `json:"schema_version"`
	SchemaChanges     []string     `json:"schema_changes,omitempty"`
	CommitMs          int64        `json:"commit_ms"`
	Check             string       `json:"check"`
}

// ReasonJSON is a count of quarantined rows for one reason.
type ReasonJSON struct {
	Reason string `json:"reason"`
	Rows   int64  `json:"rows"`
}

// ArchiveJSON is one archive as it contributes to the date.
type ArchiveJSON struct {
	ArchiveID         string             `json:"archive_id"`
	Name              string             `json:"name"`
	URI               string             `json:"uri,omitempty"`
	Partner           string             `json:"partner,omitempty"`
	Attempt           uint32             `json:"attempt"`
	State             ArchiveState       `json:"state"`
	Reason            string             `json:"reason,omitempty"`
	Check             string             `json:"check,omitempty"` // OK | FAIL once checked
	Dates             []string           `json:"process_dates"`
	CompressedBytes   int64              `json:"compressed_bytes,omitempty"`
	UncompressedBytes int64              `json:"uncompressed_bytes,omitempty"`
	ExtractMs         int64              `json:"extract_ms"`
	CommitMs          int64              `json:"commit_ms"`
	LandedToDoneMs    int64              `json:"landed_to_committed_ms,omitempty"`
	RowsIn            int64              `json:"rows_in"`
	RowsOut           int64              `json:"rows_out"`
	Quarantined       int64              `json:"quarantined"`
	Tables            []ArchiveTableJSON `json:"tables"`
	Rejected          []RejectedJSON     `json:"rejected,omitempty"`
	LastEventUnixMs   int64              `json:"last_event_unix_ms"`
}

// ArchiveTableJSON is one table of one archive, for the date.
type ArchiveTableJSON struct {
	Table             string       `json:"table"`
	RowsIn            int64        `json:"rows_in"`
	RowsOut           int64        `json:"rows_out"`
	Quarantined       int64        `json:"quarantined"`
	QuarantineReasons []ReasonJSON `json:"quarantine_reasons,omitempty"`
	QuarantineKey     string       `json:"quarantine_key,omitempty"`
	Objects           []ObjectJSON `json:"objects"`
	Bytes             int64        `json:"bytes"`
	SchemaVersion     uint32       `json:"schema_version"`
	SchemaChanges     []string     `json:"schema_changes,omitempty"`
	CommitMs          int64        `json:"commit_ms"`
	Committed         bool         `json:"committed"`
	// Replayed: the table's current commit is a re-run (`sluice replay`, a dead-letter re-merge,
	// or a re-extraction), not the first merge of the archive.
	Replayed    bool   `json:"replayed,omitempty"`
	Check       string `json:"check,omitempty"`
	CheckDetail string `json:"check_detail,omitempty"`
}

// ObjectJSON is one committed Parquet object.
type ObjectJSON struct {
	Key        string `json:"key"`
	Rows       int64  `json:"rows"`                  // as committed
	FooterRows *int64 `json:"footer_rows,omitempty"` // as read back (absent until checked)
	Bytes      int64  `json:"bytes"`
}

// RejectedJSON is a member that produced no rows.
type RejectedJSON struct {
	Archive string `json:"archive,omitempty"` // archive name, in the date-level list
	Member  string `json:"member"`
	Kind    string `json:"kind"`
	Reason  string `json:"reason"`
	Size    int64  `json:"size"`
}

// FailedJSON is a failed archive.
type FailedJSON struct {
	ArchiveID string `json:"archive_id"`
	Name      string `json:"name"`
	Reason    string `json:"reason"`
}

// DuplicateJSON is a skipped duplicate location.
type DuplicateJSON struct {
	ArchiveID  string `json:"archive_id"`
	Name       string `json:"name"`
	URI        string `json:"uri"`
	FirstURI   string `json:"first_uri,omitempty"`
	SeenUnixMs int64  `json:"seen_unix_ms,omitempty"`
}

// SourcesJSON is the readiness of one partner's expected sources for the date.
type SourcesJSON struct {
	Partner        string     `json:"partner"`
	Deadline       string     `json:"deadline"` // RFC 3339, UTC
	DeadlinePassed bool       `json:"deadline_passed"`
	In             []SourceIn `json:"in"`
	Awaited        []string   `json:"awaited,omitempty"` // not in yet, deadline ahead
	Missing        []string   `json:"missing,omitempty"` // not in, deadline passed
}

// SourceIn is an expected source and the archives that matched it.
type SourceIn struct {
	Source   string   `json:"source"`
	Archives []string `json:"archives"`
}

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
	if ex == nil {
		return e
	}
	e.CompressedBytes, e.UncompressedBytes, e.ExtractMs = ex.GetCompressedBytes(), ex.GetUncompressedBytes(), ex.GetDurationMs()
	var lastCommit int64
	multi := len(e.Dates) > 1
	for _, t := range ex.GetTables() {
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
	if verdict == StateCommitted && a.landed != nil && a.landed.GetLandedUnixMs() > 0 && lastCommit > 0 {
		e.LandedToDoneMs = lastCommit - a.landed.GetLandedUnixMs()
	}
	return e
}

// buildSummary renders the summary of date from the fold plus the entries carried over from
// the summary already in Out.
func (s *Summarizer) buildSummary(date string, archives []*archive, dups []*duplicate, ds *dateState, names []string, now time.Time) SummaryJSON {
	st := s.st
	doc := SummaryJSON{ProcessDate: date, Tables: []TableJSON{}, Archives: []ArchiveJSON{}, Failed: []FailedJSON{},
		Duplicates: []DuplicateJSON{}, Rejected: []RejectedJSON{}}
	for _, a := range archives {
		doc.Archives = append(doc.Archives, st.archiveEntry(a, date))
	}
	for _, e := range ds.carried {
		if st.archives[e.ArchiveID] == nil {
			doc.Archives = append(doc.Archives, e)
		}
	}
	for _, d := range dups {
		doc.Duplicates = append(doc.Duplicates, DuplicateJSON{ArchiveID: d.ev.GetArchiveId(), Name: path.Base(d.ev.GetUri()),
			URI: d.ev.GetUri(), FirstURI: d.ev.GetFirstUri(), SeenUnixMs: d.ev.GetSeenUnixMs()})
	}
	for _, d := range ds.dupsIn {
		if st.dups[d.ArchiveID+"\x00"+d.URI] == nil {
			doc.Duplicates = append(doc.Duplicates, d)
		}
	}
	slices.SortFunc(doc.Archives, func(x, y ArchiveJSON) int {
		return cmpOr(strings.Compare(x.Name, y.Name), strings.Compare(x.ArchiveID, y.ArchiveID))
	})
	slices.SortFunc(doc.Duplicates, func(x, y DuplicateJSON) int {
		return cmpOr(strings.Compare(x.URI, y.URI), strings.Compare(x.ArchiveID, y.ArchiveID))
	})
	aggregate(&doc)
	doc.Sources = s.readiness(date, names, now)
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
				tj = &TableJSON{Table: at.Table, Check: CheckOK}
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
			switch {
			case at.Check == CheckFail:
				tj.Check = CheckFail
				t.CheckFailures++
			case at.Check == "" && tj.Check != CheckFail:
				tj.Check = CheckPending
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

// readiness evaluates every partner's expected sources for date at now.
func (s *Summarizer) readiness(date string, names []string, now time.Time) []SourcesJSON {
	if s.partners == nil {
		return nil
	}
	midnight, err := time.Parse(time.DateOnly, date)
	if err != nil {
		return nil
	}
	compact := midnight.Format("20060102")
	var out []SourcesJSON
	for _, p := range s.partners.Partners {
		if p.Expected == nil || len(p.Expected.Sources) == 0 {
			continue
		}
		deadline := midnight.Add(p.Expected.Deadline.Duration)
		sj := SourcesJSON{Partner: p.Name, Deadline: deadline.Format(time.RFC3339), DeadlinePassed: now.After(deadline), In: []SourceIn{}}
		for _, src := range p.Expected.Sources {
			glob := strings.ReplaceAll(src, "{date}", compact)
			var matched []string
			for _, n := range names {
				if ok, _ := path.Match(glob, n); ok {
					matched = append(matched, n)
				}
			}
			switch {
			case len(matched) > 0:
				sj.In = append(sj.In, SourceIn{Source: glob, Archives: matched})
			case sj.DeadlinePassed:
				sj.Missing = append(sj.Missing, glob)
			default:
				sj.Awaited = append(sj.Awaited, glob)
			}
		}
		out = append(out, sj)
	}
	return out
}

// deadlinePassed reports whether some partner's deadline for date is behind now.
func (s *Summarizer) deadlinePassed(date string, now time.Time) bool {
	for _, src := range s.readiness(date, nil, now) {
		if src.DeadlinePassed {
			return true
		}
	}
	return false
}

// expectations reports whether any partner expects sources, and the longest deadline.
func (s *Summarizer) expectations() (bool, time.Duration) {
	if s.partners == nil {
		return false, 0
	}
	var any bool
	var longest time.Duration
	for _, p := range s.partners.Partners {
		if p.Expected != nil && len(p.Expected.Sources) > 0 {
			any = true
			longest = max(longest, p.Expected.Deadline.Duration)
		}
	}
	return any, longest
}

// settle runs the post-merge checks that are due, then (re)writes every summary whose content
// changed, then prunes what the stream has forgotten.
func (s *Summarizer) settle(ctx context.Context) error {
	st := s.st
	now := s.now().UTC()
	if err := s.runChecks(ctx); err != nil {
		return err
	}
	if ok, longest := s.expectations(); ok {
		today := now.Truncate(24 * time.Hour)
		st.watched[today.Format(time.DateOnly)] = true
		if !st.started { // recent days whose deadline is still ahead: nobody could have reported them
			for d := today.AddDate(0, 0, -1); d.Add(longest).After(now); d = d.AddDate(0, 0, -1) {
				st.watched[d.Format(time.DateOnly)] = true
			}
		}
	}
	st.started = true

	byDate := map[string][]*archive{}
	for _, id := range sortedKeys(st.archives) {
		a := st.archives[id]
		for _, d := range a.dates() {
			byDate[d] = append(byDate[d], a)
		}
	}
	dupsByDate := map[string][]*duplicate{}
	for _, k := range sortedKeys(st.dups) {
		d := st.dups[k]
		for _, day := range st.dupDates(d) {
			dupsByDate[day] = append(dupsByDate[day], d)
		}
	}
	dates := map[string]bool{}
	for d := range byDate {
		dates[d] = true
	}
	for d := range dupsByDate {
		dates[d] = true
	}
	for d := range st.watched {
		dates[d] = true
	}
	names := st.names()
	var firstErr error
	for _, date := range sortedKeys(dates) {
		ds := st.dates[date]
		if ds == nil {
			ds = &dateState{}
			st.dates[date] = ds
		}
		pending := 0
		for _, a := range byDate[date] {
			if v, _, _ := a.verdict(); v == StatePending {
				pending++
			}
		}
		hasEntries := len(byDate[date])+len(dupsByDate[date]) > 0
		if !(hasEntries && pending == 0) && !s.deadlinePassed(date, now) {
			ds.current = false
			continue
		}
		if err := s.writeSummary(ctx, date, byDate[date], dupsByDate[date], ds, names, now); err != nil {
			ds.current = false
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	s.prune(dates, now)
	return firstErr
}

// writeSummary renders date and writes it when Out does not already hold the same bytes.
func (s *Summarizer) writeSummary(ctx context.Context, date string, archives []*archive, dups []*duplicate, ds *dateState, names []string, now time.Time) error {
	if !ds.loaded {
		if err := s.loadSummary(ctx, date, ds); err != nil {
			return err
		}
	}
	doc := s.buildSummary(date, archives, dups, ds, names, now)
	js, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("encode summary %s: %w", date, err)
	}
	js = append(js, '\n')
	h := hashOf(js)
	ds.complete, ds.check, ds.missing = doc.Complete, doc.Check, nil
	for _, src := range doc.Sources {
		ds.missing = append(ds.missing, src.Missing...)
	}
	if h == ds.hash {
		ds.current = true
		return nil
	}
	// Text first, json last: json is what a restart compares, so a crash in between is repaired.
	if err := s.out.Put(ctx, textKey(date), bytes.NewReader(renderText(doc))); err != nil {
		return fmt.Errorf("write %s: %w", textKey(date), err)
	}
	crashpoint.Hit("summarizer.summary_text") // fault tests only (SLUICE_CRASH_AT); no-op otherwise
	if err := s.out.Put(ctx, SummaryKey(date), bytes.NewReader(js)); err != nil {
		return fmt.Errorf("write %s: %w", SummaryKey(date), err)
	}
	ds.hash, ds.current = h, true
	ds.carried, ds.dupsIn = doc.Archives, doc.Duplicates
	s.m.summariesWritten.Inc()
	ev := &sluicev1.SummaryWritten{ProcessDate: date, Key: SummaryKey(date), Complete: doc.Complete,
		MissingSources: ds.missing, CheckOk: doc.Check == CheckOK}
	s.log.Info("summary written", "date", date, "check", doc.Check, "complete", doc.Complete,
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

// prune forgets archives and duplicates the stream has dropped (older than its max age, by
// stream time), watched dates two days past their deadline, and the state of dates that have
// nothing left; their summaries stay in Out and are carried over if the date is ever rewritten.
func (s *Summarizer) prune(dates map[string]bool, now time.Time) {
	st := s.st
	for d := range st.dates {
		if !dates[d] {
			delete(st.dates, d)
		}
	}
	_, longest := s.expectations()
	for d := range st.watched {
		if t, err := time.Parse(time.DateOnly, d); err != nil || now.After(t.Add(longest+48*time.Hour)) {
			delete(st.watched, d)
		}
	}
	var newest int64
	for _, a := range st.archives {
		newest = max(newest, a.lastMs)
	}
	for _, d := range st.dups {
		newest = max(newest, d.lastMs)
	}
	horizon := newest - s.bus.Cfg.EventsMaxAge.Milliseconds()
	if s.bus.Cfg.EventsMaxAge <= 0 || horizon <= 0 {
		return
	}
	for id, a := range st.archives {
		if a.lastMs < horizon {
			delete(st.archives, id)
		}
	}
	for k, d := range st.dups {
		if d.lastMs < horizon {
			delete(st.dups, k)
		}
	}
}

func hashOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
