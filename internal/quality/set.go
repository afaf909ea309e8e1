package quality

// hashSet is the memory-bounded set behind unique and key: it holds 64-bit hashes of values (or of key tuples),
// not the values, in an open-addressing table of uint64 (linear probing, at most 3/4 full, doubled when needed).
// So a set costs 8 bytes per slot, 10.7 to 21.3 bytes per distinct value, whatever the values' size. Two different
// values with the same hash are taken for a duplicate: with n distinct values that happens with probability about
// n²/2⁶⁵ (3·10⁻⁸ for a million values).
//
// The table never grows beyond maxSlots: once that is reached new hashes are only looked up (a value equal to one
// already held is still a duplicate), not added, and full is set so that the result can say how far the check
// went.
type hashSet struct {
	slots    []uint64 // 0 is an empty slot; hash 0 is stored as 1
	n        int
	maxSlots int
	full     bool
}

const minSlots = 1 << 10

// newHashSet returns a set of at most maxBytes (at least minSlots slots).
func newHashSet(maxBytes int64) *hashSet {
	maxSlots := minSlots
	for int64(maxSlots)*2*8 <= maxBytes {
		maxSlots *= 2
	}
	return &hashSet{maxSlots: maxSlots}
}

// add adds h and reports whether it was there already.
func (s *hashSet) add(h uint64) (dup bool) {
	if h == 0 {
		h = 1
	}
	if (s.n+1)*4 > len(s.slots)*3 && !s.grow() {
		return s.contains(h)
	}
	mask := uint64(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case 0:
			s.slots[i] = h
			s.n++
			return false
		case h:
			return true
		}
	}
}

func (s *hashSet) contains(h uint64) bool {
	if len(s.slots) == 0 {
		return false
	}
	mask := uint64(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case 0:
			return false
		case h:
			return true
		}
	}
}

// reserve sizes an empty set for n values (within maxSlots), so that filling it does not rehash.
func (s *hashSet) reserve(n int) {
	if s.n > 0 {
		return
	}
	size := minSlots
	for size*3 < n*4 && size < s.maxSlots {
		size *= 2
	}
	if size > len(s.slots) {
		s.slots = make([]uint64, size)
	}
}

// grow doubles the table; false when it is at maxSlots (then full is set).
func (s *hashSet) grow() bool {
	size := max(minSlots, 2*len(s.slots))
	if len(s.slots) > 0 && size > s.maxSlots {
		s.full = true
		return false
	}
	old := s.slots
	s.slots = make([]uint64, size)
	mask := uint64(size - 1)
	for _, h := range old {
		if h == 0 {
			continue
		}
		i := h & mask
		for s.slots[i] != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = h
	}
	return true
}

// bytes is the memory the table holds.
func (s *hashSet) bytes() int64 { return int64(len(s.slots)) * 8 }

// capacity is how many distinct values the set can hold at most.
func (s *hashSet) capacity() int { return s.maxSlots / 4 * 3 }
