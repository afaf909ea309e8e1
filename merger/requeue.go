package merger

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// ackPendingFull breaks an ack-pending deadlock: the server delivers nothing new while
// MaxAckPending messages are un-acked, so when none of our batches can complete, the batch that
// started last is moved to the tail of the stream (requeue) so that older batches receive their
// remaining chunks and markers. A Nak would not do: a Nak'ed message keeps its ack-pending slot
// until it is redelivered, and it is redelivered first.
func (p *partition) ackPendingFull(ctx context.Context) {
	if time.Since(p.lastFull) < max(p.m.pollWait, time.Second) {
		return
	}
	p.lastFull = time.Now()
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	info, err := p.cons.Info(ictx)
	cancel()
	if err != nil || info.NumAckPending < p.m.cfg.MaxAckPending {
		return
	}
	p.mu.Lock()
	var youngest *batch
	for _, b := range p.batches {
		if !b.committing && (youngest == nil || b.order > youngest.order) {
			youngest = b
		}
	}
	if youngest == nil || len(p.batches) < 2 {
		p.mu.Unlock()
		if youngest != nil {
			p.log.Warn("ack pending at the limit with a single open batch: raise MaxAckPending",
				"max_ack_pending", p.m.cfg.MaxAckPending, "batch", youngest.key.String())
		}
		return
	}
	delete(p.batches, youngest.key)
	p.mu.Unlock()
	p.log.Warn("ack pending at the limit: moving the youngest batch to the tail of the stream",
		"batch", youngest.key.String(), "held", youngest.heldCount(), "max_ack_pending", p.m.cfg.MaxAckPending)
	if err := p.requeue(ctx, youngest); err != nil {
		p.log.Error("requeue batch; handing it back instead", "batch", youngest.key.String(), "err", err)
		p.dropBatch(youngest, func(h handle) error { return p.m.ack.nakDelay(h, p.m.cfg.RetryDelay) })
	} else {
		p.dropBatch(youngest, p.m.ack.ack)
	}
	p.m.met.handedBack.Inc()
}

// requeue publishes a copy of every chunk of b at the tail of the stream (same subject, a fresh
// message id, the data as received: still compressed, never decoded); the caller then acks the
// originals. A crash in between leaves both copies, which the chunk_index de-duplication absorbs.
func (p *partition) requeue(ctx context.Context, b *batch) error {
	subj := p.m.deps.Bus.Subjects.Rows(p.n, b.key.table)
	gen := time.Now().UnixNano()
	for _, c := range b.orderedChunks() {
		data, err := b.stored(ctx, c)
		if err != nil {
			return err
		}
		var header []byte
		if mem := b.members[c.member]; mem != nil {
			header = mem.raw
		}
		pm := &sluicev1.Chunk{ArchiveId: b.key.archive, Attempt: b.key.attempt, Table: b.key.table, Member: c.memberName,
			MemberIndex: c.member, ProcessDate: c.processDate, BatchId: c.batchID, ChunkIndex: c.index,
			MemberChunk: c.memberChunk, FirstLine: c.firstLine, Rows: uint32(c.rows), Header: header, Data: data,
			Delimiter: string(b.delim), Partner: b.partner, LastInMember: c.last, Codec: c.codec}
		if c.codec != sluicev1.Chunk_CODEC_NONE {
			pm.DataBytes = uint32(c.size)
		}
		payload, err := proto.Marshal(pm)
		if err != nil {
			return err
		}
		msg := &nats.Msg{Subject: subj, Data: payload, Header: bus.RowsHeader(bus.TypeChunk, b.key.archive, b.key.table,
			bus.RequeuedChunkID(b.key.archive, b.key.attempt, b.key.table, c.index, gen))}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err = p.m.deps.Bus.JS.PublishMsg(pctx, msg)
		cancel()
		if err != nil {
			return fmt.Errorf("republish chunk %d: %w", c.index, err)
		}
	}
	return nil
}
