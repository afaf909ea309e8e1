package ui

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/merger"
)

// ClusterInfo is what the server says now of the streams, consumers and mergers.
type ClusterInfo struct {
	AtMs        int64            `json:"at_ms"`
	Error       string           `json:"error,omitempty"` // the last refresh failed (figures are older)
	DeadLetters uint64           `json:"dead_letters"`
	DLQByStage  map[string]int64 `json:"dlq_by_stage"`
	Partitions  []PartitionInfo  `json:"partitions"`
	Mergers     []MergerInfo     `json:"mergers"`
	Rows        StreamUsage      `json:"rows_stream"`
	Events      StreamUsage      `json:"events_stream"`
	// Storage of the account on the server (JetStream file store) against its limit (-1: none).
	StoreBytes    uint64 `json:"store_bytes"`
	StoreMaxBytes int64  `json:"store_max_bytes"`
}

// PartitionInfo is one rows partition's consumer (merger-p<N>).
type PartitionInfo struct {
	Partition  int    `json:"partition"`
	Pending    uint64 `json:"pending"`     // messages not yet delivered
	AckPending int    `json:"ack_pending"` // delivered, not acked (held by a merger)
	Owner      string `json:"owner"`       // merger instance holding the pin ("" none)
	Pinned     bool   `json:"pinned"`      // the server has a pinned client
}

// MergerInfo is one live merger.
type MergerInfo struct {
	Instance   string `json:"instance"`
	Partitions []int  `json:"partitions"`
	Pinned     []int  `json:"pinned"`
	BeatMs     int64  `json:"beat_ms"`
}

// StreamUsage is a stream's state against its limits.
type StreamUsage struct {
	Name       string `json:"name"`
	Bytes      uint64 `json:"bytes"`
	Msgs       uint64 `json:"msgs"`
	MaxBytes   int64  `json:"max_bytes"` // -1: unlimited
	MaxMsgs    int64  `json:"max_msgs"`
	MaxAgeSec  int64  `json:"max_age_sec"` // 0: unlimited
	FirstMs    int64  `json:"first_ms"`    // oldest message still held (0: empty)
	Consumers  int    `json:"consumers"`
	Compressed bool   `json:"compressed"`
}

// clusterCache holds the last ClusterInfo. mu is held across the NATS requests of a refresh,
// so that pages asking at once share one; it is never taken with Model.mu held.
type clusterCache struct {
	every time.Duration
	mu    sync.Mutex
	at    time.Time
	info  ClusterInfo
}

// clusterInfo returns the cluster figures, refreshed when older than the refresh interval.
func (m *Model) clusterInfo(ctx context.Context) ClusterInfo {
	c := &m.cluster
	c.mu.Lock()
	defer c.mu.Unlock()
	now := m.now()
	if !c.at.IsZero() && now.Sub(c.at) < c.every {
		return c.info
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := m.readCluster(ctx)
	if err != nil {
		c.info.Error = err.Error()
		return c.info
	}
	info.AtMs = now.UnixMilli()
	c.info, c.at = info, now
	return info
}

func (m *Model) readCluster(ctx context.Context) (ClusterInfo, error) {
	info := ClusterInfo{DLQByStage: map[string]int64{}, Partitions: []PartitionInfo{}, Mergers: []MergerInfo{}}
	rows, err := m.js.Stream(ctx, m.sub.RowsStream())
	if err != nil {
		return info, fmt.Errorf("rows stream: %w", err)
	}
	ri, err := rows.Info(ctx)
	if err != nil {
		return info, fmt.Errorf("rows stream info: %w", err)
	}
	info.Rows = usage(ri)
	if ev, err := m.js.Stream(ctx, m.sub.EventsStream()); err == nil {
		if ei, err := ev.Info(ctx); err == nil {
			info.Events = usage(ei)
		}
	}
	if dlq, err := m.js.Stream(ctx, m.sub.DLQStream()); err == nil {
		if di, err := dlq.Info(ctx, jetstream.WithSubjectFilter(m.sub.DLQAll())); err == nil {
			info.DeadLetters = di.State.Msgs
			for subj, n := range di.State.Subjects {
				info.DLQByStage[strings.TrimPrefix(subj, m.sub.Prefix+".dlq.")] += int64(n)
			}
		}
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return info, fmt.Errorf("dead-letter stream: %w", err)
	}
	live, err := merger.LiveMergers(ctx, m.js, m.sub)
	if err != nil {
		return info, err
	}
	owner := map[int]string{}
	serving := map[int][]string{}
	for _, p := range live {
		info.Mergers = append(info.Mergers, MergerInfo{Instance: p.Instance, Partitions: p.Partitions, Pinned: p.Pinned, BeatMs: p.AtUnixMs})
		for _, n := range p.Pinned {
			owner[n] = p.Instance
		}
		for _, n := range p.Partitions {
			serving[n] = append(serving[n], p.Instance)
		}
	}
	byPart := map[int]PartitionInfo{}
	lister := rows.ListConsumers(ctx)
	for ci := range lister.Info() {
		n, ok := partitionOf(ci.Name)
		if !ok {
			continue
		}
		pi := PartitionInfo{Partition: n, Pending: ci.NumPending, AckPending: ci.NumAckPending, Owner: owner[n]}
		for _, g := range ci.PriorityGroups {
			if g.PinnedClientID != "" {
				pi.Pinned = true
			}
		}
		if pi.Owner == "" && pi.Pinned && len(serving[n]) == 1 {
			pi.Owner = serving[n][0] // pinned since its last heartbeat, and no other merger serves it
		}
		byPart[n] = pi
	}
	if err := lister.Err(); err != nil {
		return info, fmt.Errorf("list consumers: %w", err)
	}
	// Every partition of --partitions, and any other the server has a consumer for (a dashboard
	// started with another --partitions than the stages still shows theirs).
	for n := range m.sub.Partitions {
		if _, ok := byPart[n]; !ok {
			byPart[n] = PartitionInfo{Partition: n, Owner: owner[n]}
		}
	}
	for _, pi := range byPart {
		info.Partitions = append(info.Partitions, pi)
	}
	slices.SortFunc(info.Partitions, func(a, b PartitionInfo) int { return a.Partition - b.Partition })
	if ai, err := m.js.AccountInfo(ctx); err == nil {
		info.StoreBytes, info.StoreMaxBytes = ai.Store, ai.Limits.MaxStore
	}
	return info, nil
}

// partitionOf parses the partition of a merger consumer name (merger.ConsumerName).
func partitionOf(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "merger-p")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && merger.ConsumerName(n) == name
}

func usage(si *jetstream.StreamInfo) StreamUsage {
	u := StreamUsage{Name: si.Config.Name, Bytes: si.State.Bytes, Msgs: si.State.Msgs, MaxBytes: si.Config.MaxBytes,
		MaxMsgs: si.Config.MaxMsgs, MaxAgeSec: int64(si.Config.MaxAge / time.Second), Consumers: si.State.Consumers,
		Compressed: si.Config.Compression != jetstream.NoCompression}
	if si.State.Msgs > 0 && !si.State.FirstTime.IsZero() {
		u.FirstMs = si.State.FirstTime.UnixMilli()
	}
	return u
}
