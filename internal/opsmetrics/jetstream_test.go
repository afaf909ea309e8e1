package opsmetrics_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/opsmetrics"
)

// clock is a settable clock for the collector's cache.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestJetStreamCollector: lag, un-acked and redelivered messages of a merger partition's durable
// consumer, stream usage and dead letters per stage, as the server reports them; answers are
// cached for RefreshEvery.
func TestJetStreamCollector(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := bustest.New(t)
	s := b.Subjects
	rows, err := b.JS.Stream(ctx, s.RowsStream())
	if err != nil {
		t.Fatal(err)
	}
	cons, err := rows.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "merger-p1", FilterSubject: s.RowsPartition(1),
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := b.JS.Publish(ctx, s.Rows(1, "t"), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.JS.Publish(ctx, s.Rows(2, "t"), []byte("other partition")); err != nil {
		t.Fatal(err)
	}
	// Two delivered: one acked, one handed back and delivered again (redelivered, un-acked).
	batch, err := cons.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []jetstream.Msg
	for m := range batch.Messages() {
		got = append(got, m)
	}
	if len(got) != 2 {
		t.Fatalf("fetched %d messages, want 2", len(got))
	}
	if err := got[0].DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	// The Nak as a request: the server answers once it has processed it, so the next fetch
	// delivers the handed-back message, not the next one (a plain Nak raced that fetch).
	if _, err := b.NC.RequestWithContext(ctx, got[1].Reply(), []byte("-NAK")); err != nil {
		t.Fatal(err)
	}
	again, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range again.Messages() {
		if md, err := m.Metadata(); err != nil || md.NumDelivered != 2 {
			t.Fatalf("the second fetch got %+v (%v), want the handed-back message again", md, err)
		}
	}
	for _, stage := range []string{"merger", "merger", "extractor"} {
		if _, err := b.JS.Publish(ctx, s.DLQ(stage), []byte("dead")); err != nil {
			t.Fatal(err)
		}
	}

	// The consumer updates its counts on its own goroutines: the collector must read them settled.
	waitConsumer(ctx, t, cons, "3 pending, 1 un-acked, redelivered", func(i *jetstream.ConsumerInfo) bool {
		return i.NumPending == 3 && i.NumAckPending == 1 && i.NumRedelivered == 1
	})
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	col := opsmetrics.NewJetStream(b.JS, s, opsmetrics.JetStreamOptions{Now: clk.now, RefreshEvery: 5 * time.Second,
		Durables: map[string][]string{s.RowsStream(): {"merger-p0", "merger-p1"}, s.EventsStream(): {"extractor"}}})
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)

	want := `
# HELP sluice_consumer_pending_messages Messages matching the durable consumer's filter not yet delivered: its lag.
# TYPE sluice_consumer_pending_messages gauge
sluice_consumer_pending_messages{consumer="merger-p1",partition="1",stream="SLUICE_ROWS"} 3
# HELP sluice_consumer_ack_pending_messages Messages delivered to the durable consumer and not yet acknowledged.
# TYPE sluice_consumer_ack_pending_messages gauge
sluice_consumer_ack_pending_messages{consumer="merger-p1",partition="1",stream="SLUICE_ROWS"} 1
# HELP sluice_consumer_redelivered_messages Of the un-acknowledged messages, those delivered more than once.
# TYPE sluice_consumer_redelivered_messages gauge
sluice_consumer_redelivered_messages{consumer="merger-p1",partition="1",stream="SLUICE_ROWS"} 1
# HELP sluice_consumer_ack_floor_sequence Stream sequence below which every message of the consumer is acknowledged.
# TYPE sluice_consumer_ack_floor_sequence gauge
sluice_consumer_ack_floor_sequence{consumer="merger-p1",partition="1",stream="SLUICE_ROWS"} 1
# HELP sluice_dlq_messages Dead letters stored in the DLQ stream, by the stage that wrote them.
# TYPE sluice_dlq_messages gauge
sluice_dlq_messages{stage="extractor"} 1
sluice_dlq_messages{stage="merger"} 2
# HELP sluice_stream_messages Messages stored in the stream.
# TYPE sluice_stream_messages gauge
sluice_stream_messages{stream="SLUICE_DLQ"} 3
sluice_stream_messages{stream="SLUICE_EVENTS"} 0
sluice_stream_messages{stream="SLUICE_ROWS"} 6
# HELP sluice_stream_missing 1 for a stream sluice needs that the server does not have.
# TYPE sluice_stream_missing gauge
sluice_stream_missing{stream="SLUICE_DLQ"} 0
sluice_stream_missing{stream="SLUICE_EVENTS"} 0
sluice_stream_missing{stream="SLUICE_ROWS"} 0
`
	names := []string{"sluice_consumer_pending_messages", "sluice_consumer_ack_pending_messages", "sluice_consumer_redelivered_messages",
		"sluice_consumer_ack_floor_sequence", "sluice_dlq_messages", "sluice_stream_messages", "sluice_stream_missing"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "sluice_consumer_last_ack_timestamp_seconds", "sluice_consumer_last_delivery_timestamp_seconds"); err != nil || n != 2 {
		t.Fatalf("last ack/delivery series: %d, %v", n, err)
	}

	// Within RefreshEvery the cached answer is exported; after it, the server is asked again.
	if _, err := b.JS.Publish(ctx, s.Rows(1, "t"), []byte("late")); err != nil {
		t.Fatal(err)
	}
	// The stream has stored it when Publish returns, but the consumer counts it as pending on its
	// own goroutine: wait until the server says 4, so the refresh below can only see 4.
	waitConsumer(ctx, t, cons, "4 pending", func(i *jetstream.ConsumerInfo) bool { return i.NumPending == 4 })
	pending := func() float64 { return value(t, reg, "sluice_consumer_pending_messages") }
	if p := pending(); p != 3 {
		t.Fatalf("pending within the refresh interval: %v, want the cached 3", p)
	}
	clk.add(5 * time.Second)
	if p := pending(); p != 4 {
		t.Fatalf("pending after the refresh interval: %v, want 4", p)
	}
}

// waitConsumer asks the server for cons's state until ok holds (what is asked, not a sleep, is what
// the test waits for).
func waitConsumer(ctx context.Context, t *testing.T, cons jetstream.Consumer, what string, ok func(*jetstream.ConsumerInfo) bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond) // how often the server is asked
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ok(info) {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("consumer never showed %s: pending %d, ack pending %d, redelivered %d", what, info.NumPending, info.NumAckPending, info.NumRedelivered)
		case <-tick.C:
		}
	}
}

// value is the value of the single series of the gauge name gathered from reg.
func value(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			return mf.Metric[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("%s: no single series", name)
	return 0
}

// TestReadiness: /readyz answers 503 with the reason while a stream or a stage's consumer is
// missing, 200 once they are there.
func TestReadiness(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := bustest.New(t)
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	col := opsmetrics.NewJetStream(b.JS, b.Subjects, opsmetrics.JetStreamOptions{Now: clk.now,
		Durables: map[string][]string{b.Subjects.EventsStream(): {"extractor"}}})
	var checks opsmetrics.Checks
	checks.Add("nats", opsmetrics.Connected(b.NC))
	checks.Add("streams", col.StreamsPresent)
	checks.Add("extractor", col.ConsumersPresent(b.Subjects.EventsStream(), "extractor"))
	srv := httptest.NewServer(opsmetrics.ReadyHandler(&checks, 3*time.Second))
	defer srv.Close()
	get := func() (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var sb strings.Builder
		_, _ = io.Copy(&sb, resp.Body)
		return resp.StatusCode, sb.String()
	}
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body, "extractor: consumers not created yet on SLUICE_EVENTS: extractor") {
		t.Fatalf("before the consumer: %d %q", code, body)
	}
	events, err := b.JS.Stream(ctx, b.Subjects.EventsStream())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "extractor", FilterSubject: b.Subjects.Landed(),
		AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	clk.add(opsmetrics.DefaultRefreshEvery)
	if code, body := get(); code != http.StatusOK || body != "ready\n" {
		t.Fatalf("with the consumer: %d %q", code, body)
	}
	if err := b.JS.DeleteStream(ctx, b.Subjects.DLQStream()); err != nil {
		t.Fatal(err)
	}
	clk.add(opsmetrics.DefaultRefreshEvery)
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body, "streams: missing SLUICE_DLQ") {
		t.Fatalf("without the DLQ stream: %d %q", code, body)
	}
	b.NC.Close()
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body, "nats: nats closed") {
		t.Fatalf("disconnected: %d %q", code, body)
	}
}
