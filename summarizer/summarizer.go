package summarizer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/internal/objstore"
)

// Config tunes the summarizer. The zero value is valid.
type Config struct {
	// CheckEvery is how often deadlines are evaluated and failed footer reads retried
	// (default 30s). Events are handled as they arrive, independently of it.
	CheckEvery time.Duration
	// Consumer is the name prefix of the ordered consumer on the events stream (default
	// "summarizer"); a random suffix makes each run's consumer its own.
	Consumer string
	// CheckParallelism bounds concurrent footer reads (default 4).
	CheckParallelism int
}

func (c Config) withDefaults() Config {
	if c.CheckEvery == 0 {
		c.CheckEvery = 30 * time.Second
	}
	if c.Consumer == "" {
		c.Consumer = "summarizer"
	}
	if c.CheckParallelism == 0 {
		c.CheckParallelism = 4
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.CheckEvery < 0 {
		return fmt.Errorf("check interval must be positive, got %s", c.CheckEvery)
	}
	if c.CheckParallelism < 0 {
		return fmt.Errorf("check parallelism must be positive, got %d", c.CheckParallelism)
	}
	if strings.ContainsAny(c.Consumer, " \t\r\n.*>/\\") {
		return fmt.Errorf("invalid consumer name %q", c.Consumer)
	}
	return nil
}

// Deps are the summarizer's collaborators. Bus and Out are required.
type Deps struct {
	Bus      *bus.Bus
	Ledger   *ledger.Ledger // nil: the ledger is not updated
	Out      objstore.Bucket
	Partners *config.File // nil: no expected sources
	Log      *slog.Logger
	Metrics  prometheus.Registerer // nil: metrics are kept but not registered
	Now      func() time.Time      // nil: time.Now
}

// ArchiveState is what the summarizer knows of an archive.
type ArchiveState string

const (
	StatePending   ArchiveState = "pending"   // not yet terminal
	StateCommitted ArchiveState = "committed" // every table committed and checked OK
	StateFailed    ArchiveState = "failed"    // extraction failed, or a post-merge check failed
	StateDuplicate ArchiveState = "duplicate" // only seen as a duplicate of bytes landed earlier
)

// Status is a snapshot of the fold, taken at the end of each settle.
type Status struct {
	CaughtUp   bool                     // the replay of the stream has reached its end at least once
	Seq        uint64                   // stream sequence of the last event folded
	Archives   map[string]ArchiveStatus // by archive id
	Dates      map[string]DateStatus    // by process date (YYYY-MM-DD)
	Duplicates []DuplicateStatus        // each skipped duplicate location
	Totals     Totals
}

// ArchiveStatus is one archive.
type ArchiveStatus struct {
	ArchiveID   string
	Name        string
	Partner     string
	Attempt     uint32
	State       ArchiveState
	Reason      string   // why it failed
	Checked     bool     // every table's post-merge check has a result
	CheckOK     bool     // Checked and every result OK
	Dates       []string // process dates it touches
	RowsIn      int64    // extractor rows
	RowsOut     int64    // Parquet footer rows (commit rows until checked)
	Quarantined int64
	Rejected    int      // members of kind "rejected": table files that could not be used
	Skipped     int      // members of kind "skipped": not table files, empty files
	Tables      int      // table batches the current attempt extracted (0: no member was taken as a table)
	SkipReasons []string // distinct reasons of the skipped members
}

// Terminal reports whether the archive will not change any more (until a re-extraction).
func (a ArchiveStatus) Terminal() bool { return a.State != StatePending }

// DateStatus is one process date.
type DateStatus struct {
	Date     string
	Archives int  // archives touching the date (duplicates excluded)
	Pending  int  // of which not terminal
	Written  bool // the summary in Out reflects the current state
	Key      string
	Complete bool     // every expected source in (or none expected)
	Missing  []string // expected sources still missing after the deadline
	CheckOK  bool     // no post-merge check failed for the date
	Quality  string   // data quality of the date as its summary says: OK | WARN | FAIL, "" without results
}

// DuplicateStatus is one skipped duplicate.
type DuplicateStatus struct {
	ArchiveID string
	URI       string
	FirstURI  string
}

// Totals sum the whole fold.
type Totals struct {
	Archives         int
	Pending          int
	Committed        int
	Failed           int // extraction failures plus check failures
	Duplicates       int
	RowsIn           int64
	RowsOut          int64
	Quarantined      int64
	RejectedMembers  int
	SkippedMembers   int
	CheckFailures    int // (archive, table) checks that failed
	SummariesWritten int // dates whose summary is current
}

// Summarizer folds the events stream into verdicts and summaries.
type Summarizer struct {
	cfg      Config
	bus      *bus.Bus
	ledger   *ledger.Ledger
	out      objstore.Bucket
	partners *config.File
	log      *slog.Logger
	now      func() time.Time
	m        *metrics

	// Owned by the Run loop.
	st     *state
	ioTime time.Duration // of the settle in progress: waiting on the store, the ledger and the bus

	mu      sync.Mutex
	snap    Status
	changed chan struct{} // closed and replaced when snap changes
	running bool
}

// New validates cfg and deps and returns a summarizer ready to Run.
func New(cfg Config, deps Deps) (*Summarizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Bus == nil {
		return nil, errors.New("summarizer: bus is required")
	}
	if deps.Out == nil {
		return nil, errors.New("summarizer: output bucket is required")
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	return &Summarizer{
		cfg:      cfg.withDefaults(),
		bus:      deps.Bus,
		ledger:   deps.Ledger,
		out:      deps.Out,
		partners: deps.Partners,
		log:      deps.Log, // the caller scopes it (the pipeline adds stage=summarizer)
		now:      deps.Now,
		m:        m,
		snap:     Status{Archives: map[string]ArchiveStatus{}, Dates: map[string]DateStatus{}},
		changed:  make(chan struct{}),
	}, nil
}

// filterSubjects are the event subjects the fold reads.
func (s *Summarizer) filterSubjects() []string {
	sub := s.bus.Subjects
	return []string{sub.Landed(), sub.Extracted(), sub.Failed(), sub.Duplicate(), sub.Committed(), sub.Checked()}
}

// Run replays the events stream from its start, then follows it, until ctx is cancelled (it
// then returns nil). It returns an error only when the events stream cannot be read; a failure
// to read a footer, update the ledger, publish or write a summary is logged and retried on the
// next event or tick. A Summarizer runs once.
func (s *Summarizer) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("summarizer: Run called twice")
	}
	s.running = true
	s.mu.Unlock()

	info, cons, iter, err := s.openEvents(ctx)
	if err != nil {
		return err
	}
	var backlog uint64
	for _, subj := range s.filterSubjects() {
		backlog += info.State.Subjects[subj]
	}
	s.st = newState(s.partners)
	s.st.caughtUp = backlog == 0
	s.st.since = info.Created
	startSeq := info.State.LastSeq
	s.log.Info("summarizer replaying events", "backlog", backlog, "last_seq", startSeq)

	g, gctx := errgroup.WithContext(ctx)
	msgs := make(chan jetstream.Msg, 256)
	g.Go(func() error { // pump: stream → channel
		defer close(msgs)
		for {
			m, err := iter.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) || gctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("read events: %w", err)
			}
			select {
			case msgs <- m:
			case <-gctx.Done():
				return nil
			}
		}
	})
	g.Go(func() error {
		defer iter.Stop()
		return s.loop(gctx, cons, msgs, startSeq)
	})
	err = g.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		return nil
	}
	return err
}

// openEvents reads the events stream's state and starts an ordered consumer on it from its
// start, retrying while JetStream cannot answer (a cluster node lost, a leader being elected),
// as the other stages do; an error that is not transient is returned at once, and so is the
// last one when ctx ends. The state is read before the consumer starts: every event up to its
// last sequence is then delivered before the summarizer counts itself caught up.
func (s *Summarizer) openEvents(ctx context.Context) (*jetstream.StreamInfo, jetstream.Consumer, jetstream.MessagesContext, error) {
	out := bus.NewOutage(s.log, "summarizer start", 5*time.Second)
	for {
		info, cons, iter, err := s.openEventsOnce(ctx)
		if err == nil {
			out.OK()
			return info, cons, iter, nil
		}
		if !bus.Transient(err) || !out.Wait(ctx, err) {
			return nil, nil, nil, err
		}
	}
}

func (s *Summarizer) openEventsOnce(ctx context.Context) (*jetstream.StreamInfo, jetstream.Consumer, jetstream.MessagesContext, error) {
	stream, err := s.bus.JS.Stream(ctx, s.bus.Subjects.EventsStream())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open events stream: %w", err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(s.bus.Subjects.EventsAll()))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("events stream info: %w", err)
	}
	// The name must be unique per run: ordered consumers are created with CreateOrUpdate, so a
	// fixed name would resume a consumer left by a crashed instance (inactive for up to 5m)
	// instead of replaying from the start, or share one with a concurrent instance.
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: s.filterSubjects(),
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		NamePrefix:     s.cfg.Consumer + "_" + rand.Text()[:10],
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create events consumer: %w", err)
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(512))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("consume events: %w", err)
	}
	return info, cons, iter, nil
}

// loop is the only goroutine that touches s.st.
func (s *Summarizer) loop(ctx context.Context, cons jetstream.Consumer, msgs <-chan jetstream.Msg, startSeq uint64) error {
	tick := time.NewTicker(s.cfg.CheckEvery)
	defer tick.Stop()
	// A settle walks every archive the fold holds (BenchmarkSettle), so after one whose walk
	// (its time less what it waited on the store, the ledger and the bus) took d, the next one
	// an event or a tick asks for waits until settlePace·d has passed: the walks then take at most
	// 1/(1+settlePace) of the time however large the fold, and the events are folded in between.
	// A deferred settle runs when due, if no event came first.
	var next time.Time
	due := time.NewTimer(time.Hour)
	due.Stop()
	deferred := false
	settle := func() {
		start := time.Now()
		s.ioTime = 0
		s.settleOrLog(ctx)
		took := time.Since(start)
		s.m.settleSeconds.Observe(took.Seconds())
		next = time.Now().Add(max(0, took-s.ioTime) * settlePace)
		if deferred {
			due.Stop()
			deferred = false
		}
	}
	maybeSettle := func() {
		wait := time.Until(next)
		if wait <= 0 {
			settle()
			return
		}
		if !deferred {
			due.Reset(wait)
			deferred = true
		}
	}
	if s.st.caughtUp {
		settle()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-due.C:
			deferred = false
			if s.st.caughtUp && len(msgs) == 0 {
				settle()
			}
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			meta, err := m.Metadata()
			if err != nil {
				s.log.Warn("event without metadata", "subject", m.Subject(), "err", err)
				continue
			}
			s.apply(m, meta)
			s.st.seq = meta.Sequence.Stream
			if !s.st.caughtUp && (meta.NumPending == 0 || meta.Sequence.Stream >= startSeq) {
				s.st.caughtUp = true
				s.log.Info("summarizer caught up", "seq", meta.Sequence.Stream, "archives", len(s.st.archives))
			}
			if s.st.caughtUp && len(msgs) == 0 {
				maybeSettle()
			}
		case <-tick.C:
			if !s.st.caughtUp && len(msgs) == 0 {
				// Safety net for a backlog that vanished (retention) before it was delivered:
				// caught up when the server has nothing pending and everything it delivered
				// has been folded.
				if info, err := cons.Info(ctx); err == nil && info.NumPending == 0 && info.Delivered.Stream <= s.st.seq {
					s.st.caughtUp = true
				}
			}
			if s.st.caughtUp {
				maybeSettle()
			}
		}
	}
}

// settlePace: after a settle whose walk took d, the next one waits until settlePace·d has passed.
const settlePace = 4

// waited counts the time since start as waiting on the store, the ledger or the bus (ioTime),
// not walking: `defer s.waited(time.Now())` around such a call.
func (s *Summarizer) waited(start time.Time) { s.ioTime += time.Since(start) }

// settleOrLog settles; failures (store or bus unavailable) are logged and retried on the next
// tick or event rather than stopping the stage.
func (s *Summarizer) settleOrLog(ctx context.Context) {
	if err := s.settle(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("settle", "err", err)
	}
	s.publishSnapshot()
}

// Status returns the latest snapshot.
func (s *Summarizer) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

// WaitFor blocks until every listed archive is terminal (committed and checked, failed, or a
// duplicate) and the summary of every process date it touches is current in Out, then returns
// the snapshot that satisfied it. The snapshot also reflects every event published before the
// call (a duplicate reported by the producer just before, for example). It returns ctx's error
// when ctx ends first.
func (s *Summarizer) WaitFor(ctx context.Context, archiveIDs []string) (Status, error) {
	barrier, err := s.lastEventSeq(ctx)
	if err != nil {
		return s.Status(), err
	}
	for {
		s.mu.Lock()
		snap, ch := s.snap, s.changed
		s.mu.Unlock()
		if snap.CaughtUp && snap.Seq >= barrier && satisfied(snap, archiveIDs) {
			return snap, nil
		}
		select {
		case <-ctx.Done():
			return snap, fmt.Errorf("wait for %d archives: %w", len(archiveIDs), ctx.Err())
		case <-ch:
		}
	}
}

// lastEventSeq is the stream sequence of the newest event the fold reads (0 when none).
func (s *Summarizer) lastEventSeq(ctx context.Context) (uint64, error) {
	stream, err := s.bus.JS.Stream(ctx, s.bus.Subjects.EventsStream())
	if err != nil {
		return 0, fmt.Errorf("open events stream: %w", err)
	}
	var last uint64
	for _, subj := range s.filterSubjects() {
		m, err := stream.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("last event on %s: %w", subj, err)
		}
		last = max(last, m.Sequence)
	}
	return last, nil
}

func satisfied(st Status, ids []string) bool {
	for _, id := range ids {
		a, ok := st.Archives[id]
		if !ok || !a.Terminal() {
			return false
		}
		for _, d := range a.Dates {
			if !st.Dates[d].Written {
				return false
			}
		}
	}
	return true
}

func (s *Summarizer) publishSnapshot() {
	snap := s.st.snapshot()
	s.snapshotGauges(snap)
	s.mu.Lock()
	s.snap = snap
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// snapshotGauges exports the archive counts and caught_up of a snapshot.
func (s *Summarizer) snapshotGauges(snap Status) {
	t := snap.Totals
	for state, n := range map[ArchiveState]int{StatePending: t.Pending, StateCommitted: t.Committed, StateFailed: t.Failed, StateDuplicate: t.Duplicates} {
		s.m.archives.WithLabelValues(string(state)).Set(float64(n))
	}
	caught := 0.0
	if snap.CaughtUp {
		caught = 1
	}
	s.m.caughtUp.Set(caught)
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
