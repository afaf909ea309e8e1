package main

import (
	"context"
	"errors"

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
		return &exitError{code: 2, err: errors.New("usage: sluice reextract [flags] ARCHIVE_ID")}
	}
	e, closeAll, err := c.setup(ctx, "reextract")
	if err != nil {
		return err
	}
	defer closeAll()
	return producer.Reextract(ctx, producer.Deps{Bus: e.Bus, Ledger: e.Ledger, Partners: e.Partners, Log: e.Log}, pos[0])
}
