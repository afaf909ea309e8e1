package summarizer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/quality"
	sluicev1 "github.com/sluice-dev/sluice/proto/sluicev1"
	"github.com/sluice-dev/sluice/summarizer"
)

// qr is a batch result of process date `day`, batch b1, as the merger puts it in BatchCommitted.
func qr(rule, column, kind, action, status string, checked, failed int64, observed, expected string) *sluicev1.QualityResult {
	return &sluicev1.QualityResult{Rule: rule, Column: column, Kind: kind, Action: action, Status: status,
		CheckedRows: checked, FailedRows: failed, Observed: observed, Expected: expected, ProcessDate: day, BatchId: "b1"}
}

func pass(rule, column, kind string, checked int64) *sluicev1.QualityResult {
	return qr(rule, column, kind, "warn", quality.StatusPass, checked, 0, "", "")
}

// publishWithQuality publishes landed, extracted and the commits of f, with quality[table] as
// the results of that table's commit (forced[table]: committed with --force).
func (e *env) publishWithQuality(t *testing.T, f fixture, results map[string][]*sluicev1.QualityResult, forced map[string]bool) uint64 {
	t.Helper()
	sub := e.b.Subjects
	e.pub(t, sub.Landed(), f.landed())
	seq := e.pub(t, sub.Extracted(), f.extracted())
	for _, tb := range f.tables {
		c := e.commit(t, f, tb.name)
		c.Quality, c.QualityForced = results[tb.name], forced[tb.name]
		if len(c.Quality) > 0 {
			c.QualityKey = quality.ResultsKey(tb.name, day, "b1", f.id)
		}
		seq = e.pub(t, sub.Committed(), c)
	}
	return seq
}

// metricValue returns the value of a metric with the given labels (a histogram's sample count),
// and whether it exists.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue(), true
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount()), true // a histogram: how many were observed
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

func lastSummaryEvent(t *testing.T, e *env) *sluicev1.SummaryWritten {
	t.Helper()
	sw := summaryEvents(t, e)
	if len(sw) == 0 {
		t.Fatal("no summary event")
	}
	return sw[len(sw)-1]
}

// TestQualityInSummary: batch results of two archives (pass, warn, missing column, then a fail
// committed with --force) are summed per table; every result that did not pass is listed with
// its archive and batch; the date is WARN, then FAIL once the forced commit is in.
func TestQualityInSummary(t *testing.T) {
	e := newEnv(t, nil)
	s, _ := e.start(t)
	a := goodArchive("a0000000000000000101", "acme_20250102_1.tar.gz")
	rangeObs := `59 of 956 values fail (6.17%); e.g. "-57.5", "100274.25"`
	results := map[string][]*sluicev1.QualityResult{
		"orders": {
			pass(quality.RuleKey, "id", quality.KindRow, 4),
			pass(quality.RuleNotNull, "price", quality.KindRow, 4),
			qr(quality.RuleRange, "price", quality.KindRow, "warn", quality.StatusWarn, 956, 59, rangeObs, "in [0, 100000]"),
			qr(quality.RuleAllowed, "currency", quality.KindRow, "warn", quality.StatusMissingColumn, 0, 0, "column currency not in the batch", "one of EUR, KRW, USD"),
			pass(quality.RuleRowCount, "", quality.KindTable, 4),
		},
		"customers": {pass(quality.RuleKey, "id", quality.KindRow, 3), pass(quality.RuleNotNull, "email", quality.KindRow, 3)},
	}
	e.publishWithQuality(t, a, results, nil)
	st := waitFor(t, s, a.id)
	if d := st.Dates[day]; d.Quality != summarizer.QualityWarn {
		t.Fatalf("date status %+v", d)
	}
	doc, txt := e.summary(t, day)
	t.Logf("summary.txt:\n%s", txt)
	if doc.Quality != summarizer.QualityWarn {
		t.Fatalf("date quality %q", doc.Quality)
	}
	o := tableByName(doc, "orders").Quality
	if o == nil || o.Status != summarizer.QualityWarn || o.RulesPassed != 3 || o.RulesWarned != 1 || o.RulesFailed != 0 || o.RulesMissing != 1 || o.Forced {
		t.Fatalf("orders quality %+v", o)
	}
	if len(o.Results) != 2 {
		t.Fatalf("orders results %+v", o.Results)
	}
	want := summarizer.QualityResultJSON{Rule: "range", Column: "price", Kind: "row", Action: "warn", Status: "warn", CheckedRows: 956,
		FailedRows: 59, Observed: rangeObs, Expected: "in [0, 100000]", Archive: a.name, ArchiveID: a.id, BatchID: "b1"}
	if o.Results[0] != want || o.Results[1].Status != quality.StatusMissingColumn {
		t.Fatalf("orders results %+v", o.Results)
	}
	if c := tableByName(doc, "customers").Quality; c == nil || c.Status != summarizer.QualityOK || c.RulesPassed != 2 || len(c.Results) != 0 {
		t.Fatalf("customers quality %+v", c)
	}
	if r := tableByName(doc, "refunds"); r.Quality != nil {
		t.Fatalf("refunds (no results) has a quality part %+v", r.Quality)
	}
	// The archive's own entry keeps its results, without repeating the archive.
	at := doc.Archives[0].Tables
	for _, x := range at {
		if x.Table == "orders" && (x.Quality == nil || x.Quality.RulesWarned != 1 || x.Quality.Results[0].Archive != "") {
			t.Fatalf("archive entry orders %+v", x.Quality)
		}
	}
	for _, w := range []string{"check OK · sources complete · DQ WARN", "DATA QUALITY · WARN", "DATA QUALITY · NOT PASSED", rangeObs,
		"missing_column", "in [0, 100000]"} {
		if !strings.Contains(txt, w) {
			t.Errorf("summary.txt lacks %q", w)
		}
	}
	assertAligned(t, txt, "DATA QUALITY · WARN", "failed")
	assertAligned(t, txt, "DATA QUALITY · NOT PASSED", "checked")
	if ev := lastSummaryEvent(t, e); ev.GetQuality() != summarizer.QualityWarn {
		t.Fatalf("summary event %v", ev)
	}
	if v, ok := metricValue(t, e.reg, "sluice_summarizer_dq_status", map[string]string{"table": "orders"}); !ok || v != 1 {
		t.Fatalf("dq_status orders %v %v", v, ok)
	}

	// A second archive: its orders batch failed the quarantine rule and was committed with
	// `sluice dlq retry --force`.
	b := fixture{id: "a0000000000000000102", name: "acme_20250102_2.tar.gz", tables: []tbl{
		{name: "orders", in: map[string]int64{day: 10}, committed: map[string]int64{day: 4}, footer: map[string]int{day: 4}, quarantined: 6, reason: "price: range"},
	}}
	e.publishWithQuality(t, b, map[string][]*sluicev1.QualityResult{"orders": {
		pass(quality.RuleKey, "id", quality.KindRow, 10),
		qr(quality.RuleQuarantine, "", quality.KindTable, "fail", quality.StatusFail, 10, 6, "6 of 10 rows quarantined (60%)", "at most 5%"),
	}}, map[string]bool{"orders": true})
	st = waitFor(t, s, b.id)
	if d := st.Dates[day]; d.Quality != summarizer.QualityFail || !d.CheckOK {
		t.Fatalf("date status %+v", d)
	}
	doc, txt = e.summary(t, day)
	t.Logf("summary.txt:\n%s", txt)
	o = tableByName(doc, "orders").Quality
	if doc.Quality != summarizer.QualityFail || o.Status != summarizer.QualityFail || !o.Forced || o.RulesPassed != 4 || o.RulesFailed != 1 || len(o.Results) != 3 {
		t.Fatalf("after the forced commit: date %q orders %+v", doc.Quality, o)
	}
	if f := o.Results[2]; f.Rule != "quarantine" || !f.Forced || f.Archive != b.name || f.Status != "fail" {
		t.Fatalf("forced result %+v", f)
	}
	for _, w := range []string{"DQ FAIL", "DATA QUALITY · FAIL", "fail (forced)", "committed with --force"} {
		if !strings.Contains(txt, w) {
			t.Errorf("summary.txt lacks %q", w)
		}
	}
	assertAligned(t, txt, "DATA QUALITY · NOT PASSED", "failed")
	if ev := lastSummaryEvent(t, e); ev.GetQuality() != summarizer.QualityFail {
		t.Fatalf("summary event %v", ev)
	}
	for table, want := range map[string]float64{"orders": 2, "customers": 0} {
		if v, ok := metricValue(t, e.reg, "sluice_summarizer_dq_status", map[string]string{"table": table}); !ok || v != want {
			t.Errorf("dq_status %s = %v (%v), want %v", table, v, ok, want)
		}
	}
}

// TestQualityCountedOnce: the same BatchCommitted delivered again (before and after the summary
// was written) does not count its results twice; a replayed commit replaces them.
func TestQualityCountedOnce(t *testing.T) {
	e := newEnv(t, nil)
	s, _ := e.start(t)
	sub := e.b.Subjects
	f := fixture{id: "a0000000000000000103", name: "acme_20250102_1.tar.gz", tables: []tbl{
		{name: "orders", in: map[string]int64{day: 4}, committed: map[string]int64{day: 4}, footer: map[string]int{day: 4}},
	}}
	c := e.commit(t, f, "orders")
	c.Quality = []*sluicev1.QualityResult{pass(quality.RuleKey, "id", quality.KindRow, 4),
		qr(quality.RuleRowCount, "", quality.KindTable, "warn", quality.StatusWarn, 4, 0, "4 rows", "at least 10 rows")}
	e.pub(t, sub.Landed(), f.landed())
	e.pub(t, sub.Extracted(), f.extracted())
	e.pub(t, sub.Committed(), c)
	e.pub(t, sub.Committed(), c)
	waitFor(t, s, f.id)
	before := e.rawSummary(t, day)
	waitSeq(t, s, e.pub(t, sub.Committed(), c))
	if !bytes.Equal(before, e.rawSummary(t, day)) {
		t.Fatal("a redelivered commit changed the summary")
	}
	doc, _ := e.summary(t, day)
	if q := tableByName(doc, "orders").Quality; q == nil || q.RulesPassed != 1 || q.RulesWarned != 1 || len(q.Results) != 1 || doc.Quality != summarizer.QualityWarn {
		t.Fatalf("quality %+v", q)
	}
	if n := len(summaryEvents(t, e)); n != 1 {
		t.Fatalf("%d summary events, want 1", n)
	}

	// sluice replay of the same attempt, after the partner's fix: the new results replace the old.
	r := e.commit(t, f, "orders")
	r.Replay = true
	r.CommittedUnixMs = t0.Add(time.Hour).UnixMilli()
	r.Quality = []*sluicev1.QualityResult{pass(quality.RuleKey, "id", quality.KindRow, 4), pass(quality.RuleRowCount, "", quality.KindTable, 4)}
	waitSeq(t, s, e.pub(t, sub.Committed(), r))
	st := waitStatus(t, s, func(st summarizer.Status) bool {
		return st.Dates[day].Written && st.Dates[day].Quality == summarizer.QualityOK
	})
	if st.Dates[day].Quality != summarizer.QualityOK {
		t.Fatalf("date %+v", st.Dates[day])
	}
	doc, txt := e.summary(t, day)
	if q := tableByName(doc, "orders").Quality; q == nil || q.RulesPassed != 2 || q.RulesWarned != 0 || len(q.Results) != 0 || q.Status != summarizer.QualityOK {
		t.Fatalf("quality after replay %+v", q)
	}
	if !strings.Contains(txt, "DQ OK") || strings.Contains(txt, "NOT PASSED") {
		t.Fatalf("summary.txt:\n%s", txt)
	}
}

// TestQualityPassesPerDate: a commit of two process dates counts each date's passes in that
// date's summary. The fold keeps a pass as its status and date only (compactCommit), so the date
// is what it must not lose.
func TestQualityPassesPerDate(t *testing.T) {
	const day2 = "2025-01-03"
	e := newEnv(t, nil)
	s, _ := e.start(t)
	sub := e.b.Subjects
	f := fixture{id: "a0000000000000000104", name: "acme_20250102_1.tar.gz", tables: []tbl{
		{name: "orders", in: map[string]int64{day: 3, day2: 2}, committed: map[string]int64{day: 3, day2: 2}, footer: map[string]int{day: 3, day2: 2}},
	}}
	on := func(r *sluicev1.QualityResult, date string) *sluicev1.QualityResult { r.ProcessDate = date; return r }
	c := e.commit(t, f, "orders")
	c.Quality = []*sluicev1.QualityResult{
		on(pass(quality.RuleKey, "id", quality.KindRow, 3), day),
		on(pass(quality.RuleKey, "id", quality.KindRow, 2), day2),
		on(pass(quality.RuleNotNull, "price", quality.KindRow, 2), day2),
		on(qr(quality.RuleRowCount, "", quality.KindTable, "warn", quality.StatusWarn, 2, 0, "2 rows", "at least 3 rows"), day2),
	}
	c.QualityKey = quality.ResultsKey("orders", day, "b1", f.id)
	e.pub(t, sub.Landed(), f.landed())
	e.pub(t, sub.Extracted(), f.extracted())
	e.pub(t, sub.Committed(), c)
	waitFor(t, s, f.id)
	for _, w := range []struct {
		date           string
		passed, warned int
	}{{day, 1, 0}, {day2, 2, 1}} {
		doc, _ := e.summary(t, w.date)
		if q := tableByName(doc, "orders").Quality; q == nil || q.RulesPassed != w.passed || q.RulesWarned != w.warned || len(q.Results) != w.warned {
			t.Fatalf("%s: quality %+v, want %d passed and %d warned", w.date, q, w.passed, w.warned)
		}
	}
}

// TestNoQualityNoChange: without results (no rules anywhere, or rules without a volume rule that
// the merger did not report on) the summary has no quality part and the headline is unchanged.
func TestNoQualityNoChange(t *testing.T) {
	partners := &config.File{Partners: []config.Partner{{Name: "acme", Tables: map[string]config.TableConfig{
		"orders": {Quality: &config.Quality{Table: &config.TableRules{RowCount: &config.RowCountRule{Min: new(int64(1))}}}},
	}}}}
	e := newEnv(t, partners)
	s, _ := e.start(t)
	f := goodArchive("a0000000000000000104", "acme_20250102_1.tar.gz")
	e.publishAll(t, f)
	st := waitFor(t, s, f.id)
	if st.Dates[day].Quality != "" {
		t.Fatalf("date %+v", st.Dates[day])
	}
	raw := e.rawSummary(t, day)
	if bytes.Contains(raw, []byte(`"quality"`)) {
		t.Fatalf("summary.json has a quality part:\n%s", raw)
	}
	_, txt := e.summary(t, day)
	if strings.Contains(txt, "DQ") || strings.Contains(txt, "DATA QUALITY") {
		t.Fatalf("summary.txt:\n%s", txt)
	}
	if !strings.Contains(txt, "\ncheck OK · sources complete · as of ") {
		t.Fatalf("headline changed:\n%s", txt)
	}
	if ev := lastSummaryEvent(t, e); ev.GetQuality() != "" {
		t.Fatalf("summary event %v", ev)
	}
	if _, ok := metricValue(t, e.reg, "sluice_summarizer_dq_status", nil); ok {
		t.Fatal("dq_status without any result")
	}
}

// volumePartners: acme's orders have a volume rule: 7 trailing days, ±20%, 3 days with data,
// action fail.
func volumePartners() *config.File {
	return &config.File{Partners: []config.Partner{{Name: "acme", Tables: map[string]config.TableConfig{
		"orders": {Quality: &config.Quality{Table: &config.TableRules{Volume: &config.VolumeRule{
			TrailingDays: 7, MaxChange: new(0.2), MinHistory: 3, Action: config.ActionFail}}}},
	}}}}
}

// seedSummary writes a summary.json of date with the given rows out per table, as an earlier run
// would have left it.
func (e *env) seedSummary(t *testing.T, date string, rowsOut map[string]int64) {
	t.Helper()
	doc := summarizer.SummaryJSON{ProcessDate: date, Check: summarizer.CheckOK, Complete: true}
	for table, n := range rowsOut {
		doc.Tables = append(doc.Tables, summarizer.TableJSON{Table: table, RowsOut: n, Check: summarizer.CheckOK})
		doc.Totals.RowsOut += n
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.out.Put(context.Background(), summarizer.SummaryKey(date), bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

func (e *env) dateResults(t *testing.T, table, date string) ([]quality.Result, []byte) {
	t.Helper()
	rc, err := e.out.Get(context.Background(), quality.DateResultsKey(table, date))
	if err != nil {
		t.Fatalf("date results of %s %s: %v", table, date, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	res, err := quality.ReadResults(bytes.NewReader(b), memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

// TestVolumeFromPreviousSummaries: the history is read from the summary.json of the trailing
// days in Out; a third of the usual rows fails the volume rule (action fail): the date is FAIL,
// the baseline and band are shown, and date.parquet is written, once.
func TestVolumeFromPreviousSummaries(t *testing.T) {
	e := newEnv(t, volumePartners())
	// 2024-12-26 .. 2025-01-01 (the 7 days before): 5 days with data, median 1100.
	for date, n := range map[string]int64{"2024-12-26": 1000, "2024-12-27": 1200, "2024-12-29": 900, "2024-12-31": 1100, "2025-01-01": 1300,
		"2024-12-20": 5} { // outside the window
		e.seedSummary(t, date, map[string]int64{"orders": n, "customers": 7})
	}
	s, stop := e.start(t)
	f := fixture{id: "a0000000000000000105", name: "acme_20250102_1.tar.gz", tables: []tbl{
		{name: "orders", in: map[string]int64{day: 366}, committed: map[string]int64{day: 366}, footer: map[string]int{day: 366}},
		{name: "customers", in: map[string]int64{day: 3}, committed: map[string]int64{day: 3}, footer: map[string]int{day: 3}},
	}}
	e.publishAll(t, f)
	st := waitFor(t, s, f.id)
	if st.Dates[day].Quality != summarizer.QualityFail {
		t.Fatalf("date %+v", st.Dates[day])
	}
	doc, txt := e.summary(t, day)
	t.Logf("summary.txt:\n%s", txt)
	const band = "baseline 1100 (median of 5 days with data in the 7 before), band [880, 1320] (±20%)"
	q := tableByName(doc, "orders").Quality
	if doc.Quality != summarizer.QualityFail || q == nil || q.Status != summarizer.QualityFail || q.RulesFailed != 1 || len(q.Results) != 1 {
		t.Fatalf("date %q orders quality %+v", doc.Quality, q)
	}
	v := q.Results[0]
	if v.Rule != "volume" || v.Kind != "date" || v.Status != "fail" || v.CheckedRows != 366 || v.Expected != band ||
		!strings.HasPrefix(v.Observed, "366 rows (-66.73% from the baseline)") || v.Archive != "" || v.BatchID != "" {
		t.Fatalf("volume result %+v", v)
	}
	if c := tableByName(doc, "customers"); c.Quality != nil {
		t.Fatalf("customers has no rule: %+v", c.Quality)
	}
	for _, w := range []string{"DQ FAIL", "DATA QUALITY · VOLUME", band, "366 rows"} {
		if !strings.Contains(txt, w) {
			t.Errorf("summary.txt lacks %q", w)
		}
	}
	assertAligned(t, txt, "DATA QUALITY · VOLUME (rows of the date against the trailing days)", "rows")
	res, raw := e.dateResults(t, "orders", day)
	if len(res) != 1 || res[0].Status != quality.StatusFail || res[0].Expected != band || res[0].Table != "orders" ||
		res[0].ProcessDate != day || res[0].Kind != quality.KindDate || res[0].CheckedRows != 366 {
		t.Fatalf("date.parquet %+v", res)
	}
	if v, ok := metricValue(t, e.reg, "sluice_summarizer_dq_results_total", map[string]string{"table": "orders", "rule": "volume", "status": "fail"}); !ok || v != 1 {
		t.Fatalf("dq_results_total %v %v", v, ok)
	}
	if v, _ := metricValue(t, e.reg, "sluice_summarizer_dq_status", map[string]string{"table": "orders"}); v != 2 {
		t.Fatalf("dq_status %v", v)
	}
	if ev := lastSummaryEvent(t, e); ev.GetQuality() != summarizer.QualityFail {
		t.Fatalf("summary event %v", ev)
	}

	// A restart renders the same bytes: nothing is written again.
	stop()
	nEvents := len(summaryEvents(t, e))
	s2, _ := e.start(t)
	waitFor(t, s2, f.id)
	if _, raw2 := e.dateResults(t, "orders", day); !bytes.Equal(raw, raw2) {
		t.Fatal("date.parquet changed on restart")
	}
	if n := len(summaryEvents(t, e)); n != nEvents {
		t.Fatalf("restart published %d summary events more", n-nEvents)
	}
	if v, _ := metricValue(t, e.reg, "sluice_summarizer_dq_results_total", map[string]string{"table": "orders", "rule": "volume", "status": "fail"}); v != 1 {
		t.Fatalf("dq_results_total after restart %v", v)
	}

	// A late archive with only customers: the summary is rewritten, orders' volume result is the
	// same, so its date.parquet (compared with what Out holds) is not.
	late := fixture{id: "a0000000000000000106", name: "acme_20250102_2.tar.gz", tables: []tbl{
		{name: "customers", in: map[string]int64{day: 2}, committed: map[string]int64{day: 2}, footer: map[string]int{day: 2}},
	}}
	e.publishAll(t, late)
	waitFor(t, s2, late.id)
	if doc, _ := e.summary(t, day); tableByName(doc, "customers").RowsOut != 5 || doc.Quality != summarizer.QualityFail {
		t.Fatalf("after the late archive %+v", doc.Tables)
	}
	if _, raw3 := e.dateResults(t, "orders", day); !bytes.Equal(raw, raw3) {
		t.Fatal("date.parquet changed")
	}
	if v, _ := metricValue(t, e.reg, "sluice_summarizer_dq_results_total", map[string]string{"table": "orders", "rule": "volume", "status": "fail"}); v != 1 {
		t.Fatalf("date.parquet written again: dq_results_total %v", v)
	}
}

// TestVolumeFromTheFold: the history is the fold's own dates (no summary seeded): four days of
// about 10 rows, then a day within the band (pass, date.parquet says so) and one outside it.
func TestVolumeFromTheFold(t *testing.T) {
	e := newEnv(t, volumePartners())
	s, _ := e.start(t)
	var ids []string
	rows := []int64{10, 12, 9, 11, 10, 3} // 2024-12-28 .. 2025-01-02
	for i, n := range rows {
		d := time.Date(2024, 12, 28+i, 0, 0, 0, 0, time.UTC)
		date := d.Format(time.DateOnly)
		f := fixture{id: fmt.Sprintf("a%019d", 200+i), name: "acme_" + d.Format("20060102") + "_1.tar.gz", tables: []tbl{
			{name: "orders", in: map[string]int64{date: n}, committed: map[string]int64{date: n}, footer: map[string]int{date: int(n)}},
		}}
		e.publishAll(t, f)
		ids = append(ids, f.id)
	}
	st := waitFor(t, s, ids...)
	for date, want := range map[string]string{"2024-12-28": summarizer.QualityOK, "2025-01-01": summarizer.QualityOK, day: summarizer.QualityFail} {
		if got := st.Dates[date].Quality; got != want {
			t.Errorf("%s quality %q, want %q", date, got, want)
		}
	}
	first, _ := e.summary(t, "2024-12-28")
	if v := tableByName(first, "orders").Quality.Results[0]; v.Status != "pass" || !strings.HasPrefix(v.Observed, "insufficient history: 0 of 3 days") {
		t.Fatalf("first day %+v", v)
	}
	// 2025-01-01: 10, 12, 9, 11 before → median 10.5, band [8.4, 12.6]: 10 passes.
	if res, _ := e.dateResults(t, "orders", "2025-01-01"); len(res) != 1 || res[0].Status != "pass" ||
		!strings.HasPrefix(res[0].Expected, "baseline 10.5 (median of 4 days with data in the 7 before), band [8.4, 12.6]") {
		t.Fatalf("2025-01-01 %+v", res)
	}
	// 2025-01-02: 10, 12, 9, 11, 10 → median 10, band [8, 12]: 3 fails.
	if res, _ := e.dateResults(t, "orders", day); len(res) != 1 || res[0].Status != "fail" ||
		!strings.HasPrefix(res[0].Expected, "baseline 10 (median of 5 days with data in the 7 before), band [8, 12]") {
		t.Fatalf("%s %+v", day, res)
	}
	if v, _ := metricValue(t, e.reg, "sluice_summarizer_dq_status", map[string]string{"table": "orders"}); v != 2 {
		t.Fatalf("dq_status of the newest date %v", v)
	}
	// Each write counts (a date evaluated before its trailing days were in is written again).
	if v, _ := metricValue(t, e.reg, "sluice_summarizer_dq_results_total", map[string]string{"table": "orders", "rule": "volume", "status": "pass"}); v < 5 {
		t.Fatalf("dq_results_total pass %v", v)
	}
}
