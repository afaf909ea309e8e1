// Package pipeline wires the four stages together: what `sluice run` does, in a form tests can
// call. It owns no behaviour of its own beyond orchestration: start the stages, (in once mode)
// scan the landing area, wait until every archive found is terminal and summarized, and turn
// the outcome into an exit code.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-dev/sluice/extractor"
	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/merger"
	"github.com/sluice-dev/sluice/producer"
	"github.com/sluice-dev/sluice/summarizer"
)

// processStart is when this process started (near enough): the cut-off of ReclaimStale.
var processStart = time.Now()

// Options are the stage settings of one process.
type Options struct {
	Landing            string // directory or s3://bucket/prefix
	Out                string // directory or s3://bucket/prefix
	Once               bool
	Poll               time.Duration
	StableFor          time.Duration // how long a local file must keep its size and mtime (0 = producer default)
	ExtractConcurrency int
	ExtractWindow      int    // chunks in flight per extractor (0 = extractor default)
	ChunkCodec         string // how the extractor sends chunk data: "s2" or "none" ("" = extractor default, s2)
	MemoryBudget       int64
	ZstdLevel          int   // Parquet zstd level (0 = merger default)
	ParseLimit         int64 // merger.Config.ParseLimit (0 = merger default, negative: parse at commit)
	SpillDir           string
	ServePartitions    []int
	Instance           string
	// ReclaimStale: the merger removes every unfinished upload and temporary file under Out at
	// start, whatever its age (default: older than an hour). Set when this process owns its state
	// dir and runs all the stages, so nothing else of this pipeline can be writing: what is there
	// was left by a run that crashed.
	ReclaimStale bool
	S3           objstore.Options // endpoint, path style; Logger/Registerer are filled from Env
	// OnWork, when set, is called once by a once run after its scan with the archives it waits
	// for and the sum of their sizes (bytes of the archives, from the ledger): a progress display's
	// denominator.
	OnWork func(ids []string, bytes int64)
}

// Env is what the stages share in one process.
type Env struct {
	Log      *slog.Logger
	Bus      *bus.Bus
	Partners *config.File
	Ledger   *ledger.Ledger
	Reg      prometheus.Registerer // may be nil

	mu      sync.Mutex
	buckets map[string]objstore.Bucket
	probed  map[string]bool // S3 locations Probe found usable
}

// NewEnv builds an Env over a connected bus (streams ensured).
func NewEnv(ctx context.Context, b *bus.Bus, partners *config.File, log *slog.Logger, reg prometheus.Registerer) (*Env, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if partners == nil {
		var err error
		if partners, err = config.Load(""); err != nil {
			return nil, err
		}
	}
	var kv jetstream.KeyValue
	// A cluster node starting beside the others may find the bucket's leader being elected.
	err := bus.Retry(ctx, log, "open ledger", func(ctx context.Context) (err error) {
		kv, err = b.Ledger(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	return &Env{Log: log, Bus: b, Partners: partners, Ledger: ledger.New(kv, nil), Reg: reg, buckets: map[string]objstore.Bucket{}, probed: map[string]bool{}}, nil
}

// Close closes the buckets the Env opened.
func (e *Env) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, b := range e.buckets {
		_ = b.Close()
		delete(e.buckets, k)
	}
}

// Bucket opens (once) the bucket at location: a directory (created if missing) or s3://bucket/prefix.
func (e *Env) Bucket(ctx context.Context, location string, o objstore.Options) (objstore.Bucket, error) {
	if location == "" {
		return nil, errors.New("location required")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if b, ok := e.buckets[location]; ok {
		return b, nil
	}
	if !strings.HasPrefix(location, "s3://") {
		dir := location
		if u, err := url.Parse(location); err == nil && u.Scheme == "file" {
			dir = u.Path
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	o.Logger, o.Registerer = e.Log, e.Reg
	b, err := objstore.Open(ctx, location, o)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", location, err)
	}
	e.buckets[location] = b
	return b, nil
}

// checkedBucket opens the bucket at location and, the first time for an S3 location, probes it
// (objstore.Probe: write, read back and delete with write, else list) so that wrong credentials
// or a missing bucket stop the stage at start with the reason. Folders are checked by opening.
func (e *Env) checkedBucket(ctx context.Context, location string, o objstore.Options, write bool) (objstore.Bucket, error) {
	b, err := e.Bucket(ctx, location, o)
	if err != nil || !strings.HasPrefix(location, "s3://") {
		return b, err
	}
	e.mu.Lock()
	done := e.probed[location]
	e.mu.Unlock()
	if done {
		return b, nil
	}
	if err := objstore.Probe(ctx, b, write); err != nil {
		return nil, &ProbeError{Location: location, Err: err}
	}
	e.mu.Lock()
	e.probed[location] = true
	e.mu.Unlock()
	return b, nil
}

// ProbeError is a location that failed its start-up probe.
type ProbeError struct {
	Location string
	Err      error
}

func (e *ProbeError) Error() string { return "check " + e.Location + ": " + e.Err.Error() }
func (e *ProbeError) Unwrap() error { return e.Err }

// OpenURI opens an archive named by an ArchiveLanded event (file:// or s3://).
func (e *Env) OpenURI(ctx context.Context, uri string, o objstore.Options) (io.ReadCloser, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", uri, err)
	}
	switch u.Scheme {
	case "s3":
		b, err := e.Bucket(ctx, "s3://"+u.Host, o)
		if err != nil {
			return nil, err
		}
		return b.Get(ctx, strings.TrimPrefix(u.Path, "/"))
	case "file":
		return os.Open(u.Path)
	case "":
		return os.Open(uri)
	}
	return nil, fmt.Errorf("open %s: unsupported scheme %q", uri, u.Scheme)
}

// NewProducer builds the producer for o.Landing.
func NewProducer(ctx context.Context, e *Env, o Options) (*producer.Producer, error) {
	if o.Landing == "" {
		return nil, errors.New("landing area required")
	}
	deps := producer.Deps{Bus: e.Bus, Ledger: e.Ledger, Partners: e.Partners, Log: e.Log.With("stage", "producer"), Metrics: e.Reg}
	if strings.HasPrefix(o.Landing, "s3://") {
		b, err := e.checkedBucket(ctx, o.Landing, o.S3, false)
		if err != nil {
			return nil, err
		}
		deps.Landing = b
	}
	return producer.New(producer.Config{Landing: o.Landing, Once: o.Once, PollInterval: o.Poll, StableFor: o.StableFor}, deps)
}

// NewExtractor builds the extractor.
func NewExtractor(_ context.Context, e *Env, o Options) (*extractor.Extractor, error) {
	cfg := extractor.Config{Concurrency: o.ExtractConcurrency, PublishWindow: o.ExtractWindow, ChunkCodec: o.ChunkCodec}
	return extractor.New(cfg, extractor.Deps{
		Bus: e.Bus, Partners: e.Partners, Ledger: e.Ledger, Log: e.Log, Metrics: e.Reg, // the extractor adds stage=extractor itself
		Open: func(ctx context.Context, uri string) (io.ReadCloser, error) { return e.OpenURI(ctx, uri, o.S3) },
	})
}

// NewMerger builds a merger writing to o.Out.
func NewMerger(ctx context.Context, e *Env, o Options) (*merger.Merger, error) {
	if o.Out == "" {
		return nil, errors.New("output location required")
	}
	out, err := e.checkedBucket(ctx, o.Out, o.S3, true)
	if err != nil {
		return nil, err
	}
	mc := merger.Config{Instance: o.Instance, Partitions: o.ServePartitions, MemoryBudget: o.MemoryBudget, ZstdLevel: o.ZstdLevel, SpillDir: o.SpillDir,
		ParseLimit: o.ParseLimit}
	if o.ReclaimStale {
		// Everything older than this process: nothing of ours was writing yet.
		mc.StaleUploadAge = max(time.Since(processStart), time.Millisecond)
	}
	return merger.New(mc,
		merger.Deps{Bus: e.Bus, Out: out, Partners: e.Partners, Ledger: e.Ledger, Log: e.Log.With("stage", "merger"), Metrics: e.Reg})
}

// NewSummarizer builds the summarizer writing to o.Out.
func NewSummarizer(ctx context.Context, e *Env, o Options) (*summarizer.Summarizer, error) {
	if o.Out == "" {
		return nil, errors.New("output location required")
	}
	out, err := e.checkedBucket(ctx, o.Out, o.S3, true)
	if err != nil {
		return nil, err
	}
	return summarizer.New(summarizer.Config{}, summarizer.Deps{Bus: e.Bus, Ledger: e.Ledger, Out: out, Partners: e.Partners,
		Log: e.Log.With("stage", "summarizer"), Metrics: e.Reg})
}

// Result is the outcome of a once run.
type Result struct {
	Scan producer.ScanResult
	// Resumed are archives taken up again: unfinished in the ledger (a run that crashed, a
	// re-extraction or retry requested since) though their files were already known.
	Resumed []string
	// Found are every archive this run answers for: the landing area's archives (new, resumed or
	// done before) and every archive the ledger held unfinished.
	Found []string
	// Taken are the archives this run waited for (new and resumed).
	Taken []string
	// done are found archives the ledger shows committed by an earlier run; the events stream
	// may have forgotten them (it keeps 30 days), so the verdict takes the ledger's word.
	done     map[string]bool
	Status   summarizer.Status
	Took     time.Duration
	Code     int      // 0 all ingested and checked, 2 finished with recorded findings, 1 failure
	Findings []string // why Code is not 0, one line each
}

// Run starts every stage. In once mode it returns when every archive found at start (in the
// landing area, or unfinished in the ledger) is terminal and summarized; otherwise it runs until
// ctx is done. started, when non-nil, is called with the summarizer once the stages run (for a
// progress display).
func Run(ctx context.Context, e *Env, o Options, started func(*summarizer.Summarizer)) (*Result, error) {
	begin := time.Now()
	if o.SpillDir == "" {
		o.SpillDir = filepath.Join(os.TempDir(), "sluice-spill")
	}
	prod, err := NewProducer(ctx, e, o)
	if err != nil {
		return nil, err
	}
	ext, err := NewExtractor(ctx, e, o)
	if err != nil {
		return nil, err
	}
	mrg, err := NewMerger(ctx, e, o)
	if err != nil {
		return nil, err
	}
	sum, err := NewSummarizer(ctx, e, o)
	if err != nil {
		return nil, err
	}
	// What the ledger holds unfinished is read before any stage starts: the extractor fails an
	// archive whose file has gone as soon as its event comes back, and a once run answers for it
	// (a crashed run's work) even when that happens before the scan is done.
	var unfinished []ledger.Record
	if o.Once {
		recs, err := e.Ledger.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("read ledger: %w", err)
		}
		for _, r := range recs {
			if r.State != ledger.Committed && r.State != ledger.Failed {
				unfinished = append(unfinished, r)
			}
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(runCtx)
	for name, st := range map[string]interface{ Run(context.Context) error }{"extractor": ext, "merger": mrg, "summarizer": sum} {
		g.Go(func() error {
			var err error
			// Labelled for CPU profiles (SLUICE_CPU_PROFILE, go tool pprof -tags): the stage's own
			// goroutines inherit it; the merger adds its partitions.
			pprof.Do(gctx, pprof.Labels("stage", name), func(ctx context.Context) { err = st.Run(ctx) })
			if err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	if started != nil {
		started(sum)
	}
	if !o.Once {
		g.Go(func() error {
			if err := prod.Run(gctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("producer: %w", err)
			}
			return nil
		})
		err := g.Wait()
		return &Result{Status: sum.Status(), Took: time.Since(begin)}, err
	}

	res := &Result{}
	stop := func(err error) (*Result, error) {
		cancel()
		if werr := g.Wait(); werr != nil {
			return nil, werr // a stage that failed (e.g. refused its configuration) is the cause
		}
		return nil, err
	}
	// The answer waits for the merger to be set up: a once run with nothing left to do used to
	// finish before the merger had checked its rules, and said 0 where the same command, a moment
	// slower, was refused (78).
	select {
	case <-mrg.Ready():
	case <-gctx.Done():
		return stop(fmt.Errorf("pipeline stopped before the merger started: %w", context.Cause(gctx)))
	}
	res.Scan, err = prod.Scan(gctx)
	if err != nil {
		return stop(fmt.Errorf("scan landing: %w", err))
	}
	wait, workBytes, err := onceWork(gctx, e.Ledger, res, unfinished)
	if err != nil {
		return stop(err)
	}
	if err := e.relandStuck(gctx, res, unfinished); err != nil {
		return stop(err)
	}
	if o.OnWork != nil {
		o.OnWork(slices.Clone(wait), workBytes)
	}
	if err := e.reextractExpired(gctx, wait); err != nil {
		return stop(err)
	}
	e.Log.Info("landing scanned", "new", len(res.Scan.Landed), "resumed", len(res.Resumed),
		"duplicates", len(res.Scan.Duplicates), "unchanged", res.Scan.Unchanged, "waiting_for", len(wait))
	type waited struct {
		st  summarizer.Status
		err error
	}
	done := make(chan waited, 1)
	go func() {
		st, err := sum.WaitFor(gctx, wait)
		done <- waited{st, err}
	}()
	var w waited
	select {
	case w = <-done:
	case <-gctx.Done():
		cancel()
		werr := g.Wait()
		if werr == nil {
			werr = ctx.Err()
		}
		return nil, fmt.Errorf("pipeline stopped before finishing: %w", werr)
	}
	cancel()
	werr := g.Wait()
	if w.err != nil {
		return nil, w.err
	}
	if werr != nil {
		return nil, werr
	}
	res.Status, res.Took = w.st, time.Since(begin)
	out, err := e.Bucket(ctx, o.Out, o.S3)
	if err != nil {
		return nil, err
	}
	res.Code, res.Findings = Verdict(ctx, w.st, res.Found, res.done, out)
	for _, a := range res.Scan.Ambiguous {
		if res.Code == 0 {
			res.Code = 2
		}
		res.Findings = append(res.Findings, fmt.Sprintf("%s not taken: %s (make the archive_globs exclusive)", a.Name, a.Reason))
	}
	return res, nil
}

// onceWork completes res with what a once run answers for and returns the archives to wait for:
// those the scan published (new, or landed again), and every archive the ledger held in a state
// that is not terminal when the run started (unfinished) or holds now — whether its file is
// unchanged since a run that crashed, a re-extraction or dead-letter retry was requested since,
// or its file is gone (it then fails with the reason, which is reported). Found is the landing
// area's archives plus those. bytes is the size of the archives to wait for, as the ledger
// records them.
func onceWork(ctx context.Context, l *ledger.Ledger, res *Result, unfinished []ledger.Record) (wait []string, bytes int64, err error) {
	recs, err := l.List(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("read ledger: %w", err)
	}
	taken := map[string]bool{}
	for _, id := range res.Scan.Landed {
		taken[id] = true
	}
	wait = slices.Clone(res.Scan.Landed)
	for _, id := range res.Scan.Pending {
		if !taken[id] {
			taken[id] = true
			wait = append(wait, id)
			res.Resumed = append(res.Resumed, id)
		}
	}
	for _, r := range slices.Concat(unfinished, recs) { // unfinished holds no terminal state
		if r.State == ledger.Committed || r.State == ledger.Failed {
			continue
		}
		if !taken[r.ArchiveID] {
			taken[r.ArchiveID] = true
			wait = append(wait, r.ArchiveID)
			res.Resumed = append(res.Resumed, r.ArchiveID)
		}
	}
	found := maps.Clone(taken)
	state, size := map[string]ledger.State{}, map[string]int64{}
	for _, r := range slices.Concat(unfinished, recs) {
		state[r.ArchiveID], size[r.ArchiveID] = r.State, r.Size
	}
	for id := range taken {
		bytes += size[id]
	}
	res.done = map[string]bool{}
	for _, id := range res.Scan.Seen {
		found[id] = true
		if !taken[id] && state[id] == ledger.Committed {
			res.done[id] = true
		}
	}
	res.Found = slices.Sorted(maps.Keys(found))
	res.Taken = wait
	return wait, bytes, nil
}

// relandStuck publishes again the ArchiveLanded of each archive the run waits for whose ledger
// record was left in state landed by a run that stopped before publishing it (a first attempt
// whose path is not indexed, or a re-extraction), when the scan did not (its file is gone, or
// moved, or unchanged since a re-extraction was requested): without the event no stage would
// ever take it up, and the run would wait for it forever. The extractor then fails it with the
// reason (not found), which the run reports.
func (e *Env) relandStuck(ctx context.Context, res *Result, unfinished []ledger.Record) error {
	scanned := map[string]bool{}
	for _, id := range slices.Concat(res.Scan.Landed, res.Scan.Pending) {
		scanned[id] = true
	}
	for _, r := range unfinished {
		if r.State != ledger.Landed || scanned[r.ArchiveID] {
			continue
		}
		rec, _, err := e.Ledger.Get(ctx, r.ArchiveID)
		if err != nil {
			return err
		}
		if rec.State != ledger.Landed || rec.Attempt != r.Attempt {
			continue // taken up meanwhile: its event was out
		}
		// The producer indexes a path only after publishing the first attempt's event: an indexed
		// path means that event went out, perhaps longer ago than the de-duplication window, and a
		// second one would be stored. A later attempt (reextract, dlq retry) is recorded before
		// its event is published and keeps the index, so it says nothing there: published again.
		if rec.Attempt == 0 {
			if pe, ok, err := e.Ledger.GetPath(ctx, rec.URI); err != nil {
				return err
			} else if ok && pe.ArchiveID == rec.ArchiveID {
				continue
			}
		}
		e.Log.Info("publishing the landed event of an archive a stopped run left unpublished", "archive", rec.ArchiveID, "uri", rec.URI)
		deps := producer.Deps{Bus: e.Bus, Ledger: e.Ledger, Partners: e.Partners, Log: e.Log}
		if err := producer.Reland(ctx, deps, rec); err != nil {
			return err
		}
	}
	return nil
}

// reextractExpired re-extracts (a new attempt) each unfinished archive whose ledger record has not
// moved for longer than the rows stream keeps messages: its chunks or marker may be gone, so
// waiting for the old attempt could last forever.
func (e *Env) reextractExpired(ctx context.Context, ids []string) error {
	maxAge := e.Bus.Cfg.RowsMaxAge
	if maxAge <= 0 {
		return nil
	}
	for _, id := range ids {
		rec, _, err := e.Ledger.Get(ctx, id)
		if err != nil {
			return err
		}
		if rec.State == ledger.Committed || rec.State == ledger.Failed || rec.State == ledger.Landed && rec.Attempt == 0 ||
			time.Since(time.UnixMilli(rec.UpdatedMs)) < maxAge {
			continue
		}
		e.Log.Warn("unfinished archive older than the rows stream's retention: extracting it again",
			"archive", id, "state", rec.State, "updated", time.UnixMilli(rec.UpdatedMs).UTC())
		if err := producer.Reextract(ctx, producer.Deps{Bus: e.Bus, Ledger: e.Ledger, Partners: e.Partners, Log: e.Log}, id); err != nil {
			return err
		}
	}
	return nil
}

// Verdict decides the exit code of a once run over the archives it answers for (found) and the
// process dates they touch, and says why it is not 0:
//   - 1 (failure) when an archive is not terminal, a post-merge check failed, or a date's
//     summary is not written (checked by reading it back from out);
//   - 2 (findings, each recorded in the summaries) when an archive failed, rows were quarantined,
//     members were rejected, no member of an archive was taken as a table, or expected sources
//     are missing after their deadline, or a date whose data quality failed (DQ FAIL: a volume
//     anomaly with action fail, or a batch committed with --force past a fail rule);
//   - 0 otherwise: every archive committed and checked, every summary written.
//
// Dates whose expected sources are still awaited (deadline ahead) are not findings.
func Verdict(ctx context.Context, st summarizer.Status, found []string, done map[string]bool, out objstore.Bucket) (int, []string) {
	code := 0
	var findings []string
	note := func(c int, format string, args ...any) {
		if c == 1 || code == 0 {
			code = c
		}
		findings = append(findings, fmt.Sprintf(format, args...))
	}
	dates := map[string]bool{}
	for _, id := range found {
		a, ok := st.Archives[id]
		switch {
		case !ok && done[id]:
			continue // committed by an earlier run, older than the events stream remembers
		case !ok:
			note(1, "archive %s: no events (not landed?)", id)
			continue
		case a.State == summarizer.StatePending:
			note(1, "archive %s (%s): not finished", a.Name, id)
		case a.Checked && !a.CheckOK:
			note(1, "archive %s (%s): check failed: %s", a.Name, id, a.Reason)
		case a.State == summarizer.StateFailed && a.RowsOut > 0:
			note(2, "archive %s (%s) failed: %s — %d rows of it were committed all the same (their objects are listed in the summary)",
				a.Name, id, a.Reason, a.RowsOut)
		case a.State == summarizer.StateFailed:
			note(2, "archive %s (%s) failed: %s", a.Name, id, a.Reason)
		case a.State == summarizer.StateCommitted && a.Tables == 0:
			why := "no members"
			if a.Skipped > 0 {
				why = fmt.Sprintf("%d members skipped (%s)", a.Skipped, strings.Join(a.SkipReasons, "; "))
			}
			note(2, "archive %s (%s): no member was taken as a table: %s — check the partner's member_pattern", a.Name, id, why)
		}
		if a.Quarantined > 0 {
			note(2, "archive %s (%s): %d rows quarantined", a.Name, id, a.Quarantined)
		}
		if a.Rejected > 0 {
			note(2, "archive %s (%s): %d members rejected", a.Name, id, a.Rejected)
		}
		for _, d := range a.Dates {
			dates[d] = true
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dates)) {
		ds := st.Dates[d]
		switch {
		case !ds.Written:
			note(1, "%s: summary not written", d)
			continue
		case !ds.CheckOK:
			// A post-merge check mismatch is a failure at the archive level (above); a date's
			// check that is not OK without one (still PENDING) is a finding.
			note(2, "%s: the summary's check is not OK (%s)", d, ds.Key)
		}
		if len(ds.Missing) > 0 {
			note(2, "%s: expected sources missing after the deadline: %s", d, strings.Join(ds.Missing, ", "))
		}
		if ds.Quality == "FAIL" {
			note(2, "%s: DQ FAIL: a data-quality rule failed (see the DATA QUALITY section of %s)", d, strings.TrimSuffix(ds.Key, ".json")+".txt")
		}
		if out != nil {
			if _, err := out.Stat(ctx, ds.Key); err != nil {
				note(1, "%s: summary %s not readable: %v", d, out.URI(ds.Key), err)
			}
		}
	}
	return code, findings
}

// Dates are the process dates touched by the archives the run answers for, in order.
func (r *Result) Dates() []string {
	set := map[string]bool{}
	for _, id := range r.Found {
		for _, d := range r.Status.Archives[id].Dates {
			set[d] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}
