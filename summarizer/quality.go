package summarizer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/quality"
	sluicev1 "github.com/sluice-dev/sluice/proto/sluicev1"
)

// Data quality in summaries (docs/DATA-QUALITY.md).
//
// Batch results come with the commits: each BatchCommitted carries the results of its batches,
// and the fold keeps one commit per (archive, attempt, table) — a replay or a redelivery
// replaces it — so they are counted once. An archive's table entry holds its results for the
// date (the passes counted, the rest listed), so an archive carried over from an existing
// summary keeps them; the date's table sums its archives' entries.
//
// Date results (volume) are evaluated when the date's summary is rendered with every archive
// terminal: the table's rows out on the date against the totals of its trailing days, taken
// from the renders of those dates (st.totals: this process's renders, else the summary.json in
// Out, read once). They are written to _dq/results/<table>/process_date=D/date.parquet before
// the summary, when their bytes change.

// resultsQuality is the quality, for date, of one table's batch results rs — a commit's (forced when
// committed past a fail rule) or those that made the merger dead-letter the batch (never forced):
// the results of that date (a result without a date counts on the archive's first date, as an
// object does). nil when there is no result for the date.
func resultsQuality(rs []*sluicev1.QualityResult, forced bool, date string, first bool) *QualityJSON {
	forcedFail := false // a forced commit's failed result: the one the force went past
	for _, r := range rs {
		forcedFail = forcedFail || (forced && r.GetStatus() == quality.StatusFail)
	}
	q := &QualityJSON{Results: []QualityResultJSON{}}
	n := 0
	for _, r := range rs {
		if d := r.GetProcessDate(); d != date && (d != "" || !first) {
			continue
		}
		n++
		rj := QualityResultJSON{Rule: r.GetRule(), Column: r.GetColumn(), Kind: r.GetKind(), Action: r.GetAction(),
			Status: r.GetStatus(), CheckedRows: r.GetCheckedRows(), FailedRows: r.GetFailedRows(),
			Observed: r.GetObserved(), Expected: r.GetExpected(), BatchID: r.GetBatchId()}
		if !q.count(rj.Status) {
			continue
		}
		if forced && rj.Status == quality.StatusFail {
			rj.Forced, q.Forced = true, true
		}
		q.Results = append(q.Results, rj)
	}
	if n == 0 {
		return nil
	}
	if forced && !forcedFail {
		q.Forced = true // forced, though no result says what failed: still a forced commit
	}
	q.Status = q.status()
	return q
}

// count counts a result of status st; it reports whether the result is to be listed (not a
// pass). A status this version does not know counts as a warning.
func (q *QualityJSON) count(st string) bool {
	switch st {
	case quality.StatusPass:
		q.RulesPassed++
		return false
	case quality.StatusFail:
		q.RulesFailed++
	case quality.StatusMissingColumn:
		q.RulesMissing++
	default:
		q.RulesWarned++
	}
	return true
}

func (q *QualityJSON) status() string {
	switch {
	case q.RulesFailed > 0 || q.Forced:
		return QualityFail
	case q.RulesWarned > 0 || q.RulesMissing > 0:
		return QualityWarn
	}
	return QualityOK
}

// add sums an archive's table quality into the date's table quality.
func (q *QualityJSON) add(o *QualityJSON, archive, archiveID string) {
	q.RulesPassed += o.RulesPassed
	q.RulesWarned += o.RulesWarned
	q.RulesFailed += o.RulesFailed
	q.RulesMissing += o.RulesMissing
	q.Forced = q.Forced || o.Forced
	for _, r := range o.Results {
		r.Archive, r.ArchiveID = archive, archiveID
		q.Results = append(q.Results, r)
	}
}

// addDate adds a date result (volume); it is listed whatever its status.
func (q *QualityJSON) addDate(r quality.Result) {
	q.count(r.Status)
	q.Results = append(q.Results, QualityResultJSON{Rule: r.Rule, Column: r.Column, Kind: r.Kind, Action: r.Action,
		Status: r.Status, CheckedRows: r.CheckedRows, FailedRows: r.FailedRows, Observed: r.Observed, Expected: r.Expected})
}

// worseQuality is the worse of two statuses ("" is none).
func worseQuality(a, b string) string {
	rank := func(s string) int { return slices.Index([]string{"", QualityOK, QualityWarn, QualityFail}, s) }
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// finishQuality sets the status of each table's quality and the date's.
func finishQuality(doc *SummaryJSON) {
	doc.Quality = ""
	for i := range doc.Tables {
		if q := doc.Tables[i].Quality; q != nil {
			q.Status = q.status()
			doc.Quality = worseQuality(doc.Quality, q.Status)
		}
	}
}

// dateQuality evaluates the date rules (volume) of the date's tables when every archive of the
// date is terminal, adds their results to doc and sets the quality statuses. It returns the
// date results, to be written as date.parquet.
func (s *Summarizer) dateQuality(ctx context.Context, date string, doc *SummaryJSON) ([]quality.Result, error) {
	defer finishQuality(doc)
	if s.partners == nil || len(s.partners.Partners) == 0 || doc.Totals.Pending > 0 || len(doc.Archives) == 0 {
		return nil, nil
	}
	var out []quality.Result
	for i := range doc.Tables {
		tj := &doc.Tables[i]
		rules, days := s.volumeRules(doc, tj.Table)
		if rules == nil {
			continue
		}
		history, err := s.history(ctx, date, tj.Table, days)
		if err != nil {
			return nil, err
		}
		res, ok, err := rules.Volume(date, tj.RowsOut, history)
		if err != nil || !ok {
			if err != nil {
				s.log.Warn("volume rule not evaluated", "date", date, "table", tj.Table, "err", err)
			}
			continue
		}
		if tj.Quality == nil {
			tj.Quality = &QualityJSON{Results: []QualityResultJSON{}}
		}
		tj.Quality.addDate(res)
		out = append(out, res)
	}
	return out, nil
}

// volumeRules are the compiled rules of table for the partner of the archives carrying it on the
// date (the first by name with a volume rule, should several partners send it), nil when none
// has a volume rule; days is the rule's trailing days.
func (s *Summarizer) volumeRules(doc *SummaryJSON, table string) (*quality.Rules, int) {
	var partners []string
	for _, e := range doc.Archives {
		if slices.ContainsFunc(e.Tables, func(t ArchiveTableJSON) bool { return t.Table == table }) {
			partners = append(partners, s.partners.Partner(e.Partner).Name)
		}
	}
	slices.Sort(partners)
	for _, name := range slices.Compact(partners) {
		if r := s.rulesOf(name, table); r != nil {
			if days, ok := r.VolumeTrailingDays(); ok {
				return r, days
			}
		}
	}
	return nil, 0
}

// rulesOf compiles (once) the rules of a partner's table; nil when they do not compile (logged:
// the configuration was validated at load, so this is not expected).
func (s *Summarizer) rulesOf(partner, table string) *quality.Rules {
	k := partner + "\x00" + table
	if r, ok := s.st.rules[k]; ok {
		return r
	}
	p := s.partners.Partner(partner)
	var q *config.Quality
	if tc, ok := p.Tables[table]; ok {
		q = tc.Quality
	}
	r, err := quality.Compile(table, q, p.QualityDefaults)
	if err != nil {
		s.log.Warn("data-quality rules do not compile; date rules skipped", "partner", partner, "table", table, "err", err)
		r = nil
	}
	s.st.rules[k] = r
	return r
}

// history is the table's totals of the days trailing date.
func (s *Summarizer) history(ctx context.Context, date, table string, days int) ([]quality.DayTotal, error) {
	d, err := time.Parse(time.DateOnly, date)
	if err != nil {
		return nil, nil // not a date: CheckVolume says so
	}
	var out []quality.DayTotal
	for i := 1; i <= days; i++ {
		day := d.AddDate(0, 0, -i).Format(time.DateOnly)
		totals, err := s.dayTotals(ctx, day)
		if err != nil {
			return nil, err
		}
		if n, ok := totals[table]; ok {
			out = append(out, quality.DayTotal{ProcessDate: day, Rows: n})
		}
	}
	return out, nil
}

// dayTotals are the rows out per table of date: from this process's latest render of the date,
// else from its summary.json in Out (read once; none there: no rows).
func (s *Summarizer) dayTotals(ctx context.Context, date string) (map[string]int64, error) {
	if t, ok := s.st.totals[date]; ok {
		return t, nil
	}
	totals := map[string]int64{}
	defer s.waited(time.Now()) // reading Out is not walking
	rc, err := s.out.Get(ctx, SummaryKey(date))
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		s.st.totals[date] = totals
		return totals, nil
	case err != nil:
		return nil, fmt.Errorf("read %s for the volume history: %w", SummaryKey(date), err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("read %s for the volume history: %w", SummaryKey(date), err)
	}
	var doc SummaryJSON
	if err := json.Unmarshal(b, &doc); err != nil {
		s.log.Warn("summary unreadable; no volume history from it", "date", date, "err", err)
	}
	for _, t := range doc.Tables {
		totals[t.Table] += t.RowsOut
	}
	s.st.totals[date] = totals
	return totals, nil
}

// setTotals records the rows out per table of a rendered date, for the volume of later dates.
func (st *state) setTotals(doc *SummaryJSON) {
	totals := map[string]int64{}
	for _, t := range doc.Tables {
		totals[t.Table] += t.RowsOut
	}
	st.totals[doc.ProcessDate] = totals
}

// writeDateResults writes each table's date results to quality.DateResultsKey when their bytes
// differ from what Out holds.
func (s *Summarizer) writeDateResults(ctx context.Context, date string, results []quality.Result) error {
	byTable := map[string][]quality.Result{}
	for _, r := range results {
		byTable[r.Table] = append(byTable[r.Table], r)
	}
	known := s.st.dqHash[date]
	if known == nil {
		known = map[string]string{}
		s.st.dqHash[date] = known
	}
	for _, table := range sortedKeys(byTable) {
		var buf bytes.Buffer
		if err := quality.WriteResults(&buf, memory.DefaultAllocator, byTable[table]); err != nil {
			return fmt.Errorf("encode the date results of %s %s: %w", table, date, err)
		}
		key := quality.DateResultsKey(table, date)
		h := hashOf(buf.Bytes())
		if _, ok := known[table]; !ok {
			prev, err := s.objectHash(ctx, key)
			if err != nil {
				return err
			}
			known[table] = prev
		}
		if known[table] == h {
			continue
		}
		if err := s.out.Put(ctx, key, bytes.NewReader(buf.Bytes())); err != nil {
			return fmt.Errorf("write %s: %w", key, err)
		}
		known[table] = h
		for _, r := range byTable[table] {
			s.m.dqResults.WithLabelValues(table, r.Rule, r.Status).Inc()
			if r.Status != quality.StatusPass {
				s.log.Warn("data-quality date rule did not pass", "date", date, "table", table, "rule", r.Rule,
					"status", r.Status, "observed", r.Observed, "expected", r.Expected)
			}
		}
	}
	return nil
}

// objectHash is the hash of the object at key, "" when there is none.
func (s *Summarizer) objectHash(ctx context.Context, key string) (string, error) {
	rc, err := s.out.Get(ctx, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	return hashOf(b), nil
}

// qualityGauges sets sluice_summarizer_dq_status per table to its status on the newest date
// whose summary is current in Out and has a quality part for it.
func (s *Summarizer) qualityGauges() {
	newest := map[string]string{} // table → date
	for date, ds := range s.st.dates {
		if !ds.current {
			continue
		}
		for table := range ds.tableQuality {
			if date > newest[table] {
				newest[table] = date
			}
		}
	}
	for table, date := range newest {
		v := 0.0
		switch s.st.dates[date].tableQuality[table] {
		case QualityWarn:
			v = 1
		case QualityFail:
			v = 2
		}
		s.m.dqStatus.WithLabelValues(table).Set(v)
	}
}

// pruneQuality forgets the totals and date-result hashes no date still held can need: totals
// more than the longest trailing window (366 days) before the oldest, hashes of dates not held.
func (st *state) pruneQuality(dates map[string]bool) {
	for d := range st.dqHash {
		if !dates[d] {
			delete(st.dqHash, d)
		}
	}
	if len(dates) == 0 {
		clear(st.totals)
		return
	}
	oldest := ""
	for d := range dates {
		if oldest == "" || d < oldest {
			oldest = d
		}
	}
	t, err := time.Parse(time.DateOnly, oldest)
	if err != nil {
		return
	}
	horizon := t.AddDate(0, 0, -367).Format(time.DateOnly)
	for d := range st.totals {
		if d < horizon {
			delete(st.totals, d)
		}
	}
}
