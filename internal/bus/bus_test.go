package bus_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/bus/bustest"
)

func TestEmbeddedDedupAndEnsureIdempotent(t *testing.T) {
	b := bustest.New(t)
	ctx := context.Background()
	if err := b.Ensure(ctx); err != nil { // second call must be a no-op
		t.Fatal(err)
	}
	subj := b.Subjects.Rows(bus.Partition("a1", "t_x", 4), "t_x")
	for range 3 {
		m := nats.NewMsg(subj)
		m.Data = []byte("x")
		m.Header.Set(nats.MsgIdHdr, bus.ChunkID("a1", 0, "t_x", 0).String())
		if _, err := b.JS.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	s, err := b.JS.Stream(ctx, b.Subjects.RowsStream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("dedup: stored %d messages, want 1", info.State.Msgs)
	}
	other := bustest.Connect(t, b)
	if other.MaxPayload() != 1<<20 {
		t.Fatalf("max payload %d", other.MaxPayload())
	}
}

func TestTableToken(t *testing.T) {
	cases := map[string]string{"seattle_weather": "seattle_weather", "a.b": "a~2Eb", "x y*": "x~20y~2A", "~": "~7E", "": "~"}
	for in, want := range cases {
		if got := bus.TableToken(in); got != want {
			t.Errorf("TableToken(%q)=%q want %q", in, got, want)
		}
	}
}

func TestPartitionStable(t *testing.T) {
	seen := map[uint32]bool{}
	for i := range 200 {
		p := bus.Partition(string(rune('a'+i%26))+"x", "tbl", 8)
		if p >= 8 {
			t.Fatal(p)
		}
		seen[p] = true
	}
	if len(seen) < 4 {
		t.Fatalf("poor spread: %v", seen)
	}
	if bus.Partition("abc", "t", 8) != bus.Partition("abc", "t", 8) {
		t.Fatal("unstable")
	}
}

// TestPartitionSpreadsCorrelatedNames: names whose bytes differ only in their high bits, or that
// repeat the same counter in archive and table, still spread evenly. (Plain FNV-1a mod 2^k put
// every ("ap<i>", "table_<i>") pair on partitions 0 and 2 of 4.)
func TestPartitionSpreadsCorrelatedNames(t *testing.T) {
	for _, parts := range []int{4, 8, 32} {
		count := make([]int, parts)
		const n = 4000
		for i := range n {
			count[bus.Partition(fmt.Sprintf("ap%018d", i), fmt.Sprintf("table_%d", i), parts)]++
		}
		for p, c := range count {
			if want := n / parts; c < want/2 || c > want*3/2 {
				t.Errorf("%d partitions: partition %d got %d of %d names, want about %d", parts, p, c, n, want)
			}
		}
	}
}

// TestConsumerInfoDropsStalePulls is the canary of dropStalePulls (run on every Close of an
// embedded server): a pull consumer keeps a waiting request while its subscriber is there and
// drops it at the first consumer info once the subscriber is gone, long before it expires. When a
// nats-server upgrade stops doing that, this fails and dropStalePulls no longer saves Shutdown its
// 50 ms sleep.
func TestConsumerInfoDropsStalePulls(t *testing.T) {
	b := bustest.New(t)
	other := bustest.Connect(t, b)
	sub, waiting := parkPull(t, b, other)
	// Kept while its subscriber is there.
	if n := waiting(); n != 1 {
		t.Fatalf("a pull request with a live subscriber was dropped: %d waiting", n)
	}
	// The subscriber leaves: once the flush returns, the server has removed the interest.
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if err := other.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	// Dropped at the next consumer info, 5 minutes before it expires.
	if n := waiting(); n != 0 {
		t.Fatalf("consumer info kept the pull request of a gone subscriber (%d waiting): dropStalePulls no longer works", n)
	}
}

// TestCloseDisconnectsRemoteClientsFirst: another process's pull request waiting on the embedded
// server when it closes does not get Shutdown's "409 Server Shutdown" (the message nats-server
// sleeps 50 ms for): Close disconnects the other processes first, so the request has no
// subscriber left and is dropped before Shutdown looks.
func TestCloseDisconnectsRemoteClientsFirst(t *testing.T) {
	b := bustest.New(t)
	other := bustest.Connect(t, b)
	gone := make(chan struct{})
	var once sync.Once
	other.NC.SetDisconnectErrHandler(func(*nats.Conn, error) { once.Do(func() { close(gone) }) })
	sub, _ := parkPull(t, b, other)
	b.Close()
	select {
	case <-gone: // the client has read everything the server sent before the connection ended
	case <-time.After(10 * time.Second):
		t.Fatal("the other process was not disconnected")
	}
	if msg, err := sub.NextMsg(0); err == nil {
		t.Fatalf("the waiting pull request got %q before the connection ended: Shutdown signalled it (and slept)", msg.Header.Get("Status")+" "+msg.Header.Get("Description"))
	}
}

// parkPull has other send a pull request (expiring in 5 minutes) to a new consumer of b's rows
// stream and waits until the consumer holds it; waiting reports the consumer's waiting requests.
func parkPull(t *testing.T, b, other *bus.Bus) (sub *nats.Subscription, waiting func() int) {
	t.Helper()
	ctx := context.Background()
	stream := b.Subjects.RowsStream()
	cons, err := b.JS.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: "canary", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	inbox := nats.NewInbox()
	sub, err = other.NC.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	req := fmt.Sprintf(`{"batch":1,"expires":%d}`, (5 * time.Minute).Nanoseconds())
	if err := other.NC.PublishRequest(fmt.Sprintf("$JS.API.CONSUMER.MSG.NEXT.%s.canary", stream), inbox, []byte(req)); err != nil {
		t.Fatal(err)
	}
	if err := other.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	waiting = func() int {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.NumWaiting
	}
	// The consumer takes the request on a goroutine of its own (the flush above only says the
	// server read it), and says so by nothing but its info: poll that, up to 10 s.
	deadline := time.Now().Add(10 * time.Second)
	for waiting() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the pull request was not registered: %d waiting", waiting())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return sub, waiting
}
