package extractor

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/promreg"
)

// Archive outcomes counted by sluice_extractor_archives_total.
const (
	outcomeExtracted    = "extracted"     // published ArchiveExtracted
	outcomeFailed       = "failed"        // published ArchiveFailed
	outcomeRetried      = "retried"       // handed back (Nak) for a later delivery
	outcomeDeadLettered = "dead_lettered" // dead-lettered by Run
	outcomeSkipped      = "skipped"       // redelivery of an archive the ledger shows extracted
)

type metrics struct {
	archives *prometheus.CounterVec
	bytesIn  prometheus.Counter
	bytesOut prometheus.Counter
	rows     prometheus.Counter
	csvBytes prometheus.Counter
	chunks   prometheus.Counter
	members  *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		archives: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "extractor", Name: "archives_total",
			Help: "Archives handled, by outcome (extracted, failed, retried, dead_lettered, skipped).",
		}, []string{"outcome"}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "extractor", Name: "bytes_in_total",
			Help: "Compressed archive bytes read (counted as they are read).",
		}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "extractor", Name: "bytes_out_total",
			Help: "Uncompressed bytes decoded from archives.",
		}),
		rows: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "extractor", Name: "rows_total",
			Help: "CSV records published in chunks.",
		}),
		csvBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "extractor", Name: "csv_bytes_total",
			Help: "CSV bytes (records as decoded, before chunk compression) published in chunks.",
		}),
		chunks: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "extractor", Name: "chunks_published_total",
			Help: "Chunks stored in the rows stream (acknowledged by the server).",
		}),
		members: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "extractor", Name: "members_rejected_total",
			Help: "Archive members not used, by kind (skipped, rejected) and reason class.",
		}, []string{"kind", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "sluice", Subsystem: "extractor", Name: "duration_seconds",
			Help:    "Time to extract one archive, by outcome.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2.5, 12), // 50ms … ~3h
		}, []string{"outcome"}),
	}
	if reg != nil {
		m.archives = register(reg, m.archives)
		m.bytesIn = register(reg, m.bytesIn)
		m.bytesOut = register(reg, m.bytesOut)
		m.rows = register(reg, m.rows)
		m.csvBytes = register(reg, m.csvBytes)
		m.chunks = register(reg, m.chunks)
		m.members = register(reg, m.members)
		m.duration = register(reg, m.duration)
	}
	return m
}

// register registers c, or returns the collector already registered under the same name (two
// extractors in one process share their series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	c, _ = promreg.Register(reg, c)
	return c
}
