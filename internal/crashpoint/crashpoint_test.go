package crashpoint

import "testing"

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in    string
		point string
		n     int64
	}{
		{"", "", 0},
		{"merger.uploaded", "merger.uploaded", 1},
		{"merger.chunk:7", "merger.chunk", 7},
		{"merger.chunk:x", "merger.chunk", 1},
		{"merger.chunk:0", "merger.chunk", 1},
	} {
		if p, n := parse(tc.in); p != tc.point || n != tc.n {
			t.Errorf("parse(%q) = %q, %d; want %q, %d", tc.in, p, n, tc.point, tc.n)
		}
	}
}

func TestHitDisarmed(t *testing.T) {
	Hit("merger.uploaded") // armed is "" in tests: must return
}
