package merger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-dev/sluice/internal/bus"
)

// Merger turns the chunks of each (archive, attempt, table) batch into Parquet. See the package
// documentation for ownership, acks, memory and the commit protocol.
type Merger struct {
	cfg    Config
	deps   Deps
	log    *slog.Logger
	now    func() time.Time
	met    *metrics
	tables *tableSettings
	ack    acker
	mem    *relief      // the memory budget and the open batches whose chunks it may release
	commit *committer   // the commit path, shared with Replay
	early  *earlyConfig // large groups written as they arrive (early.go); set by Run

	pollWait   time.Duration // longest pull request; also the idle poll period
	drainFor   time.Duration // how long a partition asked to move may keep serving its held batches
	keepEvery  time.Duration // keep-alive period of a busy partition
	hbEvery    time.Duration // presence heartbeat period
	maxPayload int64

	running  atomic.Bool
	ready    chan struct{} // closed once Run has set everything up (tests wait on it)
	live     atomic.Int64
	liveKeys atomic.Pointer[[]string]         // sorted presence keys of the live mergers
	serving  atomic.Pointer[map[int][]string] // partition -> sorted keys of the live mergers serving it
	parts    []*partition
	stream   jetstream.Stream
	src      chunkSource // the rows stream, where released chunks are fetched back from
	presence jetstream.KeyValue
}

// New checks the configuration and returns a Merger; Run starts it.
func New(cfg Config, deps Deps) (*Merger, error) {
	cfg, deps, tables, err := prepare(cfg, deps)
	if err != nil {
		return nil, fmt.Errorf("merger: %w", err)
	}
	m := &Merger{cfg: cfg, deps: deps, log: deps.Log, now: deps.Now, tables: tables, ready: make(chan struct{})}
	m.met = newMetrics(deps.Metrics)
	m.ack = acker{nc: deps.Bus.NC}
	m.mem = newRelief(cfg.MemoryBudget, m.log, m.met)
	m.commit = newCommitter(cfg, deps, m.mem)
	m.commit.blockedGauge = m.met.outputBlocked
	m.commit.parsed = m.met.parsed
	m.commit.retries = m.met.commitRetries
	m.pollWait = min(max(cfg.PinnedTTL/4, 100*time.Millisecond), 2*time.Second)
	m.keepEvery = max(cfg.PinnedTTL/4, 50*time.Millisecond)
	m.hbEvery = min(max(cfg.PinnedTTL/6, 100*time.Millisecond), 5*time.Second)
	m.drainFor = cfg.PinnedTTL / 2
	m.maxPayload = deps.Bus.MaxPayload()
	return m, nil
}

// Ready is closed once Run has set the merger up: its data-quality rules checked against the
// schema registry (a refusal ends Run with ErrRulesDoNotFit instead) and its consumers created.
func (m *Merger) Ready() <-chan struct{} { return m.ready }

// Run serves the configured partitions until ctx is done. On shutdown it stops fetching, then
// hands back (Nak) every message it holds, releases its pins and removes its presence.
func (m *Merger) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("merger: Run called twice")
	}
	if err := m.startRetrying(ctx); err != nil {
		return err
	}
	close(m.ready)
	g, gctx := errgroup.WithContext(ctx)
	m.early = newEarlyConfig(gctx, m.commit, m.met.earlyGroups)
	g.Go(func() error { return m.presenceLoop(gctx) })
	g.Go(func() error { return m.progressLoop(gctx) })
	g.Go(func() error { return m.staleLoop(gctx) })
	for _, p := range m.parts {
		g.Go(func() error {
			// Labelled for CPU profiles (SLUICE_CPU_PROFILE): the work of each partition, commits
			// and their row-group writers included, as scripts/bench-partitions.sh reads it.
			var err error
			pprof.Do(gctx, pprof.Labels("stage", "merger", "partition", strconv.Itoa(int(p.n))), func(ctx context.Context) {
				err = p.run(ctx)
			})
			return err
		})
		g.Go(func() error { return p.keeper(gctx) })
	}
	err := g.Wait()

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownBudget)
	defer cancel()
	// Without a connection (the server is gone or restarting) there is nobody to tell: held
	// messages come back after AckWait and pins lapse after PinnedTTL, so do not wait on
	// requests that cannot be answered.
	connected := m.deps.Bus.NC.IsConnected()
	for _, p := range m.parts {
		p.mu.Lock()
		pin := p.pinID
		p.retirePinLocked()
		p.mu.Unlock()
		// Delayed by the longest pull: a pull this merger abandoned may still wait on the server,
		// and a message redelivered into it would be lost to everyone until AckWait.
		p.handBack(cctx, "shutdown", m.pollWait, true)
		p.handBackAbandoned()
		if pin != "" && connected {
			p.unpin(cctx, pin)
		}
	}
	if connected {
		if err := m.presence.Delete(cctx, m.presenceKey()); err != nil {
			m.log.Debug("remove presence", "err", err)
		}
		if err := m.deps.Bus.NC.FlushTimeout(5 * time.Second); err != nil {
			m.log.Warn("flush naks", "err", err)
		}
	} else {
		m.log.Warn("stopping without a NATS connection: held messages return after AckWait, pins after PinnedTTL")
	}
	if m.early != nil {
		m.early.aborting.Wait() // the early writes of the batches handed back
	}
	m.cleanSpillDir()
	_ = os.Remove(m.cfg.SpillDir)
	m.log.Info("merger stopped", "instance", m.cfg.Instance)
	return err
}

// shutdownBudget bounds what a stopping merger tells the server (unpins, its presence): all of it
// best effort, since held messages come back after AckWait and pins lapse after PinnedTTL anyway.
// It answers in milliseconds; without quorum (the last nodes of a cluster stopping together) it
// does not answer at all, and the last node took the whole of the old 30 s to stop, past a
// container runtime's usual 10 s grace.
const shutdownBudget = 5 * time.Second

// startRetrying runs start until it succeeds, retrying while JetStream cannot answer (a cluster
// node lost, a leader being elected: the presence bucket or a consumer cannot be created for a
// while), as the fetch loops do; an error that is not transient (a bad configuration) is
// returned at once, and so is the last one when ctx ends.
func (m *Merger) startRetrying(ctx context.Context) error {
	out := bus.NewOutage(m.log, "merger start", 5*time.Second)
	for {
		err := m.start(ctx)
		if err == nil || !bus.Transient(err) {
			out.OK()
			return err
		}
		if !out.Wait(ctx, err) {
			return err
		}
	}
}

// start prepares everything Run needs: stale uploads, spill dir, buckets, consumers. It can be
// run again after a failure: what it creates is found the next time.
func (m *Merger) start(ctx context.Context) error {
	cfg, b := m.cfg, m.deps.Bus
	m.abortStale(ctx, cfg.StaleUploadAge)
	if err := os.MkdirAll(cfg.SpillDir, 0o700); err != nil {
		return fmt.Errorf("create spill dir: %w", err)
	}
	m.cleanSpillDir()
	var err error
	if m.stream, err = b.JS.Stream(ctx, b.Subjects.RowsStream()); err != nil {
		return fmt.Errorf("open stream %s: %w", b.Subjects.RowsStream(), err)
	}
	m.src = chunkSource{rows: m.stream, fetched: func(n int64) { m.met.refetchedTotal.Add(float64(n)) }}
	if err := m.commit.open(ctx); err != nil {
		return err
	}
	if err := m.commit.checkRules(ctx); err != nil {
		return err
	}
	if err := m.commit.recordPartners(ctx); err != nil {
		m.log.Warn("record the partner configuration for replay and dlq retry", "err", err)
	}
	if m.presence, err = m.openPresence(ctx); err != nil {
		return err
	}
	if err := m.beat(ctx); err != nil {
		return err
	}
	var parts []*partition
	for _, n := range cfg.Partitions {
		name := ConsumerName(n)
		cons, err := m.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       name,
			Description:   fmt.Sprintf("sluice merger: rows partition %d", n),
			FilterSubject: b.Subjects.RowsPartition(uint32(n)),
			AckPolicy:     jetstream.AckExplicitPolicy,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			AckWait:       cfg.AckWait,
			// No server-side delivery limit: hand-backs (rebalance, lost pin, leader change,
			// shutdown) each cost a delivery, and a message handed back on its last one would
			// never be delivered again — its batch stranded without a trace. The merger applies
			// cfg.MaxDeliver itself, on the marker, and dead-letters the batch (visible, retryable).
			MaxDeliver:     -1,
			MaxAckPending:  cfg.MaxAckPending,
			PriorityGroups: []string{priorityGroup},
			PriorityPolicy: jetstream.PriorityPolicyPinned,
			PinnedTTL:      cfg.PinnedTTL,
		})
		if err != nil {
			return fmt.Errorf("create consumer %s: %w", name, err)
		}
		plog := m.log.With("partition", n)
		parts = append(parts, &partition{
			m: m, n: uint32(n), name: name, cons: cons,
			log:     plog,
			pullOut: bus.NewOutage(plog, "pull", m.pollWait),
			keepOut: bus.NewOutage(plog, "keep-alive pull", m.pollWait),
			batches: map[batchKey]*batch{}, tomb: map[batchKey]time.Time{}, deadPins: map[string]bool{},
		})
	}
	m.parts = parts
	m.log.Info("merger started", "instance", cfg.Instance, "partitions", cfg.Partitions, "memory_budget", cfg.MemoryBudget)
	return nil
}

// cleanSpillDir removes quarantine scratch files left in the spill dir, and the spill files of
// versions before chunks were released to the stream (only ours: the directory may be shared).
func (m *Merger) cleanSpillDir() {
	for _, pat := range []string{"batch-*.spill", "quarantine-*.jsonl"} {
		names, _ := filepath.Glob(filepath.Join(m.cfg.SpillDir, pat))
		for _, n := range names {
			_ = os.Remove(n)
		}
	}
}

// abortStale aborts the unfinished uploads in the output older than age (what killed writers
// left); a failure is logged and left for the next sweep.
func (m *Merger) abortStale(ctx context.Context, age time.Duration) {
	n, err := m.deps.Out.AbortStale(ctx, "", m.now().Add(-age))
	m.met.staleAborted.Add(float64(n))
	switch {
	case err != nil && ctx.Err() == nil:
		m.log.Warn("abort stale uploads", "err", err, "aborted", n)
	case n > 0:
		m.log.Info("aborted stale uploads", "count", n, "older_than", age)
	}
}

// staleLoop aborts the unfinished uploads older than StaleSweepAge every StaleSweep, so that a
// merger that runs for weeks does not keep what killed writers left (a start-up sweep alone
// would).
func (m *Merger) staleLoop(ctx context.Context) error {
	if m.cfg.StaleSweep < 0 {
		return nil
	}
	return every(ctx, m.cfg.StaleSweep, func() { m.abortStale(ctx, m.cfg.StaleSweepAge) })
}

// every calls fn every d until ctx is done, then returns nil: the shape of the merger's periodic
// loops under its errgroup.
func every(ctx context.Context, d time.Duration, fn func()) error {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			fn()
		}
	}
}

// progressLoop keeps every held message alive with InProgress every AckWait/3.
func (m *Merger) progressLoop(ctx context.Context) error {
	return every(ctx, max(m.cfg.AckWait/3, 10*time.Millisecond), func() {
		for _, b := range m.mem.openBatches() {
			for _, h := range b.snapshotHandles() {
				if err := m.ack.inProgress(h); err != nil {
					m.log.Debug("in progress", "seq", h.seq, "err", err)
				}
			}
		}
	})
}
