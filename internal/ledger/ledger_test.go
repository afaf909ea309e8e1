package ledger_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/ledger"
)

func TestLedgerCreateTransitionCAS(t *testing.T) {
	b := bustest.New(t)
	ctx := context.Background()
	kv, err := b.Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
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
