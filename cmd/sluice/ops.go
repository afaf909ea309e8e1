package main

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/extractor"
	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/opsmetrics"
	"github.com/sluice-dev/sluice/internal/pipeline"
	"github.com/sluice-dev/sluice/merger"
	"github.com/sluice-dev/sluice/summarizer"
)

// ops is what every process with a connection exports besides its stages' metrics: the JetStream
// view (consumer lag, stream usage, dead letters), sluice_build_info, and the readiness checks
// behind /readyz. docs/OPERATIONS.md says what each means.
type ops struct {
	js    *opsmetrics.JetStream
	ready opsmetrics.Checks
	reg   prometheus.Gatherer // the process's registry (run's progress reads the extractor's counters)
}

// newOps registers the JetStream collector and build_info on reg and starts the checks every
// process shares: the connection is up and the streams exist.
func newOps(b *bus.Bus, reg prometheus.Registerer, g prometheus.Gatherer) (*ops, error) {
	durables := map[string][]string{b.Subjects.EventsStream(): {extractor.DefaultConsumer}}
	for n := range b.Subjects.Partitions {
		durables[b.Subjects.RowsStream()] = append(durables[b.Subjects.RowsStream()], merger.ConsumerName(n))
	}
	o := &ops{js: opsmetrics.NewJetStream(b.JS, b.Subjects, opsmetrics.JetStreamOptions{Durables: durables}), reg: g}
	for _, c := range []prometheus.Collector{o.js, opsmetrics.NewBuildInfo()} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	o.ready.Add("nats", opsmetrics.Connected(b.NC))
	o.ready.Add("streams", o.js.StreamsPresent)
	return o, nil
}

// stageReady adds the readiness of a stage that has started: "caught up" means the stage has
// finished its start-up recovery — the durable consumers it pulls from exist (created by its
// Run, after an owner of the state dir handed back what a dead process held), and the summarizer
// has replayed the events stream to its end. A backlog does not make a stage unready: it is work
// to do, watched by the lag metrics and alerts instead. The producer has nothing more to check.
func (o *ops) stageReady(name string, b *bus.Bus, po pipeline.Options) {
	switch name {
	case "extractor":
		o.ready.Add("extractor", o.js.ConsumersPresent(b.Subjects.EventsStream(), extractor.DefaultConsumer))
	case "merger":
		parts := slices.Clone(po.ServePartitions)
		if len(parts) == 0 {
			for n := range b.Subjects.Partitions {
				parts = append(parts, n)
			}
		}
		names := make([]string, len(parts))
		for i, n := range parts {
			names[i] = merger.ConsumerName(n)
		}
		o.ready.Add("merger", o.js.ConsumersPresent(b.Subjects.RowsStream(), names...))
	}
}

// summarizerReady adds the summarizer's check: it has replayed the events stream.
func (o *ops) summarizerReady(s *summarizer.Summarizer) {
	o.ready.Add("summarizer", func(context.Context) error {
		if !s.Status().CaughtUp {
			return errors.New("replaying the events stream")
		}
		return nil
	})
}
