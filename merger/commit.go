package merger

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/internal/quality"

	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// errDeadLettered: the batch was dead-lettered during its commit (its state is already dropped).
var errDeadLettered = errors.New("batch dead-lettered")

// mergerRetry: a merger retries a commit until it succeeds, keeping the batch's messages alive
// meanwhile, so a commit is never half-acked.
var mergerRetry = retryPolicy{first: time.Second, max: 30 * time.Second}

// commitBatch commits a complete batch through the committer, then records it in the ledger and
// acks its messages; a batch whose commit failed permanently is dead-lettered.
func (m *Merger) commitBatch(ctx context.Context, b *batch, mk *sluicev1.BatchComplete, marker handle, msg jetstream.Msg, received time.Time) error {
	res, err := m.commit.commit(ctx, b, mk, received, mergerRetry)
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil { // permanent: the committer retries everything else
		var qf *qualityFailure
		var failed []quality.Result
		if errors.As(err, &qf) {
			m.observeQuality(b.key.table, qf.failed)
			failed = qf.failed
		}
		if m.deadLetterBatch(ctx, b, marker, msg, "commit: "+err.Error(), failed) {
			return errDeadLettered
		}
		return err
	}
	m.recordCommitted(ctx, b.key)
	m.ackBatch(ctx, b, marker)
	m.observeQuality(b.key.table, res.quality)
	m.met.committed.Inc()
	m.met.rowsOut.Add(float64(res.rowsOut))
	m.met.bytesWritten.Add(float64(res.bytes))
	if res.quarantined > 0 {
		m.met.quarantined.WithLabelValues(b.key.table).Add(float64(res.quarantined))
	}
	m.met.commitSeconds.Observe(m.now().Sub(received).Seconds())
	m.log.Info("batch committed", "table", b.key.table, "archive", b.key.archive, "attempt", b.key.attempt,
		"objects", len(res.objects), "rows_in", mk.Rows, "rows_out", res.rowsOut, "quarantined", res.quarantined,
		"schema_version", res.schema.Version, "bytes", res.bytes)
	return nil
}

// observeQuality counts a batch's data-quality outcomes and sets the table's last status.
func (m *Merger) observeQuality(tbl string, rs []quality.Result) {
	if len(rs) == 0 {
		return
	}
	status := 0.0
	for _, r := range rs {
		m.met.dqResults.WithLabelValues(tbl, r.Rule, r.Status).Inc()
		if r.Kind == quality.KindRow && r.FailedRows > 0 {
			m.met.dqFailedRows.WithLabelValues(tbl, r.Rule, r.Column).Add(float64(r.FailedRows))
		}
		switch r.Status {
		case quality.StatusWarn:
			status = max(status, 1)
		case quality.StatusFail:
			status = 2
		}
	}
	m.met.dqStatus.WithLabelValues(tbl).Set(status)
}

// recordCommitted notes the commit in the archive's ledger record (ledger.BatchCommitted), so a
// marker redelivered alone after a crash — its chunks already acked — is recognised as done
// instead of waiting for chunks that will never come. The ledger may be briefly unavailable (its
// bucket electing a leader on a cluster): retried for up to AckWait/2 (the batch's messages are
// kept alive meanwhile). Best effort after that: without it such a marker is retried, then
// dead-lettered, as before.
func (m *Merger) recordCommitted(ctx context.Context, k batchKey) {
	if m.deps.Ledger == nil {
		return
	}
	err := m.retryCluster(ctx, func(ctx context.Context) error {
		return m.deps.Ledger.BatchCommitted(ctx, k.archive, k.attempt, k.table)
	})
	if err != nil && ctx.Err() == nil {
		m.log.Warn("record committed batch in the ledger", "batch", k.String(), "err", err)
	}
}

// recordDeadLettered notes the dead letter in the archive's ledger record
// (ledger.BatchDeadLettered), so that a redelivery of the batch after a consumer reset is acked as
// settled instead of merged and dead-lettered a second time, and the record says the archive
// failed, and why (`sluice status`, a later once run). Best effort, like recordCommitted.
func (m *Merger) recordDeadLettered(ctx context.Context, k batchKey, reason string) {
	if m.deps.Ledger == nil {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := m.deps.Ledger.BatchDeadLettered(lctx, k.archive, k.attempt, k.table, reason); err != nil {
		m.log.Warn("record dead-lettered batch in the ledger", "batch", k.String(), "err", err)
	}
}

// ackBatch acks every chunk, then the marker synchronously: once the marker's ack is confirmed,
// the chunks' acks (sent before it on the same connection) were processed too. Without a
// confirmation (the consumer's leader is being elected: the acks went nowhere) the chunks are
// acked again and the marker's ack retried, for up to AckWait/2: acks are idempotent, and the
// batch's messages are not redelivered for nothing.
func (m *Merger) ackBatch(ctx context.Context, b *batch, marker handle) {
	err := m.retryCluster(ctx, func(ctx context.Context) error {
		for _, h := range b.snapshotHandles() {
			if h.seq == marker.seq {
				continue
			}
			if err := m.ack.ack(h); err != nil {
				return err
			}
		}
		return m.ack.ackSync(ctx, marker)
	})
	if err != nil && ctx.Err() == nil {
		// The objects are committed and the event published; a redelivery is acked from the
		// ledger, or rewrites the same objects (the event is de-duplicated by its message id).
		m.log.Warn("ack marker", "batch", b.key.String(), "err", err)
	}
}

// retryCluster runs fn until it succeeds, for at most AckWait/2 (each attempt at most 5 s),
// backing off from 100 ms: what a node restart or a leader election interrupts.
func (m *Merger) retryCluster(ctx context.Context, fn func(context.Context) error) error {
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(2*time.Second),
		backoff.WithMaxElapsedTime(max(m.cfg.AckWait/2, time.Second)),
	)
	return backoff.Retry(func() error {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := fn(actx)
		if err != nil && ctx.Err() != nil {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(bo, ctx))
}
