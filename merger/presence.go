package merger

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/internal/bus"
)

// presenceBucket is <PREFIX>_MERGERS: one key per live merger, expiring after a few missed beats.
func (m *Merger) presenceBucket() string { return PresenceBucket(m.deps.Bus.Subjects) }

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
	out := bus.NewOutage(m.log, "presence heartbeat", 0) // the ticker paces the retries
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
				out.Fail(err)
			} else if err == nil {
				out.OK()
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
				m.log.Debug("count live mergers", "err", err)
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
