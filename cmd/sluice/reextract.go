package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluice-dev/sluice/producer"
)

// cmdReextract re-runs extraction of one archive alone: the ledger's attempt is bumped and a new
// ArchiveLanded is published; a running extractor picks it up.
func cmdReextract(ctx context.Context, args []string) error {
	c := newCommon("reextract")
	pos, err := parseInterspersed(c, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return &exitError{code: exitUsage, err: errors.New("usage: sluice reextract [flags] ARCHIVE_ID")}
	}
	e, closeAll, err := c.setup(ctx, "reextract")
	if err != nil {
		return err
	}
	defer closeAll()
	if err := producer.Reextract(ctx, producer.Deps{Bus: e.Bus, Ledger: e.Ledger, Partners: e.Partners, Log: e.Log}, pos[0]); err != nil {
		return err
	}
	rec, _, err := e.Ledger.Get(ctx, pos[0])
	if err != nil {
		return err
	}
	fmt.Printf("re-extraction of %s (%s) requested as attempt %d; a running `sluice run` or extractor takes it now, or the next `sluice run --once` does\n",
		rec.ArchiveID, rec.Name, rec.Attempt)
	return nil
}
