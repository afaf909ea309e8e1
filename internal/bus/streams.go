package bus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// Ensure creates or updates the streams and key-value buckets sluice uses. It is idempotent and
// safe to call from every process at start-up.
func (b *Bus) Ensure(ctx context.Context) error {
	c, s := b.Cfg, b.Subjects
	rowsCompression := jetstream.S2Compression
	if c.RowsCompression == "none" {
		rowsCompression = jetstream.NoCompression
	}
	streams := []jetstream.StreamConfig{{
		Name:        s.RowsStream(),
		Description: "sluice: CSV chunks, batch-complete markers and aborts, per partition and table",
		Subjects:    []string{s.RowsAll()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      c.RowsMaxAge,
		MaxBytes:    c.RowsMaxBytes,
		Duplicates:  c.DupWindow,
		Compression: rowsCompression,
		Replicas:    c.Replicas,
		Discard:     jetstream.DiscardOld,
	}, {
		Name:        s.EventsStream(),
		Description: "sluice: archive landed/extracted/failed/duplicate, batch committed, checks, summaries",
		Subjects:    []string{s.EventsAll()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      c.EventsMaxAge,
		Duplicates:  c.DupWindow,
		Compression: jetstream.S2Compression,
		Replicas:    c.Replicas,
	}, {
		Name:        s.DLQStream(),
		Description: "sluice: dead letters with their reasons",
		Subjects:    []string{s.DLQAll()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      c.EventsMaxAge,
		Compression: jetstream.S2Compression,
		Replicas:    c.Replicas,
	}}
	for _, sc := range streams {
		if _, err := b.JS.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("ensure stream %s: %w", sc.Name, err)
		}
	}
	for _, kc := range []jetstream.KeyValueConfig{
		{Bucket: s.LedgerBucket(), Description: "sluice: archive ledger (content identity -> state)", History: 5, Storage: jetstream.FileStorage, Replicas: c.Replicas},
		{Bucket: s.SchemasBucket(), Description: "sluice: per-table schema registry", History: 10, Storage: jetstream.FileStorage, Replicas: c.Replicas},
	} {
		if _, err := b.JS.CreateOrUpdateKeyValue(ctx, kc); err != nil {
			return fmt.Errorf("ensure kv %s: %w", kc.Bucket, err)
		}
	}
	return nil
}

// Ledger returns the archive ledger bucket.
func (b *Bus) Ledger(ctx context.Context) (jetstream.KeyValue, error) {
	return b.JS.KeyValue(ctx, b.Subjects.LedgerBucket())
}

// Schemas returns the schema registry bucket.
func (b *Bus) Schemas(ctx context.Context) (jetstream.KeyValue, error) {
	return b.JS.KeyValue(ctx, b.Subjects.SchemasBucket())
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("listen address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("listen port %q: %w", p, err)
	}
	if port == 0 {
		port = -1 // random
	}
	return host, port, nil
}

// IsNotFound reports whether err means a stream, consumer or key is absent.
func IsNotFound(err error) bool {
	return errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrKeyNotFound)
}
