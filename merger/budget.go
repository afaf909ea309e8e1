package merger

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// budget is the one memory accountant of a Merger: buffered chunk bytes of every open batch on
// every partition, plus the Arrow builders of the commits in progress. Going over the limit makes
// the merger spill the largest in-memory batch (Merger.relieve) and, while still over, pause
// fetching (partition loops wait in waitUnder while keeping their pins alive).
type budget struct {
	limit int64
	used  atomic.Int64
	gauge func(delta int64)

	mu      sync.Mutex
	under   chan struct{} // closed (and replaced) whenever used drops to or below limit
	waiters bool
}

func newBudget(limit int64, gauge func(int64)) *budget {
	return &budget{limit: limit, gauge: gauge, under: make(chan struct{})}
}

func (b *budget) add(n int64) {
	if n == 0 {
		return
	}
	v := b.used.Add(n)
	if b.gauge != nil {
		b.gauge(n)
	}
	if n < 0 && v <= b.limit {
		b.mu.Lock()
		if b.waiters {
			close(b.under)
			b.under = make(chan struct{})
			b.waiters = false
		}
		b.mu.Unlock()
	}
}

func (b *budget) over() bool { return b.used.Load() > b.limit }

// free is what is left under the limit (0 when over).
func (b *budget) free() int64 { return max(0, b.limit-b.used.Load()) }

// waitUnder waits until used is at or below the limit, ctx is done or d elapses; it reports
// whether memory is under the limit.
func (b *budget) waitUnder(ctx context.Context, d time.Duration) bool {
	b.mu.Lock()
	if b.used.Load() <= b.limit {
		b.mu.Unlock()
		return true
	}
	b.waiters = true
	ch := b.under
	b.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-ctx.Done():
	case <-t.C:
	}
	return !b.over()
}
