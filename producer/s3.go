package producer

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/objstore"
)

// scanBucket lists an S3 landing prefix and handles the archives found. It returns which
// listing it made ("full" or "incremental").
//
// Listing cost. S3 bills LIST per request (1,000 keys a page) and a LIST is also the slowest
// call, so a producer that re-lists a whole prefix every poll pays O(keys in the prefix) per poll,
// forever: a prefix that keeps a year of daily drops from 200 partners (~73k keys) costs 74
// requests every 2s, ~3.2M LIST requests (~$16) a day, to find a handful of new objects (the cost
// Databricks Auto Loader users complain about most in directory-listing mode). Partners name
// their archives so that new ones sort last (dates, sequence numbers), so this producer keeps a
// cursor, the greatest archive key it has handled, and lists only keys after it
// (ListObjectsV2 StartAfter): one request per poll while fewer than 1,000 keys arrive per poll,
// whatever the size of the prefix. The cursor lives in memory and in the ledger bucket
// (cursor.<sha1(landing)>), so a restart does not fall back to full listings either.
//
// What incremental listing misses is a key that sorts before the cursor (a late file with an
// older date, a partner whose names sort low, a copy of a temp upload to a shorter final name).
// A full listing every FullListEvery (default 10m: 144 full listings a day instead of 43,200)
// catches those, at the price of up to FullListEvery of latency for them; the example above drops
// to ~54k requests a day (43,200 one-page incremental listings + 144 full ones). Keys under the cursor
// already handled cost no GET and no hashing: the path index (ETag+size) says they are
// unchanged. Once mode always makes a full listing, since it promises everything present.
//
// The cursor only moves over archive keys handled without error: a skipped name (a ".part"
// upload that is about to be copied to its final, shorter key) or a failed object stays
// after the cursor and is listed again next poll.
func (p *Producer) scanBucket(ctx context.Context, st *scanState) (string, error) {
	cs, err := p.cur.get(ctx)
	if err != nil {
		return "incremental", err
	}
	now := p.now()
	full := p.cfg.Once || cs.FullListMs == 0 || now.Sub(time.UnixMilli(cs.FullListMs)) >= p.cfg.FullListEvery
	listing, after := "incremental", cs.After
	if full {
		listing, after = "full", ""
	}
	var objs []objstore.Attrs
	err = p.bucket.List(ctx, "", after, func(a objstore.Attrs) error {
		objs = append(objs, a)
		return nil
	})
	p.m.listings.WithLabelValues(listing).Inc()
	if err != nil {
		return listing, fmt.Errorf("list landing %s after %q: %w", p.cfg.Landing, after, err)
	}
	next := cs
	if full {
		next.FullListMs = now.UnixMilli()
	}
	present := map[string]bool{}
	advance := true // false from the first failed archive on
	for _, a := range objs {
		if strings.HasSuffix(a.Key, "/") {
			continue // a folder marker
		}
		partner, skip := p.classify(a.Key)
		if skip != "" {
			p.skip(st, a.Key, skip)
			continue
		}
		key := a.Key
		c := candidate{
			uri:     p.bucket.URI(key),
			rel:     key,
			name:    path.Base(key),
			partner: partner,
			size:    a.Size,
			mtime:   a.ModTime,
			etag:    a.ETag,
			open: func(ctx context.Context) (io.ReadCloser, error) {
				return p.bucket.Get(ctx, key)
			},
		}
		present[c.uri] = true
		_, err := p.handle(ctx, c, st)
		var ie *itemError
		switch {
		case errors.As(err, &ie):
			p.log.Debug("skip object", "uri", c.uri, "err", err) // Run logs the scan error once
			st.itemErrs = append(st.itemErrs, err)
			advance = false
		case err != nil:
			next.FullListMs = cs.FullListMs // incomplete: the full listing is still due
			_ = p.cur.save(ctx, next)       // best effort; the error being returned matters more
			return listing, err
		case advance && key > next.After:
			next.After = key
		}
	}
	if full {
		for uri := range p.paths {
			if !present[uri] {
				delete(p.paths, uri)
			}
		}
	}
	if err := p.cur.save(ctx, next); err != nil {
		return listing, err
	}
	return listing, nil
}

// cursorState is the persisted listing position of one S3 landing.
type cursorState struct {
	Landing    string `json:"landing"`
	After      string `json:"after"`        // greatest archive key handled
	FullListMs int64  `json:"full_list_ms"` // when the last complete full listing started
}

// cursor keeps a cursorState in memory and in the ledger bucket under cursor.<sha1(landing)>.
// One producer per landing is expected; two would both move it forward (last writer wins), and a
// cursor moved back only costs a longer listing.
type cursor struct {
	bus    *bus.Bus
	key    string
	kv     jetstream.KeyValue
	loaded bool
	state  cursorState
	saved  cursorState
}

func newCursor(b *bus.Bus, landing string) *cursor {
	h := sha1.Sum([]byte(landing))
	return &cursor{bus: b, key: "cursor." + hex.EncodeToString(h[:]), state: cursorState{Landing: landing}}
}

// get returns the cursor, reading it from the ledger bucket the first time.
func (c *cursor) get(ctx context.Context) (cursorState, error) {
	if c.loaded {
		return c.state, nil
	}
	if c.kv == nil {
		kv, err := c.bus.Ledger(ctx)
		if err != nil {
			return cursorState{}, fmt.Errorf("open ledger bucket: %w", err)
		}
		c.kv = kv
	}
	e, err := c.kv.Get(ctx, c.key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return cursorState{}, fmt.Errorf("get listing cursor %s: %w", c.key, err)
	default:
		var s cursorState
		if err := json.Unmarshal(e.Value(), &s); err != nil {
			return cursorState{}, fmt.Errorf("decode listing cursor %s: %w", c.key, err)
		}
		if s.Landing == c.state.Landing {
			c.state = s
		}
	}
	c.saved, c.loaded = c.state, true
	return c.state, nil
}

// save keeps s in memory and writes it to the bucket when it differs from what is stored.
func (c *cursor) save(ctx context.Context, s cursorState) error {
	c.state = s
	if s == c.saved {
		return nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if _, err := c.kv.Put(ctx, c.key, b); err != nil {
		return fmt.Errorf("put listing cursor %s: %w", c.key, err)
	}
	c.saved = s
	return nil
}
