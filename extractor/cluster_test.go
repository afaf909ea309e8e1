package extractor

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/bus/bustest"
)

// syncBuffer is a log sink the test reads while the extractor writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunRetriesStartWithoutQuorum: an extractor that starts while its cluster cannot answer (two
// of three nodes down: its consumer cannot be created) retries instead of returning, and
// extracts once the nodes are back. Returning stopped `sluice run` on that node.
func TestRunRetriesStartWithoutQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := bustest.NewCluster(t, 3, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Config{URL: c.URL(), Replicas: 3, Subjects: bus.Subjects{Prefix: "sluice", Partitions: 4}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	c.Stop(1)
	c.Stop(2)

	var logs syncBuffer
	e, err := New(Config{}, Deps{Bus: b,
		Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	v := &env{b: b, e: e}
	rctx, rcancel := context.WithCancel(context.Background())
	var runErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runErr = e.Run(rctx)
	}()
	t.Cleanup(func() {
		rcancel()
		<-done
	})
	waitUntil := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !cond() {
			select {
			case <-done:
				t.Fatalf("Run returned while waiting for %s: %v\n%s", what, runErr, logs.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\n%s", what, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitUntil("the start failing", time.Minute, func() bool {
		return strings.Contains(logs.String(), "extractor start failing; retrying with backoff until it recovers")
	})
	for _, i := range []int{1, 2} {
		if err := c.Start(i); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil("the consumer started", 2*time.Minute, func() bool { return strings.Contains(logs.String(), "consuming landed archives") })
	ev := landArchive(t, "a.tar.gz", tarGz(t, file("t_20250101_b1.csv", "a,b\n1,2\n")))
	publishLanded(t, v, ev)
	waitUntil("ArchiveExtracted", time.Minute, func() bool { return len(extractedEvents(t, v)) == 1 })
}
