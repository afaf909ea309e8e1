package summarizer

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/internal/quality"
)

// renderText renders the human summary.txt: a few headline lines, then aligned tables.
func renderText(doc SummaryJSON) []byte {
	var b strings.Builder
	t := doc.Totals
	fmt.Fprintf(&b, "sluice summary · process date %s\n", doc.ProcessDate)
	// "complete" is about the expected sources only; a failed archive is said separately, so a
	// date with one never reads as complete.
	sources := "sources complete"
	if !doc.Complete {
		sources = "sources INCOMPLETE"
	}
	fmt.Fprintf(&b, "check %s · %s", doc.Check, sources)
	if t.Failed > 0 {
		fmt.Fprintf(&b, " · %d archives FAILED", t.Failed)
	}
	if doc.Quality != "" {
		fmt.Fprintf(&b, " · DQ %s", doc.Quality)
	}
	if doc.AsOf != "" {
		fmt.Fprintf(&b, " · as of %s", doc.AsOf)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "archives %d (committed %d, failed %d, pending %d) · duplicates skipped %d\n",
		t.Archives, t.Committed, t.Failed, t.Pending, t.Duplicates)
	fmt.Fprintf(&b, "rows in %s · rows out %s · quarantined %s · rejected members %d · skipped members %d\n",
		num(t.RowsIn), num(t.RowsOut), num(t.Quarantined), t.RejectedMembers, t.SkippedMembers)
	fmt.Fprintf(&b, "objects %d · %s · extract %s · commit %s\n", t.Objects, bytesStr(t.Bytes), ms(t.ExtractMs), ms(t.CommitMs))

	if len(doc.Tables) > 0 {
		tt := newTextTable("table", ">archives", ">rows in", ">rows out", ">quarantined", ">objects", ">bytes", "schema", ">commit", "check")
		for _, x := range doc.Tables {
			tt.add(x.Table, strconv.Itoa(x.Archives), num(x.RowsIn), num(x.RowsOut), num(x.Quarantined),
				strconv.Itoa(x.Objects), bytesStr(x.Bytes), version(x.SchemaVersion), ms(x.CommitMs), dash(x.Check))
		}
		tt.add("total", strconv.Itoa(t.Archives), num(t.RowsIn), num(t.RowsOut), num(t.Quarantined),
			strconv.Itoa(t.Objects), bytesStr(t.Bytes), "", ms(t.CommitMs), doc.Check)
		section(&b, "TABLES", tt)
	}
	if len(doc.Archives) > 0 {
		tt := newTextTable("archive", "id", "state", ">rows in", ">rows out", ">quarantined", ">extract", ">commit", "check")
		for _, a := range doc.Archives {
			tt.add(a.Name, a.ArchiveID, string(a.State), num(a.RowsIn), num(a.RowsOut), num(a.Quarantined),
				ms(a.ExtractMs), ms(a.CommitMs), dash(a.Check))
		}
		section(&b, "ARCHIVES", tt)
	}
	changes := newTextTable("table", "version", "change")
	quarantine := newTextTable("table", ">rows", "reason")
	for _, x := range doc.Tables {
		for _, c := range x.SchemaChanges {
			changes.add(x.Table, version(x.SchemaVersion), c)
		}
		for _, q := range x.QuarantineReasons {
			quarantine.add(x.Table, num(q.Rows), q.Reason)
		}
	}
	section(&b, "SCHEMA CHANGES", changes)
	section(&b, "QUARANTINED ROWS", quarantine)
	checks := newTextTable("archive", "table", ">rows in", ">rows found", "detail")
	for _, a := range doc.Archives {
		for _, x := range a.Tables {
			if x.Check == CheckFail {
				checks.add(a.Name, x.Table, num(x.RowsIn), num(x.RowsOut+x.Quarantined), x.CheckDetail)
			}
		}
	}
	section(&b, "CHECK FAILURES", checks)
	qualityText(&b, doc)
	replayed := newTextTable("archive", "table", "attempt", ">rows out", "schema")
	for _, a := range doc.Archives {
		for _, x := range a.Tables {
			if x.Replayed {
				replayed.add(a.Name, x.Table, strconv.FormatUint(uint64(a.Attempt), 10), num(x.RowsOut), version(x.SchemaVersion))
			}
		}
	}
	section(&b, "RE-RUN (replay, dead-letter re-merge or re-extraction)", replayed)
	failed := newTextTable("archive", "id", "reason")
	for _, f := range doc.Failed {
		failed.add(f.Name, f.ArchiveID, f.Reason)
	}
	section(&b, "FAILED ARCHIVES", failed)
	empty := newTextTable("archive", "id", "reason")
	for _, a := range doc.Archives {
		if a.State == StateCommitted && a.Reason != "" {
			empty.add(a.Name, a.ArchiveID, a.Reason)
		}
	}
	section(&b, "ARCHIVES WITHOUT A TABLE", empty)
	rejected := newTextTable("archive", "member", "kind", ">size", "reason")
	for _, r := range doc.Rejected {
		rejected.add(r.Archive, r.Member, r.Kind, bytesStr(r.Size), r.Reason)
	}
	section(&b, "REJECTED AND SKIPPED MEMBERS", rejected)
	dups := newTextTable("duplicate", "id", "same bytes as")
	for _, d := range doc.Duplicates {
		dups.add(d.URI, d.ArchiveID, dash(d.FirstURI))
	}
	section(&b, "DUPLICATES SKIPPED", dups)
	for _, src := range doc.Sources {
		state := "ahead"
		if src.DeadlinePassed {
			state = "passed"
		}
		tt := newTextTable("", "source", "archives")
		for _, in := range src.In {
			tt.add("in", in.Source, strings.Join(in.Archives, ", "))
		}
		for _, s := range src.Awaited {
			tt.add("awaited", s, "")
		}
		for _, s := range src.Missing {
			tt.add("MISSING", s, "")
		}
		section(&b, fmt.Sprintf("EXPECTED SOURCES · partner %s · deadline %s (%s)", src.Partner, src.Deadline, state), tt)
	}
	return []byte(b.String())
}

func section(b *strings.Builder, title string, t *textTable) {
	if len(t.rows) == 0 {
		return
	}
	fmt.Fprintf(b, "\n%s\n", title)
	t.write(b)
}

// textTable lays out columns, two spaces apart; a header starting with '>' is right-aligned.
type textTable struct {
	head  []string
	right []bool
	rows  [][]string
}

func newTextTable(head ...string) *textTable {
	t := &textTable{}
	for _, h := range head {
		r := strings.HasPrefix(h, ">")
		t.head = append(t.head, strings.TrimPrefix(h, ">"))
		t.right = append(t.right, r)
	}
	return t
}

func (t *textTable) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *textTable) write(b *strings.Builder) {
	width := make([]int, len(t.head))
	all := append([][]string{t.head}, t.rows...)
	for _, row := range all {
		for i, c := range row {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, row := range all {
		var line strings.Builder
		line.WriteString("  ")
		for i, c := range row {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i > 0 {
				line.WriteString("  ")
			}
			if t.right[i] {
				line.WriteString(pad + c)
			} else {
				line.WriteString(c + pad)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteString("\n")
	}
}

// num writes n with thousands separators.
func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func bytesStr(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), -1
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGTP"[i])
}

func ms(v int64) string {
	d := time.Duration(v) * time.Millisecond
	switch {
	case d < time.Second:
		return d.String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

func version(v uint32) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("v%d", v)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// qualityText writes the data-quality sections: per table the results by status, then each
// batch result that did not pass, then the date results (volume) with their baseline and band.
func qualityText(b *strings.Builder, doc SummaryJSON) {
	if doc.Quality == "" {
		return
	}
	missing := slices.ContainsFunc(doc.Tables, func(t TableJSON) bool { return t.Quality != nil && t.Quality.RulesMissing > 0 })
	head := []string{"table", "status", ">passed", ">warned", ">failed"}
	if missing {
		head = append(head, ">missing column")
	}
	summary := newTextTable(append(head, "")...)
	notPassed := newTextTable("table", "archive", "batch", "rule", "column", "status", ">failed", ">checked", "observed", "expected")
	volume := newTextTable("table", "rule", "status", ">rows", "observed", "expected (baseline, band)")
	for _, t := range doc.Tables {
		q := t.Quality
		if q == nil {
			continue
		}
		row := []string{t.Table, q.Status, strconv.Itoa(q.RulesPassed), strconv.Itoa(q.RulesWarned), strconv.Itoa(q.RulesFailed)}
		if missing {
			row = append(row, strconv.Itoa(q.RulesMissing))
		}
		note := ""
		if q.Forced {
			note = "committed with --force past a failed rule"
		}
		summary.add(append(row, note)...)
		for _, r := range q.Results {
			status := r.Status
			if r.Forced {
				status += " (forced)"
			}
			if r.Kind == quality.KindDate {
				volume.add(t.Table, r.Rule, status, num(r.CheckedRows), r.Observed, r.Expected)
				continue
			}
			notPassed.add(t.Table, r.Archive, dash(r.BatchID), r.Rule, dash(r.Column), status, num(r.FailedRows),
				num(r.CheckedRows), r.Observed, r.Expected)
		}
	}
	section(b, "DATA QUALITY · "+doc.Quality, summary)
	section(b, "DATA QUALITY · NOT PASSED", notPassed)
	section(b, "DATA QUALITY · VOLUME (rows of the date against the trailing days)", volume)
}
