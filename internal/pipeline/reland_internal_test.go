package pipeline

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/producer"
)

// TestRelandStuckOnlyUnpublished: a first attempt left landed is published again only when its
// path is not indexed — the producer indexes a path after publishing its event, so an indexed
// one's event went out, perhaps longer ago than the de-duplication window, and a second one would
// be stored and extracted twice. A re-extraction left landed is published whatever the index
// (it is recorded before its event; skipping it made a run wait forever). One the scan published
// itself is left alone.
func TestRelandStuckOnlyUnpublished(t *testing.T) {
	b := bustest.New(t)
	e, err := NewEnv(t.Context(), b, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	ctx := t.Context()
	var recs []ledger.Record
	// b: never published; c: its first attempt published (path indexed); d: published by the
	// scan itself; e: a re-extraction recorded (attempt 1) but not published, its path indexed
	// since the first attempt.
	for i, id := range []string{"0000000000000000000b", "0000000000000000000c", "0000000000000000000d", "0000000000000000000e"} {
		rec := ledger.Record{ArchiveID: id, SHA256: strings.Repeat("ab", 32), Name: id + ".tar.gz", Size: 10, URI: "file:///gone/" + id + ".tar.gz"}
		if i == 3 {
			rec.Attempt = 1
		}
		if _, _, err := e.Ledger.Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if i == 1 || i == 3 {
			if err := e.Ledger.PutPath(ctx, ledger.PathEntry{URI: rec.URI, Size: rec.Size, ArchiveID: id}); err != nil {
				t.Fatal(err)
			}
		}
		rec.State = ledger.Landed
		recs = append(recs, rec)
	}
	res := &Result{Scan: producer.ScanResult{Pending: []string{recs[2].ArchiveID}}}
	if err := e.relandStuck(ctx, res, recs); err != nil {
		t.Fatal(err)
	}
	st, err := b.JS.Stream(ctx, b.Subjects.EventsStream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	published := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		published[strings.SplitN(m.Header.Get(jetstream.MsgIDHeader), ".", 2)[0]]++
	}
	for i, want := range []int{1, 0, 0, 1} {
		if got := published[recs[i].ArchiveID]; got != want {
			t.Errorf("archive %s: %d landed events, want %d (all: %v)", recs[i].ArchiveID, got, want, published)
		}
	}
}
