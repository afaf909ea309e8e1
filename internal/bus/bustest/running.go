package bustest

import (
	"context"
	"testing"
	"time"
)

// Running is a stage's Run going on a goroutine of a test.
type Running struct {
	done chan struct{}
	err  error
}

// Start runs run on a goroutine until the test ends: then its context is cancelled and the
// cleanup waits for it to return.
func Start(t testing.TB, run func(context.Context) error) *Running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// Done is closed once run has returned (Err is then what it returned).
func (r *Running) Done() <-chan struct{} { return r.done }

// Err is what run returned; call it only after Done is closed.
func (r *Running) Err() error { return r.err }

// WaitLog waits until logs hold line, failing the test when run returns first or d passes.
func (r *Running) WaitLog(t testing.TB, logs *Logs, what, line string, d time.Duration) {
	t.Helper()
	select {
	case <-logs.Seen(line):
	case <-r.done:
		t.Fatalf("Run returned while waiting for %s: %v\n%s", what, r.err, logs.String())
	case <-time.After(d):
		t.Fatalf("timed out waiting for %s\n%s", what, logs.String())
	}
}
