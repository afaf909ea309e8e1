package opsmetrics

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/bus"
)

// Defaults of JetStreamOptions.
const (
	DefaultRefreshEvery = 5 * time.Second
	DefaultTimeout      = 3 * time.Second
)

// JetStreamOptions tune a JetStream collector. The zero value is valid.
type JetStreamOptions struct {
	// RefreshEvery is the age under which a scrape (or a readiness check) reuses the last answer
	// of the server instead of asking again (default 5s): four processes scraped every 15s then
	// cost the server a few stream and consumer infos a minute, whatever the scrape rate.
	RefreshEvery time.Duration
	// Timeout bounds one refresh (default 3s): a scrape never hangs on a slow server.
	Timeout time.Duration
	// Durables are the durable consumers to report, by stream, each asked for by name (none
	// without). Not listed: a listing waits on every consumer of the stream, other processes'
	// ephemeral ones included, so on a cluster that lost a node it outlasted Timeout for minutes
	// (the ephemeral consumers of that node's processes cannot answer) and /readyz failed on every
	// node left.
	Durables map[string][]string
	Now      func() time.Time // nil: time.Now
}

// StreamState is one stream as the server reported it.
type StreamState struct {
	Name     string
	Messages uint64
	Bytes    uint64
	MaxBytes int64 // -1 (or 0): no limit
}

// ConsumerState is one durable consumer as the server reported it.
type ConsumerState struct {
	Stream, Name string
	Partition    string // N of merger-p<N>; "" for the others
	Pending      uint64 // stored, matching the filter, not yet delivered
	AckPending   int    // delivered, not yet acknowledged
	Redelivered  int    // of those, delivered more than once
	Waiting      int    // pull requests waiting on the server
	AckFloor     uint64 // stream sequence below which every message is acknowledged
	LastAck      time.Time
	LastDelivery time.Time
}

// Snapshot is one refresh: the streams present, those missing, their durable consumers and the
// dead letters per stage.
type Snapshot struct {
	At          time.Time
	Streams     map[string]StreamState
	Missing     []string // streams sluice needs that the server does not have
	Consumers   []ConsumerState
	DeadLetters map[string]uint64 // stage (last token of <prefix>.dlq.<stage>) → messages
}

// JetStream is a prometheus.Collector over the server's view of sluice's streams and durable
// consumers, read with one stream info per stream and one consumer info per durable consumer
// (JetStreamOptions.Durables), cached for
// RefreshEvery. A refresh that fails counts in sluice_jetstream_info_errors_total and the last good
// snapshot is exported meanwhile (its age is visible in sluice_jetstream_info_timestamp_seconds).
type JetStream struct {
	js             jetstream.JetStream
	dlq, dlqAll    string
	streamsOrder   []string // rows, events, dlq
	every, timeout time.Duration
	now            func() time.Time
	errors         prometheus.Counter
	descs          jsDescs
	partitionOf    *regexp.Regexp
	durables       map[string][]string

	refreshMu sync.Mutex // one refresh at a time; held across the server requests
	mu        sync.Mutex // leaf: snap
	snap      Snapshot
}

type jsDescs struct {
	streamMsgs, streamBytes, streamMaxBytes                *prometheus.Desc
	pending, ackPending, redelivered, waiting, ackFloor    *prometheus.Desc
	lastAck, lastDelivery, deadLetters, infoAt, streamsMis *prometheus.Desc
}

var _ prometheus.Collector = (*JetStream)(nil)

// NewJetStream returns the collector for the streams of subj on js. It does not talk to the
// server until it is collected or Snapshot is called.
func NewJetStream(js jetstream.JetStream, subj bus.Subjects, o JetStreamOptions) *JetStream {
	if o.RefreshEvery <= 0 {
		o.RefreshEvery = DefaultRefreshEvery
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	cons := []string{"stream", "consumer", "partition"}
	st := []string{"stream"}
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &JetStream{
		js: js, dlq: subj.DLQStream(), dlqAll: subj.DLQAll(),
		every: o.RefreshEvery, timeout: o.Timeout, now: o.Now,
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_jetstream_info_errors_total",
			Help: "Refreshes of the stream and consumer information that failed (server unreachable, timeout)."}),
		streamsOrder: []string{subj.RowsStream(), subj.EventsStream(), subj.DLQStream()},
		partitionOf:  regexp.MustCompile(`^merger-p([0-9]+)$`),
		durables:     o.Durables,
		descs: jsDescs{
			streamMsgs:     d("sluice_stream_messages", "Messages stored in the stream.", st),
			streamBytes:    d("sluice_stream_bytes", "Bytes stored in the stream.", st),
			streamMaxBytes: d("sluice_stream_max_bytes", "The stream's byte limit (only for a stream that has one).", st),
			streamsMis:     d("sluice_stream_missing", "1 for a stream sluice needs that the server does not have.", st),
			pending:        d("sluice_consumer_pending_messages", "Messages matching the durable consumer's filter not yet delivered: its lag.", cons),
			ackPending:     d("sluice_consumer_ack_pending_messages", "Messages delivered to the durable consumer and not yet acknowledged.", cons),
			redelivered:    d("sluice_consumer_redelivered_messages", "Of the un-acknowledged messages, those delivered more than once.", cons),
			waiting:        d("sluice_consumer_waiting_pulls", "Pull requests waiting on the durable consumer (0 with messages pending: nobody is pulling).", cons),
			ackFloor:       d("sluice_consumer_ack_floor_sequence", "Stream sequence below which every message of the consumer is acknowledged.", cons),
			lastAck:        d("sluice_consumer_last_ack_timestamp_seconds", "When the consumer's ack floor last moved (Unix time; absent before the first ack).", cons),
			lastDelivery:   d("sluice_consumer_last_delivery_timestamp_seconds", "When the consumer last delivered a message (Unix time; absent before the first delivery).", cons),
			deadLetters:    d("sluice_dlq_messages", "Dead letters stored in the DLQ stream, by the stage that wrote them.", []string{"stage"}),
			infoAt:         d("sluice_jetstream_info_timestamp_seconds", "When the stream and consumer information exported was read from the server (Unix time).", nil),
		},
	}
}

// Describe implements prometheus.Collector.
func (j *JetStream) Describe(ch chan<- *prometheus.Desc) {
	d := j.descs
	for _, x := range []*prometheus.Desc{d.streamMsgs, d.streamBytes, d.streamMaxBytes, d.streamsMis, d.pending, d.ackPending,
		d.redelivered, d.waiting, d.ackFloor, d.lastAck, d.lastDelivery, d.deadLetters, d.infoAt} {
		ch <- x
	}
	j.errors.Describe(ch)
}

// Collect implements prometheus.Collector: it exports the snapshot, refreshed when it is older
// than RefreshEvery.
func (j *JetStream) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), j.timeout)
	defer cancel()
	s, _ := j.Snapshot(ctx) // a failure is counted; the last good snapshot is exported
	j.errors.Collect(ch)
	if s.At.IsZero() {
		return
	}
	d := j.descs
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	gauge(d.infoAt, float64(s.At.UnixMilli())/1e3)
	for _, name := range j.streamsOrder {
		st, ok := s.Streams[name]
		if !ok {
			gauge(d.streamsMis, 1, name)
			continue
		}
		gauge(d.streamsMis, 0, name)
		gauge(d.streamMsgs, float64(st.Messages), name)
		gauge(d.streamBytes, float64(st.Bytes), name)
		if st.MaxBytes > 0 {
			gauge(d.streamMaxBytes, float64(st.MaxBytes), name)
		}
	}
	for _, c := range s.Consumers {
		l := []string{c.Stream, c.Name, c.Partition}
		gauge(d.pending, float64(c.Pending), l...)
		gauge(d.ackPending, float64(c.AckPending), l...)
		gauge(d.redelivered, float64(c.Redelivered), l...)
		gauge(d.waiting, float64(c.Waiting), l...)
		gauge(d.ackFloor, float64(c.AckFloor), l...)
		if !c.LastAck.IsZero() {
			gauge(d.lastAck, float64(c.LastAck.UnixMilli())/1e3, l...)
		}
		if !c.LastDelivery.IsZero() {
			gauge(d.lastDelivery, float64(c.LastDelivery.UnixMilli())/1e3, l...)
		}
	}
	if _, ok := s.Streams[j.dlq]; ok {
		// Every stage that writes dead letters, at 0 until it does, so an alert on an increase
		// has a series to start from.
		for _, stage := range []string{"extractor", "merger"} {
			if _, ok := s.DeadLetters[stage]; !ok {
				gauge(d.deadLetters, 0, stage)
			}
		}
		for stage, n := range s.DeadLetters {
			gauge(d.deadLetters, float64(n), stage)
		}
	}
}

// Snapshot returns the server's view, asking it again when the last answer is older than
// RefreshEvery. On failure it returns the last good snapshot (zero before the first) and the error.
func (j *JetStream) Snapshot(ctx context.Context) (Snapshot, error) {
	j.refreshMu.Lock()
	defer j.refreshMu.Unlock()
	j.mu.Lock()
	s := j.snap
	j.mu.Unlock()
	if !s.At.IsZero() && j.now().Sub(s.At) < j.every {
		return s, nil
	}
	ctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	fresh, err := j.read(ctx)
	if err != nil {
		j.errors.Inc()
		return s, err
	}
	j.mu.Lock()
	j.snap = fresh
	j.mu.Unlock()
	return fresh, nil
}

// durableInfos are the durable consumers of stream (j.durables) that exist.
func (j *JetStream) durableInfos(ctx context.Context, st jetstream.Stream, stream string) ([]*jetstream.ConsumerInfo, error) {
	var out []*jetstream.ConsumerInfo
	for _, name := range j.durables[stream] {
		c, err := st.Consumer(ctx, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue // not created yet: ConsumersPresent says so
		}
		if err != nil {
			return nil, fmt.Errorf("consumer %s of %s: %w", name, stream, err)
		}
		out = append(out, c.CachedInfo())
	}
	return out, nil
}

func (j *JetStream) read(ctx context.Context) (Snapshot, error) {
	s := Snapshot{At: j.now(), Streams: map[string]StreamState{}, DeadLetters: map[string]uint64{}}
	for _, name := range j.streamsOrder {
		st, err := j.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			s.Missing = append(s.Missing, name)
			continue
		}
		if err != nil {
			return s, fmt.Errorf("stream %s: %w", name, err)
		}
		var opts []jetstream.StreamInfoOpt
		if name == j.dlq {
			opts = append(opts, jetstream.WithSubjectFilter(j.dlqAll))
		}
		info, err := st.Info(ctx, opts...)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			s.Missing = append(s.Missing, name)
			continue
		}
		if err != nil {
			return s, fmt.Errorf("stream %s info: %w", name, err)
		}
		s.Streams[name] = StreamState{Name: name, Messages: info.State.Msgs, Bytes: info.State.Bytes, MaxBytes: info.Config.MaxBytes}
		if name == j.dlq {
			for subj, n := range info.State.Subjects {
				s.DeadLetters[subj[strings.LastIndexByte(subj, '.')+1:]] += n
			}
			continue // nothing consumes dead letters durably
		}
		infos, err := j.durableInfos(ctx, st, name)
		if err != nil {
			return s, err
		}
		for _, ci := range infos {
			c := ConsumerState{Stream: name, Name: ci.Name, Pending: ci.NumPending, AckPending: ci.NumAckPending,
				Redelivered: ci.NumRedelivered, Waiting: ci.NumWaiting, AckFloor: ci.AckFloor.Stream}
			if m := j.partitionOf.FindStringSubmatch(ci.Name); m != nil {
				c.Partition = m[1]
			}
			if ci.AckFloor.Last != nil {
				c.LastAck = *ci.AckFloor.Last
			}
			if ci.Delivered.Last != nil {
				c.LastDelivery = *ci.Delivered.Last
			}
			s.Consumers = append(s.Consumers, c)
		}
	}
	slices.SortFunc(s.Consumers, func(a, b ConsumerState) int {
		return strings.Compare(a.Stream+"\x00"+a.Name, b.Stream+"\x00"+b.Name)
	})
	return s, nil
}
