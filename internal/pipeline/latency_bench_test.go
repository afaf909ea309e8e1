package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/gen"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/pipeline"
	"github.com/sluice-dev/sluice/summarizer"
)

// BenchmarkContinuousLatency drops small archives one at a time into a running pipeline
// (continuous mode, embedded JetStream) and measures the time from the archive appearing in the
// landing folder (atomic rename) to its Parquet being committed and to its summary being written.
// Reports p50/p90 of both (issue #6 target 3: committed ≤ 500 ms p50).
func BenchmarkContinuousLatency(b *testing.B) {
	h := newHarnessB(b)
	h.opts.Once = false
	if v := os.Getenv("LATENCY_POLL"); v != "" {
		h.opts.Poll, _ = time.ParseDuration(v)
	}
	if v := os.Getenv("LATENCY_STABLE_FOR"); v != "" {
		h.opts.StableFor, _ = time.ParseDuration(v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sumc := make(chan *summarizer.Summarizer, 1)
	go func() { _, _ = pipeline.Run(ctx, h.env, h.opts, func(s *summarizer.Summarizer) { sumc <- s }) }()
	sum := <-sumc
	time.Sleep(500 * time.Millisecond)
	var commit, summary []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("lat_202503%02d_%d.tar.gz", 1+i%28, i)
		body := fmt.Sprintf("id,price,city\n%d,1.5,Seattle\n%d,2.5,\"Portland, OR\"\n", i, i+1)
		tmp := filepath.Join(h.landing, ".tmp-"+name)
		if err := gen.WriteArchive(tmp, []gen.Member{{Name: fmt.Sprintf("lat_table_202503%02d_%03d.csv", 1+i%28, i), Body: []byte(body)}}); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := os.Rename(tmp, filepath.Join(h.landing, name)); err != nil {
			b.Fatal(err)
		}
		want := i + 1
		var committedAt time.Duration
		for {
			st := sum.Status()
			if committedAt == 0 && st.Totals.Committed+st.Totals.Pending >= want && countObjects(h, "lat_table/") >= want {
				committedAt = time.Since(start)
			}
			if st.Totals.Committed >= want && st.Totals.SummariesWritten > 0 {
				if committedAt == 0 {
					committedAt = time.Since(start)
				}
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatalf("archive %d not committed: %+v", i, st.Totals)
			}
			time.Sleep(2 * time.Millisecond)
		}
		commit = append(commit, committedAt)
		summary = append(summary, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(pct(commit, 50).Seconds()*1000, "commit-p50-ms")
	b.ReportMetric(pct(commit, 90).Seconds()*1000, "commit-p90-ms")
	b.ReportMetric(pct(summary, 50).Seconds()*1000, "summary-p50-ms")
}

func countObjects(h *harness, prefix string) int {
	n := 0
	_ = h.bucket().List(context.Background(), prefix, "", func(a objstore.Attrs) error {
		if filepath.Ext(a.Key) == ".parquet" {
			n++
		}
		return nil
	})
	return n
}

func pct(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100]
}
