package summarizer

import "testing"

func TestNameDate(t *testing.T) {
	for in, want := range map[string]string{
		"acme_20250102_1.tar.gz":   "2025-01-02",
		"x_123456789.tar.gz":       "",
		"20251399_20250105.tar.gz": "2025-01-05",
		"garbage.tar.gz":           "",
	} {
		if got := nameDate(in); got != want {
			t.Errorf("nameDate(%q)=%q want %q", in, got, want)
		}
	}
}

func TestTextHelpers(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", -1234567: "-1,234,567"} {
		if got := num(in); got != want {
			t.Errorf("num(%d)=%q want %q", in, got, want)
		}
	}
	if got := bytesStr(1536); got != "1.5 KiB" {
		t.Errorf("bytesStr=%q", got)
	}
	if got := ms(1540); got != "1.5s" {
		t.Errorf("ms=%q", got)
	}
}
