package summarizer

import (
	"context"
	"time"
)

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
		if !st.started {
			// A summarizer that starts watches what one running all along would be watching:
			// the days whose longest deadline is still ahead (nobody could have reported them
			// yet), and the days still inside the watch window (watchGrace past that deadline)
			// whose deadline came after the events stream was created: their sources fell due
			// while no summarizer ran, e.g. across a restart. Days due before sluice existed
			// are not its to report. Re-rendering a day already written changes nothing.
			for d := today.AddDate(0, 0, -1); !pastWatch(d, longest, now); d = d.AddDate(0, 0, -1) {
				if due := d.Add(longest); due.After(now) || due.After(st.since) {
					st.watched[d.Format(time.DateOnly)] = true
				}
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
	names := newNameIndex(st.names())
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
	s.qualityGauges()
	s.prune(dates, now)
	s.sourceGauges()
	return firstErr
}

// sourceGauges sets sluice_summarizer_missing_sources to what the latest render of each date
// held found missing; series of dates pruned from the fold or no longer missing anything are
// deleted (not reset all at once: a scrape in between would see none).
func (s *Summarizer) sourceGauges() {
	now := map[[2]string]bool{}
	for date, ds := range s.st.dates {
		for partner, n := range ds.missingBy {
			s.m.missingSources.WithLabelValues(date, partner).Set(float64(n))
			now[[2]string{date, partner}] = true
		}
	}
	for k := range s.st.missingSeries {
		if !now[k] {
			s.m.missingSources.DeleteLabelValues(k[0], k[1])
		}
	}
	s.st.missingSeries = now
}

// watchGrace is how long past the longest deadline a date without archives stays watched.
const watchGrace = 48 * time.Hour

// pastWatch reports whether date (midnight UTC) has left the watch window at now.
func pastWatch(date time.Time, longest time.Duration, now time.Time) bool {
	return now.After(date.Add(longest + watchGrace))
}

// prune forgets archives and duplicates the stream has dropped (older than its max age, by
// stream time), watched dates past their watch window, and the state of dates that have
// nothing left; their summaries stay in Out and are carried over if the date is ever rewritten.
func (s *Summarizer) prune(dates map[string]bool, now time.Time) {
	st := s.st
	for d := range st.dates {
		if !dates[d] {
			delete(st.dates, d)
		}
	}
	st.pruneQuality(dates)
	_, longest := s.expectations()
	for d := range st.watched {
		if t, err := time.Parse(time.DateOnly, d); err != nil || pastWatch(t, longest, now) {
			delete(st.watched, d)
		}
	}
	st.pruneArchives(s.bus.Cfg.EventsMaxAge)
}

// pruneArchives forgets the archives and duplicates whose newest event is more than maxAge older
// than the newest event folded, by stream time: the stream (max age maxAge) has dropped their
// events, so a fold started now would not know them either. It returns how many it forgot;
// maxAge <= 0 forgets nothing.
func (st *state) pruneArchives(maxAge time.Duration) int {
	var newest int64
	for _, a := range st.archives {
		newest = max(newest, a.lastMs)
	}
	for _, d := range st.dups {
		newest = max(newest, d.lastMs)
	}
	horizon := newest - maxAge.Milliseconds()
	if maxAge <= 0 || horizon <= 0 {
		return 0
	}
	n := 0
	for id, a := range st.archives {
		if a.lastMs < horizon {
			delete(st.archives, id)
			n++
		}
	}
	for k, d := range st.dups {
		if d.lastMs < horizon {
			delete(st.dups, k)
			n++
		}
	}
	return n
}
