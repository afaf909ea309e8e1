package bus_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/bus/bustest"
)

func connectTo(t *testing.T, url string, mutate func(*bus.Config)) (*bus.Bus, *bustest.Logs) {
	t.Helper()
	cfg := bus.Config{URL: url, Subjects: bus.Subjects{Prefix: "sluice", Partitions: 4}}
	if mutate != nil {
		mutate(&cfg)
	}
	logs := &bustest.Logs{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b, logs
}

func streamConfig(t *testing.T, b *bus.Bus, name string) jetstream.StreamConfig {
	t.Helper()
	st, err := b.JS.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().Config
}

func bucketReplicas(t *testing.T, b *bus.Bus, name string) int {
	t.Helper()
	kv, err := b.JS.KeyValue(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Config().Replicas
}

// TestEnsureKeepsOperatorSettings: a stream whose limits an operator changed keeps them when
// sluice starts again with its defaults (the difference is logged); --update-streams applies
// the flags; the new limit flags reach the streams they name.
func TestEnsureKeepsOperatorSettings(t *testing.T) {
	b := bustest.New(t, func(c *bus.Config) {
		c.RowsMaxBytes, c.EventsMaxAge, c.DLQMaxAge = 1<<30, 48*time.Hour, 24*time.Hour
	})
	ctx := context.Background()
	s := b.Subjects
	if got := streamConfig(t, b, s.RowsStream()); got.MaxBytes != 1<<30 || got.MaxAge != 72*time.Hour {
		t.Fatalf("rows stream created with max bytes %d, max age %s", got.MaxBytes, got.MaxAge)
	}
	if got := streamConfig(t, b, s.EventsStream()).MaxAge; got != 48*time.Hour {
		t.Fatalf("events max age %s, want 48h", got)
	}
	if got := streamConfig(t, b, s.DLQStream()).MaxAge; got != 24*time.Hour {
		t.Fatalf("dlq max age %s, want 24h", got)
	}

	// The operator keeps rows for a week.
	rows := streamConfig(t, b, s.RowsStream())
	rows.MaxAge = 7 * 24 * time.Hour
	if _, err := b.JS.UpdateStream(ctx, rows); err != nil {
		t.Fatal(err)
	}

	// A process started with the defaults keeps the operator's week and says so.
	other, logs := connectTo(t, b.Server.ClientURL(), func(c *bus.Config) { c.RowsMaxBytes = 1 << 30 })
	if err := other.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if got := streamConfig(t, b, s.RowsStream()).MaxAge; got != 7*24*time.Hour {
		t.Fatalf("rows max age %s after a start with the defaults: the operator's 168h was overwritten", got)
	}
	if !strings.Contains(logs.String(), "keeping the stream's") || !strings.Contains(logs.String(), "max_age 168h0m0s (flags: 72h0m0s)") {
		t.Fatalf("difference not logged:\n%s", logs)
	}

	// --update-streams applies the flags.
	upd, logs := connectTo(t, b.Server.ClientURL(), func(c *bus.Config) { c.RowsMaxBytes, c.UpdateStreams = 1<<30, true })
	if err := upd.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if got := streamConfig(t, b, s.RowsStream()).MaxAge; got != 72*time.Hour {
		t.Fatalf("rows max age %s after --update-streams, want 72h", got)
	}
	if !strings.Contains(logs.String(), "stream updated") {
		t.Fatalf("update not logged:\n%s", logs)
	}

	// A stream of the same name with other subjects is not sluice's: an error, not an update.
	foreign, _ := connectTo(t, b.Server.ClientURL(), func(c *bus.Config) { c.UpdateStreams = true })
	dlq := streamConfig(t, b, s.DLQStream())
	dlq.Subjects = []string{"elsewhere.>"}
	if _, err := b.JS.UpdateStream(ctx, dlq); err != nil {
		t.Fatal(err)
	}
	if err := foreign.Ensure(ctx); err == nil || !strings.Contains(err.Error(), "subjects") {
		t.Fatalf("ensure over a stream with other subjects: %v, want a subjects error", err)
	}
}

// TestReplicasNeedACluster: a standalone embedded server cannot hold more than one replica.
func TestReplicasNeedACluster(t *testing.T) {
	err := bus.Config{StateDir: t.TempDir(), Replicas: 3}.Validate()
	if err == nil || !strings.Contains(err.Error(), "embedded nats-server alone") {
		t.Fatalf("replicas 3 on a standalone embedded server: %v", err)
	}
	if err := (bus.Config{StateDir: t.TempDir(), Replicas: 3, ClusterListen: "127.0.0.1:6222", Routes: []string{"nats-route://127.0.0.1:6223"}}).Validate(); err != nil {
		t.Fatalf("an embedded cluster node may hold 3 replicas: %v", err)
	}
}

// TestEnsureReplicasOnCluster: on a 3-node cluster, --replicas 3 creates every stream and
// bucket with three replicas (spread over the nodes); a later start with --replicas 1 keeps
// them at 3 (never a silent scale-down), and one with --update-streams scales an R1 stream up.
func TestEnsureReplicasOnCluster(t *testing.T) {
	c := bustest.NewCluster(t, 3, t.TempDir())
	ctx := context.Background()
	b3, _ := connectTo(t, c.URL(), func(cfg *bus.Config) { cfg.Replicas = 3 })
	if err := b3.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	s := b3.Subjects
	for _, name := range []string{s.RowsStream(), s.EventsStream(), s.DLQStream()} {
		st, err := b3.JS.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info := st.CachedInfo()
		if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			t.Fatalf("stream %s: replicas %d, cluster %+v", name, info.Config.Replicas, info.Cluster)
		}
	}
	for _, name := range []string{s.LedgerBucket(), s.SchemasBucket()} {
		if r := bucketReplicas(t, b3, name); r != 3 {
			t.Fatalf("bucket %s: %d replicas, want 3", name, r)
		}
	}

	b1, logs := connectTo(t, c.URL(), nil) // --replicas 1 (the default)
	if err := b1.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if r := streamConfig(t, b1, s.RowsStream()).Replicas; r != 3 {
		t.Fatalf("rows stream scaled to %d replicas by a start with --replicas 1", r)
	}
	if r := bucketReplicas(t, b1, s.LedgerBucket()); r != 3 {
		t.Fatalf("ledger scaled to %d replicas by a start with --replicas 1", r)
	}
	if !strings.Contains(logs.String(), "replicas 3 (flags: 1)") {
		t.Fatalf("replica difference not logged:\n%s", logs)
	}

	// Another prefix, created R1, then scaled up by --update-streams --replicas 3.
	p1, _ := connectTo(t, c.URL(), func(cfg *bus.Config) { cfg.Subjects.Prefix = "other" })
	if err := p1.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	p3, _ := connectTo(t, c.URL(), func(cfg *bus.Config) {
		cfg.Subjects.Prefix, cfg.Replicas, cfg.UpdateStreams = "other", 3, true
	})
	if err := p3.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if r := streamConfig(t, p3, p3.Subjects.EventsStream()).Replicas; r != 3 {
		t.Fatalf("events stream of prefix other: %d replicas after --update-streams --replicas 3", r)
	}
	if r := bucketReplicas(t, p3, p3.Subjects.SchemasBucket()); r != 3 {
		t.Fatalf("schemas bucket of prefix other: %d replicas after --update-streams --replicas 3", r)
	}
}
