package bus_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
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
