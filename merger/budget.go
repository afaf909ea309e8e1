package merger

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// budget is the one memory accountant of a Merger: buffered chunk bytes of every open batch on
// every partition, plus the Arrow builders of the commits in progress. Going over the limit makes
// the merger release the largest in-memory batch's chunks (relief.relieve) and, while still over, pause
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

// relief is the memory budget and what relieves it: the open batches whose buffered chunks may
// be released (dropped from memory: they stay in the rows stream, batch.release). The partitions
// of a Merger (or a Replay) register the batches they buffer; commits account their Arrow
// builders against the same budget and call relieve when over it.
type relief struct {
	*budget
	log *slog.Logger
	met *metrics

	mu   sync.Mutex // guards open
	open map[*batch]struct{}

	relieveMu sync.Mutex // one relieve at a time (held around batch.release, which takes batch.mu)
}

func newRelief(limit int64, log *slog.Logger, met *metrics) *relief {
	return &relief{
		budget: newBudget(limit, func(d int64) { met.memoryInUse.Add(float64(d)) }),
		log:    log,
		met:    met,
		open:   map[*batch]struct{}{},
	}
}

// remember/forget keep the registry of open batches used by relieve and the InProgress ticker.
func (s *relief) remember(b *batch) {
	s.mu.Lock()
	s.open[b] = struct{}{}
	s.mu.Unlock()
}

func (s *relief) forget(b *batch) {
	s.mu.Lock()
	delete(s.open, b)
	s.mu.Unlock()
}

func (s *relief) openBatches() []*batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	bs := make([]*batch, 0, len(s.open))
	for b := range s.open {
		bs = append(bs, b)
	}
	return bs
}

// relieve releases the chunks of the largest in-memory batches until memory is under the budget,
// preferring batches that are not being committed, then drops the rows batches parsed on arrival.
// When nothing is left to free, the partition loops pause fetching until commits release their
// builders.
func (s *relief) relieve() {
	s.relieveMu.Lock()
	defer s.relieveMu.Unlock()
	for s.over() {
		var pick *batch
		var pickBytes int64
		var pickCommitting bool
		for _, b := range s.openBatches() {
			n := b.memBytes.Load()
			if n == 0 {
				continue
			}
			c := b.inCommit.Load()
			if pick == nil || (pickCommitting && !c) || (c == pickCommitting && n > pickBytes) {
				pick, pickBytes, pickCommitting = b, n, c
			}
		}
		if pick == nil {
			// No chunk left in memory: give up rows parsed on arrival (those batches are parsed
			// from their CSV at commit), largest first.
			if !s.dropCollected() {
				return
			}
			continue
		}
		freed := pick.release()
		if freed == 0 {
			continue
		}
		s.add(-freed)
		s.met.releasedTotal.Add(float64(freed))
		s.log.Debug("released chunks", "batch", pick.key.String(), "bytes", freed)
	}
}

// dropCollected drops the largest set of rows parsed on arrival held by a batch not being
// committed; false when there is none. Groups written early (one open segment each) are dropped
// only when no other rows are left to drop: it aborts what they wrote, but pausing with nothing
// left to free could wait forever.
func (s *relief) dropCollected() bool {
	bs := s.openBatches()
	slices.SortFunc(bs, func(a, b *batch) int { return cmp.Compare(b.collectBytes.Load(), a.collectBytes.Load()) })
	for _, early := range []bool{false, true} {
		for _, b := range bs {
			if b.collectBytes.Load() == 0 || b.inCommit.Load() {
				continue
			}
			if freed := b.dropCollected("memory budget reached", false, early); freed > 0 {
				s.add(-freed)
				s.log.Debug("dropped rows parsed on arrival", "batch", b.key.String(), "bytes", freed, "written_early", early)
				return true
			}
		}
	}
	return false
}
