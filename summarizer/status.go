package summarizer

import (
	"path"
	"slices"
)

// snapshot builds the Status of the fold.
func (st *state) snapshot() Status {
	out := Status{CaughtUp: st.caughtUp, Seq: st.seq, Archives: map[string]ArchiveStatus{}, Dates: map[string]DateStatus{}}
	t := &out.Totals
	dateCount := map[string][2]int{} // date → archives, pending
	for id, a := range st.archives {
		verdict, reason, checked := a.verdict()
		as := ArchiveStatus{ArchiveID: id, Name: a.displayName(), Partner: a.partner, Attempt: a.attempt,
			State: verdict, Reason: reason, Checked: checked, CheckOK: checked && verdict == StateCommitted, Dates: a.dates()}
		if ex := a.extracted; ex != nil {
			as.Tables = len(ex.GetTables())
			for _, r := range ex.GetRejected() {
				if r.GetKind() == "skipped" {
					as.Skipped++
					if !slices.Contains(as.SkipReasons, r.GetReason()) && len(as.SkipReasons) < 8 {
						as.SkipReasons = append(as.SkipReasons, r.GetReason())
					}
				} else {
					as.Rejected++
				}
			}
			for _, tc := range ex.GetTables() {
				as.RowsIn += tc.GetRows()
				c := a.tableCommit(tc.GetTable())
				if c == nil {
					continue
				}
				as.Quarantined += c.GetQuarantined()
				if r := a.check(tc); r != nil {
					as.RowsOut += r.found - c.GetQuarantined()
					if !r.ok {
						t.CheckFailures++
					}
				} else {
					as.RowsOut += c.GetRowsOut()
				}
			}
		} else {
			for _, c := range a.commits[a.attempt] { // committed without an extraction event (summary.go)
				as.RowsIn, as.RowsOut, as.Quarantined = as.RowsIn+c.GetRowsIn(), as.RowsOut+c.GetRowsOut(), as.Quarantined+c.GetQuarantined()
			}
		}
		out.Archives[id] = as
		t.Archives++
		switch verdict {
		case StatePending:
			t.Pending++
		case StateCommitted:
			t.Committed++
		case StateFailed:
			t.Failed++
		}
		t.RowsIn += as.RowsIn
		t.RowsOut += as.RowsOut
		t.Quarantined += as.Quarantined
		t.RejectedMembers += as.Rejected
		t.SkippedMembers += as.Skipped
		for _, d := range as.Dates {
			c := dateCount[d]
			c[0]++
			if verdict == StatePending {
				c[1]++
			}
			dateCount[d] = c
		}
	}
	for _, k := range sortedKeys(st.dups) {
		d := st.dups[k]
		id := d.ev.GetArchiveId()
		out.Duplicates = append(out.Duplicates, DuplicateStatus{ArchiveID: id, URI: d.ev.GetUri(), FirstURI: d.ev.GetFirstUri()})
		t.Duplicates++
		if _, known := st.archives[id]; known {
			continue
		}
		as := out.Archives[id]
		as.ArchiveID, as.State, as.Name = id, StateDuplicate, path.Base(d.ev.GetUri())
		as.Dates = append(as.Dates, st.dupDates(d)...)
		slices.Sort(as.Dates)
		as.Dates = slices.Compact(as.Dates)
		out.Archives[id] = as
	}
	for d, ds := range st.dates {
		c := dateCount[d]
		out.Dates[d] = DateStatus{Date: d, Archives: c[0], Pending: c[1], Written: ds.current, Key: SummaryKey(d),
			Complete: ds.complete, Missing: slices.Clone(ds.missing), CheckOK: ds.check == CheckOK, Quality: ds.quality}
		if ds.current {
			t.SummariesWritten++
		}
	}
	for d, c := range dateCount {
		if _, ok := out.Dates[d]; !ok {
			out.Dates[d] = DateStatus{Date: d, Archives: c[0], Pending: c[1], Key: SummaryKey(d)}
		}
	}
	return out
}
