package merger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// ReplaySpec selects what Replay re-merges: the batches of one table, optionally of one archive
// or holding rows of one process date, in a range of the rows stream.
type ReplaySpec struct {
	Table       string    // required
	Archive     string    // only this archive id
	ProcessDate string    // only batches holding rows of this date (YYYY-MM-DD)
	FromSeq     uint64    // start at this rows-stream sequence (0: the stream's first)
	Since       time.Time // start at the first message stored at or after this time (exclusive with FromSeq)
	// ID names the replay in its BatchCommitted message ids and logs; default generated. Two
	// replays with the same ID inside the duplicate window publish their events once.
	ID string
	// Force commits batches although a data-quality `fail` rule fails; BatchCommitted records it
	// (quality_forced) and the summaries count the date's quality as failed.
	Force bool
}

// Validate reports a spec that cannot be run.
func (s ReplaySpec) Validate() error {
	var errs []error
	if s.Table == "" {
		errs = append(errs, errors.New("a table is required"))
	}
	if s.ProcessDate != "" {
		if _, err := time.Parse(time.DateOnly, s.ProcessDate); err != nil {
			errs = append(errs, fmt.Errorf("process date %q is not YYYY-MM-DD", s.ProcessDate))
		}
	}
	if s.FromSeq > 0 && !s.Since.IsZero() {
		errs = append(errs, errors.New("from-seq and since are exclusive"))
	}
	if strings.ContainsAny(s.ID, " \t\r\n*>") {
		errs = append(errs, fmt.Errorf("replay id %q is not a subject-safe token", s.ID))
	}
	return errors.Join(errs...)
}

// ReplayedBatch is a batch Replay committed.
type ReplayedBatch struct {
	Archive       string   `json:"archive_id"`
	Attempt       uint32   `json:"attempt"`
	MarkerSeq     uint64   `json:"marker_seq"`
	ProcessDates  []string `json:"process_dates"`
	Objects       []string `json:"objects"`
	RowsIn        int64    `json:"rows_in"`
	RowsOut       int64    `json:"rows_out"`
	Quarantined   int64    `json:"quarantined"`
	SchemaVersion uint32   `json:"schema_version"`
	SchemaChanges []string `json:"schema_changes,omitempty"`
}

// SkippedBatch is a batch Replay did not commit, with the reason.
type SkippedBatch struct {
	Archive string `json:"archive_id"`
	Attempt uint32 `json:"attempt"`
	Seq     uint64 `json:"seq"` // of its marker or abort
	Reason  string `json:"reason"`
}

// ReplayResult is what a Replay did.
type ReplayResult struct {
	ID       string `json:"id"`
	Table    string `json:"table"`
	FirstSeq uint64 `json:"first_seq"` // first rows-stream sequence read (0: nothing in range)
	LastSeq  uint64 `json:"last_seq"`  // the stream's last sequence when the replay started: the end of the range
	// Committed batches, in stream order of their markers.
	Committed []ReplayedBatch `json:"committed"`
	// Aborted: the latest attempt of the archive was aborted by the extractor; nothing written.
	Aborted []SkippedBatch `json:"aborted,omitempty"`
	// Incomplete: counts do not match what the range holds (it starts after the batch began, or
	// chunks are missing); nothing written.
	Incomplete []SkippedBatch `json:"incomplete,omitempty"`
	// Superseded: older attempts of an archive replayed at a newer attempt.
	Superseded []SkippedBatch `json:"superseded,omitempty"`
	// Failed: the commit failed; Replay also returns an error.
	Failed []SkippedBatch `json:"failed,omitempty"`
	// RefetchedBytes: chunk bytes (as stored) released over the memory budget and fetched back
	// from the rows stream by the commits.
	RefetchedBytes int64 `json:"refetched_bytes,omitempty"`
}

// Skipped reports whether any selected batch was not committed (aborted, incomplete or failed).
func (r ReplayResult) Skipped() bool {
	return len(r.Aborted)+len(r.Incomplete)+len(r.Failed) > 0
}

const (
	replayCommitAttempts = 5
	replayPullBytes      = 8 << 20
)

// Replay re-merges batches of one table from the rows stream and rewrites their deterministic
// objects through the normal commit path (schema registry, Parquet and quarantine objects,
// BatchCommitted with replay=true). It reads with ephemeral ordered consumers (no acks) and
// never touches the durable merger consumers, so it is safe while mergers run: a batch committed
// by both writes the same keys, each commit atomic.
//
// The range is [spec.FromSeq or spec.Since or the stream's first message, the stream's last
// sequence when Replay starts]. A first headers-only pass finds the markers and aborts; for each
// archive the latest attempt in the range wins (older ones are Superseded, an aborted latest
// attempt is reported Aborted and skipped), then the archive and process-date filters select
// batches by their markers. A second pass buffers only the selected batches' chunks (deduplicated
// by chunk_index, released over the memory budget like the merger) and commits each one once its
// counts match its marker; a chunk stored after its marker (e.g. published late, after a dead
// letter) still completes it. The unit is the batch: a batch holding rows of the selected date
// and of other dates is rewritten whole, so that its BatchCommitted stays complete.
//
// Parsing uses deps.Partners as it is now (hints, overrides) and the table's current registry
// schema, so a replay after a config change evolves the schema as a new batch would. When
// deps.Ledger is set, each committed archive's ledger record gets Replays+1. deps.Metrics is not
// used (the replay is not a merger). cfg.Partitions, AckWait, PinnedTTL, MaxAckPending and
// MaxDeliver do not apply; cfg.SpillDir, when set, holds a scratch directory of the replay's own.
func Replay(ctx context.Context, cfg Config, deps Deps, spec ReplaySpec) (ReplayResult, error) {
	res := ReplayResult{Table: spec.Table}
	if err := spec.Validate(); err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	if spec.ID == "" {
		spec.ID = newReplayID(time.Now())
	}
	res.ID = spec.ID
	if cfg.Instance == "" {
		cfg.Instance = "replay-" + defaultInstance()
	}
	if cfg.SpillDir != "" {
		if err := os.MkdirAll(cfg.SpillDir, 0o700); err != nil {
			return res, fmt.Errorf("replay: create spill dir: %w", err)
		}
	}
	scratch, err := os.MkdirTemp(cfg.SpillDir, "replay-*") // cfg.SpillDir "" = os.TempDir()
	if err != nil {
		return res, fmt.Errorf("replay: create scratch dir: %w", err)
	}
	defer os.RemoveAll(scratch)
	cfg.SpillDir = scratch
	cfg, deps, tables, err := prepare(cfg, deps)
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	deps.Log = deps.Log.With("replay", spec.ID, "table", spec.Table)
	mem := newRelief(cfg.MemoryBudget, deps.Log, newMetrics(nil)) // a replay is not a merger: no metrics
	c := newCommitter(cfg, deps, mem)
	c.replayID = spec.ID
	c.force = spec.Force
	r := &replay{c: c, mem: mem, tables: tables, bus: deps.Bus, log: deps.Log, now: deps.Now, spec: spec, res: &res, ledger: deps.Ledger}
	err = r.run(ctx) // fills res through r.res: read it only after the run
	return res, err
}

func newReplayID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%s", now.UTC().Format("20060102T150405Z"), hex.EncodeToString(b[:]))
}

// consumerToken keeps the characters a consumer name may hold.
func consumerToken(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			return r
		}
		return '_'
	}, s)
}

// replay is the state of one Replay call.
type replay struct {
	c      *committer // the merger's commit path
	mem    *relief
	tables *tableSettings
	bus    *bus.Bus
	stream jetstream.Stream // the rows stream
	src    chunkSource      // the rows stream, counting what is fetched back into res.RefetchedBytes
	log    *slog.Logger
	now    func() time.Time
	spec   ReplaySpec
	res    *ReplayResult
	ledger *ledger.Ledger
	filter string

	// From the scan.
	first      uint64                    // first sequence in range (resolves Since)
	anonymous  bool                      // some message lacks the Sluice-Archive header
	archiveSeq map[string]uint64         // first sequence of each archive (by header)
	selected   map[batchKey]*selection   // batches to commit
	markerSeqs []uint64                  // sequences of markers and aborts, in order
	kinds      map[uint64]string         // their Sluice-Type
	ends       map[batchKey]*scannedMark // first marker or abort of each batch
}

type scannedMark struct {
	seq    uint64
	abort  *sluicev1.BatchAborted
	marker *sluicev1.BatchComplete
}

type selection struct {
	seq    uint64
	marker *sluicev1.BatchComplete
}

func (r *replay) run(ctx context.Context) error {
	b := r.bus
	var err error
	if r.stream, err = b.JS.Stream(ctx, b.Subjects.RowsStream()); err != nil {
		return fmt.Errorf("replay: open stream %s: %w", b.Subjects.RowsStream(), err)
	}
	var fetched atomic.Int64
	r.src = chunkSource{rows: r.stream, fetched: func(n int64) { fetched.Add(n) }}
	defer func() { r.res.RefetchedBytes = fetched.Load() }()
	if err := r.c.open(ctx); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	info, err := r.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("replay: stream info: %w", err)
	}
	r.res.LastSeq = info.State.LastSeq
	r.filter = b.Subjects.RowsTable(r.spec.Table)
	if info.State.Msgs == 0 || r.spec.FromSeq > info.State.LastSeq {
		r.log.Info("replay: nothing in range", "last_seq", info.State.LastSeq)
		return nil
	}
	r.log.Info("replay started", "filter", r.filter, "archive", r.spec.Archive, "process_date", r.spec.ProcessDate,
		"from_seq", r.spec.FromSeq, "since", r.spec.Since, "last_seq", r.res.LastSeq)
	if err := r.scan(ctx); err != nil {
		return err
	}
	r.res.FirstSeq = r.first
	r.choose()
	if len(r.selected) == 0 {
		r.log.Info("replay: no batch selected", "aborted", len(r.res.Aborted), "superseded", len(r.res.Superseded))
		return nil
	}
	err = r.merge(ctx)
	r.log.Info("replay finished", "committed", len(r.res.Committed), "aborted", len(r.res.Aborted),
		"incomplete", len(r.res.Incomplete), "superseded", len(r.res.Superseded), "failed", len(r.res.Failed))
	return err
}

// consumer is the ordered consumer of a pass on the table's subjects, starting at seq (0: the
// spec's start). Its name says what it is: sluice-replay-<id>-<pass>_<serial>.
func (r *replay) consumer(seq uint64, pass string, headersOnly bool) jetstream.OrderedConsumerConfig {
	cc := jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{r.filter},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		HeadersOnly:       headersOnly,
		InactiveThreshold: 10 * time.Minute,
		NamePrefix:        "sluice-replay-" + consumerToken(r.spec.ID) + "-" + pass,
	}
	switch {
	case seq > 0:
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq
	case r.spec.FromSeq > 0:
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.spec.FromSeq
	case !r.spec.Since.IsZero():
		t := r.spec.Since
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	return cc
}

// scan is the first pass: headers only, noting the markers and aborts (decoded by direct gets)
// and the first sequence of each archive.
func (r *replay) scan(ctx context.Context) error {
	r.archiveSeq = map[string]uint64{}
	r.kinds = map[uint64]string{}
	b := r.bus
	err := b.ReadOrdered(ctx, b.Subjects.RowsStream(), r.consumer(0, "scan", true), r.res.LastSeq,
		[]jetstream.PullMessagesOpt{jetstream.PullMaxMessages(2000)},
		func(msg jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
			seq := md.Sequence.Stream
			if r.first == 0 {
				r.first = seq
			}
			h := msg.Headers()
			if a := h.Get(bus.HdrArchive); a != "" {
				if _, ok := r.archiveSeq[a]; !ok {
					r.archiveSeq[a] = seq
				}
			} else {
				r.anonymous = true
			}
			if t := h.Get(bus.HdrType); t == bus.TypeComplete || t == bus.TypeAbort {
				r.markerSeqs = append(r.markerSeqs, seq)
				r.kinds[seq] = t
			}
			return true, nil
		})
	if err != nil {
		return fmt.Errorf("replay: scan: %w", err)
	}
	r.ends = map[batchKey]*scannedMark{}
	for _, seq := range r.markerSeqs {
		raw, err := r.stream.GetMsg(ctx, seq)
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgNotFound) { // expired or deleted meanwhile
				continue
			}
			return fmt.Errorf("replay: get message %d: %w", seq, err)
		}
		sm := &scannedMark{seq: seq}
		var key batchKey
		if r.kinds[seq] == bus.TypeAbort {
			sm.abort = &sluicev1.BatchAborted{}
			if err := proto.Unmarshal(raw.Data, sm.abort); err != nil {
				r.log.Warn("replay: undecodable abort", "seq", seq, "err", err)
				continue
			}
			key = batchKey{archive: sm.abort.ArchiveId, attempt: sm.abort.Attempt, table: sm.abort.Table}
		} else {
			sm.marker = &sluicev1.BatchComplete{}
			if err := proto.Unmarshal(raw.Data, sm.marker); err != nil {
				r.log.Warn("replay: undecodable marker", "seq", seq, "err", err)
				continue
			}
			key = batchKey{archive: sm.marker.ArchiveId, attempt: sm.marker.Attempt, table: sm.marker.Table}
		}
		if key.table != r.spec.Table {
			continue
		}
		if _, seen := r.ends[key]; !seen { // as in the merger: the first of marker and abort decides
			r.ends[key] = sm
		}
	}
	return nil
}

// choose applies "the latest attempt of an archive wins" and the archive and date filters.
func (r *replay) choose() {
	latest := map[string]uint32{}
	for k := range r.ends {
		if a, ok := latest[k.archive]; !ok || k.attempt > a {
			latest[k.archive] = k.attempt
		}
	}
	keys := make([]batchKey, 0, len(r.ends))
	for k := range r.ends {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return r.ends[keys[i]].seq < r.ends[keys[j]].seq })
	r.selected = map[batchKey]*selection{}
	for _, k := range keys {
		sm := r.ends[k]
		if r.spec.Archive != "" && k.archive != r.spec.Archive {
			continue
		}
		if k.attempt < latest[k.archive] {
			r.res.Superseded = append(r.res.Superseded, SkippedBatch{Archive: k.archive, Attempt: k.attempt, Seq: sm.seq,
				Reason: fmt.Sprintf("superseded by attempt %d", latest[k.archive])})
			continue
		}
		if sm.abort != nil {
			r.res.Aborted = append(r.res.Aborted, SkippedBatch{Archive: k.archive, Attempt: k.attempt, Seq: sm.seq,
				Reason: "aborted by the extractor: " + sm.abort.Reason})
			continue
		}
		if r.spec.ProcessDate != "" && !slices.Contains(markerDates(sm.marker), r.spec.ProcessDate) {
			continue
		}
		r.selected[k] = &selection{seq: sm.seq, marker: sm.marker}
	}
}

func markerDates(mk *sluicev1.BatchComplete) []string {
	var ds []string
	for _, mi := range mk.Members {
		if !slices.Contains(ds, mi.ProcessDate) {
			ds = append(ds, mi.ProcessDate)
		}
	}
	slices.Sort(ds)
	return ds
}

// merge is the second pass: buffer the selected batches' chunks and commit each complete batch.
func (r *replay) merge(ctx context.Context) error {
	// Start at the first message of the first selected archive when every message carries its
	// archive header (the extractor's do), else at the start of the range.
	start, lastMarker := uint64(math.MaxUint64), uint64(0)
	for k, s := range r.selected {
		lastMarker = max(lastMarker, s.seq)
		a, ok := r.archiveSeq[k.archive]
		if !ok || r.anonymous {
			a = r.first
		}
		start = min(start, a)
	}
	start = max(start, r.first)

	open := map[batchKey]*batch{}
	waiting := map[batchKey]*selection{} // marker seen, counts not matching yet
	done := map[batchKey]bool{}
	defer func() {
		for _, b := range open {
			r.closeBatch(b)
		}
	}()
	var errs []error
	finish := func(ctx context.Context, key batchKey, b *batch, s *selection) {
		delete(waiting, key)
		delete(open, key)
		done[key] = true
		if err := r.commit(ctx, b, s); err != nil {
			errs = append(errs, err)
		}
		r.closeBatch(b)
	}

	var decodeBuf []byte // scratch of addChunk
	bs := r.bus
	err := bs.ReadOrdered(ctx, bs.Subjects.RowsStream(), r.consumer(start, "merge", false), r.res.LastSeq,
		[]jetstream.PullMessagesOpt{jetstream.PullMaxBytes(replayPullBytes)},
		func(msg jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
			seq := md.Sequence.Stream
			switch msg.Headers().Get(bus.HdrType) {
			case bus.TypeChunk:
				var c sluicev1.Chunk
				if err := bus.DecodeChunk(msg.Data(), &c); err != nil {
					r.log.Debug("replay: undecodable chunk skipped", "seq", seq, "err", err)
					break
				}
				key := batchKey{archive: c.ArchiveId, attempt: c.Attempt, table: c.Table}
				s := r.selected[key]
				if s == nil || done[key] {
					break
				}
				b := open[key]
				if b == nil {
					b = newBatch(key, nil, 0, c.Partner, r.tables.options(c.Partner, c.Table, c.Delimiter), r.c.collectConfig(), r.src, r.now())
					open[key] = b
					r.mem.remember(b)
				}
				if n, _ := b.addChunk(&c, seq, &decodeBuf); n != 0 {
					r.mem.add(n)
					if r.mem.over() {
						r.mem.relieve()
					}
				}
				if _, ok := waiting[key]; ok && b.poison == "" && b.check(s.marker) == "" {
					finish(ctx, key, b, s)
				}
			case bus.TypeComplete:
				var mk sluicev1.BatchComplete
				if err := proto.Unmarshal(msg.Data(), &mk); err != nil {
					break
				}
				key := batchKey{archive: mk.ArchiveId, attempt: mk.Attempt, table: mk.Table}
				s := r.selected[key]
				if s == nil || done[key] || seq != s.seq {
					break
				}
				b := open[key]
				if b == nil { // a batch without chunks
					b = newBatch(key, nil, 0, mk.Partner, r.tables.options(mk.Partner, mk.Table, ""), r.c.collectConfig(), r.src, r.now())
					open[key] = b
					r.mem.remember(b)
				}
				if b.poison == "" && b.check(s.marker) == "" {
					finish(ctx, key, b, s)
				} else {
					waiting[key] = s
				}
			}
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			// Past the last selected marker only late chunks of waiting batches matter.
			return seq < lastMarker || len(waiting) > 0, nil
		})
	for key, s := range r.selected {
		if done[key] || waiting[key] != nil {
			continue
		}
		r.res.Incomplete = append(r.res.Incomplete, SkippedBatch{Archive: key.archive, Attempt: key.attempt, Seq: s.seq,
			Reason: "marker not read again (expired or deleted meanwhile, or the replay stopped)"})
	}
	for key, s := range waiting {
		reason := open[key].poison
		if reason == "" {
			reason = open[key].check(s.marker)
		}
		r.res.Incomplete = append(r.res.Incomplete, SkippedBatch{Archive: key.archive, Attempt: key.attempt, Seq: s.seq,
			Reason: reason + " (the range may start after the batch began: try an earlier --from-seq or --since)"})
	}
	sort.Slice(r.res.Incomplete, func(i, j int) bool { return r.res.Incomplete[i].Seq < r.res.Incomplete[j].Seq })
	sort.Slice(r.res.Committed, func(i, j int) bool { return r.res.Committed[i].MarkerSeq < r.res.Committed[j].MarkerSeq })
	if err != nil {
		errs = append(errs, fmt.Errorf("replay: merge: %w", err))
	}
	return errors.Join(errs...)
}

// replayRetry: a replay retries a failed commit a few times, then reports the batch failed.
var replayRetry = retryPolicy{first: 500 * time.Millisecond, max: 30 * time.Second, attempts: replayCommitAttempts}

// commit commits one complete batch through the committer, then records the replay in the
// ledger. It never acks anything: the replay holds no ack handles.
func (r *replay) commit(ctx context.Context, b *batch, s *selection) error {
	res, err := r.c.commit(ctx, b, s.marker, r.now(), replayRetry)
	if err != nil {
		r.res.Failed = append(r.res.Failed, SkippedBatch{Archive: b.key.archive, Attempt: b.key.attempt, Seq: s.seq, Reason: err.Error()})
		return fmt.Errorf("replay %s: %w", b.key.String(), err)
	}
	rb := ReplayedBatch{Archive: b.key.archive, Attempt: b.key.attempt, MarkerSeq: s.seq, ProcessDates: markerDates(s.marker),
		RowsIn: s.marker.Rows, RowsOut: res.rowsOut, Quarantined: res.quarantined}
	if res.schema != nil {
		rb.SchemaVersion = res.schema.Version
		if res.changed {
			rb.SchemaChanges = res.schema.Changes
		}
	}
	for _, o := range res.objects {
		rb.Objects = append(rb.Objects, o.Key)
	}
	r.res.Committed = append(r.res.Committed, rb)
	r.log.Info("batch replayed", "archive", b.key.archive, "attempt", b.key.attempt, "objects", len(rb.Objects),
		"rows_in", rb.RowsIn, "rows_out", rb.RowsOut, "quarantined", rb.Quarantined, "schema_version", rb.SchemaVersion)
	if r.ledger != nil {
		_, lerr := r.ledger.Update(ctx, b.key.archive, func(rec *ledger.Record) error {
			rec.Replays++
			return nil
		})
		switch {
		case errors.Is(lerr, ledger.ErrNotFound):
			r.log.Debug("replay: archive not in the ledger", "archive", b.key.archive)
		case lerr != nil:
			r.log.Warn("replay: record in ledger", "archive", b.key.archive, "err", lerr)
		}
	}
	return nil
}

// closeBatch drops a batch's payload and its memory accounting.
func (r *replay) closeBatch(b *batch) {
	r.mem.forget(b)
	_, mem := b.close()
	r.mem.add(-mem)
}
