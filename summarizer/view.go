package summarizer

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/internal/bus"
	sluicev1 "github.com/sluice-dev/sluice/proto/sluicev1"
)

// Fold is the summarizer's fold of the events stream without any of its effects: no footer
// read-back, no ledger update, no summary. A reader (the dashboard, internal/ui) feeds it every
// event of the stream in order and reads the same verdicts the summarizer reaches, from the
// CheckResult events the summarizer published. Dates carry only their archive counts: readiness
// and the summary state travel in SummaryWritten events, which the fold does not read.
//
// A Fold is not safe for concurrent use. It forgets an archive only when Prune is called, as the
// summarizer does after each settle: a long-running reader calls Prune with the events stream's
// max age so that its memory follows the stream's retention.
type Fold struct {
	s *Summarizer
}

// NewFold returns an empty fold of the events of sub. log may be nil.
func NewFold(sub bus.Subjects, log *slog.Logger) *Fold {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, _ := newMetrics(nil) // never registered; the fold is never caught up, so nothing counts
	return &Fold{s: &Summarizer{bus: &bus.Bus{Subjects: sub}, log: log, m: m, st: newState(nil)}}
}

// Subjects are the event subjects the fold reads; other events are ignored by Apply.
func (f *Fold) Subjects() []string { return f.s.filterSubjects() }

// Apply folds one message of the events stream.
func (f *Fold) Apply(m jetstream.Msg) error {
	meta, err := m.Metadata()
	if err != nil {
		return fmt.Errorf("event metadata: %w", err)
	}
	f.s.apply(m, meta)
	f.s.st.seq = meta.Sequence.Stream
	return nil
}

// Prune forgets the archives and duplicates whose newest event is more than maxAge older than
// the newest event folded (the events stream's max age: the stream has dropped their events). It
// returns how many it forgot; maxAge <= 0 forgets nothing.
func (f *Fold) Prune(maxAge time.Duration) int { return f.s.st.pruneArchives(maxAge) }

// Status is the snapshot of what was folded (Status.CaughtUp is always false: the caller knows).
func (f *Fold) Status() Status { return f.s.st.snapshot() }

// ArchiveEvents are the events of an archive's current extraction attempt, as folded: a commit's
// passed results hold only their status and date, and its quality_key is dropped (compactCommit).
// They are shared with the fold: read them, never modify them.
type ArchiveEvents struct {
	Landed    *sluicev1.ArchiveLanded    // nil when the landing event was not seen (retention)
	Extracted *sluicev1.ArchiveExtracted // nil until extracted
	Failed    *sluicev1.ArchiveFailed    // nil unless failed
	Commits   map[string]*sluicev1.BatchCommitted
}

// Events returns the events of archive id's current attempt (ok false when the fold does not
// know it, or knows it only as a duplicate).
func (f *Fold) Events(id string) (ArchiveEvents, bool) {
	a := f.s.st.archives[id]
	if a == nil {
		return ArchiveEvents{}, false
	}
	return ArchiveEvents{Landed: a.landed, Extracted: a.extracted, Failed: a.failed, Commits: a.commits[a.attempt]}, true
}
