package summarizer

import (
	"path"
	"slices"
	"strings"
	"time"
)

// readiness evaluates every partner's expected sources for date at now, matching them against
// names plus extra (names not in the index, e.g. archives carried over from the summary in Out).
func (s *Summarizer) readiness(date string, names *nameIndex, extra []string, now time.Time) []SourcesJSON {
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
			for _, list := range [][]string{names.candidates(src, compact), extra} {
				for _, n := range list {
					if ok, _ := path.Match(glob, n); ok {
						matched = append(matched, n)
					}
				}
			}
			if len(extra) > 0 {
				slices.Sort(matched)
				matched = slices.Compact(matched)
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

// nameIndex holds the archive names a settle matches expected sources against (sorted, unique),
// each also filed under every run of 8 digits it contains. A source with "{date}" outside any
// bracket expression holds that date's 8 digits as literal characters in a row, which only a name
// containing them can match: its date looks at the names of its day, not at every name of the
// events stream's retention (BenchmarkSettle, "days-expected": at 30 days every date scanned every
// name, N × dates matches per settle).
type nameIndex struct {
	all    []string
	digits map[string][]string // 8-digit run → the names holding it, sorted
}

func newNameIndex(sorted []string) *nameIndex {
	ix := &nameIndex{all: sorted, digits: map[string][]string{}}
	for _, n := range sorted {
		var filed []string // a name holding the same run twice is filed once
		for i := 0; i+8 <= len(n); i++ {
			if w := n[i : i+8]; allDigits(w) && !slices.Contains(filed, w) {
				ix.digits[w] = append(ix.digits[w], n)
				filed = append(filed, w)
			}
		}
	}
	return ix
}

func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// candidates are the names source (before "{date}" is replaced by compact) can match.
func (ix *nameIndex) candidates(source, compact string) []string {
	if ix == nil {
		return nil
	}
	if strings.Contains(source, "{date}") && !strings.Contains(source, "[") {
		return ix.digits[compact]
	}
	return ix.all
}

// deadlinePassed reports whether some partner's deadline for date is behind now.
func (s *Summarizer) deadlinePassed(date string, now time.Time) bool {
	for _, src := range s.readiness(date, nil, nil, now) {
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
