package merger

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-dev/sluice/internal/objstore"
)

// TestOutputBlockedSaidOnce: an output that refuses writes is logged once per outage at error
// level, shown by the gauge, and its recovery is logged once.
func TestOutputBlockedSaidOnce(t *testing.T) {
	var logs bytes.Buffer
	out, err := objstore.Open(t.Context(), t.TempDir(), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "blocked"})
	c := &committer{out: out, log: slog.New(slog.NewTextHandler(&logs, nil)), blockedGauge: g}
	denied := errors.New("403 access denied")
	for range 5 {
		c.outputBlocked("access denied", denied)
	}
	if v := testutil.ToFloat64(g); v != 1 {
		t.Errorf("gauge %v while blocked", v)
	}
	c.outputBlocked("", nil)
	c.outputBlocked("", nil)
	if v := testutil.ToFloat64(g); v != 0 {
		t.Errorf("gauge %v after recovery", v)
	}
	if n := strings.Count(logs.String(), "output refuses writes"); n != 1 {
		t.Errorf("%d error lines for one outage:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "output accepts writes again"); n != 1 {
		t.Errorf("%d recovery lines:\n%s", n, logs.String())
	}
}
