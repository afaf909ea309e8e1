package summarizer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/quality"
	sluicev1 "github.com/sluice-dev/sluice/proto/sluicev1"
)

// HdrCheckOf is the header of a CheckResult naming the fingerprint of what was checked.
const HdrCheckOf = "Sluice-Check-Of"

// state is the fold. Only the Run loop touches it.
type state struct {
	partners *config.File
	caughtUp bool
	seq      uint64
	archives map[string]*archive   // by archive id
	dups     map[string]*duplicate // by archive id + "\x00" + uri
	dates    map[string]*dateState // process dates with a summary state
	watched  map[string]bool       // dates watched for expected sources without archives
	started  bool                  // the first settle after catching up has run
	since    time.Time             // when the events stream was created (zero: unknown)
	// missingSeries are the (date, partner) series of sluice_summarizer_missing_sources set.
	missingSeries map[[2]string]bool

	// Data quality (quality.go).
	totals map[string]map[string]int64  // date → table → rows out, from renders or Out (volume history)
	dqHash map[string]map[string]string // date → table → hash of the date.parquet in Out ("" none)
	rules  map[string]*quality.Rules    // partner + "\x00" + table → compiled rules (nil: none usable)
}

func newState(p *config.File) *state {
	return &state{
		partners: p,
		archives: map[string]*archive{},
		dups:     map[string]*duplicate{},
		dates:    map[string]*dateState{},
		watched:  map[string]bool{},
		totals:   map[string]map[string]int64{},
		dqHash:   map[string]map[string]string{},
		rules:    map[string]*quality.Rules{},
	}
}

// archive is everything known of one archive content identity.
type archive struct {
	id      string
	name    string
	uri     string
	partner string
	attempt uint32 // current extraction attempt

	landed    *sluicev1.ArchiveLanded
	extracted *sluicev1.ArchiveExtracted // of the current attempt
	failed    *sluicev1.ArchiveFailed    // of the current attempt
	commits   map[uint32]map[string]*sluicev1.BatchCommitted
	checks    map[string]*checkRecord // by fingerprint
	fps       map[string]fpMemo       // by table
	prevDates []string                // member dates of the newest extraction, any attempt

	applied  string // outcome fingerprint whose effects (ledger) this process has applied
	lastMs   int64  // newest stream timestamp of an event about it (pruning)
	eventMs  int64  // newest time carried in its events (as_of: the same event twice moves nothing)
	retryMs  int64  // earliest time to retry a check after a transient read error
	lastWarn string

	// Tables of the current attempt failed only because the merger dead-lettered their batch
	// (nil when a failure came from anywhere else): a later commit of each of them (a dead-letter
	// re-merge, `sluice replay`) clears the failure.
	mergerFailed map[string]bool
	// The data-quality results that made the merger dead-letter a table's batch (ArchiveFailed.quality),
	// shown in the date's quality section: a batch a fail rule rejected makes the date DQ FAIL.
	mergerQuality map[string][]*sluicev1.QualityResult
}

// checkRecord is the result of a post-merge check of one (archive, attempt, table) commit.
type checkRecord struct {
	fp       string
	table    string
	ok       bool
	expected int64
	found    int64
	detail   string
	footer   map[string]int64 // object key → footer rows; nil when read back from the stream
}

// duplicate is one location whose bytes were already known.
type duplicate struct {
	ev     *sluicev1.ArchiveDuplicate
	lastMs int64
}

// dateState remembers what Out holds for a date.
type dateState struct {
	loaded  bool          // the existing summary.json was read
	carried []ArchiveJSON // archives in the existing summary the fold does not know
	dupsIn  []DuplicateJSON
	hash    string // hash of the summary.json known to be in Out ("" none)
	// renderHash is the hash of the compact JSON of the render whose indented bytes are hash.
	renderHash string
	current    bool // hash matches the latest render

	// From the latest render, for Status.
	complete     bool
	check        string
	missing      []string
	quality      string            // OK | WARN | FAIL, "" without results
	tableQuality map[string]string // table → its quality status, tables with results only
	missingBy    map[string]int    // partner → expected sources missing after the deadline
}

func (st *state) archive(id string) *archive {
	a := st.archives[id]
	if a == nil {
		a = &archive{id: id, commits: map[uint32]map[string]*sluicev1.BatchCommitted{}, checks: map[string]*checkRecord{}}
		st.archives[id] = a
	}
	return a
}

// bump moves a to attempt n when n is newer; it reports whether an event of attempt n is
// current (not stale).
func (a *archive) bump(n uint32) bool {
	if n < a.attempt {
		return false
	}
	if n > a.attempt {
		if a.extracted != nil {
			a.prevDates = a.memberDates()
		}
		a.attempt, a.extracted, a.failed, a.mergerFailed, a.mergerQuality, a.applied = n, nil, nil, nil, nil, ""
	}
	return true
}

func (a *archive) setName(name, uri, partner string) {
	if a.name == "" && name != "" {
		a.name = name
	}
	if a.uri == "" && uri != "" {
		a.uri = uri
	}
	if a.partner == "" && partner != "" {
		a.partner = partner
	}
}

func (a *archive) displayName() string {
	if a.name != "" {
		return a.name
	}
	if a.uri != "" {
		return path.Base(a.uri)
	}
	return a.id
}

// apply folds one event. Undecodable events are logged and skipped: they can never become
// decodable, and the stream keeps them for inspection.
func (s *Summarizer) apply(m jetstream.Msg, meta *jetstream.MsgMetadata) {
	st := s.st
	sub := s.bus.Subjects
	ms := meta.Timestamp.UnixMilli()
	decode := func(v proto.Message) bool {
		if err := proto.Unmarshal(m.Data(), v); err != nil {
			s.log.Warn("undecodable event", "subject", m.Subject(), "seq", meta.Sequence.Stream, "err", err)
			return false
		}
		intern(v.ProtoReflect())
		return true
	}
	touch := func(a *archive) {
		if ms > a.lastMs {
			a.lastMs = ms
		}
	}
	switch m.Subject() {
	case sub.Landed():
		ev := &sluicev1.ArchiveLanded{}
		if !decode(ev) || ev.GetArchiveId() == "" {
			return
		}
		a := st.archive(ev.GetArchiveId())
		touch(a)
		a.setName(ev.GetName(), ev.GetUri(), ev.GetPartner())
		if a.bump(ev.GetAttempt()) {
			a.landed = ev
			a.eventMs = max(a.eventMs, ev.GetLandedUnixMs())
		}
	case sub.Extracted():
		ev := &sluicev1.ArchiveExtracted{}
		if !decode(ev) || ev.GetArchiveId() == "" {
			return
		}
		a := st.archive(ev.GetArchiveId())
		touch(a)
		a.setName(ev.GetName(), ev.GetUri(), ev.GetPartner())
		if a.bump(ev.GetAttempt()) {
			a.extracted = ev
			a.eventMs = max(a.eventMs, ev.GetExtractedUnixMs())
		}
	case sub.Failed():
		ev := &sluicev1.ArchiveFailed{}
		if !decode(ev) || ev.GetArchiveId() == "" {
			return
		}
		a := st.archive(ev.GetArchiveId())
		touch(a)
		a.setName(ev.GetName(), ev.GetUri(), "")
		if a.bump(ev.GetAttempt()) {
			if a.failed == nil && st.caughtUp {
				s.m.archivesFailed.Inc()
				s.log.Warn("archive failed", "archive", a.id, "name", a.displayName(), "reason", ev.GetReason())
			}
			byMerger := failedByMerger(ev, m.Headers().Get(jetstream.MsgIDHeader))
			switch {
			case !byMerger:
				a.mergerFailed = nil
			case a.failed == nil || a.mergerFailed != nil:
				if a.mergerFailed == nil {
					a.mergerFailed = map[string]bool{}
				}
				for _, t := range ev.GetTablesAborted() {
					a.mergerFailed[t] = true
				}
			}
			if byMerger && len(ev.GetQuality()) > 0 {
				if a.mergerQuality == nil {
					a.mergerQuality = map[string][]*sluicev1.QualityResult{}
				}
				for _, t := range ev.GetTablesAborted() {
					a.mergerQuality[t] = ev.GetQuality()
				}
			}
			if a.failed == nil || !byMerger || a.mergerFailed != nil {
				a.failed = ev // a merger failure never hides an earlier failure from elsewhere
			}
			a.eventMs = max(a.eventMs, ev.GetFailedUnixMs())
		}
	case sub.Duplicate():
		ev := &sluicev1.ArchiveDuplicate{}
		if !decode(ev) || ev.GetArchiveId() == "" {
			return
		}
		k := ev.GetArchiveId() + "\x00" + ev.GetUri()
		if d := st.dups[k]; d != nil {
			d.lastMs = max(d.lastMs, ms)
			return // the first sighting stays
		}
		st.dups[k] = &duplicate{ev: ev, lastMs: ms}
	case sub.Committed():
		ev := &sluicev1.BatchCommitted{}
		if !decode(ev) || ev.GetArchiveId() == "" {
			return
		}
		compactCommit(ev)
		a := st.archive(ev.GetArchiveId())
		touch(a)
		byTable := a.commits[ev.GetAttempt()]
		if byTable == nil {
			byTable = map[string]*sluicev1.BatchCommitted{}
			a.commits[ev.GetAttempt()] = byTable
		}
		byTable[ev.GetTable()] = ev                                          // a replayed commit replaces the earlier one
		s.m.lastCommit.WithLabelValues(ev.GetTable()).Set(float64(ms) / 1e3) // events come in stream order
		if ev.GetAttempt() == a.attempt {
			delete(a.mergerQuality, ev.GetTable()) // the commit's own results replace them
		}
		if ev.GetAttempt() == a.attempt && a.mergerFailed[ev.GetTable()] {
			delete(a.mergerFailed, ev.GetTable())
			if len(a.mergerFailed) == 0 {
				a.failed, a.mergerFailed = nil, nil
				if st.caughtUp {
					s.log.Info("archive no longer failed: its dead-lettered tables were committed", "archive", a.id)
				}
			}
		}
		a.eventMs = max(a.eventMs, ev.GetCommittedUnixMs())
	case sub.Checked():
		ev := &sluicev1.CheckResult{}
		if !decode(ev) || ev.GetArchiveId() == "" {
			return
		}
		fp := m.Headers().Get(HdrCheckOf)
		if fp == "" {
			return // not ours: the check will be run again
		}
		a := st.archive(ev.GetArchiveId()) // not touched: our own output does not date the archive
		if r := a.checks[fp]; r != nil && r.footer != nil {
			return // our own result coming back: we hold more detail
		}
		a.checks[fp] = &checkRecord{fp: fp, table: ev.GetTable(), ok: ev.GetOk(), expected: ev.GetRowsExpected(),
			found: ev.GetRowsFound(), detail: ev.GetDetail()}
	}
}

// compactCommit drops what nothing that reads the fold uses from a commit it keeps, since the
// fold holds every commit of the events stream's retention (SCALING.md): the results object's key,
// and each passed result's detail — a pass is only counted, per process date (summary.json,
// Status, the dashboard's pass rates), so every one of a date is one shared message holding its
// status and date. The results themselves stay in the merger's _dq/results objects.
func compactCommit(ev *sluicev1.BatchCommitted) {
	ev.QualityKey = ""
	for i, r := range ev.GetQuality() {
		if r.GetStatus() == quality.StatusPass {
			ev.Quality[i] = passResult(r.GetProcessDate())
		}
	}
}

// passResults are the shared passed results, by process date: never modified once stored.
var passResults sync.Map // string → *sluicev1.QualityResult

func passResult(date string) *sluicev1.QualityResult {
	if r, ok := passResults.Load(date); ok {
		return r.(*sluicev1.QualityResult)
	}
	r, _ := passResults.LoadOrStore(date, &sluicev1.QualityResult{Status: quality.StatusPass, ProcessDate: date})
	return r.(*sluicev1.QualityResult)
}

// failedByMerger reports whether an ArchiveFailed was published by the merger (one of the
// archive's table batches was dead-lettered, tables_aborted names which) rather than by the
// extractor. The event's origin says so. Events written before the origin field existed
// (STAGE_UNSPECIFIED) are recognised by their message id instead, which the merger ends with
// ".merger-failed"; that fallback is only for those older events.
func failedByMerger(ev *sluicev1.ArchiveFailed, msgID string) bool {
	if len(ev.GetTablesAborted()) == 0 {
		return false
	}
	switch ev.GetOrigin() {
	case sluicev1.Stage_STAGE_MERGER:
		return true
	case sluicev1.Stage_STAGE_UNSPECIFIED:
		return bus.IsMergerFailedID(msgID)
	}
	return false
}

// unextractedDates are the dates of an archive without an extraction event for its attempt: the
// newest extraction's member dates (any attempt) and those of the objects the attempt committed.
func (a *archive) unextractedDates() []string {
	ds := slices.Clone(a.prevDates)
	for _, c := range a.commits[a.attempt] {
		for _, o := range c.GetObjects() {
			if o.GetProcessDate() != "" {
				ds = append(ds, o.GetProcessDate())
			}
		}
	}
	slices.Sort(ds)
	return slices.Compact(ds)
}

// committedTables are the tables the current attempt committed, by name, as table counts for an
// attempt whose extraction event is missing: one member per process date of its objects, whose
// rows are the commit's rows in when it wrote one date, else that date's rows out (the rows in
// of each date are not known).
func (a *archive) committedTables() []*sluicev1.TableCount {
	var ts []*sluicev1.TableCount
	byTable := a.commits[a.attempt]
	for _, name := range sortedKeys(byTable) {
		c := byTable[name]
		tc := &sluicev1.TableCount{Table: name, Rows: c.GetRowsIn()}
		perDate := map[string]int64{}
		for _, o := range c.GetObjects() {
			perDate[o.GetProcessDate()] += o.GetRows()
		}
		for _, d := range sortedKeys(perDate) {
			rows := perDate[d]
			if len(perDate) == 1 {
				rows = c.GetRowsIn()
			}
			tc.Members = append(tc.Members, &sluicev1.MemberInfo{ProcessDate: d, Rows: rows})
		}
		ts = append(ts, tc)
	}
	return ts
}

// tableCommit returns the commit of table for the current attempt.
func (a *archive) tableCommit(table string) *sluicev1.BatchCommitted {
	return a.commits[a.attempt][table]
}

// complete reports whether the current attempt is extracted and every table committed.
func (a *archive) complete() bool {
	if a.extracted == nil || a.failed != nil {
		return false
	}
	for _, t := range a.extracted.GetTables() {
		if a.tableCommit(t.GetTable()) == nil {
			return false
		}
	}
	return true
}

// fingerprint identifies what a check of one table looks at. It is memoised per (table count,
// commit) pair: settle asks for it often and the events are immutable once folded.
func (a *archive) fingerprint(t *sluicev1.TableCount) string {
	c := a.tableCommit(t.GetTable())
	if m, ok := a.fps[t.GetTable()]; ok && m.tc == t && m.c == c && m.attempt == a.attempt {
		return m.fp
	}
	fp := computeFingerprint(a.id, a.attempt, t, c)
	if a.fps == nil {
		a.fps = map[string]fpMemo{}
	}
	a.fps[t.GetTable()] = fpMemo{tc: t, c: c, attempt: a.attempt, fp: fp}
	return fp
}

type fpMemo struct {
	tc      *sluicev1.TableCount
	c       *sluicev1.BatchCommitted
	attempt uint32
	fp      string
}

func computeFingerprint(id string, attempt uint32, t *sluicev1.TableCount, c *sluicev1.BatchCommitted) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%s\x00%d\x00%d\x00%d\n", id, attempt, t.GetTable(), t.GetRows(), c.GetQuarantined(), len(c.GetObjects()))
	objs := slices.Clone(c.GetObjects())
	slices.SortFunc(objs, func(x, y *sluicev1.CommittedObject) int { return strings.Compare(x.GetKey(), y.GetKey()) })
	for _, o := range objs {
		fmt.Fprintf(h, "%s\x00%d\n", o.GetKey(), o.GetRows())
	}
	return hex.EncodeToString(h.Sum(nil))[:24]
}

// check returns the current check record of table t, nil when none applies.
func (a *archive) check(t *sluicev1.TableCount) *checkRecord {
	return a.checks[a.fingerprint(t)]
}

// mergerSettled reports whether every table of an archive the merger failed is either committed
// or dead-lettered by the merger. Until the extraction's event is folded the tables are not known
// (the merger can dead-letter a batch before the extractor has published ArchiveExtracted): not
// settled.
func (a *archive) mergerSettled() bool {
	if a.extracted == nil {
		return false
	}
	for _, t := range a.extracted.GetTables() {
		if a.tableCommit(t.GetTable()) == nil && !a.mergerFailed[t.GetTable()] {
			return false
		}
	}
	return true
}

// verdict is an archive's state with the reason, and whether every check has a result.
func (a *archive) verdict() (ArchiveState, string, bool) {
	switch {
	case a.failed != nil && a.mergerFailed != nil && !a.mergerSettled():
		// The merger dead-lettered some of its tables; the others are still being committed. The
		// archive has failed, but it is not terminal until each table is committed or
		// dead-lettered: a run that stopped now would leave those batches in flight.
		return StatePending, "", false
	case a.failed != nil:
		return StateFailed, a.failed.GetReason(), false
	case !a.complete():
		return StatePending, "", false
	}
	var bad []string
	for _, t := range a.extracted.GetTables() {
		r := a.check(t)
		if r == nil {
			return StatePending, "", false
		}
		if !r.ok {
			bad = append(bad, fmt.Sprintf("table %s: %s", t.GetTable(), r.detail))
		}
	}
	if len(bad) > 0 {
		return StateFailed, "post-merge check failed: " + strings.Join(bad, "; "), true
	}
	return StateCommitted, "", true
}

// memberDates are the process dates of the current extraction's members.
func (a *archive) memberDates() []string {
	var ds []string
	for _, t := range a.extracted.GetTables() {
		for _, m := range t.GetMembers() {
			if m.GetProcessDate() != "" {
				ds = append(ds, m.GetProcessDate())
			}
		}
		for _, o := range a.tableCommit(t.GetTable()).GetObjects() {
			if o.GetProcessDate() != "" {
				ds = append(ds, o.GetProcessDate())
			}
		}
	}
	slices.Sort(ds)
	return slices.Compact(ds)
}

// dates are the process dates a touches (see the package documentation).
func (a *archive) dates() []string {
	if a.extracted != nil {
		if ds := a.memberDates(); len(ds) > 0 {
			return ds
		}
	} else if ds := a.unextractedDates(); len(ds) > 0 {
		return ds
	}
	if d := nameDate(a.displayName()); d != "" {
		return []string{d}
	}
	switch {
	case a.failed != nil && a.failed.GetFailedUnixMs() > 0:
		return []string{utcDate(a.failed.GetFailedUnixMs())}
	case a.failed != nil || a.extracted != nil:
		if a.extracted.GetExtractedUnixMs() > 0 {
			return []string{utcDate(a.extracted.GetExtractedUnixMs())}
		}
		return []string{utcDate(max(a.eventMs, a.lastMs))}
	}
	return nil // pending with nothing to go by: touches no date yet
}

// dates of a duplicate: its name's date, else its original's dates, else the day it was seen.
func (st *state) dupDates(d *duplicate) []string {
	if nd := nameDate(path.Base(d.ev.GetUri())); nd != "" {
		return []string{nd}
	}
	if a := st.archives[d.ev.GetArchiveId()]; a != nil {
		if ds := a.dates(); len(ds) > 0 {
			return ds
		}
	}
	ms := d.ev.GetSeenUnixMs()
	if ms == 0 {
		ms = d.lastMs
	}
	return []string{utcDate(ms)}
}

var eightDigits = regexp.MustCompile(`\d{8,}`)

// nameDate is the first run of exactly eight digits in name that is a calendar date, as
// YYYY-MM-DD, or "".
func nameDate(name string) string {
	for _, run := range eightDigits.FindAllString(name, -1) {
		if len(run) != 8 {
			continue
		}
		if t, err := time.Parse("20060102", run); err == nil {
			return t.Format(time.DateOnly)
		}
	}
	return ""
}

func utcDate(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.DateOnly) }

// names are the base names of every archive seen, for matching expected sources.
func (st *state) names() []string {
	var ns []string
	for _, a := range st.archives {
		if a.name != "" {
			ns = append(ns, a.name)
		} else if a.uri != "" {
			ns = append(ns, path.Base(a.uri))
		}
	}
	for _, d := range st.dups {
		ns = append(ns, path.Base(d.ev.GetUri()))
	}
	slices.Sort(ns)
	return slices.Compact(ns)
}
