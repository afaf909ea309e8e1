// Package bustest starts a real nats-server in-process for tests, with a file store in t.TempDir().
package bustest

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/bus"
)

// New starts an embedded nats-server (listening on a random loopback port so child processes can
// join), connects, creates the streams and buckets, and closes everything when the test ends.
func New(t testing.TB, mutate ...func(*bus.Config)) *bus.Bus {
	t.Helper()
	cfg := bus.Config{StateDir: t.TempDir(), Listen: "127.0.0.1:0", Subjects: bus.Subjects{Prefix: "sluice", Partitions: 4}}
	for _, m := range mutate {
		m(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(b.Close)
	if err := b.Ensure(ctx); err != nil {
		t.Fatalf("ensure streams: %v", err)
	}
	return b
}

// Connect opens a second connection (another "process") to the same server as b.
func Connect(t testing.TB, b *bus.Bus) *bus.Bus {
	t.Helper()
	cfg := b.Cfg
	cfg.URL = b.Server.ClientURL()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nb, err := bus.Connect(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("connect nats: %v", err)
	}
	t.Cleanup(nb.Close)
	return nb
}
