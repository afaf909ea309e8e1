package main

import (
	"context"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/merger"
)

// TestRemergerSaysWhyNothingCommitted: the retry of a merger dead letter fails, with the reason,
// when the replay commits nothing (internal/dlq's own test covers a batch that commits).
func TestRemergerSaysWhyNothingCommitted(t *testing.T) {
	b := bustest.New(t)
	out, err := objstore.Open(context.Background(), t.TempDir(), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = out.Close() })
	remerge := remerger(merger.Config{SpillDir: t.TempDir()}, merger.Deps{Bus: b, Out: out}, false)
	detail, err := remerge(context.Background(), "a0000000000000000001", "t")
	if err == nil || detail != "" || !strings.Contains(err.Error(), `batch a0000000000000000001 of table "t" did not commit: no marker of it in the rows stream`) {
		t.Fatalf("remerge of a batch not in the stream: %q %v", detail, err)
	}
}
