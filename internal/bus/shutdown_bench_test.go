package bus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/internal/bus"
)

// BenchmarkCloseDurableConsumers times Bus.Close of an embedded server whose rows stream has n
// durable consumers, each having acked a message (as a `sluice run --once` leaves its 8 merger
// partitions, and the extractor's consumer on the events stream). nats-server stops the consumers
// one after another, and each consumer's file store waits for its flusher goroutine by polling
// every 10 ms (consumerFileStore.Stop → waitOnFlusher), a goroutine it has just told to stop and
// that has not yet run: ~10 ms per consumer. That is most of the ~95 ms a once run spends in
// Close, 7% of the 100mb preset's wall time (docs/BENCHMARKS.md, session 12). Reported per Close;
// run with -benchtime 5x.
func BenchmarkCloseDurableConsumers(b *testing.B) {
	for _, n := range []int{0, 1, 8} {
		b.Run(fmt.Sprintf("consumers=%d", n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				bs := openWithConsumers(b, n)
				b.StartTimer()
				bs.Close()
			}
		})
	}
}

// openWithConsumers starts an embedded server with the streams, publishes one message to the rows
// stream and has n durable consumers each fetch and ack it.
func openWithConsumers(b *testing.B, n int) *bus.Bus {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := bus.Config{StateDir: b.TempDir(), Subjects: bus.Subjects{Prefix: "sluice", Partitions: 8}}
	bs, err := bus.Connect(ctx, cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := bs.Ensure(ctx); err != nil {
		bs.Close()
		b.Fatal(err)
	}
	subject := bs.Subjects.Rows(0, "t")
	if _, err := bs.JS.Publish(ctx, subject, []byte("x")); err != nil {
		bs.Close()
		b.Fatal(err)
	}
	for i := range n {
		c, err := bs.JS.CreateOrUpdateConsumer(ctx, bs.Subjects.RowsStream(), jetstream.ConsumerConfig{
			Durable: fmt.Sprintf("c%d", i), AckPolicy: jetstream.AckExplicitPolicy})
		if err == nil {
			var m jetstream.Msg
			if m, err = c.Next(jetstream.FetchMaxWait(5 * time.Second)); err == nil {
				err = m.DoubleAck(ctx)
			}
		}
		if err != nil {
			bs.Close()
			b.Fatal(err)
		}
	}
	return bs
}
