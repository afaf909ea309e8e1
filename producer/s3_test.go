package producer_test

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/objstore/s3test"
	"github.com/sluice-dev/sluice/producer"
)

// listSpy records the `after` argument of every List call.
type listSpy struct {
	objstore.Bucket
	mu     sync.Mutex
	afters []string
}

func (s *listSpy) List(ctx context.Context, prefix, after string, fn func(objstore.Attrs) error) error {
	s.mu.Lock()
	s.afters = append(s.afters, after)
	s.mu.Unlock()
	return s.Bucket.List(ctx, prefix, after, fn)
}

func (s *listSpy) calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.afters)
}

func put(t *testing.T, b objstore.Bucket, key string, data []byte) {
	t.Helper()
	if err := b.Put(context.Background(), key, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}

func TestS3IncrementalListing(t *testing.T) {
	raw := s3test.OpenS3(t) // skipped when versitygw is not installed
	spy := &listSpy{Bucket: raw}
	e := newEnv(t)
	e.clock = newClock(time.Now())
	deps := e.deps(t, nil)
	deps.Landing = spy
	const landing = "s3://" + s3test.Bucket
	cfg := producer.Config{Landing: landing, FullListEvery: time.Hour}
	p, err := producer.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}

	a, b, late := archive(t, "s3-a"), archive(t, "s3-b"), archive(t, "s3-late")
	put(t, raw, "2025/01/a.tar.gz", a)
	put(t, raw, "2025/01/a.tar.gz.part", archive(t, "partial")) // ignored, and not a cursor position
	res := scan(t, p)
	if !slices.Equal(res.Landed, []string{idOf(a)}) || !slices.Equal(res.Ignored, []string{"2025/01/a.tar.gz.part"}) {
		t.Fatalf("first scan: %+v", res)
	}
	if evs := e.landed(t); len(evs) != 1 || evs[0].Uri != raw.URI("2025/01/a.tar.gz") || evs[0].Uri != landing+"/2025/01/a.tar.gz" {
		t.Fatalf("events %v", evs)
	}

	put(t, raw, "2025/01/b.tar.gz", b)
	res = scan(t, p)
	if !slices.Equal(res.Landed, []string{idOf(b)}) {
		t.Fatalf("incremental scan: %+v", res)
	}
	put(t, raw, "2024/12/late.tar.gz", late) // sorts before the cursor
	if res := scan(t, p); len(res.Landed) != 0 {
		t.Fatalf("incremental scan saw a key before the cursor: %+v", res)
	}
	want := []string{"", "2025/01/a.tar.gz", "2025/01/b.tar.gz"}
	if got := spy.calls(); !slices.Equal(got, want) {
		t.Fatalf("list calls after=%q, want %q", got, want)
	}

	// A restarted producer resumes from the stored cursor without a full listing.
	p2, err := producer.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if res := scan(t, p2); len(res.Landed) != 0 {
		t.Fatalf("restart: %+v", res)
	}
	if got := spy.calls(); got[len(got)-1] != "2025/01/b.tar.gz" {
		t.Fatalf("restart listed after=%q", got[len(got)-1])
	}

	// The periodic full listing catches the late key; known keys are not hashed again.
	e.clock.Add(time.Hour)
	res = scan(t, p)
	if !slices.Equal(res.Landed, []string{idOf(late)}) || res.Unchanged != 2 || len(res.Seen) != 3 {
		t.Fatalf("full scan: %+v", res)
	}
	if got := spy.calls(); got[len(got)-1] != "" {
		t.Fatalf("full listing had after=%q", got[len(got)-1])
	}
	if got := e.metric(t, "sluice_producer_files_hashed_total"); got != 3 {
		t.Fatalf("hashed %v objects, want 3", got)
	}

	// Same bytes under another key: a duplicate.
	put(t, raw, "2025/02/copy-of-a.tgz", a)
	res = scan(t, p)
	if len(res.Duplicates) != 1 || res.Duplicates[0].FirstURI != raw.URI("2025/01/a.tar.gz") {
		t.Fatalf("duplicate: %+v", res)
	}

	// Once mode always lists everything and reports every archive present.
	once, err := producer.New(producer.Config{Landing: landing, Once: true}, deps)
	if err != nil {
		t.Fatal(err)
	}
	res = scan(t, once)
	if len(res.Seen) != 3 || res.Unchanged != 4 || len(res.Landed) != 0 {
		t.Fatalf("once: %+v", res)
	}
	if got := spy.calls(); got[len(got)-1] != "" {
		t.Fatalf("once listed after=%q", got[len(got)-1])
	}
}
