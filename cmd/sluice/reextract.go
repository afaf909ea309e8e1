package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/sluice-dev/sluice/internal/objstore"
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
	// The archive must still be readable where it was seen: a new attempt of a committed archive
	// whose file has gone fails "not found" and leaves the archive failed while its objects stay in
	// the lake (a user trial). Refused instead, with where it was looked for.
	rec, _, err := e.Ledger.Get(ctx, pos[0])
	if err != nil {
		return err
	}
	var s3 objstore.Options
	s3.Endpoint, s3.PathStyle = c.s3Endpoint, c.s3PathStyle
	found := false
	for _, uri := range append([]string{rec.URI}, rec.Duplicates...) {
		rc, err := e.OpenURI(ctx, uri, s3)
		if err == nil {
			rc.Close()
			found = true
			break
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, objstore.ErrNotFound) {
			// Cannot tell from here (credentials, an endpoint this host does not reach): the
			// extractor may well read it. Not a reason to refuse.
			e.Log.Warn("cannot check that the archive is still there; requesting the re-extraction anyway", "uri", uri, "err", err)
			found = true
			break
		}
	}
	if !found {
		return &exitError{code: exitFailure, err: fmt.Errorf("archive %s (%s) is not at %s nor at any other location it was seen at: put the file back first (a re-extraction would fail and mark it failed)",
			rec.ArchiveID, rec.Name, strings.Join(append([]string{rec.URI}, rec.Duplicates...), ", "))}
	}
	if err := producer.Reextract(ctx, producer.Deps{Bus: e.Bus, Ledger: e.Ledger, Partners: e.Partners, Log: e.Log}, pos[0]); err != nil {
		return err
	}
	rec, _, err = e.Ledger.Get(ctx, pos[0])
	if err != nil {
		return err
	}
	fmt.Printf("re-extraction of %s (%s) requested as attempt %d; a running `sluice run` or extractor takes it now, or the next `sluice run --once` does\n",
		rec.ArchiveID, rec.Name, rec.Attempt)
	return nil
}
