package summarizer

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/config"
)

func TestNameDate(t *testing.T) {
	for in, want := range map[string]string{
		"acme_20250102_1.tar.gz":   "2025-01-02",
		"x_123456789.tar.gz":       "",
		"20251399_20250105.tar.gz": "2025-01-05",
		"garbage.tar.gz":           "",
	} {
		if got := nameDate(in); got != want {
			t.Errorf("nameDate(%q)=%q want %q", in, got, want)
		}
	}
}

func TestTextHelpers(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", -1234567: "-1,234,567"} {
		if got := num(in); got != want {
			t.Errorf("num(%d)=%q want %q", in, got, want)
		}
	}
	if got := bytesStr(1536); got != "1.5 KiB" {
		t.Errorf("bytesStr=%q", got)
	}
	if got := ms(1540); got != "1.5s" {
		t.Errorf("ms=%q", got)
	}
}

// TestCarriedArchivesMatchSources: once the stream has dropped a date's events, its archives
// live on only in the summary in Out (carried over). A later render of the date (a late
// duplicate, a restart) must still count them as the sources they are, not report those
// sources missing; and the names shared by every date's render must not change.
func TestCarriedArchivesMatchSources(t *testing.T) {
	s := &Summarizer{partners: &config.File{Partners: []config.Partner{{Name: "acme", Expected: &config.Expected{
		Sources:  []string{"acme_{date}.tar.gz", "beta_{date}.tar.gz", "gamma_{date}.tar.gz"},
		Deadline: config.Duration{Duration: 6 * time.Hour},
	}}}}}
	s.st = newState(s.partners)
	ds := &dateState{
		carried: []ArchiveJSON{{ArchiveID: "a1", Name: "acme_20250102.tar.gz"}},
		dupsIn:  []DuplicateJSON{{ArchiveID: "a2", Name: "beta_20250102.tar.gz", URI: "file:///l/beta_20250102.tar.gz"}},
	}
	names := make([]string, 1, 8) // spare capacity: an append in place would show
	names[0] = "zeta_20250102.tar.gz"
	ix := newNameIndex(names)
	doc := s.buildSummary("2025-01-02", nil, nil, ds, ix, time.Date(2025, 1, 3, 0, 0, 0, 0, time.UTC))
	if len(doc.Sources) != 1 {
		t.Fatalf("sources %+v", doc.Sources)
	}
	src := doc.Sources[0]
	if !slices.Equal(src.Missing, []string{"gamma_20250102.tar.gz"}) || len(src.In) != 2 ||
		!slices.Equal(src.In[0].Archives, []string{"acme_20250102.tar.gz"}) || !slices.Equal(src.In[1].Archives, []string{"beta_20250102.tar.gz"}) {
		t.Fatalf("sources %+v, want acme's and beta's in (carried), gamma's missing", src)
	}
	if full := names[:cap(names)]; full[0] != "zeta_20250102.tar.gz" || full[1] != "" || len(ix.digits) != 1 ||
		!slices.Equal(ix.digits["20250102"], names) {
		t.Fatalf("the shared names changed: %q, %q", full, ix.digits)
	}
}

// TestNameIndexReadiness: matching expected sources against the names filed under the date's
// digits finds exactly what matching against every name finds, for sources whose "{date}" the
// index can use and those it cannot (a bracket expression, an escape, no "{date}"), and for
// names holding the date inside a longer run of digits, twice, or not at all.
func TestNameIndexReadiness(t *testing.T) {
	names := []string{"acme_20250301.tar.gz", "acme_20250301_late.tar.gz", "acme_20250302.tar.gz", "x_1202503019.tar.gz",
		"20250301_20250301.tar.gz", "acme_2025030.tar.gz", "beta.tar.gz", "b_20250301", "acme_x20250301.tar.gz", "c_020250301", "d_3.tar.gz",
		"e_20250301_12345678_20250301.tar.gz", "f_2025030120250301.tar.gz"}
	slices.Sort(names)
	sources := []string{"acme_{date}*.tar.gz", "*{date}*", "{date}_{date}.tar.gz", "x_[0-9]{date}9.tar.gz", `acme\_{date}.tar.gz`,
		"*.tar.gz", "b_{date}", "c_?{date}", "d_[{date}].tar.gz", "never_{date}.tar.gz"}
	s := &Summarizer{partners: &config.File{Partners: []config.Partner{{Name: "acme", Expected: &config.Expected{
		Sources: sources, Deadline: config.Duration{Duration: 6 * time.Hour}}}}}}
	ix := newNameIndex(names)
	now := time.Date(2025, 3, 2, 12, 0, 0, 0, time.UTC)
	for _, date := range []string{"2025-03-01", "2025-03-02", "2025-03-03"} {
		for _, extra := range [][]string{nil, {"acme_20250301.tar.gz", "late_20250301.tar.gz", "acme_20250302_b.tar.gz"}} {
			// The reference scans every name: no index, all of them as extra names.
			got, want := s.readiness(date, ix, extra, now), s.readiness(date, nil, slices.Concat(names, extra), now)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s, extra %q:\n indexed %+v\n all     %+v", date, extra, got, want)
			}
		}
	}
	in := s.readiness("2025-03-01", ix, nil, now)[0].In
	if len(in) != 9 { // each source but never_; d_3 is in by a bracket expression holding the date
		t.Errorf("2025-03-01: %d sources in, want 9: %+v", len(in), in)
	}
	if c := ix.candidates("acme_{date}*.tar.gz", "20250301"); len(c) != 9 || len(slices.Compact(slices.Clone(c))) != 9 {
		t.Errorf("candidates for 20250301: %q, want the 9 names holding it, each once", c)
	}
}
