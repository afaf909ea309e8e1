package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/ledger"
	sluicev1 "github.com/sluice-dev/sluice/proto/sluicev1"
)

// TestModelForgetsPastRetention: a dashboard that runs longer than the events stream's max age
// keeps only what the stream still holds, as one started now would. Once the stream has dropped
// an archive's events, the next event makes the model forget the archive, its check time and its
// committed ledger record; a failed record stays (an operator must see it), and so does
// everything of the archive that landed since.
func TestModelForgetsPastRetention(t *testing.T) {
	const maxAge = 3 * time.Second
	b := bustest.New(t, func(c *bus.Config) { c.EventsMaxAge, c.DupWindow = maxAge, time.Second })
	m := newModel(b, nil, time.Now, slog.New(slog.DiscardHandler), time.Second)
	m.pruneEvery = 0
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("model: %v", err)
		}
	})
	kv, err := b.JS.KeyValue(ctx, b.Subjects.LedgerBucket())
	if err != nil {
		t.Fatal(err)
	}
	event := func(subject string, ev proto.Message) uint64 {
		t.Helper()
		data, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		ack, err := b.JS.Publish(ctx, subject, data)
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	record := func(id string, state ledger.State, at time.Time) {
		t.Helper()
		doc, err := json.Marshal(ledger.Record{ArchiveID: id, Name: id + ".tar.gz", State: state,
			History: []ledger.Transition{{State: state, AtMs: at.UnixMilli()}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, "archive."+id, doc); err != nil {
			t.Fatal(err)
		}
	}
	held := func() (folded, checked, records map[string]bool) {
		m.mu.Lock()
		defer m.mu.Unlock()
		folded, checked, records = map[string]bool{}, map[string]bool{}, map[string]bool{}
		for _, id := range []string{"a1", "f1", "b2"} {
			_, folded[id] = m.fold.Events(id)
			_, checked[id] = m.checkedMs[id]
			_, records[id] = m.records[id]
		}
		return
	}
	waitHeld := func(what string, folded, checked, records map[string]bool) {
		t.Helper()
		eventually(t, 30*time.Second, what, func() (bool, string) {
			f, c, r := held()
			return maps.Equal(f, folded) && maps.Equal(c, checked) && maps.Equal(r, records), fmt.Sprintf("folded %v checked %v records %v", f, c, r)
		})
	}

	// The records' transitions are dated before their archives' events: once the stream has dropped
	// the events, the records are past the max age too.
	before := time.Now()
	event(b.Subjects.Landed(), &sluicev1.ArchiveLanded{ArchiveId: "a1", Name: "a1.tar.gz", Attempt: 1})
	event(b.Subjects.Landed(), &sluicev1.ArchiveLanded{ArchiveId: "f1", Name: "f1.tar.gz", Attempt: 1})
	last := event(b.Subjects.Checked(), &sluicev1.CheckResult{ArchiveId: "a1"})
	record("a1", ledger.Committed, before)
	record("f1", ledger.Failed, before)
	yes := map[string]bool{"a1": true, "f1": true, "b2": false}
	waitHeld("a1 and f1 held", yes, map[string]bool{"a1": true, "f1": false, "b2": false}, yes)

	stream, err := b.JS.Stream(ctx, b.Subjects.EventsStream())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the stream dropping a1's events (max age)", func() (bool, string) {
		info, err := stream.Info(ctx)
		if err != nil {
			return false, err.Error()
		}
		return info.State.FirstSeq > last, fmt.Sprintf("first seq %d", info.State.FirstSeq)
	})
	event(b.Subjects.Landed(), &sluicev1.ArchiveLanded{ArchiveId: "b2", Name: "b2.tar.gz", Attempt: 1})
	record("b2", ledger.Committed, time.Now())
	waitHeld("only b2 folded; f1's failed record kept",
		map[string]bool{"a1": false, "f1": false, "b2": true}, map[string]bool{"a1": false, "f1": false, "b2": false},
		map[string]bool{"a1": false, "f1": true, "b2": true})
	if o := m.overview(); o.Ledger[ledger.Committed] != 1 || o.Ledger[ledger.Failed] != 1 || o.LedgerWindowSec != 3 {
		t.Fatalf("overview ledger %v, window %d s", o.Ledger, o.LedgerWindowSec)
	}
}

// Eventually is eventually for the package's external tests.
var Eventually = eventually

// eventually checks cond every 20ms until it holds; it fails the test after d.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.After(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("%s: not after %s; last: %s", what, d, state)
		case <-tick.C:
		}
	}
}

// TestLiveGap: /api/live spaces its change events by 250 ms, or by 4× the longest recent view
// build once the fold is so large that a build takes longer.
func TestLiveGap(t *testing.T) {
	m := &Model{}
	if g := m.liveGap(); g != liveMinGap {
		t.Fatalf("no build yet: gap %v, want %v", g, liveMinGap)
	}
	built := func(view int, took time.Duration, ago time.Duration) {
		m.viewNs[view].Store(int64(took))
		m.viewAt[view].Store(time.Now().Add(-ago).UnixNano())
	}
	built(viewTables, 20*time.Millisecond, 0)
	if g := m.liveGap(); g != liveMinGap {
		t.Fatalf("20 ms builds: gap %v, want %v", g, liveMinGap)
	}
	built(viewOverview, 300*time.Millisecond, time.Second)
	built(viewDates, 100*time.Millisecond, 0)
	if g := m.liveGap(); g != 1200*time.Millisecond {
		t.Fatalf("a 300 ms build: gap %v, want 1.2s", g)
	}
	built(viewArchives, 2*time.Second, 2*liveRecent)
	if g := m.liveGap(); g != 1200*time.Millisecond {
		t.Fatalf("a 2 s build a minute ago: gap %v, want 1.2s (it no longer counts)", g)
	}
	m.timeView(viewArchives, time.Now().Add(-time.Second))
	if g := m.liveGap(); g < 4*time.Second {
		t.Fatalf("a 1 s build recorded now: gap %v, want 4s at least", g)
	}

	// Every view a page polls records its build.
	m = newModel(bustest.New(t), nil, time.Now, slog.New(slog.DiscardHandler), time.Second)
	m.overview()
	m.tables()
	m.archives("", 10)
	m.datesView()
	for view := range m.viewNs {
		if m.viewNs[view].Load() <= 0 {
			t.Errorf("view %d: no build time recorded", view)
		}
	}
}
