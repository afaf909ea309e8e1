package summarizer

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/promreg"
)

// metrics count what this process did. Replaying the stream at start does not count again what
// an earlier process already counted (the counters restart at zero, as Prometheus expects).
type metrics struct {
	archivesCompleted prometheus.Counter
	archivesFailed    prometheus.Counter
	checkFailures     prometheus.Counter
	rowsIn            prometheus.Counter
	rowsOut           prometheus.Counter
	summariesWritten  prometheus.Counter
	dqStatus          *prometheus.GaugeVec   // table
	dqResults         *prometheus.CounterVec // table, rule, status
	// What the fold knows of the whole fleet (every merger's commits), not only of this process:
	// set while replaying the stream too.
	lastCommit     *prometheus.GaugeVec // table: stream time of its newest BatchCommitted
	missingSources *prometheus.GaugeVec // date, partner: expected sources missing after the deadline
	archives       *prometheus.GaugeVec // state: archives the fold holds, by verdict
	caughtUp       prometheus.Gauge
	settleSeconds  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "sluice", Subsystem: "summarizer", Name: name, Help: help})
	}
	m := &metrics{
		archivesCompleted: c("archives_completed_total", "Archives whose tables were all committed and passed the post-merge check."),
		archivesFailed:    c("archives_failed_total", "Archives that failed extraction or the post-merge check."),
		checkFailures:     c("check_failures_total", "Post-merge checks (archive, table) that found a row count mismatch."),
		rowsIn:            c("rows_in_total", "Rows counted by the extractor in checked archives."),
		rowsOut:           c("rows_out_total", "Rows found in Parquet footers of checked archives."),
		summariesWritten:  c("summaries_written_total", "Summary writes (summary.json + summary.txt) to the output."),
		// Labels: tables with data-quality results, rules of the date (volume), the three statuses:
		// bounded by the configuration.
		dqStatus: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "sluice", Subsystem: "summarizer", Name: "dq_status",
			Help: "Data quality of the table on the newest process date whose summary is written: 0 OK, 1 WARN, 2 FAIL."}, []string{"table"}),
		dqResults: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sluice", Subsystem: "summarizer", Name: "dq_results_total",
			Help: "Date-level data-quality results (volume) written to _dq/results/<table>/process_date=D/date.parquet."}, []string{"table", "rule", "status"}),
	}
	m.lastCommit = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "sluice", Subsystem: "summarizer", Name: "last_commit_timestamp_seconds",
		Help: "When the newest BatchCommitted of the table (from any merger, or a replay) was stored in the events stream (Unix time)."}, []string{"table"})
	m.missingSources = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "sluice", Subsystem: "summarizer", Name: "missing_sources",
		Help: "Expected sources (globs of the partner's expected.sources) missing after the deadline, by process date and partner."}, []string{"date", "partner"})
	m.archives = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "sluice", Subsystem: "summarizer", Name: "archives",
		Help: "Archives the summarizer knows from the events stream, by state (pending, committed, failed; duplicate: locations skipped as duplicates of ingested bytes)."}, []string{"state"})
	m.caughtUp = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "sluice", Subsystem: "summarizer", Name: "caught_up",
		Help: "1 once the summarizer has replayed the events stream to its end (its start-up recovery), else 0."})
	m.settleSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "sluice", Subsystem: "summarizer", Name: "settle_duration_seconds",
		Help:    "How long a settle took (checks due, summaries rendered, status): it walks every archive of the events stream's retention.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)})
	if reg == nil {
		return m, nil
	}
	var err error
	if m.dqStatus, err = promreg.Register(reg, m.dqStatus); err != nil {
		return nil, fmt.Errorf("register summarizer metrics: %w", err)
	}
	if m.dqResults, err = promreg.Register(reg, m.dqResults); err != nil {
		return nil, fmt.Errorf("register summarizer metrics: %w", err)
	}
	for _, p := range []**prometheus.GaugeVec{&m.lastCommit, &m.missingSources, &m.archives} {
		if *p, err = promreg.Register(reg, *p); err != nil {
			return nil, fmt.Errorf("register summarizer metrics: %w", err)
		}
	}
	if m.caughtUp, err = promreg.Register(reg, m.caughtUp); err != nil {
		return nil, fmt.Errorf("register summarizer metrics: %w", err)
	}
	if m.settleSeconds, err = promreg.Register(reg, m.settleSeconds); err != nil {
		return nil, fmt.Errorf("register summarizer metrics: %w", err)
	}
	for _, p := range []*prometheus.Counter{&m.archivesCompleted, &m.archivesFailed, &m.checkFailures, &m.rowsIn, &m.rowsOut, &m.summariesWritten} {
		// a second summarizer on the same registry (a restart in-process) shares the counters
		c, err := promreg.Register(reg, *p)
		if err != nil {
			return nil, fmt.Errorf("register summarizer metrics: %w", err)
		}
		*p = c
	}
	return m, nil
}
