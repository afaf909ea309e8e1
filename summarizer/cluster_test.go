package summarizer_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/proto/sluicev1"
	"github.com/sluice-dev/sluice/summarizer"
)

// syncBuffer is a log sink tests read while the summarizer writes to it.
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

// TestStartRetriesWithoutQuorum: a summarizer that starts while its cluster cannot answer (two
// of three nodes down: the events stream cannot be read) retries instead of returning, and
// folds the stream once the nodes are back. Returning stopped `sluice run` on that node.
func TestStartRetriesWithoutQuorum(t *testing.T) {
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
	if _, err := b.JS.Publish(ctx, b.Subjects.Landed(), mustMarshal(t, &sluicev1.ArchiveLanded{ArchiveId: "a0000000000000000001",
		Uri: "file:///l/acme_20250102_1.tar.gz", Name: "acme_20250102_1.tar.gz"})); err != nil {
		t.Fatal(err)
	}
	out, err := objstore.Open(context.Background(), t.TempDir(), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c.Stop(1)
	c.Stop(2)

	var logs syncBuffer
	s, err := summarizer.New(summarizer.Config{CheckEvery: 20 * time.Millisecond}, summarizer.Deps{Bus: b, Out: out,
		Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	var runErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runErr = s.Run(rctx)
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
		return strings.Contains(logs.String(), "summarizer start failing; retrying with backoff until it recovers")
	})
	for _, i := range []int{1, 2} {
		if err := c.Start(i); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil("the event folded", 2*time.Minute, func() bool {
		st := s.Status()
		return st.CaughtUp && st.Archives["a0000000000000000001"].Name == "acme_20250102_1.tar.gz"
	})
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
