package ui

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/internal/table"
	sluicev1 "github.com/sluice-dev/sluice/proto/sluicev1"
	"github.com/sluice-dev/sluice/summarizer"
)

// Model is everything the dashboard shows, kept up to date by watches instead of being re-read
// per request: an ordered consumer over the events stream feeds a summarizer.Fold (the same
// verdicts as the summarizer) plus what the fold does not keep (check times, throughput, the
// summaries written); KV watches keep the ledger records and every schema version the registry
// still holds; the summary.json of a date is read from Out once per SummaryWritten event. Stream
// and consumer figures (cluster.go) are asked of the server when a page asks, at most every
// Config.Refresh.
//
// Memory follows the events stream's retention, not the dashboard's uptime (prune): archives
// whose events the stream has dropped are forgotten, and with them their committed ledger
// records, as a dashboard started now would not show them either.
type Model struct {
	sub bus.Subjects
	js  jetstream.JetStream
	out Reader // nil: summaries are not read
	now func() time.Time
	log *slog.Logger

	mu        sync.Mutex // guards the fields below; never held across a network call
	fold      *summarizer.Fold
	caughtUp  bool
	seq       uint64
	version   uint64        // bumped on every change
	changed   chan struct{} // closed and replaced on every change
	checkedMs map[string]int64
	bins      map[int64]*bin                     // unix minute → CSV extracted in it
	dates     map[string]*dateState              // process date → latest SummaryWritten and its summary.json
	records   map[string]ledger.Record           // archive id → ledger record
	schemas   map[string]map[uint32]table.Schema // table → version → registry document
	ledgerOK  bool                               // the ledger watch delivered its initial values
	views     viewCache

	eventsMaxAge time.Duration // the events stream's max age (0: unknown or unlimited: nothing is pruned)
	pruneEvery   time.Duration // prune at most this often
	prunedAt     time.Time

	// viewNs is how long each view (viewOverview…viewDates) last took to build, viewAt when
	// (Unix ns): a build walks the whole fold, so /api/live spaces its change events by a multiple
	// of the longest recent one.
	viewNs, viewAt [4]atomic.Int64

	summaryWork chan string // dates whose summary.json should be (re)read

	cluster clusterCache // its own lock (cluster.go)
}

// bin is one minute of extraction.
type bin struct{ rows, bytes int64 }

// dateState is what the summaries say of a date.
type dateState struct {
	ev      *sluicev1.SummaryWritten
	evSeq   uint64
	readSeq uint64                  // evSeq of the summary.json read last
	doc     *summarizer.SummaryJSON // nil until read (or without Out)
	readErr string
}

// The views whose build time spaces the live events.
const (
	viewOverview = iota
	viewTables
	viewArchives
	viewDates
)

// liveMinGap is the shortest time between two change events of /api/live (a burst of events is
// one page refresh); liveSpacing × the longest view build is the gap once the fold is so large
// that building a view takes longer: an open page then spends at most 1/(1+liveSpacing) of the
// time rebuilding, with the model's lock held, however large the fold (BenchmarkSettle measures
// the same walk in the summarizer). A build older than liveRecent no longer counts (a search, or
// a view no page shows any more).
const (
	liveMinGap  = 250 * time.Millisecond
	liveSpacing = 4
	liveRecent  = 30 * time.Second
)

// timeView records how long view took to build since start.
func (m *Model) timeView(view int, start time.Time) {
	now := time.Now()
	m.viewNs[view].Store(int64(now.Sub(start)))
	m.viewAt[view].Store(now.UnixNano())
}

// liveGap is the time /api/live waits after a change event before it sends the next.
func (m *Model) liveGap() time.Duration {
	var longest time.Duration
	recent := time.Now().Add(-liveRecent).UnixNano()
	for i := range m.viewNs {
		if m.viewAt[i].Load() >= recent {
			longest = max(longest, time.Duration(m.viewNs[i].Load()))
		}
	}
	return max(liveMinGap, liveSpacing*longest)
}

func newModel(b *bus.Bus, out Reader, now func() time.Time, log *slog.Logger, refresh time.Duration) *Model {
	return &Model{
		sub: b.Subjects, js: b.JS, out: out, now: now, log: log,
		fold:        summarizer.NewFold(b.Subjects, log),
		changed:     make(chan struct{}),
		checkedMs:   map[string]int64{},
		bins:        map[int64]*bin{},
		dates:       map[string]*dateState{},
		records:     map[string]ledger.Record{},
		schemas:     map[string]map[uint32]table.Schema{},
		summaryWork: make(chan string, 1024),
		cluster:     clusterCache{every: refresh},
		pruneEvery:  time.Minute,
	}
}

// prune keeps the model to what the events stream still holds, at most every pruneEvery; m.mu is
// held. The fold forgets the archives whose newest event is older than the stream's max age, the
// check times go with them, and, once the fold has caught up with the stream, a committed ledger
// record is kept only while its archive is folded or its last transition is within the max age
// (before that its archive may still be on its way: the watch would not send the record again).
// Records in progress or failed are always kept: they are what an operator must see.
func (m *Model) prune() {
	now := m.now()
	if m.eventsMaxAge <= 0 || now.Sub(m.prunedAt) < m.pruneEvery {
		return
	}
	m.prunedAt = now
	m.fold.Prune(m.eventsMaxAge)
	for id := range m.checkedMs {
		if _, ok := m.fold.Events(id); !ok {
			delete(m.checkedMs, id)
		}
	}
	if !m.caughtUp {
		return
	}
	horizon := now.Add(-m.eventsMaxAge).UnixMilli()
	for id, r := range m.records {
		if r.State != ledger.Committed {
			continue
		}
		if _, ok := m.fold.Events(id); ok {
			continue
		}
		var last int64
		for _, t := range r.History {
			last = max(last, t.AtMs)
		}
		if last < horizon {
			delete(m.records, id)
		}
	}
}

// touch records a change; m.mu is held.
func (m *Model) touch() {
	m.version++
	close(m.changed)
	m.changed = make(chan struct{})
}

// Changed returns the current version and a channel closed at the next change.
func (m *Model) Changed() (uint64, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.version, m.changed
}

// Run follows the events stream, the ledger and the schema registry until ctx is done. It
// returns an error only when one of them cannot be read at all.
func (m *Model) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return m.followEvents(gctx) })
	g.Go(func() error { return m.followLedger(gctx) })
	g.Go(func() error { return m.followSchemas(gctx) })
	g.Go(func() error { return m.readSummaries(gctx) })
	err := g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (m *Model) followEvents(ctx context.Context) error {
	stream, err := m.js.Stream(ctx, m.sub.EventsStream())
	if err != nil {
		return fmt.Errorf("open events stream: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("events stream info: %w", err)
	}
	startSeq := info.State.LastSeq
	m.mu.Lock()
	m.eventsMaxAge = info.Config.MaxAge
	if startSeq == 0 {
		m.caughtUp = true
		m.touch()
	}
	m.mu.Unlock()
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: append(m.fold.Subjects(), m.sub.Summary()),
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		NamePrefix:     "ui_" + rand.Text()[:10],
	})
	if err != nil {
		return fmt.Errorf("create events consumer: %w", err)
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return fmt.Errorf("consume events: %w", err)
	}
	stop := context.AfterFunc(ctx, iter.Stop)
	defer stop()
	for {
		msg, err := iter.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read events: %w", err)
		}
		m.apply(msg, startSeq)
	}
}

// apply folds one event.
func (m *Model) apply(msg jetstream.Msg, startSeq uint64) {
	meta, err := msg.Metadata()
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.touch()
	m.seq = meta.Sequence.Stream
	if !m.caughtUp && (meta.NumPending == 0 || meta.Sequence.Stream >= startSeq) {
		m.caughtUp = true
	}
	switch msg.Subject() {
	case m.sub.Summary():
		ev := &sluicev1.SummaryWritten{}
		if proto.Unmarshal(msg.Data(), ev) != nil || ev.GetProcessDate() == "" {
			return
		}
		ds := m.dates[ev.GetProcessDate()]
		if ds == nil {
			ds = &dateState{}
			m.dates[ev.GetProcessDate()] = ds
		}
		ds.ev, ds.evSeq = ev, meta.Sequence.Stream
		if m.out != nil {
			select {
			case m.summaryWork <- ev.GetProcessDate():
			default: // full: the reader catches up with every date when it drains (readSummaries)
			}
		}
		return
	case m.sub.Checked():
		ev := &sluicev1.CheckResult{}
		if proto.Unmarshal(msg.Data(), ev) == nil && ev.GetArchiveId() != "" {
			m.checkedMs[ev.GetArchiveId()] = max(m.checkedMs[ev.GetArchiveId()], meta.Timestamp.UnixMilli())
		}
	case m.sub.Extracted():
		ev := &sluicev1.ArchiveExtracted{}
		if proto.Unmarshal(msg.Data(), ev) == nil {
			at := ev.GetExtractedUnixMs()
			if at == 0 {
				at = meta.Timestamp.UnixMilli()
			}
			m.addThroughput(at, ev)
		}
	}
	_ = m.fold.Apply(msg)
	m.prune()
}

// addThroughput counts an extraction's CSV rows and bytes in its minute; m.mu is held. Only the
// last hour is kept.
func (m *Model) addThroughput(atMs int64, ev *sluicev1.ArchiveExtracted) {
	minute := atMs / 60000
	oldest := m.now().UnixMilli()/60000 - rateMinutes
	if minute <= oldest {
		return
	}
	b := m.bins[minute]
	if b == nil {
		b = &bin{}
		m.bins[minute] = b
		for k := range m.bins {
			if k <= oldest {
				delete(m.bins, k)
			}
		}
	}
	for _, t := range ev.GetTables() {
		b.rows += t.GetRows()
		b.bytes += t.GetBytes()
	}
}

// followLedger keeps the archive records of the ledger (prune drops committed ones past the events
// stream's retention).
func (m *Model) followLedger(ctx context.Context) error {
	kv, err := m.js.KeyValue(ctx, m.sub.LedgerBucket())
	if err != nil {
		return fmt.Errorf("open ledger: %w", err)
	}
	w, err := kv.Watch(ctx, "archive.>")
	if err != nil {
		return fmt.Errorf("watch ledger: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			m.mu.Lock()
			switch {
			case e == nil:
				m.ledgerOK = true
			case e.Operation() != jetstream.KeyValuePut:
				delete(m.records, strings.TrimPrefix(e.Key(), "archive."))
			default:
				var r ledger.Record
				if json.Unmarshal(e.Value(), &r) == nil && r.ArchiveID != "" {
					m.records[r.ArchiveID] = r
				}
			}
			m.prune()
			m.touch()
			m.mu.Unlock()
		}
	}
}

// followSchemas keeps every version of every table's schema the registry still holds (its
// history), and each new one.
func (m *Model) followSchemas(ctx context.Context) error {
	kv, err := m.js.KeyValue(ctx, m.sub.SchemasBucket())
	if err != nil {
		return fmt.Errorf("open schema registry: %w", err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IncludeHistory())
	if err != nil {
		return fmt.Errorf("watch schema registry: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var s table.Schema
			if json.Unmarshal(e.Value(), &s) != nil || s.Table == "" {
				continue
			}
			m.mu.Lock()
			vs := m.schemas[s.Table]
			if vs == nil {
				vs = map[uint32]table.Schema{}
				m.schemas[s.Table] = vs
			}
			vs[s.Version] = s
			m.touch()
			m.mu.Unlock()
		}
	}
}

// readSummaries reads a date's summary.json from Out after each SummaryWritten of it.
func (m *Model) readSummaries(ctx context.Context) error {
	if m.out == nil {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.summaryWork:
		}
		// Read every date whose latest event is newer than what was read (this also covers a
		// date whose signal was dropped while the queue was full).
		for {
			date, seq := m.staleSummary()
			if date == "" {
				break
			}
			doc, err := m.readSummary(ctx, date)
			if ctx.Err() != nil {
				return nil
			}
			m.mu.Lock()
			ds := m.dates[date]
			ds.readSeq = seq
			if err != nil {
				ds.readErr = err.Error()
				m.log.Warn("read summary", "date", date, "err", err)
			} else {
				ds.doc, ds.readErr = doc, ""
			}
			m.touch()
			m.mu.Unlock()
		}
	}
}

func (m *Model) staleSummary() (string, uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for d, ds := range m.dates {
		if ds.evSeq > ds.readSeq {
			return d, ds.evSeq
		}
	}
	return "", 0
}

func (m *Model) readSummary(ctx context.Context, date string) (*summarizer.SummaryJSON, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rc, err := m.out.Get(ctx, summarizer.SummaryKey(date))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", summarizer.SummaryKey(date), err)
	}
	var doc summarizer.SummaryJSON
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode %s: %w", summarizer.SummaryKey(date), err)
	}
	return &doc, nil
}
