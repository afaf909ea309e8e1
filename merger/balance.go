package merger

import (
	"context"
	"slices"
	"sort"
	"time"
)

// target is how many partitions this merger should own: those preferred for it.
func (m *Merger) target() int {
	n := 0
	for _, p := range m.parts {
		if m.preferred(p) {
			n++
		}
	}
	return n
}

func (m *Merger) pinnedCount() int {
	c := 0
	for _, p := range m.parts {
		if p.isPinned() && !p.release.Load() {
			c++
		}
	}
	return c
}

// mayAcquire reports whether this merger may pull on p, a partition it does not own: a
// partition preferred for it while it owns fewer than target, or one nobody has taken although
// it has messages waiting (its preferred merger is not pulling on it), whatever it owns.
func (m *Merger) mayAcquire(ctx context.Context, p *partition) bool {
	if m.preferred(p) {
		return m.pinnedCount() < m.target()
	}
	return p.orphaned(ctx)
}

// preferred spreads partitions over the live mergers without coordination: partition n is
// preferred by the (n mod k)-th, in sorted key order, of the k live mergers serving n. Mergers
// only use it to decide where to pull first; ownership itself is the server's pin.
func (m *Merger) preferred(p *partition) bool {
	sp := m.serving.Load()
	if sp == nil {
		return true
	}
	keys := (*sp)[int(p.n)]
	if len(keys) <= 1 {
		return true
	}
	mine := slices.Index(keys, m.presenceKey())
	if mine < 0 {
		return true
	}
	return int(p.n)%len(keys) == mine
}

// rebalance asks the partitions owned beyond target to give their pins up: partitions not
// preferred for this merger first, then the cheapest (fewest held messages).
func (m *Merger) rebalance() {
	extra := m.pinnedCount() - m.target()
	if extra <= 0 {
		return
	}
	var owned []*partition
	for _, p := range m.parts {
		if p.isPinned() && !p.release.Load() {
			owned = append(owned, p)
		}
	}
	sort.Slice(owned, func(i, j int) bool {
		pi, pj := m.preferred(owned[i]), m.preferred(owned[j])
		if pi != pj {
			return !pi
		}
		return owned[i].held.Load() < owned[j].held.Load()
	})
	for _, p := range owned[:extra] {
		p.releaseAt.Store(time.Now().UnixNano())
		p.release.Store(true)
	}
	m.log.Info("rebalancing", "live", m.live.Load(), "target", m.target(), "releasing", extra)
}
