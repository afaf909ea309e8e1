package producer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// ReextractReason is the ledger reason recorded by Reextract.
const ReextractReason = "re-extract requested"

// Reextract runs one archive through extraction again (`sluice reextract <archive_id>`): it
// bumps the record's Attempt (compare-and-set), moves it to state landed with ReextractReason,
// and publishes an ArchiveLanded with the new attempt and replay=true. The new attempt gives the
// event and every rows message new Nats-Msg-Ids, so de-duplication does not swallow the re-run.
// It needs deps.Bus and deps.Ledger; an unknown id returns an error wrapping ledger.ErrNotFound.
// If publishing fails after the bump, calling Reextract again simply uses the next attempt.
func Reextract(ctx context.Context, deps Deps, archiveID string) error {
	if deps.Bus == nil || deps.Ledger == nil {
		return errors.New("reextract: bus and ledger are required")
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	rec, err := deps.Ledger.Update(ctx, archiveID, func(r *ledger.Record) error {
		r.NewAttempt()
		r.SetState(ledger.Landed, ReextractReason, now())
		return nil
	})
	if err != nil {
		return fmt.Errorf("reextract %s: %w", archiveID, err)
	}
	if err := publishRecord(ctx, deps, rec, now()); err != nil {
		return fmt.Errorf("reextract %s: %w", archiveID, err)
	}
	if deps.Log != nil {
		deps.Log.Info("re-extract requested", "archive", archiveID, "attempt", rec.Attempt, "uri", rec.URI)
	}
	return nil
}

// Reland publishes rec's ArchiveLanded again, as recorded (same attempt, so the same message id:
// de-duplication keeps one if the first publish did happen). For a record in state landed whose
// event a stopped process may not have published, when the file is no longer where it was
// (pipeline's once run).
func Reland(ctx context.Context, deps Deps, rec ledger.Record) error {
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	if err := publishRecord(ctx, deps, rec, now()); err != nil {
		return fmt.Errorf("publish the landed event of %s: %w", rec.ArchiveID, err)
	}
	return nil
}

// publishRecord publishes the ArchiveLanded of rec's current attempt from its ledger record.
func publishRecord(ctx context.Context, deps Deps, rec ledger.Record, now time.Time) error {
	var mtimeMs int64
	if e, ok, err := deps.Ledger.GetPath(ctx, rec.URI); err == nil && ok && e.ArchiveID == rec.ArchiveID {
		mtimeMs = e.MtimeMs
	}
	partner := rec.Partner
	if partner == "" && deps.Partners != nil && len(deps.Partners.Partners) > 0 {
		partner = deps.Partners.PartnerFor(rec.Name).Name
	}
	ev := &sluicev1.ArchiveLanded{
		ArchiveId:    rec.ArchiveID,
		Sha256:       rec.SHA256,
		Uri:          rec.URI,
		Name:         rec.Name,
		Size:         rec.Size,
		MtimeUnixMs:  mtimeMs,
		LandedUnixMs: now.UnixMilli(),
		Partner:      partner,
		Attempt:      rec.Attempt,
		Replay:       rec.Attempt > 0,
	}
	return publishLanded(ctx, deps.Bus, ev)
}
