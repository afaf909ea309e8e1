package merger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/internal/bus"
)

// ConsumerName is the durable consumer of rows partition n: merger-p<n>.
func ConsumerName(n int) string { return fmt.Sprintf("merger-p%d", n) }

// PresenceBucket is the KV bucket of merger presence heartbeats of sub: <PREFIX>_MERGERS.
func PresenceBucket(sub bus.Subjects) string {
	return strings.TrimSuffix(sub.RowsStream(), "_ROWS") + "_MERGERS"
}

// Presence is one live merger as its last heartbeat describes it.
type Presence struct {
	Instance   string // --instance (default hostname-pid)
	Partitions []int  // partitions it serves
	Pinned     []int  // partitions whose consumer is pinned to it
	AtUnixMs   int64  // when it beat
}

// LiveMergers reads the presence bucket (read-only): every merger whose heartbeat has not
// expired, sorted by instance. No bucket (no merger ever ran) is no merger.
func LiveMergers(ctx context.Context, js jetstream.JetStream, sub bus.Subjects) ([]Presence, error) {
	kv, err := js.KeyValue(ctx, PresenceBucket(sub))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open presence bucket: %w", err)
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list presence: %w", err)
	}
	var out []Presence
	for k := range lister.Keys() {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue // expired since the listing
		}
		if err != nil {
			return nil, fmt.Errorf("read presence %s: %w", k, err)
		}
		var doc presenceDoc
		if json.Unmarshal(e.Value(), &doc) != nil {
			continue
		}
		out = append(out, Presence{Instance: doc.Instance, Partitions: doc.Partitions, Pinned: doc.Pinned, AtUnixMs: doc.AtUnixMs})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out, nil
}
