package merger

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/quality"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// deadLetter publishes a DeadLetter for msg on <prefix>.dlq.merger (synchronously).
func (m *Merger) deadLetter(ctx context.Context, h handle, msg jetstream.Msg, reason, archive, tbl string) error {
	dl := &sluicev1.DeadLetter{
		Stage:      "merger",
		Stream:     m.deps.Bus.Subjects.RowsStream(),
		Subject:    msg.Subject(),
		StreamSeq:  h.seq,
		Deliveries: h.delivered,
		Reason:     reason,
		ArchiveId:  archive,
		Table:      tbl,
		DeadUnixMs: m.now().UnixMilli(),
		Headers:    map[string]string{},
	}
	for k, v := range msg.Headers() {
		if len(v) > 0 {
			dl.Headers[k] = v[0]
		}
	}
	// Keep the original payload when the dead letter still fits the server's max payload.
	if int64(len(msg.Data())+len(reason)+4096) <= m.maxPayload {
		dl.Payload = msg.Data()
	}
	b := m.deps.Bus
	return b.PublishEvent(ctx, b.Subjects.DLQ("merger"), bus.MergerDeadLetterID(b.Subjects.RowsStream(), h.seq, h.delivered),
		archive, dl, bus.WithTable(tbl))
}

// poisonMessage dead-letters a message that cannot be used (undecodable, unknown type) and
// terminates it.
func (m *Merger) poisonMessage(ctx context.Context, h handle, msg jetstream.Msg, reason, archive, tbl string) {
	m.log.Error("dead-lettering message", "subject", msg.Subject(), "seq", h.seq, "reason", reason)
	if err := m.deadLetter(ctx, h, msg, reason, archive, tbl); err != nil {
		m.log.Error("dead letter", "seq", h.seq, "err", err)
		_ = m.ack.nakDelay(h, m.cfg.RetryDelay) // try again later rather than lose the evidence
		return
	}
	_ = m.ack.term(h, reason)
}

// deadLetterBatch dead-letters a batch through its marker: DeadLetter with the marker's payload
// and the reason, then every message of the batch (chunks and marker) is terminated and the
// batch's state dropped. The caller has removed b from its partition. It reports whether the
// dead letter was published (else everything was handed back for a later attempt).
func (m *Merger) deadLetterBatch(ctx context.Context, b *batch, marker handle, msg jetstream.Msg, reason string, failed []quality.Result) bool {
	p := b.part
	m.log.Error("dead-lettering batch", "table", b.key.table, "archive", b.key.archive, "attempt", b.key.attempt,
		"deliveries", marker.delivered, "reason", reason)
	if err := m.deadLetter(ctx, marker, msg, reason, b.key.archive, b.key.table); err != nil {
		// Without the dead letter the evidence would be lost: hand everything back instead.
		m.log.Error("dead letter", "batch", b.key.String(), "err", err)
		if b.removeHandle(marker) {
			p.addHeld(-1)
		}
		_ = m.ack.nakDelay(marker, m.cfg.RetryDelay)
		p.dropBatch(b, m.ack.nak)
		return false
	}
	// In the ledger before the messages are terminated (as a commit is recorded before its acks):
	// a consumer reset from here on finds the batch settled.
	failure := fmt.Sprintf("table %s dead-lettered by the merger: %s", b.key.table, reason) // the archive's
	m.recordDeadLettered(ctx, b.key, failure)
	if b.removeHandle(marker) {
		p.addHeld(-1)
	}
	short := reason
	if len(short) > 200 {
		short = short[:200]
	}
	_ = m.ack.term(marker, short)
	p.dropBatch(b, func(h handle) error { return m.ack.term(h, "batch dead-lettered") })
	m.met.deadLettered.Inc()
	m.publishBatchFailed(ctx, b, failure, failed)
	return true
}

// publishBatchFailed tells the summarizer that an archive will never complete because one of
// its table batches was dead-lettered, so the archive ends as failed (with failure, and the
// data-quality results that rejected the batch, if that was why) instead of staying pending
// forever. Best effort: the dead letter itself is already recorded.
func (m *Merger) publishBatchFailed(ctx context.Context, b *batch, failure string, failed []quality.Result) {
	ev := &sluicev1.ArchiveFailed{
		ArchiveId:     b.key.archive,
		Attempt:       b.key.attempt,
		Reason:        failure,
		TablesAborted: []string{b.key.table},
		FailedUnixMs:  m.now().UnixMilli(),
		Origin:        sluicev1.Stage_STAGE_MERGER,
		Quality:       protoResults(failed),
	}
	id := bus.MergerFailedID(b.key.archive, b.key.attempt, b.key.table)
	if err := m.deps.Bus.PublishEvent(ctx, m.deps.Bus.Subjects.Failed(), id, b.key.archive, ev, bus.WithTable(b.key.table)); err != nil {
		m.log.Error("publish batch failure", "batch", b.key.String(), "err", err)
	}
}
