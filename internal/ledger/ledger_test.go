package ledger_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/ledger"
)

// ledgerKV is the ledger bucket of a fresh embedded server.
func ledgerKV(t *testing.T) jetstream.KeyValue {
	t.Helper()
	kv, err := bustest.New(t).Ledger(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func TestLedgerCreateTransitionCAS(t *testing.T) {
	ctx := context.Background()
	kv := ledgerKV(t)
	l := ledger.New(kv, nil)
	created, _, err := l.Create(ctx, ledger.Record{ArchiveID: "abc", URI: "file:///a.tar.gz"})
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	created, ex, err := l.Create(ctx, ledger.Record{ArchiveID: "abc", URI: "file:///b.tar.gz"})
	if err != nil || created || ex.URI != "file:///a.tar.gz" {
		t.Fatalf("second create: %v %+v %v", created, ex, err)
	}
	// concurrent updates must all land
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.Update(ctx, "abc", func(r *ledger.Record) error {
				r.Duplicates = append(r.Duplicates, string(rune('a'+i)))
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if _, err := l.Transition(ctx, "abc", ledger.Committed, ""); err != nil {
		t.Fatal(err)
	}
	r, err := l.Transition(ctx, "abc", ledger.Extracted, "") // never moves back
	if err != nil {
		t.Fatal(err)
	}
	if r.State != ledger.Committed || len(r.Duplicates) != 10 {
		t.Fatalf("state %s dups %d", r.State, len(r.Duplicates))
	}
	if _, _, err := l.Get(ctx, "nope"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("want not found, got %v", err)
	}
	recs, err := l.List(ctx)
	if err != nil || len(recs) != 1 {
		t.Fatalf("list %d %v", len(recs), err)
	}
	if err := l.PutPath(ctx, ledger.PathEntry{URI: "file:///a.tar.gz", Size: 3, ArchiveID: "abc"}); err != nil {
		t.Fatal(err)
	}
	p, ok, err := l.GetPath(ctx, "file:///a.tar.gz")
	if err != nil || !ok || p.ArchiveID != "abc" {
		t.Fatalf("path %+v %v %v", p, ok, err)
	}
}

// laggingKV is a bucket read through a replica that has not yet applied the last writes: its
// first misses reads say not found.
type laggingKV struct {
	jetstream.KeyValue
	misses int
}

func (k *laggingKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	if k.misses > 0 {
		k.misses--
		return nil, jetstream.ErrKeyNotFound
	}
	return k.KeyValue.Get(ctx, key)
}

// TestCreateOfAnArchiveAnotherProducerJustCreated: Create finds the key taken, then reads the
// record through a replica that has not applied that create yet (KV reads are direct gets, any
// replica answers): it reads again instead of failing the scan with "ledger: not found" (three
// producers sharing a landing area logged it as an error on an ordinary feed).
func TestCreateOfAnArchiveAnotherProducerJustCreated(t *testing.T) {
	ctx := t.Context()
	kv := ledgerKV(t)
	rec := ledger.Record{ArchiveID: "a1", URI: "file:///landing/a1.tar.gz", Name: "a1.tar.gz"}
	if created, _, err := ledger.New(kv, nil).Create(ctx, rec); err != nil || !created {
		t.Fatalf("first create: %v, created %v", err, created)
	}
	lag := &laggingKV{KeyValue: kv, misses: 2}
	created, existing, err := ledger.New(lag, nil).Create(ctx, rec)
	if err != nil || created || existing.ArchiveID != "a1" || existing.State != ledger.Landed {
		t.Fatalf("second create: %v, created %v, existing %+v", err, created, existing)
	}
	if lag.misses != 0 {
		t.Fatalf("%d stale reads left", lag.misses)
	}
}

// TestBatchDeadLetteredFailsTheAttempt: a dead-lettered batch fails its attempt with the reason
// (once), leaves other attempts and a committed archive as they are.
func TestBatchDeadLetteredFailsTheAttempt(t *testing.T) {
	ctx := context.Background()
	kv := ledgerKV(t)
	l := ledger.New(kv, nil)
	for _, id := range []string{"a", "b", "c"} {
		if _, _, err := l.Create(ctx, ledger.Record{ArchiveID: id, Attempt: 1}); err != nil {
			t.Fatal(err)
		}
		s := ledger.Extracted
		if id == "c" {
			s = ledger.Extracting
		}
		if _, err := l.Transition(ctx, id, s, ""); err != nil {
			t.Fatal(err)
		}
	}
	// Before the extraction is recorded complete the state stays (its redelivery must finish it);
	// the reason waits for the extractor.
	if err := l.BatchDeadLettered(ctx, "c", 1, "t1", "table t1 dead-lettered: early"); err != nil {
		t.Fatal(err)
	}
	if r, _, err := l.Get(ctx, "c"); err != nil || r.State != ledger.Extracting || r.DeadLetterReason != "table t1 dead-lettered: early" ||
		!r.BatchSettled(1, "t1") {
		t.Fatalf("record dead-lettered during its extraction %+v %v", r, err)
	}
	if err := l.BatchDeadLettered(ctx, "a", 1, "t1", "table t1 dead-lettered: bad"); err != nil {
		t.Fatal(err)
	}
	if err := l.BatchDeadLettered(ctx, "a", 1, "t1", "table t1 dead-lettered: bad"); err != nil { // redelivered
		t.Fatal(err)
	}
	if err := l.BatchDeadLettered(ctx, "a", 0, "t2", "an older attempt"); err != nil {
		t.Fatal(err)
	}
	r, _, err := l.Get(ctx, "a")
	if err != nil || r.State != ledger.Failed || r.Reason != "table t1 dead-lettered: bad" || len(r.TablesDeadLettered) != 1 ||
		len(r.History) != 3 || !r.BatchSettled(1, "t1") || r.BatchSettled(1, "t2") {
		t.Fatalf("record %+v %v", r, err)
	}
	if _, err := l.Transition(ctx, "b", ledger.Committed, ""); err != nil {
		t.Fatal(err)
	}
	if err := l.BatchDeadLettered(ctx, "b", 1, "t1", "late"); err != nil {
		t.Fatal(err)
	}
	if r, _, err := l.Get(ctx, "b"); err != nil || r.State != ledger.Committed || r.Reason != "" || len(r.TablesDeadLettered) != 1 {
		t.Fatalf("committed record %+v %v", r, err)
	}
}
