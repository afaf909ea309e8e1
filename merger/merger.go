package merger

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/table"
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
	mem    *spiller   // the memory budget and the open batches it may spill
	commit *committer // the commit path, shared with Replay

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
	m.mem = newSpiller(cfg.MemoryBudget, cfg.SpillDir, m.log, m.met)
	m.commit = newCommitter(cfg, deps, m.mem)
	m.pollWait = min(max(cfg.PinnedTTL/4, 100*time.Millisecond), 2*time.Second)
	m.keepEvery = max(cfg.PinnedTTL/4, 50*time.Millisecond)
	m.hbEvery = min(max(cfg.PinnedTTL/6, 100*time.Millisecond), 5*time.Second)
	m.drainFor = cfg.PinnedTTL / 2
	m.maxPayload = deps.Bus.MaxPayload()
	return m, nil
}

// writerProps are the Parquet writer properties: zstd, statistics on, the Arrow schema stored in
// the footer. Dictionary encoding is chosen per object and column (objectProps). Nothing in them
// depends on time or host, so the same rows under the same schema always encode to the same bytes.
func writerProps(alloc memory.Allocator, zstdLevel int) ([]parquet.WriterProperty, pqarrow.ArrowWriterProperties) {
	return []parquet.WriterProperty{
			parquet.WithCompression(compress.Codecs.Zstd),
			parquet.WithCompressionLevel(zstdLevel),
			parquet.WithStats(true),
			parquet.WithAllocator(alloc),
		},
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(alloc))
}

// tableSettings are the partners' parsing options of each table: delimiter, null tokens, hints
// and overrides.
type tableSettings struct {
	partners *config.File
	hints    map[string]map[string]map[string]table.Hint // partner -> table -> column -> hint
}

func newTableSettings(f *config.File) (*tableSettings, error) {
	hints, err := parseHints(f)
	if err != nil {
		return nil, err
	}
	return &tableSettings{partners: f, hints: hints}, nil
}

// parseHints reads every partner's per-table hints (may widen) and overrides (strict).
func parseHints(f *config.File) (map[string]map[string]map[string]table.Hint, error) {
	out := map[string]map[string]map[string]table.Hint{}
	for _, p := range f.Partners {
		tables := map[string]map[string]table.Hint{}
		for tname, tc := range p.Tables {
			h := map[string]table.Hint{}
			for col, ts := range tc.Hints {
				t, err := table.ParseType(ts)
				if err != nil {
					return nil, fmt.Errorf("partner %s table %s hint %s: %w", p.Name, tname, col, err)
				}
				h[col] = table.Hint{Type: t}
			}
			for col, ts := range tc.Overrides {
				t, err := table.ParseType(ts)
				if err != nil {
					return nil, fmt.Errorf("partner %s table %s override %s: %w", p.Name, tname, col, err)
				}
				h[col] = table.Hint{Type: t, Strict: true}
			}
			tables[tname] = h
		}
		out[p.Name] = tables
	}
	return out, nil
}

// options are the parsing options of a table for a partner; delim (one byte, from the chunks)
// wins over the partner's delimiter.
func (t *tableSettings) options(partner, tbl, delim string) table.Options {
	p := t.partners.Partner(partner)
	o := table.Options{NullTokens: p.NullTokens, StringsCanBeNull: p.StringsCanBeNull}
	d := p.Delimiter
	if len(delim) == 1 {
		d = delim
	}
	if len(d) == 1 {
		o.Delimiter = d[0]
	}
	if h := t.hints[p.Name][tbl]; len(h) > 0 {
		o.Hints = h
	}
	return o
}

// Run serves the configured partitions until ctx is done. On shutdown it stops fetching, then
// hands back (Nak) every message it holds, releases its pins and removes its presence.
func (m *Merger) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("merger: Run called twice")
	}
	if err := m.start(ctx); err != nil {
		return err
	}
	close(m.ready)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return m.presenceLoop(gctx) })
	g.Go(func() error { return m.progressLoop(gctx) })
	for _, p := range m.parts {
		g.Go(func() error { return p.run(gctx) })
		g.Go(func() error { return p.keeper(gctx) })
	}
	err := g.Wait()

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
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
		p.handBack(cctx, "shutdown", 0, true)
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
	m.cleanSpillDir()
	_ = os.Remove(m.cfg.SpillDir)
	m.log.Info("merger stopped", "instance", m.cfg.Instance)
	return err
}

// start prepares everything Run needs: stale uploads, spill dir, buckets, consumers.
func (m *Merger) start(ctx context.Context) error {
	cfg, b := m.cfg, m.deps.Bus
	if n, err := m.deps.Out.AbortStale(ctx, "", m.now().Add(-cfg.StaleUploadAge)); err != nil {
		m.log.Warn("abort stale uploads", "err", err)
	} else if n > 0 {
		m.log.Info("aborted stale uploads", "count", n)
	}
	if err := os.MkdirAll(cfg.SpillDir, 0o700); err != nil {
		return fmt.Errorf("create spill dir: %w", err)
	}
	m.cleanSpillDir()
	var err error
	if m.stream, err = b.JS.Stream(ctx, b.Subjects.RowsStream()); err != nil {
		return fmt.Errorf("open stream %s: %w", b.Subjects.RowsStream(), err)
	}
	if err := m.commit.open(ctx); err != nil {
		return err
	}
	if m.presence, err = m.openPresence(ctx); err != nil {
		return err
	}
	if err := m.beat(ctx); err != nil {
		return err
	}
	for _, n := range cfg.Partitions {
		name := fmt.Sprintf("merger-p%d", n)
		cons, err := m.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:        name,
			Description:    fmt.Sprintf("sluice merger: rows partition %d", n),
			FilterSubject:  b.Subjects.RowsPartition(uint32(n)),
			AckPolicy:      jetstream.AckExplicitPolicy,
			DeliverPolicy:  jetstream.DeliverAllPolicy,
			AckWait:        cfg.AckWait,
			MaxDeliver:     cfg.MaxDeliver,
			MaxAckPending:  cfg.MaxAckPending,
			PriorityGroups: []string{priorityGroup},
			PriorityPolicy: jetstream.PriorityPolicyPinned,
			PinnedTTL:      cfg.PinnedTTL,
		})
		if err != nil {
			return fmt.Errorf("create consumer %s: %w", name, err)
		}
		m.parts = append(m.parts, &partition{
			m: m, n: uint32(n), name: name, cons: cons,
			log:     m.log.With("partition", n),
			batches: map[batchKey]*batch{}, tomb: map[batchKey]time.Time{}, deadPins: map[string]bool{},
		})
	}
	m.log.Info("merger started", "instance", cfg.Instance, "partitions", cfg.Partitions, "memory_budget", cfg.MemoryBudget)
	return nil
}

// cleanSpillDir removes spill and quarantine scratch files left in the spill dir (only ours: the
// directory may be shared).
func (m *Merger) cleanSpillDir() {
	for _, pat := range []string{"batch-*.spill", "quarantine-*.jsonl"} {
		names, _ := filepath.Glob(filepath.Join(m.cfg.SpillDir, pat))
		for _, n := range names {
			_ = os.Remove(n)
		}
	}
}

// progressLoop keeps every held message alive with InProgress every AckWait/3.
func (m *Merger) progressLoop(ctx context.Context) error {
	t := time.NewTicker(max(m.cfg.AckWait/3, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for _, b := range m.mem.openBatches() {
			for _, h := range b.snapshotHandles() {
				if err := m.ack.inProgress(h); err != nil {
					m.log.Debug("in progress", "seq", h.seq, "err", err)
				}
			}
		}
	}
}

// presenceBucket is <PREFIX>_MERGERS: one key per live merger, expiring after a few missed beats.
func (m *Merger) presenceBucket() string {
	return strings.TrimSuffix(m.deps.Bus.Subjects.RowsStream(), "_ROWS") + "_MERGERS"
}

func (m *Merger) presenceKey() string {
	sum := sha1.Sum([]byte(m.cfg.Instance))
	return "m." + hex.EncodeToString(sum[:8])
}

func (m *Merger) openPresence(ctx context.Context) (jetstream.KeyValue, error) {
	name := m.presenceBucket()
	kv, err := m.deps.Bus.JS.KeyValue(ctx, name)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("open presence bucket %s: %w", name, err)
	}
	kv, err = m.deps.Bus.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: "sluice: live mergers (presence heartbeats) for partition balancing",
		History:     1,
		TTL:         max(3*m.hbEvery, time.Second),
		Storage:     jetstream.MemoryStorage,
		Replicas:    m.deps.Bus.Cfg.Replicas,
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = m.deps.Bus.JS.KeyValue(ctx, name)
	}
	if err != nil {
		return nil, fmt.Errorf("create presence bucket %s: %w", name, err)
	}
	return kv, nil
}

type presenceDoc struct {
	Instance   string `json:"instance"`
	Partitions []int  `json:"partitions"`
	Pinned     []int  `json:"pinned"`
	AtUnixMs   int64  `json:"at_unix_ms"`
}

// beat refreshes our presence key and counts the live mergers.
func (m *Merger) beat(ctx context.Context) error {
	doc := presenceDoc{Instance: m.cfg.Instance, Partitions: m.cfg.Partitions, AtUnixMs: m.now().UnixMilli()}
	for _, p := range m.parts {
		if p.isPinned() {
			doc.Pinned = append(doc.Pinned, int(p.n))
		}
	}
	data, _ := json.Marshal(doc)
	bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := m.presence.Put(bctx, m.presenceKey(), data); err != nil {
		return fmt.Errorf("presence heartbeat: %w", err)
	}
	return m.countLive(bctx)
}

// countLive lists the live presence keys and reads which partitions each live merger serves
// (mergers may serve different subsets, --serve-partitions).
func (m *Merger) countLive(ctx context.Context) error {
	lister, err := m.presence.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("list presence: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	keys = slices.Compact(keys)
	mine := m.presenceKey()
	serving := map[int][]string{}
	var live []string
	for _, k := range keys {
		parts := m.cfg.Partitions
		if k != mine {
			e, err := m.presence.Get(ctx, k)
			if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
				continue // gone since the listing
			}
			if err != nil {
				return fmt.Errorf("read presence %s: %w", k, err)
			}
			var doc presenceDoc
			if err := json.Unmarshal(e.Value(), &doc); err != nil {
				m.log.Warn("unreadable presence entry; ignoring that merger", "key", k, "err", err)
				continue
			}
			parts = doc.Partitions
		}
		live = append(live, k)
		for _, n := range parts {
			serving[n] = append(serving[n], k) // keys are visited in sorted order
		}
	}
	m.liveKeys.Store(&live)
	m.serving.Store(&serving)
	m.live.Store(max(int64(len(live)), 1))
	return nil
}

// presenceLoop beats and rebalances until ctx is done. It also watches the presence bucket, so
// that a merger joining or leaving is counted at once rather than at the next beat: balancing
// early, while little is held, hands back less work.
func (m *Merger) presenceLoop(ctx context.Context) error {
	t := time.NewTicker(m.hbEvery)
	defer t.Stop()
	var changes <-chan jetstream.KeyValueEntry
	if w, err := m.presence.WatchAll(ctx, jetstream.UpdatesOnly()); err != nil {
		m.log.Warn("watch presence; balancing on heartbeats only", "err", err)
	} else {
		defer func() { _ = w.Stop() }()
		changes = w.Updates()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := m.beat(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("presence", "err", err)
			}
		case e, ok := <-changes:
			if !ok {
				changes = nil
				continue
			}
			if e == nil || (e.Operation() == jetstream.KeyValuePut && m.isLive(e.Key())) {
				continue // a heartbeat of a merger already counted
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := m.countLive(cctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				m.log.Warn("presence", "err", err)
			}
		}
		m.rebalance()
	}
}

// isLive reports whether key is among the presence keys last counted.
func (m *Merger) isLive(key string) bool {
	kp := m.liveKeys.Load()
	return kp != nil && slices.Contains(*kp, key)
}

// target is how many partitions this merger should own: those preferred for it.
func (m *Merger) target() int {
	n := 0
	for _, p := range m.parts {
		if m.preferred(p) {
			n++
		}
	}
	return n
}

func (m *Merger) pinnedCount() int {
	c := 0
	for _, p := range m.parts {
		if p.isPinned() && !p.release.Load() {
			c++
		}
	}
	return c
}

// mayAcquire reports whether this merger may pull on p, a partition it does not own: a
// partition preferred for it while it owns fewer than target, or one nobody has taken although
// it has messages waiting (its preferred merger is not pulling on it), whatever it owns.
func (m *Merger) mayAcquire(ctx context.Context, p *partition) bool {
	if m.preferred(p) {
		return m.pinnedCount() < m.target()
	}
	return p.orphaned(ctx)
}

// preferred spreads partitions over the live mergers without coordination: partition n is
// preferred by the (n mod k)-th, in sorted key order, of the k live mergers serving n. Mergers
// only use it to decide where to pull first; ownership itself is the server's pin.
func (m *Merger) preferred(p *partition) bool {
	sp := m.serving.Load()
	if sp == nil {
		return true
	}
	keys := (*sp)[int(p.n)]
	if len(keys) <= 1 {
		return true
	}
	mine := slices.Index(keys, m.presenceKey())
	if mine < 0 {
		return true
	}
	return int(p.n)%len(keys) == mine
}

// rebalance asks the partitions owned beyond target to give their pins up: partitions not
// preferred for this merger first, then the cheapest (fewest held messages).
func (m *Merger) rebalance() {
	extra := m.pinnedCount() - m.target()
	if extra <= 0 {
		return
	}
	var owned []*partition
	for _, p := range m.parts {
		if p.isPinned() && !p.release.Load() {
			owned = append(owned, p)
		}
	}
	sort.Slice(owned, func(i, j int) bool {
		pi, pj := m.preferred(owned[i]), m.preferred(owned[j])
		if pi != pj {
			return !pi
		}
		return owned[i].held.Load() < owned[j].held.Load()
	})
	for _, p := range owned[:extra] {
		p.releaseAt.Store(time.Now().UnixNano())
		p.release.Store(true)
	}
	m.log.Info("rebalancing", "live", m.live.Load(), "target", m.target(), "releasing", extra)
}
