package summarizer

import (
	"path"
	"strings"
	"time"
)

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
