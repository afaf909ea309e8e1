// Package producer watches a landing location (a local directory tree or an S3 bucket prefix)
// and publishes one ArchiveLanded event per new archive content. It is the first stage of sluice:
//
//	landing ──producer──▶ <prefix>.events.landed (and .duplicate) + ledger records
//
// Identity is content, not path: archive_id is the first 20 hex characters of the SHA-256 of the
// archive bytes, streamed (never held in memory). The ledger's path index remembers the version
// last seen at each location (size+mtime, or ETag+size on S3) so an unchanged file is not re-hashed.
//
// Per new archive the order is: ledger Create (state landed) → publish ArchiveLanded (Msg-Id
// <archive_id>.<attempt>.landed) → PutPath. A crash anywhere in between is repaired by the next
// scan: the path is not in the index yet, the bytes are hashed again, Create finds the record at
// the same URI in state landed, and the event is published again; JetStream's duplicate window
// drops the second copy.
//
// One Producer scans sequentially (lexical order), so when the same bytes appear twice in one
// scan the first name in order is the original and the others are duplicates.
package producer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/internal/objstore"
)

// Defaults applied by New when the Config field is zero.
const (
	DefaultDirPollInterval = 100 * time.Millisecond
	DefaultS3PollInterval  = 2 * time.Second
	DefaultStableFor       = 200 * time.Millisecond
	DefaultFullListEvery   = 10 * time.Minute
)

// Config says where archives land and how often to look.
type Config struct {
	Landing string // local directory (or file:///dir) or s3://bucket/prefix
	Once    bool   // take what is there now, then return
	// PollInterval is the pause between scans: default 100ms for a directory, 2s for S3.
	PollInterval time.Duration
	// StableFor is how long a local file must keep the same size and mtime before it is taken
	// (default 200ms). A file whose mtime is already older than this when first seen is taken
	// at once. Not used for S3: an object is complete once it is visible.
	StableFor time.Duration
	// FullListEvery is the S3 full re-listing period (default 10m); scans in between list only
	// the keys after the cursor. See scanBucket for the cost argument.
	FullListEvery time.Duration
}

func (c Config) isS3() bool { return strings.HasPrefix(c.Landing, "s3://") }

func (c Config) withDefaults() Config {
	if c.PollInterval == 0 {
		c.PollInterval = DefaultDirPollInterval
		if c.isS3() {
			c.PollInterval = DefaultS3PollInterval
		}
	}
	if c.StableFor == 0 {
		c.StableFor = DefaultStableFor
	}
	if c.FullListEvery == 0 {
		c.FullListEvery = DefaultFullListEvery
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Landing == "":
		return errors.New("producer: landing location is required")
	case strings.Contains(c.Landing, "://") && !c.isS3() && !strings.HasPrefix(c.Landing, "file://"):
		return fmt.Errorf("producer: landing %s: unsupported scheme (want a directory, file:// or s3://)", c.Landing)
	case c.PollInterval < 0, c.StableFor < 0, c.FullListEvery < 0:
		return errors.New("producer: durations must not be negative")
	}
	return nil
}

// Deps are the producer's collaborators.
type Deps struct {
	Bus      *bus.Bus
	Ledger   *ledger.Ledger
	Partners *config.File // nil: the default configuration (one partner, *.tar.gz)
	// Landing is the bucket to list for an s3:// landing (required there). A directory landing is
	// walked on the local file system directly (mtime, symlinks and nested folders matter there),
	// so Landing is not used for it.
	Landing objstore.Bucket
	Log     *slog.Logger          // nil: discarded
	Metrics prometheus.Registerer // nil: metrics are kept but not registered
	Now     func() time.Time      // nil: time.Now; decides file stability and event timestamps
}

// Duplicate is an archive whose bytes were already seen at another location.
type Duplicate struct {
	ArchiveID string
	URI       string // the duplicate's location
	FirstURI  string // where the bytes were first seen
}

// ScanResult is what one Scan found.
type ScanResult struct {
	// Landed are archive ids newly published.
	Landed []string
	// Pending are ids already in the ledger at the same location in a non-terminal state whose
	// path was not yet indexed (a crash between Create and PutPath). Those still in state landed
	// were published again (the Msg-Id de-duplicates); those further along are only reported.
	Pending []string
	// Duplicates are locations holding bytes already ingested from elsewhere.
	Duplicates []Duplicate
	// Unchanged counts archive files already indexed at their location (not re-hashed), or
	// re-hashed and found already done there.
	Unchanged int
	// Ignored are names skipped: temporary names, dot/underscore names and folders, names no
	// partner's archive_glob matches, non-regular files. Relative to the landing root.
	Ignored []string
	// Ambiguous are names (relative to the landing root) that several partners' archive_globs
	// match, with the reason naming them; they are not taken and are reported.
	Ambiguous []Ignored
	// Waiting are local files not taken yet because they are still changing (StableFor). In
	// Once mode Scan waits for them before returning, so Waiting is then empty unless ctx ended.
	Waiting []string
	// Seen are the archive ids of every archive file present (new, pending, duplicate or already
	// done), each once. For an S3 landing between full listings this covers only the keys listed.
	Seen []string
}

// Producer publishes landed archives. Scan calls are serialised.
type Producer struct {
	cfg      Config
	dir      string // absolute landing directory; "" for S3
	bucket   objstore.Bucket
	bus      *bus.Bus
	ledger   *ledger.Ledger
	partners *config.File
	log      *slog.Logger
	now      func() time.Time
	m        *metrics
	sleep    func(context.Context, time.Duration) error

	mu     sync.Mutex
	paths  map[string]ledger.PathEntry // uri -> version known to be published (mirror of the path index)
	obs    map[string]observation      // uri -> local file still settling
	warned map[string]bool             // ambiguous names already logged
	cur    *cursor                     // S3 listing cursor; nil for a directory
}

// observation is the last size and mtime seen of a local file that was not yet stable.
type observation struct {
	size  int64
	mtime time.Time
	since time.Time // first seen with this size and mtime
}

// New checks cfg and deps and returns a producer. It does not touch the landing location's
// contents; the first Scan does.
func New(cfg Config, deps Deps) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if deps.Bus == nil || deps.Ledger == nil {
		return nil, errors.New("producer: bus and ledger are required")
	}
	p := &Producer{
		cfg:      cfg,
		bus:      deps.Bus,
		ledger:   deps.Ledger,
		partners: deps.Partners,
		log:      deps.Log,
		now:      deps.Now,
		sleep:    sleepCtx,
		paths:    map[string]ledger.PathEntry{},
		obs:      map[string]observation{},
		warned:   map[string]bool{},
	}
	if p.partners == nil {
		p.partners = &config.File{}
		if err := p.partners.Validate(); err != nil {
			return nil, err
		}
	}
	if len(p.partners.Partners) == 0 {
		return nil, errors.New("producer: partner configuration not validated (no partners)")
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	if cfg.isS3() {
		if deps.Landing == nil {
			return nil, fmt.Errorf("producer: landing %s needs an opened bucket (Deps.Landing)", cfg.Landing)
		}
		p.bucket = deps.Landing
		p.cur = newCursor(deps.Bus, cfg.Landing)
	} else {
		dir, err := filepath.Abs(strings.TrimPrefix(cfg.Landing, "file://"))
		if err != nil {
			return nil, fmt.Errorf("producer: landing %s: %w", cfg.Landing, err)
		}
		fi, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("producer: landing: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("producer: landing %s is not a directory", dir)
		}
		// A landing folder given as a symlink is walked through its target (links inside the
		// landing area are still never followed).
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			dir = real
		}
		p.dir = dir
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("producer: register metrics: %w", err)
	}
	p.m = m
	return p, nil
}

// Run scans until ctx is done, pausing PollInterval between scans; a failed scan is logged and
// retried at the next poll. With Once it runs one Scan and returns its error. It returns nil
// when ctx ends.
func (p *Producer) Run(ctx context.Context) error {
	if p.cfg.Once {
		_, err := p.Scan(ctx)
		return err
	}
	p.log.Info("producer watching", "landing", p.cfg.Landing, "poll", p.cfg.PollInterval)
	var last string // the same failure is logged once, not every poll
	// NATS unavailable (a node restarting, a stream or bucket electing a leader, no quorum):
	// logged once per outage, retried with backoff instead of every poll.
	out := bus.NewOutage(p.log, "scan landing (nats unavailable)", 5*time.Second)
	for {
		_, err := p.Scan(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil && bus.Transient(err):
			if !out.Wait(ctx, err) {
				return nil
			}
			continue
		case err != nil && err.Error() != last:
			last = err.Error()
			p.log.Error("scan landing", "landing", p.cfg.Landing, "err", err)
		case err == nil && last != "":
			last = ""
			p.log.Info("scan landing recovered", "landing", p.cfg.Landing)
		}
		if err == nil {
			out.OK()
		}
		if p.sleep(ctx, p.cfg.PollInterval) != nil {
			return nil
		}
	}
}

// Scan makes one pass over the landing location and publishes what is new. Problems with single
// files (unreadable, vanished) do not stop the pass: they are logged and returned, joined, after
// the other files were handled. Ledger and bus errors stop the pass at once. The result is
// valid (partial) even when err is not nil.
func (p *Producer) Scan(ctx context.Context) (ScanResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := time.Now()
	st := &scanState{seen: map[string]bool{}}
	var err error
	listing := "dir"
	if p.dir != "" {
		err = p.scanDir(ctx, st)
	} else {
		listing, err = p.scanBucket(ctx, st)
	}
	p.m.scanDuration.WithLabelValues(listing).Observe(time.Since(start).Seconds())
	p.m.present.Set(float64(len(st.res.Seen)))
	p.m.ignored.Set(float64(len(st.res.Ignored)))
	p.m.waiting.Set(float64(len(st.res.Waiting)))
	err = errors.Join(err, errors.Join(st.itemErrs...))
	if err != nil {
		p.m.scanErrors.Inc()
	}
	if n := len(st.res.Landed) + len(st.res.Pending) + len(st.res.Duplicates); n > 0 {
		p.log.Info("scan", "landing", p.cfg.Landing, "listing", listing, "landed", len(st.res.Landed),
			"pending", len(st.res.Pending), "duplicates", len(st.res.Duplicates), "unchanged", st.res.Unchanged,
			"waiting", len(st.res.Waiting), "took", time.Since(start))
	}
	return st.res, err
}

// Ignored is a name not taken, with the reason.
type Ignored struct {
	Name, Reason string
}

// scanState accumulates one Scan.
type scanState struct {
	res      ScanResult
	seen     map[string]bool
	itemErrs []error
}

// skip records a name that is not taken.
func (p *Producer) skip(st *scanState, rel, reason string) {
	st.res.Ignored = append(st.res.Ignored, rel)
	if strings.HasPrefix(reason, SkipAmbiguous) {
		st.res.Ambiguous = append(st.res.Ambiguous, Ignored{Name: rel, Reason: reason})
		if !p.warned[rel] {
			p.warned[rel] = true
			p.log.Warn("archive not taken: its name matches several partners", "name", rel, "reason", reason)
		}
	}
}

func (s *scanState) addSeen(id string) {
	if !s.seen[id] {
		s.seen[id] = true
		s.res.Seen = append(s.res.Seen, id)
	}
}

// itemError is a problem with one file that does not stop the scan.
type itemError struct {
	uri string
	err error
}

func (e *itemError) Error() string { return fmt.Sprintf("%s: %v", e.uri, e.err) }
func (e *itemError) Unwrap() error { return e.err }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
