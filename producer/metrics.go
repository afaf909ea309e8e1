package producer

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/promreg"
)

// metrics of one producer. Counters count events; the gauges describe the last scan (a file
// present for a week is seen on every poll, so counting sightings would mean nothing).
type metrics struct {
	present      prometheus.Gauge // archive ids present at the last scan
	ignored      prometheus.Gauge // names ignored at the last scan
	waiting      prometheus.Gauge // local files still changing at the last scan
	landed       prometheus.Counter
	republished  prometheus.Counter
	duplicates   prometheus.Counter
	hashedFiles  prometheus.Counter
	hashedBytes  prometheus.Counter
	scanErrors   prometheus.Counter
	listings     *prometheus.CounterVec   // listing = full | incremental (S3)
	scanDuration *prometheus.HistogramVec // listing = dir | full | incremental
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "sluice", "producer"
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	m := &metrics{
		present:     gauge("archives_seen", "Archive contents present in the landing location at the last scan."),
		ignored:     gauge("files_ignored", "Names ignored at the last scan (temporary, hidden, not matching any archive_glob)."),
		waiting:     gauge("files_waiting", "Local files not taken at the last scan because they were still changing."),
		landed:      counter("archives_landed_total", "New archives published on the landed subject."),
		republished: counter("archives_republished_total", "Archives in state landed published again after an interrupted scan."),
		duplicates:  counter("archives_duplicate_total", "Locations found holding bytes already ingested from another location."),
		hashedFiles: counter("files_hashed_total", "Files or objects hashed completely."),
		hashedBytes: counter("bytes_hashed_total", "Bytes read to compute content identities."),
		scanErrors:  counter("scan_errors_total", "Scans that ended with an error."),
		listings: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "listings_total",
			Help: "Object store listings of an S3 landing, by kind (full, incremental)."}, []string{"listing"}),
		scanDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "scan_duration_seconds",
			Help: "Duration of one scan of the landing location.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"listing"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.present = register(reg, m.present, &err)
	m.ignored = register(reg, m.ignored, &err)
	m.waiting = register(reg, m.waiting, &err)
	m.landed = register(reg, m.landed, &err)
	m.republished = register(reg, m.republished, &err)
	m.duplicates = register(reg, m.duplicates, &err)
	m.hashedFiles = register(reg, m.hashedFiles, &err)
	m.hashedBytes = register(reg, m.hashedBytes, &err)
	m.scanErrors = register(reg, m.scanErrors, &err)
	m.listings = register(reg, m.listings, &err)
	m.scanDuration = register(reg, m.scanDuration, &err)
	return m, err
}

// register registers c, or returns the identical collector already registered (a second
// producer on the same registry shares them). Other failures are joined into *errp.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	c, err := promreg.Register(reg, c)
	*errp = errors.Join(*errp, err)
	return c
}
