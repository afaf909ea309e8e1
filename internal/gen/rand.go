package gen

import (
	"hash/fnv"
	"math/bits"
)

// rng is a small wyrand generator. It is ours (not math/rand) so that the bytes generated for a seed never
// change with the Go version, and so that the hot loop makes plain, inlinable calls.
type rng struct{ s uint64 }

// newRNG derives an independent stream from the corpus seed and a label (table, date, batch, purpose...):
// a member's rows do not depend on how many other members were planned before it.
func newRNG(seed int64, labels ...string) *rng {
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(uint64(seed) >> (8 * i))
	}
	h.Write(b[:])
	for _, l := range labels {
		h.Write([]byte{0})
		h.Write([]byte(l))
	}
	r := &rng{s: h.Sum64()}
	r.u64() // decorrelate seeds that differ in a few bits
	return r
}

func (r *rng) u64() uint64 {
	r.s += 0xa0761d6478bd642f
	hi, lo := bits.Mul64(r.s, r.s^0xe7037ed1a0b428db)
	return hi ^ lo
}

// intn returns a value in [0, n); n > 0.
func (r *rng) intn(n int) int {
	hi, _ := bits.Mul64(r.u64(), uint64(n))
	return int(hi)
}

// between returns a value in [lo, hi].
func (r *rng) between(lo, hi int64) int64 {
	h, _ := bits.Mul64(r.u64(), uint64(hi-lo+1))
	return lo + int64(h)
}

// float returns a value in [0, 1).
func (r *rng) float() float64 { return float64(r.u64()>>11) / (1 << 53) }

// chance reports true with probability p1024/1024.
func (r *rng) chance(p1024 uint32) bool { return uint32(r.u64()&1023) < p1024 }

// perm returns a permutation of [0, n).
func (r *rng) perm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := r.intn(i + 1)
		p[i], p[j] = p[j], p[i]
	}
	return p
}
