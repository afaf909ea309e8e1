package merger

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/promreg"
)

// metrics of one Merger. Registered on Deps.Metrics when it is set; a second Merger on the same
// registerer shares the already registered collectors.
type metrics struct {
	committed      prometheus.Counter
	aborted        prometheus.Counter
	deadLettered   prometheus.Counter
	handedBack     prometheus.Counter
	rowsOut        prometheus.Counter
	bytesWritten   prometheus.Counter
	commitSeconds  prometheus.Histogram
	held           prometheus.Gauge
	memoryInUse    prometheus.Gauge
	releasedTotal  prometheus.Counter
	refetchedTotal prometheus.Counter
	quarantined    *prometheus.CounterVec
	// Data quality: label values come from the configured rules only (bounded cardinality).
	dqResults     *prometheus.CounterVec // table, rule, status
	dqFailedRows  *prometheus.CounterVec // table, rule, column
	dqStatus      *prometheus.GaugeVec   // table: 0 pass, 1 warn, 2 fail (last batch)
	outputBlocked prometheus.Gauge
	parsed        *prometheus.CounterVec // when: early, arrival, commit
	earlyGroups   prometheus.Gauge
	staleAborted  prometheus.Counter
	commitRetries prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		committed:    prometheus.NewCounter(prometheus.CounterOpts{Namespace: "sluice", Subsystem: "merger", Name: "batches_committed_total", Help: "Batches committed."}),
		aborted:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: "sluice", Subsystem: "merger", Name: "batches_aborted_total", Help: "Batches dropped on an abort marker."}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "sluice", Subsystem: "merger", Name: "batches_dead_lettered_total", Help: "Batches dead-lettered."}),
		handedBack:   prometheus.NewCounter(prometheus.CounterOpts{Namespace: "sluice", Subsystem: "merger", Name: "batches_handed_back_total", Help: "Batches whose messages were handed back (Nak): shutdown, lost or released ownership, ack-pending deadlock."}),
		rowsOut:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: "sluice", Subsystem: "merger", Name: "rows_out_total", Help: "Rows written to Parquet."}),
		bytesWritten: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "sluice", Subsystem: "merger", Name: "bytes_written_total", Help: "Parquet bytes committed."}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "sluice", Subsystem: "merger", Name: "commit_seconds",
			Help: "Time from a batch's marker to its acks.", Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 12)}),
		held:        prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "sluice", Subsystem: "merger", Name: "held_messages", Help: "Rows messages held un-acked."}),
		memoryInUse: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "sluice", Subsystem: "merger", Name: "memory_bytes", Help: "Buffered chunk bytes plus builder bytes accounted against the memory budget."}),
		releasedTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "sluice", Subsystem: "merger", Name: "released_bytes_total",
			Help: "Chunk bytes (as received) dropped from memory over the budget; they stay in the rows stream."}),
		refetchedTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "sluice", Subsystem: "merger", Name: "refetched_bytes_total",
			Help: "Released chunk bytes (as received) fetched back from the rows stream by a commit."}),
		quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sluice", Subsystem: "merger", Name: "quarantined_rows_total", Help: "Rows quarantined, by table."},
			[]string{"table"}),
		dqResults: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sluice", Subsystem: "merger", Name: "dq_results_total",
			Help: "Data-quality rule outcomes of committed or rejected batches, by table, rule and status (pass, warn, fail, missing_column)."},
			[]string{"table", "rule", "status"}),
		dqFailedRows: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sluice", Subsystem: "merger", Name: "dq_failed_rows_total",
			Help: "Rows that failed a data-quality row rule, by table, rule and column (warned, quarantined or failing the batch)."},
			[]string{"table", "rule", "column"}),
		outputBlocked: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "sluice", Subsystem: "merger", Name: "output_blocked",
			Help: "1 while the output refuses writes (access denied, no such bucket): commits are held until an operator fixes it."}),
		parsed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sluice", Subsystem: "merger", Name: "groups_parsed_total",
			Help: "Output groups (one table, process date and batch id of a batch) written, by when their rows were parsed (a retried commit counts again): early (typed columns built and their row groups written as the chunks came: a large group), arrival (typed columns built as the chunks came, written at commit) or commit (from the CSV: a column changed type, rows were rejected, the parse limit or the memory budget was reached)."},
			[]string{"when"}),
		earlyGroups: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "sluice", Subsystem: "merger", Name: "early_groups",
			Help: "Output groups being written early: large groups whose row groups are encoded and uploaded as their chunks arrive, and committed (made visible) with their batch."}),
		staleAborted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "sluice", Subsystem: "merger", Name: "stale_uploads_aborted_total",
			Help: "Unfinished uploads (S3 multipart uploads, temporary files) that killed writers left, aborted at start-up or by the periodic sweep."}),
		commitRetries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "sluice", Subsystem: "merger", Name: "commit_retries_total",
			Help: "Commit attempts that failed and were retried (the output or the bus refused or failed; the batch's messages are held meanwhile)."}),
		dqStatus: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "sluice", Subsystem: "merger", Name: "dq_status",
			Help: "Data-quality status of the table's last batch: 0 pass, 1 warn, 2 fail."}, []string{"table"}),
	}
	if reg == nil {
		return m
	}
	m.committed = register(reg, m.committed)
	m.aborted = register(reg, m.aborted)
	m.deadLettered = register(reg, m.deadLettered)
	m.handedBack = register(reg, m.handedBack)
	m.rowsOut = register(reg, m.rowsOut)
	m.bytesWritten = register(reg, m.bytesWritten)
	m.commitSeconds = register(reg, m.commitSeconds)
	m.held = register(reg, m.held)
	m.memoryInUse = register(reg, m.memoryInUse)
	m.releasedTotal = register(reg, m.releasedTotal)
	m.refetchedTotal = register(reg, m.refetchedTotal)
	m.quarantined = register(reg, m.quarantined)
	m.dqResults = register(reg, m.dqResults)
	m.dqFailedRows = register(reg, m.dqFailedRows)
	m.dqStatus = register(reg, m.dqStatus)
	m.outputBlocked = register(reg, m.outputBlocked)
	m.parsed = register(reg, m.parsed)
	m.earlyGroups = register(reg, m.earlyGroups)
	m.staleAborted = register(reg, m.staleAborted)
	m.commitRetries = register(reg, m.commitRetries)
	return m
}

// register registers c, or returns the collector already registered under the same name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	c, _ = promreg.Register(reg, c)
	return c
}
