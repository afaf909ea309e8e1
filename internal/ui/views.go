package ui

import (
	"cmp"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/ledger"
	sluicev1 "github.com/sluice-dev/sluice/proto/sluicev1"
	"github.com/sluice-dev/sluice/summarizer"
)

// rateMinutes is the throughput window of the overview, in one-minute bins.
const rateMinutes = 60

// viewCache keeps the status of the fold for the version it was taken at: taking it walks every
// archive, so pages asking at the same version share one.
type viewCache struct {
	version uint64
	status  *summarizer.Status
}

// status returns the fold's status at the current version; m.mu is held.
func (m *Model) status() *summarizer.Status {
	if m.views.status == nil || m.views.version != m.version {
		st := m.fold.Status()
		st.CaughtUp = m.caughtUp
		m.views.status, m.views.version = &st, m.version
	}
	return m.views.status
}

// Overview is the #overview page.
type Overview struct {
	Version  uint64 `json:"version"`
	NowMs    int64  `json:"now_ms"`
	CaughtUp bool   `json:"caught_up"`
	Seq      uint64 `json:"seq"`
	// Throughput of CSV extracted: one bin per minute, oldest first, the last is the current minute.
	Rate struct {
		BinSeconds int     `json:"bin_seconds"`
		StartMs    int64   `json:"start_ms"`
		Rows       []int64 `json:"rows"`
		Bytes      []int64 `json:"bytes"`
		// Averages over the last 5 complete minutes plus the current one, and over the hour.
		RowsPerSec5m  float64 `json:"rows_per_sec_5m"`
		BytesPerSec5m float64 `json:"bytes_per_sec_5m"`
		RowsPerSec1h  float64 `json:"rows_per_sec_1h"`
		BytesPerSec1h float64 `json:"bytes_per_sec_1h"`
	} `json:"rate"`
	Ledger   map[ledger.State]int `json:"ledger"` // archives per ledger state now
	LedgerOK bool                 `json:"ledger_ok"`
	// LedgerWindowSec: committed records count only while their archive is within the events
	// stream's retention (its max age, in seconds; 0: unlimited).
	LedgerWindowSec int64       `json:"ledger_window_sec"`
	Totals          Totals      `json:"totals"`
	Cluster         ClusterInfo `json:"cluster"`
}

// Totals sum every archive the events stream holds (summarizer.Totals).
type Totals struct {
	Archives    int   `json:"archives"`
	Pending     int   `json:"pending"`
	Committed   int   `json:"committed"`
	Failed      int   `json:"failed"`
	Duplicates  int   `json:"duplicates"`
	RowsIn      int64 `json:"rows_in"`
	RowsOut     int64 `json:"rows_out"`
	Quarantined int64 `json:"quarantined"`
	Rejected    int   `json:"rejected_members"`
	Skipped     int   `json:"skipped_members"`
}

func (m *Model) overview() Overview {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.timeView(viewOverview, time.Now())
	st := m.status()
	t := st.Totals
	o := Overview{Version: m.version, NowMs: m.now().UnixMilli(), CaughtUp: m.caughtUp, Seq: m.seq,
		Totals: Totals{Archives: t.Archives, Pending: t.Pending, Committed: t.Committed, Failed: t.Failed, Duplicates: t.Duplicates,
			RowsIn: t.RowsIn, RowsOut: t.RowsOut, Quarantined: t.Quarantined, Rejected: t.RejectedMembers, Skipped: t.SkippedMembers},
		Ledger: map[ledger.State]int{}, LedgerOK: m.ledgerOK, LedgerWindowSec: int64(m.eventsMaxAge / time.Second)}
	now := m.now().UnixMilli() / 60000
	o.Rate.BinSeconds = 60
	o.Rate.StartMs = (now - rateMinutes + 1) * 60000
	var rows5, bytes5, rowsH, bytesH int64
	for i := range rateMinutes {
		minute := now - rateMinutes + 1 + int64(i)
		var r, b int64
		if x := m.bins[minute]; x != nil {
			r, b = x.rows, x.bytes
		}
		o.Rate.Rows = append(o.Rate.Rows, r)
		o.Rate.Bytes = append(o.Rate.Bytes, b)
		rowsH, bytesH = rowsH+r, bytesH+b
		if i >= rateMinutes-6 {
			rows5, bytes5 = rows5+r, bytes5+b
		}
	}
	// The current minute is partly over: divide by the time actually covered.
	partial := float64(m.now().UnixMilli()%60000) / 1000
	o.Rate.RowsPerSec5m, o.Rate.BytesPerSec5m = float64(rows5)/(300+partial), float64(bytes5)/(300+partial)
	o.Rate.RowsPerSec1h, o.Rate.BytesPerSec1h = float64(rowsH)/(3540+partial), float64(bytesH)/(3540+partial)
	for _, s := range []ledger.State{ledger.Landed, ledger.Extracting, ledger.Extracted, ledger.Committed, ledger.Failed} {
		o.Ledger[s] = 0
	}
	for _, r := range m.records {
		o.Ledger[r.State]++
	}
	return o
}

// Tables is the #tables page.
type Tables struct {
	Version uint64      `json:"version"`
	Days    []string    `json:"days"` // the trailing process dates shown, oldest first
	Tables  []TableView `json:"tables"`
}

// TableView is one table.
type TableView struct {
	Table       string           `json:"table"`
	RowsByDay   []int64          `json:"rows_by_day"` // rows out per Days entry
	RowsOut     int64            `json:"rows_out"`    // every date
	RowsIn      int64            `json:"rows_in"`
	Quarantined int64            `json:"quarantined"`
	Archives    int              `json:"archives"`
	Version     uint32           `json:"schema_version"`
	Columns     []ColumnView     `json:"columns"`
	History     []SchemaChange   `json:"schema_history"` // newest first
	LastCommit  int64            `json:"last_commit_ms"`
	Quality     *QualitySummary  `json:"quality,omitempty"` // nil until a rule ran
	Reasons     map[string]int64 `json:"quarantine_reasons,omitempty"`
}

// ColumnView is one column of the current schema.
type ColumnView struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	AddedIn uint32 `json:"added_in"`
}

// SchemaChange is one version of a table's schema.
type SchemaChange struct {
	Version     uint32   `json:"version"`
	Changes     []string `json:"changes"`
	AtMs        int64    `json:"at_ms"`
	ArchiveID   string   `json:"archive_id,omitempty"` // the archive whose batch made it
	ArchiveName string   `json:"archive_name,omitempty"`
}

// QualitySummary counts data-quality results.
type QualitySummary struct {
	Passed  int     `json:"passed"`
	Warned  int     `json:"warned"`
	Failed  int     `json:"failed"`
	Total   int     `json:"total"`
	Rate    float64 `json:"pass_rate"`
	LastBad string  `json:"last_bad,omitempty"` // rule (column): observed, of the newest result that did not pass
}

// trailingDays is how many process dates the tables page shows.
const trailingDays = 14

func (m *Model) tables() Tables {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.timeView(viewTables, time.Now())
	st := m.status()
	byTable := map[string]*TableView{}
	byDay := map[string]map[string]int64{} // table → date → rows
	view := func(name string) *TableView {
		t := byTable[name]
		if t == nil {
			t = &TableView{Table: name, Columns: []ColumnView{}, History: []SchemaChange{}}
			byTable[name] = t
			byDay[name] = map[string]int64{}
		}
		return t
	}
	dates := map[string]bool{}
	type cause struct{ id, name string }
	causes := map[string]map[uint32]cause{} // table → version → archive that made it
	var lastBadMs = map[string]int64{}
	for _, id := range sortedKeys(st.Archives) {
		ev, ok := m.fold.Events(id)
		if !ok {
			continue
		}
		name := st.Archives[id].Name
		if ev.Extracted != nil {
			for _, tc := range ev.Extracted.GetTables() {
				t := view(tc.GetTable())
				t.RowsIn += tc.GetRows()
				t.Archives++
			}
		}
		for _, tn := range sortedKeys(ev.Commits) {
			c := ev.Commits[tn]
			t := view(tn)
			t.LastCommit = max(t.LastCommit, c.GetCommittedUnixMs())
			t.Quarantined += c.GetQuarantined()
			for _, q := range c.GetQuarantineReasons() {
				if t.Reasons == nil {
					t.Reasons = map[string]int64{}
				}
				t.Reasons[q.GetReason()] += q.GetRows()
			}
			for _, o := range c.GetObjects() {
				t.RowsOut += o.GetRows()
				if d := o.GetProcessDate(); d != "" {
					byDay[tn][d] += o.GetRows()
					dates[d] = true
				}
			}
			if len(c.GetSchemaChanges()) > 0 {
				if causes[tn] == nil {
					causes[tn] = map[uint32]cause{}
				}
				causes[tn][c.GetSchemaVersion()] = cause{id, name}
			}
			t.Version = max(t.Version, c.GetSchemaVersion())
			addQuality(t, c, lastBadMs)
		}
	}
	for tn, vs := range m.schemas {
		t := view(tn)
		versions := sortedKeys(vs)
		for _, v := range versions {
			s := vs[v]
			ch := SchemaChange{Version: v, Changes: s.Changes, AtMs: s.UpdatedUnixMs}
			if c, ok := causes[tn][v]; ok {
				ch.ArchiveID, ch.ArchiveName = c.id, c.name
			}
			t.History = append(t.History, ch)
		}
		cur := vs[versions[len(versions)-1]]
		t.Version = max(t.Version, cur.Version)
		for _, c := range cur.Columns {
			t.Columns = append(t.Columns, ColumnView{Name: c.Name, Type: c.Type.String(), AddedIn: c.AddedIn})
		}
	}
	out := Tables{Version: m.version, Days: sortedKeys(dates)}
	if len(out.Days) > trailingDays {
		out.Days = out.Days[len(out.Days)-trailingDays:]
	}
	for _, tn := range sortedKeys(byTable) {
		t := byTable[tn]
		if len(t.History) == 0 {
			// The registry's history is gone (or not readable): what the commits said.
			for v, c := range causes[tn] {
				t.History = append(t.History, SchemaChange{Version: v, ArchiveID: c.id, ArchiveName: c.name})
			}
			for _, id := range sortedKeys(st.Archives) {
				if ev, ok := m.fold.Events(id); ok {
					if c := ev.Commits[tn]; c != nil && len(c.GetSchemaChanges()) > 0 {
						for i := range t.History {
							if t.History[i].Version == c.GetSchemaVersion() {
								t.History[i].Changes, t.History[i].AtMs = c.GetSchemaChanges(), c.GetCommittedUnixMs()
							}
						}
					}
				}
			}
		}
		slices.SortFunc(t.History, func(a, b SchemaChange) int { return cmp.Compare(b.Version, a.Version) })
		for _, d := range out.Days {
			t.RowsByDay = append(t.RowsByDay, byDay[tn][d])
		}
		if q := t.Quality; q != nil && q.Total > 0 {
			q.Rate = float64(q.Passed) / float64(q.Total)
		}
		out.Tables = append(out.Tables, *t)
	}
	if out.Tables == nil {
		out.Tables = []TableView{}
	}
	return out
}

// addQuality counts a commit's data-quality results into t.
func addQuality(t *TableView, c *sluicev1.BatchCommitted, lastBadMs map[string]int64) {
	for _, r := range c.GetQuality() {
		if t.Quality == nil {
			t.Quality = &QualitySummary{}
		}
		q := t.Quality
		q.Total++
		switch r.GetStatus() {
		case "pass":
			q.Passed++
			continue
		case "fail":
			q.Failed++
		default:
			q.Warned++
		}
		if c.GetCommittedUnixMs() >= lastBadMs[t.Table] {
			lastBadMs[t.Table] = c.GetCommittedUnixMs()
			q.LastBad = r.GetRule()
			if r.GetColumn() != "" {
				q.LastBad += " (" + r.GetColumn() + ")"
			}
			if r.GetObserved() != "" {
				q.LastBad += ": " + r.GetObserved()
			}
		}
	}
}

// ArchiveRow is one archive in the #archives list.
type ArchiveRow struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Partner     string   `json:"partner"`
	State       string   `json:"state"`        // summarizer verdict: pending, committed, failed, duplicate
	LedgerState string   `json:"ledger_state"` // landed, extracting, extracted, committed, failed
	Reason      string   `json:"reason,omitempty"`
	Dates       []string `json:"dates"`
	LandedMs    int64    `json:"landed_ms"`
	DoneMs      int64    `json:"done_ms"` // checked (or failed)
	RowsIn      int64    `json:"rows_in"`
	RowsOut     int64    `json:"rows_out"`
	Quarantined int64    `json:"quarantined"`
	Rejected    int      `json:"rejected"`
	Skipped     int      `json:"skipped"`
	Tables      int      `json:"tables"`
}

// Archives is the #archives list.
type Archives struct {
	Version  uint64       `json:"version"`
	Query    string       `json:"query"`
	Matched  int          `json:"matched"`
	Archives []ArchiveRow `json:"archives"` // newest first, at most the limit
}

func (m *Model) archiveRow(st *summarizer.Status, id string) ArchiveRow {
	a := st.Archives[id]
	r := ArchiveRow{ID: id, Name: a.Name, Partner: a.Partner, State: string(a.State), Reason: a.Reason, Dates: a.Dates,
		RowsIn: a.RowsIn, RowsOut: a.RowsOut, Quarantined: a.Quarantined, Rejected: a.Rejected, Skipped: a.Skipped, Tables: a.Tables}
	if r.Dates == nil {
		r.Dates = []string{}
	}
	if rec, ok := m.records[id]; ok {
		r.LedgerState = string(rec.State)
		if r.Name == id && rec.Name != "" {
			r.Name = rec.Name
		}
		if len(rec.History) > 0 {
			r.LandedMs = rec.History[0].AtMs
		}
	}
	if ev, ok := m.fold.Events(id); ok {
		if ev.Landed != nil && ev.Landed.GetLandedUnixMs() > 0 {
			r.LandedMs = ev.Landed.GetLandedUnixMs()
		}
		if ev.Failed != nil {
			r.DoneMs = ev.Failed.GetFailedUnixMs()
		}
	}
	if a.Checked {
		r.DoneMs = m.checkedMs[id]
	}
	return r
}

func (m *Model) archives(query string, limit int) Archives {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.timeView(viewArchives, time.Now())
	st := m.status()
	q := strings.ToLower(strings.TrimSpace(query))
	out := Archives{Version: m.version, Query: query, Archives: []ArchiveRow{}}
	var rows []ArchiveRow
	for id := range st.Archives {
		r := m.archiveRow(st, id)
		if q != "" && !matches(q, r) {
			continue
		}
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b ArchiveRow) int {
		return cmp.Or(cmp.Compare(b.LandedMs, a.LandedMs), cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	out.Matched = len(rows)
	if len(rows) > limit {
		rows = rows[:limit]
	}
	out.Archives = append(out.Archives, rows...)
	return out
}

// matches reports whether every word of q occurs in the archive's name, id, partner, state or
// dates (case-insensitive).
func matches(q string, r ArchiveRow) bool {
	hay := strings.ToLower(strings.Join(append([]string{r.Name, r.ID, r.Partner, r.State, r.LedgerState, r.Reason}, r.Dates...), " "))
	for _, w := range strings.Fields(q) {
		if !strings.Contains(hay, w) {
			return false
		}
	}
	return true
}

// ArchiveDetail is one archive opened in #archives.
type ArchiveDetail struct {
	ArchiveRow
	URI        string              `json:"uri,omitempty"`
	Size       int64               `json:"size"`
	Attempt    uint32              `json:"attempt"`
	Timeline   []Step              `json:"timeline"`
	TablesIn   []ArchiveTable      `json:"tables_detail"`
	Members    []Member            `json:"members"` // rejected and skipped
	History    []ledger.Transition `json:"ledger_history"`
	Duplicates []string            `json:"duplicates,omitempty"`
}

// Step is one step of an archive's timeline.
type Step struct {
	Step   string `json:"step"` // landed, extracted, committed, checked, failed
	AtMs   int64  `json:"at_ms"`
	TookMs int64  `json:"took_ms"` // since the previous step (0 for the first)
	Detail string `json:"detail,omitempty"`
}

// ArchiveTable is one table batch of an archive.
type ArchiveTable struct {
	Table       string `json:"table"`
	Partition   uint32 `json:"partition"`
	RowsIn      int64  `json:"rows_in"`
	RowsOut     int64  `json:"rows_out"` // committed rows (-1: not committed)
	Quarantined int64  `json:"quarantined"`
	Bytes       int64  `json:"bytes"` // CSV bytes
	Objects     int    `json:"objects"`
	Schema      uint32 `json:"schema_version"`
	CommitMs    int64  `json:"committed_ms"`
	Merger      string `json:"merger,omitempty"`
}

// Member is a member of an archive that was not taken as a table.
type Member struct {
	Member string `json:"member"`
	Kind   string `json:"kind"` // rejected | skipped
	Reason string `json:"reason"`
	Size   int64  `json:"size"`
}

// archiveIDPattern is what an archive id looks like (hex; a prefix of one is accepted too).
var archiveIDPattern = regexp.MustCompile(`^[0-9a-f]{1,64}$`)

func (m *Model) archive(id string) (ArchiveDetail, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.status()
	if _, ok := st.Archives[id]; !ok {
		return ArchiveDetail{}, false
	}
	d := ArchiveDetail{ArchiveRow: m.archiveRow(st, id), Timeline: []Step{}, TablesIn: []ArchiveTable{}, Members: []Member{}}
	d.Attempt = st.Archives[id].Attempt
	if rec, ok := m.records[id]; ok {
		d.URI, d.Size, d.History, d.Duplicates = rec.URI, rec.Size, rec.History, rec.Duplicates
	}
	ev, _ := m.fold.Events(id)
	if l := ev.Landed; l != nil {
		d.URI, d.Size = cmp.Or(l.GetUri(), d.URI), cmp.Or(l.GetSize(), d.Size)
	}
	add := func(step string, at int64, detail string) {
		if at <= 0 {
			return
		}
		s := Step{Step: step, AtMs: at, Detail: detail}
		if n := len(d.Timeline); n > 0 {
			s.TookMs = max(0, at-d.Timeline[n-1].AtMs)
		}
		d.Timeline = append(d.Timeline, s)
	}
	add("landed", d.LandedMs, "")
	if x := ev.Extracted; x != nil {
		add("extracted", x.GetExtractedUnixMs(), "")
		for _, tc := range x.GetTables() {
			at := ArchiveTable{Table: tc.GetTable(), Partition: tc.GetPartition(), RowsIn: tc.GetRows(), Bytes: tc.GetBytes(), RowsOut: -1}
			if c := ev.Commits[tc.GetTable()]; c != nil {
				at.RowsOut, at.Quarantined, at.Objects = c.GetRowsOut(), c.GetQuarantined(), len(c.GetObjects())
				at.Schema, at.CommitMs, at.Merger = c.GetSchemaVersion(), c.GetCommittedUnixMs(), c.GetMerger()
			}
			d.TablesIn = append(d.TablesIn, at)
		}
		for _, r := range x.GetRejected() {
			d.Members = append(d.Members, Member{Member: r.GetMember(), Kind: r.GetKind(), Reason: r.GetReason(), Size: r.GetSize()})
		}
	}
	var lastCommit int64
	complete := ev.Extracted != nil
	for _, t := range d.TablesIn {
		if t.RowsOut < 0 {
			complete = false
		}
		lastCommit = max(lastCommit, t.CommitMs)
	}
	if complete && lastCommit > 0 {
		add("committed", lastCommit, "")
	}
	if f := ev.Failed; f != nil {
		add("failed", f.GetFailedUnixMs(), f.GetReason())
	} else if st.Archives[id].Checked {
		detail := "rows in = Parquet footer rows + quarantined"
		if d.State == string(summarizer.StateFailed) {
			detail = d.Reason
		}
		add("checked", m.checkedMs[id], detail)
	}
	return d, true
}

// Dates is the #dates page.
type Dates struct {
	Version uint64     `json:"version"`
	Out     bool       `json:"out"`   // summaries can be opened (the output store is readable)
	Dates   []DateView `json:"dates"` // newest first
}

// DateView is one process date.
type DateView struct {
	Date        string                   `json:"date"`
	Archives    int                      `json:"archives"`
	Pending     int                      `json:"pending"`
	Written     bool                     `json:"written"` // a summary was written
	Complete    bool                     `json:"complete"`
	Missing     []string                 `json:"missing"`
	Check       string                   `json:"check"` // OK | FAIL | PENDING | "" (no summary yet)
	Quality     string                   `json:"quality,omitempty"`
	Key         string                   `json:"key"` // summary.txt key under the output root
	RowsIn      int64                    `json:"rows_in"`
	RowsOut     int64                    `json:"rows_out"`
	Quarantined int64                    `json:"quarantined"`
	Failed      int                      `json:"failed"`
	Sources     []summarizer.SourcesJSON `json:"sources"`
	ReadError   string                   `json:"read_error,omitempty"`
}

func (m *Model) datesView() Dates {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.timeView(viewDates, time.Now())
	st := m.status()
	out := Dates{Version: m.version, Out: m.out != nil, Dates: []DateView{}}
	keys := map[string]bool{}
	for d := range st.Dates {
		keys[d] = true
	}
	for d := range m.dates {
		keys[d] = true
	}
	all := sortedKeys(keys)
	slices.Reverse(all)
	for _, d := range all {
		s := st.Dates[d]
		v := DateView{Date: d, Archives: s.Archives, Pending: s.Pending, Missing: []string{}, Sources: []summarizer.SourcesJSON{},
			Key: strings.TrimSuffix(summarizer.SummaryKey(d), ".json") + ".txt"}
		if ds := m.dates[d]; ds != nil && ds.ev != nil {
			v.Written, v.Complete, v.Quality = true, ds.ev.GetComplete(), ds.ev.GetQuality()
			v.Missing = append(v.Missing, ds.ev.GetMissingSources()...)
			v.Check = summarizer.CheckFail
			if ds.ev.GetCheckOk() {
				v.Check = summarizer.CheckOK
			}
			v.ReadError = ds.readErr
			if doc := ds.doc; doc != nil {
				v.Check = doc.Check
				v.RowsIn, v.RowsOut, v.Quarantined, v.Failed = doc.Totals.RowsIn, doc.Totals.RowsOut, doc.Totals.Quarantined, doc.Totals.Failed
				if doc.Sources != nil {
					v.Sources = doc.Sources
				}
				if s.Archives == 0 {
					v.Archives = doc.Totals.Archives
				}
			}
		}
		out.Dates = append(out.Dates, v)
	}
	return out
}

// sortedKeys returns the keys of a map in order.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
