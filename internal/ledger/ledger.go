// Package ledger keeps the archive ledger in a JetStream key-value bucket: one record per archive
// content identity with its state (landed → extracting → extracted → committed | failed), and a
// path index so an unchanged file is recognised without re-hashing. Every update is a
// compare-and-set, so concurrent stages never overwrite each other.
package ledger

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
)

// State of an archive.
type State string

const (
	Landed     State = "landed"
	Extracting State = "extracting"
	Extracted  State = "extracted"
	Committed  State = "committed"
	Failed     State = "failed"
)

// Transition is one recorded state change.
type Transition struct {
	State  State  `json:"state"`
	AtMs   int64  `json:"at_ms"`
	Reason string `json:"reason,omitempty"`
}

// Record is the ledger entry of one archive content identity.
type Record struct {
	ArchiveID  string   `json:"archive_id"`
	SHA256     string   `json:"sha256"`
	URI        string   `json:"uri"`  // first location the bytes were seen at
	Name       string   `json:"name"` // base name at that location
	Size       int64    `json:"size"`
	Partner    string   `json:"partner,omitempty"`
	State      State    `json:"state"`
	Reason     string   `json:"reason,omitempty"`
	Attempt    uint32   `json:"attempt"`
	Duplicates []string `json:"duplicates,omitempty"` // other locations with the same bytes
	Tables     int      `json:"tables,omitempty"`
	RowsIn     int64    `json:"rows_in,omitempty"`
	RowsOut    int64    `json:"rows_out,omitempty"`
	Replays    int      `json:"replays,omitempty"`
	// TablesCommitted are the tables whose batch of the current attempt a merger committed
	// (objects written, BatchCommitted published). A merger that receives a marker alone after a
	// crash (its chunks were acked) tells from it that the batch is done. Reset with the attempt.
	TablesCommitted []string `json:"tables_committed,omitempty"`
	// TablesDeadLettered are the tables whose batch of the current attempt a merger dead-lettered.
	// A redelivery of that batch (a consumer reset at start-up) is settled: it is retried through
	// `sluice dlq retry` (a re-merge from the rows stream) or a new attempt, never by merging the
	// redelivered messages again, which would record a second dead letter. Reset with the attempt.
	TablesDeadLettered []string `json:"tables_dead_lettered,omitempty"`
	// DeadLetterReason is why the latest of them was dead-lettered: the attempt's failure once its
	// extraction is recorded complete (BatchDeadLettered, then the extractor's ledger update).
	DeadLetterReason string       `json:"dead_letter_reason,omitempty"`
	History          []Transition `json:"history,omitempty"`
	UpdatedMs        int64        `json:"updated_ms"`
}

// SetState moves the record to s, appending to its history.
func (r *Record) SetState(s State, reason string, now time.Time) {
	r.State, r.Reason, r.UpdatedMs = s, reason, now.UnixMilli()
	r.History = append(r.History, Transition{State: s, AtMs: now.UnixMilli(), Reason: reason})
	if len(r.History) > 32 { // keep the record small
		r.History = r.History[len(r.History)-32:]
	}
}

// PathEntry remembers the last version seen at a location.
type PathEntry struct {
	URI       string `json:"uri"`
	Size      int64  `json:"size"`
	MtimeMs   int64  `json:"mtime_ms"`
	ETag      string `json:"etag,omitempty"`
	ArchiveID string `json:"archive_id"`
}

// ErrNotFound means the ledger has no such record.
var ErrNotFound = errors.New("ledger: not found")

// Ledger wraps the bucket.
type Ledger struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

// New returns a ledger over kv. now may be nil (time.Now).
func New(kv jetstream.KeyValue, now func() time.Time) *Ledger {
	if now == nil {
		now = time.Now
	}
	return &Ledger{kv: kv, now: now}
}

func archiveKey(id string) string { return "archive." + id }

// PathKey is the key of a location in the path index.
func PathKey(uri string) string {
	h := sha1.Sum([]byte(uri))
	return "path." + hex.EncodeToString(h[:])
}

// Get returns the record of an archive.
func (l *Ledger) Get(ctx context.Context, id string) (Record, uint64, error) {
	e, err := l.kv.Get(ctx, archiveKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Record{}, 0, fmt.Errorf("archive %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Record{}, 0, fmt.Errorf("get archive %s: %w", id, err)
	}
	var r Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return Record{}, 0, fmt.Errorf("decode archive %s: %w", id, err)
	}
	return r, e.Revision(), nil
}

// Create stores rec as a new record in state landed. When the archive is already known it
// returns created=false and the existing record, untouched.
func (l *Ledger) Create(ctx context.Context, rec Record) (created bool, existing Record, err error) {
	if rec.State == "" {
		rec.SetState(Landed, "", l.now())
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return false, Record{}, err
	}
	_, err = l.kv.Create(ctx, archiveKey(rec.ArchiveID), b)
	if err == nil {
		return true, rec, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return false, Record{}, fmt.Errorf("create archive %s: %w", rec.ArchiveID, err)
	}
	// The key exists, but KV reads are direct gets that any replica answers: one that has not yet
	// applied another producer's create (three producers on one landing area) says not found. The
	// record is there; read it again for a moment (~3 s at most) rather than fail the scan.
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(25*time.Millisecond),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0),
		backoff.WithMaxElapsedTime(3*time.Second),
	)
	err = backoff.Retry(func() error {
		var gerr error
		if existing, _, gerr = l.Get(ctx, rec.ArchiveID); gerr != nil && !errors.Is(gerr, ErrNotFound) {
			return backoff.Permanent(gerr)
		}
		return gerr
	}, backoff.WithContext(bo, ctx))
	return false, existing, err
}

// Update applies fn to the current record with compare-and-set, retrying on conflict. fn may
// return ErrSkip to leave the record unchanged.
func (l *Ledger) Update(ctx context.Context, id string, fn func(*Record) error) (Record, error) {
	for i := 0; ; i++ {
		r, rev, err := l.Get(ctx, id)
		if err != nil {
			return Record{}, err
		}
		if err := fn(&r); err != nil {
			if errors.Is(err, ErrSkip) {
				return r, nil
			}
			return r, err
		}
		r.UpdatedMs = l.now().UnixMilli()
		b, err := json.Marshal(r)
		if err != nil {
			return Record{}, err
		}
		if _, err = l.kv.Update(ctx, archiveKey(id), b, rev); err == nil {
			return r, nil
		}
		if i >= 50 || ctx.Err() != nil {
			return Record{}, fmt.Errorf("update archive %s: %w", id, err)
		}
		time.Sleep(time.Duration(i+1) * 5 * time.Millisecond)
	}
}

// ErrSkip, returned from an Update callback, leaves the record as it is.
var ErrSkip = errors.New("ledger: skip update")

// Transition moves an archive to state s with a reason, unless it is already in a later
// terminal state (committed is never moved back to extracted, for example).
func (l *Ledger) Transition(ctx context.Context, id string, s State, reason string) (Record, error) {
	return l.Update(ctx, id, func(r *Record) error {
		if r.State == s && r.Reason == reason {
			return ErrSkip
		}
		if rank(s) < rank(r.State) && s != Failed && r.State != Failed {
			return ErrSkip
		}
		r.SetState(s, reason, l.now())
		return nil
	})
}

func rank(s State) int {
	switch s {
	case Landed:
		return 0
	case Extracting:
		return 1
	case Extracted:
		return 2
	case Committed, Failed:
		return 3
	}
	return -1
}

// BatchCommitted records that table's batch of the archive's attempt is committed.
func (l *Ledger) BatchCommitted(ctx context.Context, id string, attempt uint32, table string) error {
	return l.addTable(ctx, id, attempt, table, func(r *Record) *[]string { return &r.TablesCommitted })
}

// BatchDeadLettered records that table's batch of the archive's attempt was dead-lettered, and
// that the attempt failed, with reason: the archive cannot be committed whole unless the batch is
// retried (`sluice dlq retry`; the summarizer moves the record to committed once every table is
// committed and checked). While the extraction is not recorded complete (the merger can be
// faster than the extractor's last steps) the state stays: a redelivered extraction must still
// finish (its ArchiveExtracted is what lets the archive settle), and the extractor records the
// failure with the reason when it is done.
func (l *Ledger) BatchDeadLettered(ctx context.Context, id string, attempt uint32, table, reason string) error {
	_, err := l.Update(ctx, id, func(r *Record) error {
		if r.Attempt != attempt {
			return ErrSkip
		}
		listed := slices.Contains(r.TablesDeadLettered, table)
		if listed && r.DeadLetterReason == reason && r.State != Extracted {
			return ErrSkip
		}
		if !listed {
			r.TablesDeadLettered = append(r.TablesDeadLettered, table)
		}
		r.DeadLetterReason = reason
		if r.State == Extracted {
			r.SetState(Failed, reason, l.now())
		}
		return nil
	})
	return err
}

func (l *Ledger) addTable(ctx context.Context, id string, attempt uint32, table string, list func(*Record) *[]string) error {
	_, err := l.Update(ctx, id, func(r *Record) error {
		tables := list(r)
		if r.Attempt != attempt || slices.Contains(*tables, table) {
			return ErrSkip
		}
		*tables = append(*tables, table)
		return nil
	})
	return err
}

// NewAttempt starts the next extraction attempt of the record: the per-table outcomes of the
// previous one no longer apply.
func (r *Record) NewAttempt() {
	r.Attempt++
	r.TablesCommitted, r.TablesDeadLettered, r.DeadLetterReason = nil, nil, ""
}

// BatchSettled reports whether the record shows table's batch of attempt done: the table
// committed or dead-lettered at that attempt, the whole archive committed at it, or a newer
// attempt started.
func (r Record) BatchSettled(attempt uint32, table string) bool {
	return r.Attempt > attempt || r.Attempt == attempt && (r.State == Committed ||
		slices.Contains(r.TablesCommitted, table) || slices.Contains(r.TablesDeadLettered, table))
}

// GetPath returns the path index entry of a location.
func (l *Ledger) GetPath(ctx context.Context, uri string) (PathEntry, bool, error) {
	e, err := l.kv.Get(ctx, PathKey(uri))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return PathEntry{}, false, nil
	}
	if err != nil {
		return PathEntry{}, false, fmt.Errorf("get path %s: %w", uri, err)
	}
	var p PathEntry
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		return PathEntry{}, false, fmt.Errorf("decode path %s: %w", uri, err)
	}
	return p, true, nil
}

// PutPath records the version last seen at a location.
func (l *Ledger) PutPath(ctx context.Context, p PathEntry) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if _, err := l.kv.Put(ctx, PathKey(p.URI), b); err != nil {
		return fmt.Errorf("put path %s: %w", p.URI, err)
	}
	return nil
}

// List returns every archive record, oldest update first. It reads the bucket's current values
// in one stream (a KV watch that ends at the initial values' end), not one request per key, so a
// ledger of a million archives lists in seconds.
func (l *Ledger) List(ctx context.Context) ([]Record, error) {
	w, err := l.kv.WatchFiltered(ctx, []string{"archive.>"}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list ledger: %w", err)
	}
	defer func() { _ = w.Stop() }()
	var out []Record
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("list ledger: %w", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("list ledger: watch closed")
			}
			if e == nil { // every current value delivered
				sort.Slice(out, func(i, j int) bool { return out[i].UpdatedMs < out[j].UpdatedMs })
				return out, nil
			}
			var r Record
			if err := json.Unmarshal(e.Value(), &r); err != nil {
				return nil, fmt.Errorf("decode %s: %w", e.Key(), err)
			}
			out = append(out, r)
		}
	}
}
