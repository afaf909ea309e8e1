package merger

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/internal/bus/bustest"
)

// stepDown asks the leader of a consumer to step down and waits until another node leads it.
func stepDown(t *testing.T, c *bustest.Cluster, nc *nats.Conn, stream, consumer string) {
	t.Helper()
	old := c.ConsumerLeader(stream, consumer)
	if _, err := nc.Request(fmt.Sprintf("$JS.API.CONSUMER.LEADER.STEPDOWN.%s.%s", stream, consumer), nil, 5*time.Second); err != nil {
		t.Fatalf("step down the leader of %s: %v", consumer, err)
	}
	eventually(t, 30*time.Second, "a new leader of "+consumer, func() bool {
		l := c.ConsumerLeader(stream, consumer)
		return l >= 0 && l != old
	})
}

// TestReplicatedConsumerResetLosesPending pins down the nats-server behaviour that makes
// partition.resync leave replicated consumers alone: a consumer reset (to its ack floor) that
// the leader is asked for while it goes on with its old state — here an InProgress for a
// delivered message, handled before the reset has quorum — leaves the replicas believing the
// messages redelivered after the reset below that message were never delivered, so the next
// leader counts them as acked and never delivers them again. Of three un-acked messages (two
// chunks and a marker, say) only the marker is left. If this test fails after a nats-server
// upgrade, the server no longer loses them: resync may reset replicated consumers again.
func TestReplicatedConsumerResetLosesPending(t *testing.T) {
	c := bustest.NewCluster(t, 3, t.TempDir())
	nc, err := nats.Connect(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"rows.>"}, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	// The InProgress has to reach the leader before the reset is applied. It is sent right
	// after the request, so it nearly always does; a few attempts make a miss irrelevant.
	for attempt := 1; attempt <= 5; attempt++ {
		name, filter := fmt.Sprintf("c%d", attempt), fmt.Sprintf("rows.%d.>", attempt)
		cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: name, FilterSubject: filter,
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute, MaxDeliver: -1})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{"chunk 0", "chunk 1", "marker"} {
			if _, err := js.Publish(ctx, fmt.Sprintf("rows.%d.t", attempt), []byte(d)); err != nil {
				t.Fatal(err)
			}
		}
		fetch := func() []jetstream.Msg {
			t.Helper()
			mb, err := cons.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			var got []jetstream.Msg
			for m := range mb.Messages() {
				got = append(got, m)
			}
			if len(got) != 3 {
				t.Fatalf("fetched %d messages, want 3", len(got))
			}
			return got
		}
		held := fetch()
		replies, err := nc.SubscribeSync(nats.NewInbox())
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.PublishRequest(fmt.Sprintf("$JS.API.CONSUMER.RESET.T.%s", name), replies.Subject, nil); err != nil {
			t.Fatal(err)
		}
		if err := held[2].InProgress(); err != nil {
			t.Fatal(err)
		}
		if _, err := replies.NextMsg(10 * time.Second); err != nil {
			t.Fatalf("reset: %v", err)
		}
		_ = replies.Unsubscribe()
		fetch() // the reset delivers all three again; the leader holds them as pending
		stepDown(t, c, nc, "T", name)
		var info *jetstream.ConsumerInfo
		eventually(t, 30*time.Second, "the new leader's consumer info", func() bool {
			info, err = cons.Info(ctx)
			return err == nil
		})
		if info.NumAckPending == 1 {
			return // the chunks are gone: the server still loses them
		}
		if info.NumAckPending != 3 {
			t.Fatalf("attempt %d: %d messages pending after the leader change, want 1 (lost) or 3", attempt, info.NumAckPending)
		}
		t.Logf("attempt %d: nothing lost (the InProgress came after the reset was applied?)", attempt)
	}
	t.Fatalf("a reset of a replicated consumer in use no longer loses pending messages at the next leader " +
		"change: if nats-server fixed that, partition.resync may reset replicated consumers again")
}

// TestLeaderChangeOnReplicatedConsumer: on a three-node cluster (R3 everything) the leader of the
// consumer of a partition whose batch the merger holds moves twice, as when a node stops (the
// cluster-node-lost fault case). The merger hands the batch back and takes it again each time,
// commits it once its marker comes, and never resets the replicated consumer: such a reset, in
// use, can make the next leader forget un-acked messages (TestReplicatedConsumerResetLosesPending).
func TestLeaderChangeOnReplicatedConsumer(t *testing.T) {
	c, b := bustest.NewClusterBus(t)
	e := newEnvOn(t, sinks[0], b)
	tap := newLogTap(e.log.Handler())
	e.log = slog.New(tap)
	ev := e.committedEvents()

	var resets atomic.Int64
	sub, err := b.NC.Subscribe("$JS.API.CONSUMER.RESET.>", func(*nats.Msg) { resets.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := b.NC.Flush(); err != nil {
		t.Fatal(err)
	}

	const part = 1
	consumer := ConsumerName(part)
	rows := b.Subjects.RowsStream()
	r := e.start(testConfig("m1"), nil, nil)
	tb := tbatch{archive: archiveOn("c", "t", part, b.Subjects.Partitions), table: "t", per: 2, members: []tmember{
		{name: "t.csv", date: "2025-01-01", batch: "1", header: "id,v", records: csvRows(10, func(i int) string { return fmt.Sprintf("%d,%d", i, i) })},
	}}
	chunks, marker, _ := tb.msgs(b.Subjects)
	e.publish(chunks...)
	p := r.m.parts[slices.IndexFunc(r.m.parts, func(p *partition) bool { return p.n == part })]

	// Two leader changes at least, and more until one reached resync: the old leader drops its
	// waiting pulls on stepping down, and the new one answers 409 only to the pulls copied to it
	// before the election; a change that falls between two pulls reaches the merger as nothing
	// (its next pulls wait, pin and all, until a message comes: 423 then).
	const skipped = "replicated consumer not reset: messages lost in flight return after AckWait"
	for round := 1; round <= 2 || (tap.count(skipped) == 0 && round <= 6); round++ {
		// The merger holds every chunk, pinned, and waits in a pull: the leader change ends that
		// pull with 409, and resync follows (a pull sent just after the change gets 423 instead:
		// the pin is lost all the same, without a resync).
		eventually(t, 30*time.Second, "the chunks held and a pull waiting", func() bool {
			ci := e.consumerInfo(part)
			return p.held.Load() == int64(len(chunks)) && p.isPinned() && ci.NumWaiting > 0
		})
		seen := tap.count("lost partition ownership")
		stepDown(t, c, b.NC, rows, consumer)
		if !within(10*time.Second, func() bool { return tap.count("lost partition ownership") > seen }) {
			t.Logf("round %d: the leader change reached no pull of the merger", round)
		}
	}
	e.publish(marker)
	if bc := ev.nextCommitted(t, time.Minute); bc.RowsOut != 10 {
		t.Fatalf("committed %d rows, want 10", bc.RowsOut)
	}
	if n := resets.Load(); n != 0 {
		t.Errorf("the merger reset a replicated consumer %d times", n)
	}
	if n := tap.count(skipped); n == 0 {
		t.Errorf("no resync was skipped: the leader changes did not reach resync")
	}
}

// logTap records the message of every record logged through it (or a handler derived from it)
// and passes the record on to next when next takes its level.
type logTap struct {
	next slog.Handler
	rec  *tapRecords
}

type tapRecords struct {
	mu   sync.Mutex
	msgs []string
}

func newLogTap(next slog.Handler) *logTap { return &logTap{next: next, rec: &tapRecords{}} }

func (h *logTap) Enabled(context.Context, slog.Level) bool { return true }

func (h *logTap) Handle(ctx context.Context, r slog.Record) error {
	h.rec.mu.Lock()
	h.rec.msgs = append(h.rec.msgs, r.Message)
	h.rec.mu.Unlock()
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *logTap) WithAttrs(as []slog.Attr) slog.Handler {
	return &logTap{next: h.next.WithAttrs(as), rec: h.rec}
}
func (h *logTap) WithGroup(name string) slog.Handler {
	return &logTap{next: h.next.WithGroup(name), rec: h.rec}
}

// count returns how many records had the message msg.
func (h *logTap) count(msg string) int {
	h.rec.mu.Lock()
	defer h.rec.mu.Unlock()
	n := 0
	for _, m := range h.rec.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// TestStartRetriesWithoutQuorum: a merger that starts while its cluster cannot answer (two of
// three nodes down: the rows stream, the presence bucket and the consumers cannot be reached or
// created) retries instead of exiting, and serves once the nodes are back. It used to exit at
// once, and `sluice run` with it (TestRunClusterSurvivesKill, when a node died during start-up).
func TestStartRetriesWithoutQuorum(t *testing.T) {
	c, b := bustest.NewClusterBus(t)
	e := newEnvOn(t, sinks[0], b)
	c.Stop(1)
	c.Stop(2)

	var logs bustest.Logs
	cfg := testConfig("m1")
	cfg.SpillDir = t.TempDir()
	m, err := New(cfg, Deps{Bus: b, Out: e.out, Log: logs.Logger(), Alloc: e.alloc})
	if err != nil {
		t.Fatal(err)
	}
	r := bustest.Start(t, m.Run)
	r.WaitLog(t, &logs, "the start failing", "merger start failing; retrying with backoff until it recovers", time.Minute)
	c.StartNodes(1, 2)
	select {
	case <-m.ready:
	case <-r.Done():
		t.Fatalf("Run returned: %v", r.Err())
	case <-time.After(2 * time.Minute):
		t.Fatal("the merger did not start once the nodes were back")
	}
	tb := tbatch{archive: archiveOn("q", "t", 1, b.Subjects.Partitions), table: "t", per: 2, members: []tmember{
		{name: "t.csv", date: "2025-01-01", batch: "1", header: "id,v", records: csvRows(6, func(i int) string { return fmt.Sprintf("%d,%d", i, i) })},
	}}
	e.publishBatch(tb)
	eventually(t, time.Minute, "the batch committed", func() bool { return len(e.keys("t/")) == 1 })
	if rows := e.readParquet(e.keys("t/")[0]).rows; len(rows) != 6 {
		t.Fatalf("%d rows read back, want 6", len(rows))
	}
}

// TestStopWithoutQuorumIsBounded: a merger whose cluster has lost its quorum (the last nodes of a
// cluster stopping together) stops within shutdownBudget or so: what it tells the server on the
// way out (unpins, its presence) is never answered, and the last node of a stopping cluster took
// the whole of the old 30 s to stop.
func TestStopWithoutQuorumIsBounded(t *testing.T) {
	c, b := bustest.NewClusterBus(t)
	e := newEnvOn(t, sinks[0], b)
	cfg := testConfig("m1")
	cfg.SpillDir = t.TempDir()
	m, err := New(cfg, Deps{Bus: b, Out: e.out, Log: slog.New(slog.DiscardHandler), Alloc: e.alloc})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	stopped := false
	t.Cleanup(func() {
		cancel()
		if !stopped {
			<-done
		}
	})
	// A committed batch: the merger has pulled, so it holds pins to give up when it stops.
	tb := tbatch{archive: archiveOn("q", "t", 1, b.Subjects.Partitions), table: "t", per: 2, members: []tmember{
		{name: "t.csv", date: "2025-01-01", batch: "1", header: "id,v", records: csvRows(6, func(i int) string { return fmt.Sprintf("%d,%d", i, i) })},
	}}
	e.publishBatch(tb)
	eventually(t, time.Minute, "the batch committed", func() bool { return len(e.keys("t/")) == 1 })
	c.Stop(1)
	c.Stop(2)
	node0 := c.Server(0).ClientURL()
	eventually(t, time.Minute, "the client on the node left", func() bool { return b.NC.IsConnected() && b.NC.ConnectedUrl() == node0 })
	start := time.Now()
	cancel()
	select {
	case <-done:
		stopped = true
	case <-time.After(time.Minute):
		t.Fatal("the merger did not stop within a minute")
	}
	if took := time.Since(start); took > 3*shutdownBudget {
		t.Errorf("stopping without quorum took %s, want about %s at most", took.Round(time.Millisecond), shutdownBudget)
	} else {
		t.Logf("stopped without quorum in %s", took.Round(time.Millisecond))
	}
}
