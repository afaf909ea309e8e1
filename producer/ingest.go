package producer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// candidate is one archive-named file or object found by a listing.
type candidate struct {
	uri     string
	rel     string // relative to the landing root, for logs
	name    string // base name
	partner string
	size    int64
	mtime   time.Time
	etag    string // S3 only
	local   bool   // a local file: wait until stable, check it did not change while hashed
	open    func(ctx context.Context) (io.ReadCloser, error)
	// restat returns the file's current size and mtime (local files only).
	restat func() (int64, time.Time, error)
}

func (c candidate) pathEntry(id string) ledger.PathEntry {
	return ledger.PathEntry{URI: c.uri, Size: c.size, MtimeMs: c.mtime.UnixMilli(), ETag: c.etag, ArchiveID: id}
}

// sameVersion reports whether the path index entry e describes the version c: ETag and size
// when both sides have an ETag (S3), else size and mtime.
func sameVersion(e ledger.PathEntry, c candidate) bool {
	if e.ArchiveID == "" || e.Size != c.size {
		return false
	}
	if e.ETag != "" && c.etag != "" {
		return e.ETag == c.etag
	}
	return e.MtimeMs == c.mtime.UnixMilli()
}

// handle takes one candidate through identity, ledger and publish. waiting is true when a local
// file is still changing and was left for a later scan. Errors wrapped in *itemError concern
// this file only; others (ledger, bus) should stop the scan.
func (p *Producer) handle(ctx context.Context, c candidate, st *scanState) (waiting bool, err error) {
	// 1. Known version at this location: nothing to do, no hashing, no round trip.
	if e, ok := p.paths[c.uri]; ok && sameVersion(e, c) {
		st.res.Unchanged++
		st.addSeen(e.ArchiveID)
		return false, nil
	}
	// 2. A local file must have settled.
	if c.local && !p.stable(c) {
		return true, nil
	}
	// 3. The path index (survives restarts) may know it.
	e, ok, err := p.ledger.GetPath(ctx, c.uri)
	if err != nil {
		return false, err
	}
	if ok && sameVersion(e, c) {
		p.paths[c.uri] = e
		st.res.Unchanged++
		st.addSeen(e.ArchiveID)
		return false, nil
	}
	// 4. New or changed: hash it.
	sum, n, err := p.hash(ctx, c)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, objstore.ErrNotFound) {
		return false, nil // removed since it was listed
	}
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, &itemError{uri: c.uri, err: fmt.Errorf("hash: %w", err)}
	}
	if changed, err := p.changedWhileHashed(c, n); err != nil || changed {
		return err == nil, err
	}
	id := sum[:20]
	if err := p.identify(ctx, c, id, sum, st); err != nil {
		return false, err
	}
	delete(p.obs, c.uri)
	return false, nil
}

// changedWhileHashed checks that the bytes hashed are the version listed. A local file that
// changed is observed afresh and waits; an S3 object overwritten between listing and reading is
// an item error, so the cursor stays before it and the next scan lists it again.
func (p *Producer) changedWhileHashed(c candidate, n int64) (bool, error) {
	if !c.local {
		if n != c.size {
			return true, &itemError{uri: c.uri, err: fmt.Errorf("object changed while read: listed %d bytes, read %d", c.size, n)}
		}
		return false, nil
	}
	size, mtime, err := c.restat()
	if errors.Is(err, fs.ErrNotExist) {
		delete(p.obs, c.uri)
		return true, nil
	}
	if err != nil {
		return true, &itemError{uri: c.uri, err: fmt.Errorf("stat: %w", err)}
	}
	if n != c.size || size != c.size || !mtime.Equal(c.mtime) {
		p.obs[c.uri] = observation{size: size, mtime: mtime, since: p.now()}
		return true, nil
	}
	return false, nil
}

// stable decides whether a local file may be taken: it has kept its size and mtime for
// StableFor, or, when first seen, its mtime is already older than StableFor. A file once seen
// changing always needs a full StableFor of quiet (cp -p keeps an old mtime while it writes).
func (p *Producer) stable(c candidate) bool {
	now := p.now()
	o, ok := p.obs[c.uri]
	if ok && o.size == c.size && o.mtime.Equal(c.mtime) {
		return now.Sub(o.since) >= p.cfg.StableFor
	}
	if !ok && now.Sub(c.mtime) >= p.cfg.StableFor {
		return true
	}
	p.obs[c.uri] = observation{size: c.size, mtime: c.mtime, since: now}
	return false
}

// hash streams the candidate's bytes through SHA-256.
func (p *Producer) hash(ctx context.Context, c candidate) (string, int64, error) {
	rc, err := c.open(ctx)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	h := sha256.New()
	buf := make([]byte, 256<<10)
	n, err := io.CopyBuffer(h, ctxReader{ctx: ctx, r: rc}, buf)
	p.m.hashedBytes.Add(float64(n))
	if err != nil {
		return "", n, err
	}
	p.m.hashedFiles.Inc()
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ctxReader stops a long read when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(b []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(b)
}

// identify records content id at c: a new archive, a pending one (crash before the path was
// indexed), one already done here, or a duplicate of bytes first seen elsewhere.
func (p *Producer) identify(ctx context.Context, c candidate, id, sum string, st *scanState) error {
	rec := ledger.Record{ArchiveID: id, SHA256: sum, URI: c.uri, Name: c.name, Size: c.size, Partner: c.partner}
	created, existing, err := p.ledger.Create(ctx, rec)
	if err != nil {
		return err
	}
	log := p.log.With("archive", id, "uri", c.uri)
	switch {
	case created:
		if err := p.publishLanded(ctx, c, rec, false); err != nil {
			return err
		}
		p.m.landed.Inc()
		st.res.Landed = append(st.res.Landed, id)
		log.Info("archive landed", "partner", c.partner, "size", c.size)
	case existing.URI != c.uri:
		if err := p.duplicate(ctx, c, existing); err != nil {
			return err
		}
		p.m.duplicates.Inc()
		st.res.Duplicates = append(st.res.Duplicates, Duplicate{ArchiveID: id, URI: c.uri, FirstURI: existing.URI})
		log.Info("duplicate archive", "first_uri", existing.URI)
	case existing.State == ledger.Landed:
		// Created by an earlier scan that stopped before publishing or indexing the path.
		if err := p.publishLanded(ctx, c, existing, existing.Attempt > 0); err != nil {
			return err
		}
		p.m.republished.Inc()
		st.res.Pending = append(st.res.Pending, id)
		log.Info("archive landed again (not indexed yet)", "attempt", existing.Attempt)
	case existing.State == ledger.Extracting || existing.State == ledger.Extracted:
		st.res.Pending = append(st.res.Pending, id)
	default: // committed or failed here already (e.g. the file was touched): nothing to do
		st.res.Unchanged++
	}
	st.addSeen(id)
	e := c.pathEntry(id)
	if err := p.ledger.PutPath(ctx, e); err != nil {
		return err
	}
	p.paths[c.uri] = e
	return nil
}

// publishLanded publishes rec's ArchiveLanded as seen at c.
func (p *Producer) publishLanded(ctx context.Context, c candidate, rec ledger.Record, replay bool) error {
	ev := &sluicev1.ArchiveLanded{
		ArchiveId:    rec.ArchiveID,
		Sha256:       rec.SHA256,
		Uri:          c.uri,
		Name:         c.name,
		Size:         c.size,
		MtimeUnixMs:  c.mtime.UnixMilli(),
		LandedUnixMs: p.now().UnixMilli(),
		Partner:      c.partner,
		Attempt:      rec.Attempt,
		Replay:       replay,
	}
	return publishLanded(ctx, p.bus, ev)
}

// duplicate adds c's location to the record of the bytes first seen elsewhere and publishes
// ArchiveDuplicate. Both steps are idempotent, so a crash before PutPath just repeats them.
func (p *Producer) duplicate(ctx context.Context, c candidate, first ledger.Record) error {
	_, err := p.ledger.Update(ctx, first.ArchiveID, func(r *ledger.Record) error {
		for _, d := range r.Duplicates {
			if d == c.uri {
				return ledger.ErrSkip
			}
		}
		r.Duplicates = append(r.Duplicates, c.uri)
		return nil
	})
	if err != nil {
		return err
	}
	ev := &sluicev1.ArchiveDuplicate{ArchiveId: first.ArchiveID, Uri: c.uri, FirstUri: first.URI, SeenUnixMs: p.now().UnixMilli()}
	return p.bus.PublishEvent(ctx, p.bus.Subjects.Duplicate(), bus.DuplicateID(first.ArchiveID, c.uri), first.ArchiveID, ev)
}

func publishLanded(ctx context.Context, b *bus.Bus, ev *sluicev1.ArchiveLanded) error {
	return b.PublishEvent(ctx, b.Subjects.Landed(), bus.LandedID(ev.ArchiveId, ev.Attempt), ev.ArchiveId, ev)
}
