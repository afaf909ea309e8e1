package main

import "testing"

// TestSizeValue: a size flag prints as a unit when exact (what --help and docs/FLAGS.md show)
// and reads back what it prints.
func TestSizeValue(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{{0, "0"}, {1500, "1500"}, {96 << 20, "96MiB"}, {1 << 30, "1GiB"}, {3<<30 + 1<<20, "3073MiB"}, {1<<20 + 1, "1048577"}} {
		n := tc.n
		if got := (sizeValue{&n}).String(); got != tc.want {
			t.Errorf("%d prints as %q, want %q", tc.n, got, tc.want)
		}
		var back int64
		if err := (sizeValue{&back}).Set(tc.want); err != nil || back != tc.n {
			t.Errorf("%q reads back as %d (%v), want %d", tc.want, back, err, tc.n)
		}
	}
}
