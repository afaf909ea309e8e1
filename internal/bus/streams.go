package bus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Ensure creates the streams and key-value buckets sluice uses when they are missing. One that
// exists is left as it is when its settings match the configuration; when they differ (an
// operator raised the replicas, or set other limits with the nats CLI) the differences are
// logged and the existing settings kept, unless Config.UpdateStreams asks to apply the
// configuration: then it is updated, and a lower replica count than the stream has is logged as
// a warning (never a silent scale-down). Settings sluice cannot run with (the subjects of a
// stream, its retention policy) are an error instead. Ensure is idempotent and safe to call from
// every process at start-up; it retries while JetStream is unavailable (a cluster electing its
// meta leader), for at most a minute (five for an embedded cluster node).
func (b *Bus) Ensure(ctx context.Context) error { return b.retry(ctx, "ensure streams", b.ensureOnce) }

// AwaitLedger waits, as Ensure does, until the ledger bucket answers, for the commands that use
// the streams the stages made without creating them: during a cluster's election they wait for it
// instead of failing, and without sluice's streams they fail at once (not found is not transient).
func (b *Bus) AwaitLedger(ctx context.Context) error {
	return b.retry(ctx, "reach the ledger", func(ctx context.Context) error {
		_, err := b.Ledger(ctx)
		return err
	})
}

// retry runs pass until it succeeds or fails for a reason that is not transient, within a minute
// (five on a cluster node).
func (b *Bus) retry(ctx context.Context, what string, pass func(context.Context) error) error {
	out := NewOutage(b.log, what, 5*time.Second)
	budget := time.Minute
	if b.Cfg.Clustered() { // the first node waits for the others to elect a meta leader
		budget = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	for attempt := 0; ; attempt++ {
		// Each attempt has a bound of its own, 2 s doubling up to 10 s: a JetStream API request a
		// node takes while its cluster is still electing a meta leader may never be answered, and
		// waiting for it until the budget ran out left three embedded nodes started together
		// without streams (TestRunClusterSurvivesKill).
		actx, acancel := context.WithTimeout(ctx, min(ensureFirstAttempt<<min(attempt, 8), ensureAttempt))
		err := pass(actx)
		acancel()
		if err == nil || !Transient(err) {
			out.OK()
			return err
		}
		if !out.Wait(ctx, err) {
			return err
		}
	}
}

// ensureFirstAttempt and ensureAttempt bound the passes of Ensure. A pass cut short is simply
// taken again: what it created is found the next time.
const ensureFirstAttempt, ensureAttempt = 2 * time.Second, 10 * time.Second

func (b *Bus) ensureOnce(ctx context.Context) error {
	for _, sc := range b.StreamConfigs() {
		if err := b.ensureStream(ctx, sc); err != nil {
			return fmt.Errorf("ensure stream %s: %w", sc.Name, err)
		}
	}
	for _, kc := range b.BucketConfigs() {
		if err := b.ensureBucket(ctx, kc); err != nil {
			return fmt.Errorf("ensure kv %s: %w", kc.Bucket, err)
		}
	}
	return nil
}

// StreamConfigs are the streams sluice uses, as the configuration wants them.
func (b *Bus) StreamConfigs() []jetstream.StreamConfig {
	c, s := b.Cfg, b.Subjects
	rowsCompression := jetstream.S2Compression
	if c.RowsCompression == "none" {
		rowsCompression = jetstream.NoCompression
	}
	return []jetstream.StreamConfig{{
		Name:        s.RowsStream(),
		Description: "sluice: CSV chunks, batch-complete markers and aborts, per partition and table",
		Subjects:    []string{s.RowsAll()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      c.RowsMaxAge,
		MaxBytes:    c.RowsMaxBytes,
		Duplicates:  c.DupWindow,
		Compression: rowsCompression,
		Replicas:    c.Replicas,
		Discard:     jetstream.DiscardOld,
		// A merger fetches released chunks back by sequence (merger/batch.go): a direct get answers
		// with the message itself, not JSON with its data in base64.
		AllowDirect: true,
	}, {
		Name:        s.EventsStream(),
		Description: "sluice: archive landed/extracted/failed/duplicate, batch committed, checks, summaries",
		Subjects:    []string{s.EventsAll()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      c.EventsMaxAge,
		MaxBytes:    -1,
		Duplicates:  c.DupWindow,
		Compression: jetstream.S2Compression,
		Replicas:    c.Replicas,
		Discard:     jetstream.DiscardOld,
	}, {
		Name:        s.DLQStream(),
		Description: "sluice: dead letters with their reasons",
		Subjects:    []string{s.DLQAll()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      c.DLQMaxAge,
		MaxBytes:    -1,
		Duplicates:  2 * time.Minute, // the server's default
		Compression: jetstream.S2Compression,
		Replicas:    c.Replicas,
		Discard:     jetstream.DiscardOld,
	}}
}

// BucketConfigs are the key-value buckets Ensure creates (the mergers' presence bucket is the
// merger's own: memory storage, created on demand, with the same replicas).
func (b *Bus) BucketConfigs() []jetstream.KeyValueConfig {
	c, s := b.Cfg, b.Subjects
	return []jetstream.KeyValueConfig{
		{Bucket: s.LedgerBucket(), Description: "sluice: archive ledger (content identity -> state)", History: 5, Storage: jetstream.FileStorage, Replicas: c.Replicas},
		{Bucket: s.SchemasBucket(), Description: "sluice: per-table schema registry", History: 10, Storage: jetstream.FileStorage, Replicas: c.Replicas},
	}
}

// Difference is one setting of an existing stream or bucket that is not what the configuration
// asks for.
type Difference struct {
	Setting    string
	Have, Want string
}

func (d Difference) String() string { return d.Setting + " " + d.Have + " (flags: " + d.Want + ")" }

func joinDiffs(ds []Difference) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.String()
	}
	return strings.Join(parts, ", ")
}

// StreamDifferences lists the settings sluice manages that differ between have and want.
func StreamDifferences(have, want jetstream.StreamConfig) []Difference {
	var ds []Difference
	add := differ(&ds)
	add("subjects", have.Subjects, want.Subjects)
	add("retention", have.Retention, want.Retention)
	add("storage", have.Storage, want.Storage)
	add("replicas", max(have.Replicas, 1), max(want.Replicas, 1))
	add("max_age", have.MaxAge, want.MaxAge)
	add("max_bytes", unlimited(have.MaxBytes), unlimited(want.MaxBytes))
	add("duplicate_window", have.Duplicates, want.Duplicates)
	add("compression", have.Compression, want.Compression)
	add("discard", have.Discard, want.Discard)
	add("allow_direct", have.AllowDirect, want.AllowDirect)
	return ds
}

// differ returns a function that appends to ds the setting name when have and want print apart.
func differ(ds *[]Difference) func(name string, have, want any) {
	return func(name string, have, want any) {
		if h, w := fmt.Sprint(have), fmt.Sprint(want); h != w {
			*ds = append(*ds, Difference{Setting: name, Have: h, Want: w})
		}
	}
}

func unlimited(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// ensureStream creates sc when it is missing, else compares and (with UpdateStreams) updates.
func (b *Bus) ensureStream(ctx context.Context, want jetstream.StreamConfig) error {
	st, err := b.JS.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = b.JS.CreateStream(ctx, want)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // created meanwhile by another process
			st, err = b.JS.Stream(ctx, want.Name)
		} else if err == nil {
			b.log.Info("stream created", "stream", want.Name, "replicas", max(want.Replicas, 1),
				"max_age", want.MaxAge, "max_bytes", unlimited(want.MaxBytes))
			return nil
		}
	}
	if err != nil {
		return err
	}
	have := st.CachedInfo().Config
	ds := StreamDifferences(have, want)
	if len(ds) == 0 {
		return nil
	}
	for _, d := range ds {
		if d.Setting == "subjects" || d.Setting == "retention" {
			return fmt.Errorf("the stream exists with %s %s, sluice needs %s (was it created by something else? another --prefix avoids it)", d.Setting, d.Have, d.Want)
		}
	}
	if !b.Cfg.UpdateStreams {
		b.log.Info("stream settings differ from the flags: keeping the stream's (--update-streams applies the flags)",
			"stream", want.Name, "differences", joinDiffs(ds))
		return nil
	}
	upd := have // keep what sluice does not manage (placement, description, sources, metadata …)
	upd.MaxAge, upd.MaxBytes, upd.Duplicates, upd.Compression, upd.Discard = want.MaxAge, want.MaxBytes, want.Duplicates, want.Compression, want.Discard
	upd.Replicas, upd.AllowDirect = want.Replicas, want.AllowDirect
	if max(want.Replicas, 1) < max(have.Replicas, 1) {
		b.log.Warn("scaling the stream's replicas down, as --update-streams with --replicas asks", "stream", want.Name,
			"from", have.Replicas, "to", want.Replicas)
	}
	for i := range ds {
		if ds[i].Setting == "storage" { // cannot change on a live stream: reported, left
			b.log.Warn("stream storage differs and cannot be changed in place", "stream", want.Name, "have", ds[i].Have, "want", ds[i].Want)
		}
	}
	if _, err := b.JS.UpdateStream(ctx, upd); err != nil {
		return fmt.Errorf("update (%s): %w", joinDiffs(ds), err)
	}
	b.log.Info("stream updated (--update-streams)", "stream", want.Name, "differences", joinDiffs(ds))
	return nil
}

// BucketDifferences lists the settings sluice manages that differ between have and want.
func BucketDifferences(have, want jetstream.KeyValueConfig) []Difference {
	var ds []Difference
	add := differ(&ds)
	add("history", have.History, want.History)
	add("storage", have.Storage, want.Storage)
	add("replicas", max(have.Replicas, 1), max(want.Replicas, 1))
	return ds
}

// ensureBucket creates kc when it is missing, else compares and (with UpdateStreams) updates.
func (b *Bus) ensureBucket(ctx context.Context, want jetstream.KeyValueConfig) error {
	kv, err := b.JS.KeyValue(ctx, want.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		_, err = b.JS.CreateKeyValue(ctx, want)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = b.JS.KeyValue(ctx, want.Bucket)
		} else if err == nil {
			b.log.Info("bucket created", "bucket", want.Bucket, "replicas", max(want.Replicas, 1))
			return nil
		}
	}
	if err != nil {
		return err
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return err
	}
	have := st.Config()
	ds := BucketDifferences(have, want)
	if len(ds) == 0 {
		return nil
	}
	if !b.Cfg.UpdateStreams {
		b.log.Info("bucket settings differ from the flags: keeping the bucket's (--update-streams applies the flags)",
			"bucket", want.Bucket, "differences", joinDiffs(ds))
		return nil
	}
	upd := have
	upd.History, upd.Replicas = want.History, want.Replicas
	if max(want.Replicas, 1) < max(have.Replicas, 1) {
		b.log.Warn("scaling the bucket's replicas down, as --update-streams with --replicas asks", "bucket", want.Bucket,
			"from", have.Replicas, "to", want.Replicas)
	}
	if _, err := b.JS.UpdateKeyValue(ctx, upd); err != nil {
		return fmt.Errorf("update (%s): %w", joinDiffs(ds), err)
	}
	b.log.Info("bucket updated (--update-streams)", "bucket", want.Bucket, "differences", joinDiffs(ds))
	return nil
}

// Ledger returns the archive ledger bucket.
func (b *Bus) Ledger(ctx context.Context) (jetstream.KeyValue, error) {
	return b.JS.KeyValue(ctx, b.Subjects.LedgerBucket())
}

// Schemas returns the schema registry bucket.
func (b *Bus) Schemas(ctx context.Context) (jetstream.KeyValue, error) {
	return b.JS.KeyValue(ctx, b.Subjects.SchemasBucket())
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("listen address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("listen port %q: %w", p, err)
	}
	if port == 0 {
		port = -1 // random
	}
	return host, port, nil
}

// IsNotFound reports whether err means a stream, consumer or key is absent.
func IsNotFound(err error) bool {
	return errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrKeyNotFound)
}
