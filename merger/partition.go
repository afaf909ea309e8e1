package merger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// priorityGroup is the priority group of every partition consumer.
const priorityGroup = "sluice"

// tombTTL is how long a finished (committed or aborted) batch is remembered, so that a late
// duplicate of one of its messages is acked instead of opening a batch that never completes.
const tombTTL = 15 * time.Minute

// partition serves one partition: it owns the consumer merger-p<N>, the open batches of that
// partition and its pin. Its loop (run) is the only goroutine that fetches, handles messages and
// commits; its keeper goroutine keeps the pin alive meanwhile and may hand batches back (all but
// the one being committed) when the pin is lost.
type partition struct {
	m    *Merger
	n    uint32
	name string
	cons jetstream.Consumer
	log  *slog.Logger

	mu        sync.Mutex // guards the fields below
	batches   map[batchKey]*batch
	tomb      map[batchKey]time.Time
	pinID     string // Nats-Pin-Id of the messages we receive; "" when not pinned
	deadPins  map[string]bool
	nextOrder uint64
	decodeBuf []byte // scratch for decoding compressed chunk data in batch.addChunk

	held      atomic.Int64 // messages held un-acked
	lastPull  atomic.Int64 // unix nanos of the last pull request sent (fetch or keep-alive)
	pinned    atomic.Bool  // mirror of pinID != "" for the balancer
	release   atomic.Bool  // the balancer asks this partition to give its pin up
	releaseAt atomic.Int64 // unix nanos when release was asked
	lastFull  time.Time    // last ack-pending check (loop only)

	orphanAt time.Time // last orphan check (loop only)
	orphan   bool
	pullOut  *bus.Outage // the loop's pulls failing (no leader, no quorum): paced, logged once
	keepOut  *bus.Outage // the keeper's keep-alive pulls failing

	resyncWanted atomic.Bool // the keeper saw the consumer's leader change: the loop resyncs
	reconnects   uint64      // Bus.Reconnects when the loop last looked (loop only)

	abandoned <-chan jetstream.Msg // the pull in flight when the loop stopped, for Run to hand back
}

// receive calls handle for each message of a pull until the pull ends (true) or ctx is done
// (false: what the pull still delivers stays in msgs).
func receive(ctx context.Context, msgs <-chan jetstream.Msg, handle func(jetstream.Msg)) bool {
	for {
		select {
		case msg, ok := <-msgs:
			if !ok {
				return true
			}
			handle(msg)
		case <-ctx.Done():
			return false
		}
	}
}

// run is the partition loop: fetch while allowed, handle each message, keep the pin alive while
// paused. It returns when ctx is done; what is still held is handed back by Merger.Run.
func (p *partition) run(ctx context.Context) error {
	m := p.m
	for ctx.Err() == nil {
		// Asked to give the partition up: first finish what it holds (up to drainFor), so that
		// the next owner does not receive and parse those batches again.
		if p.release.Load() && (p.held.Load() == 0 || time.Since(time.Unix(0, p.releaseAt.Load())) >= m.drainFor) {
			p.giveUp(ctx, "rebalance")
			p.release.Store(false)
			continue
		}
		pinned := p.isPinned()
		if !pinned && !m.mayAcquire(ctx, p) {
			sleepCtx(ctx, m.pollWait)
			continue
		}
		if m.mem.over() {
			m.mem.relieve()
			if m.mem.over() { // nothing left to free: pause until commits free memory
				m.mem.waitUnder(ctx, m.pollWait)
				continue
			}
		}
		room := m.cfg.MaxAckPending - int(p.held.Load())
		if room <= 0 {
			p.ackPendingFull(ctx)
			sleepCtx(ctx, m.pollWait)
			continue
		}
		// Bytes in a pull are not accounted until handled, so every partition pulls at most its
		// share of the free budget (and never less than two messages' worth, never above 8 MiB).
		share := m.mem.free() / int64(max(len(m.parts), 1))
		maxBytes := int(min(max(share, 2*m.maxPayload+64<<10), 8<<20))
		if r := m.deps.Bus.Reconnects(); r != p.reconnects || p.resyncWanted.Load() {
			reason := "consumer leader changed"
			if r != p.reconnects {
				reason = "reconnected"
			}
			p.reconnects = r
			if p.resyncWanted.Swap(false) || p.owner() {
				p.resync(ctx, reason)
			}
		}
		p.lastPull.Store(time.Now().UnixNano())
		mb, err := p.cons.Fetch(min(room, 256),
			jetstream.FetchMaxBytes(maxBytes),
			jetstream.FetchMaxWait(m.pollWait),
			jetstream.FetchPriorityGroup(priorityGroup))
		if err != nil {
			if ctx.Err() == nil {
				p.pullOut.Wait(ctx, err)
			}
			continue
		}
		got := 0
		// Even when giving the partition up, hold what this fetch brings: a Nak now would come
		// straight back into the same pull request, burning deliveries. giveUp hands everything
		// back once the request is over.
		if !receive(ctx, mb.Messages(), func(msg jetstream.Msg) { got++; p.handle(ctx, msg) }) {
			// Shutting down: do not wait out an idle pull (up to pollWait). Run hands back
			// whatever it still delivers.
			p.abandoned = mb.Messages()
			return nil
		}
		switch err := mb.Error(); {
		case errors.Is(err, jetstream.ErrPinIDMismatch): // 423: another merger owns it now
			p.pullOut.OK()
			p.lostPin(ctx)
		case errors.Is(err, jetstream.ErrConsumerLeadershipChanged), errors.Is(err, jetstream.ErrServerShutdown):
			// 409: the consumer's leader moved (or its server is going away): pull again at once
			p.pullOut.OK()
			owner := p.owner()
			p.leaderChanged(ctx)
			if owner {
				p.resync(ctx, "consumer leader changed")
			}
		case err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled):
			p.pullOut.Wait(ctx, err)
		default:
			p.pullOut.OK()
		}
		if got == 0 && p.held.Load() > 0 && int(p.held.Load()) >= m.cfg.MaxAckPending/2 {
			p.ackPendingFull(ctx)
		}
	}
	return nil
}

// dropBatch closes b (already removed from p.batches), settles each held message with settle and
// releases its memory.
func (p *partition) dropBatch(b *batch, settle func(handle) error) {
	p.m.mem.forget(b)
	hs, mem := b.close()
	for _, h := range hs {
		if err := settle(h); err != nil {
			p.log.Warn("settle message", "seq", h.seq, "err", err)
		}
	}
	p.addHeld(-int64(len(hs)))
	p.m.mem.add(-mem)
}

func (p *partition) addHeld(n int64) {
	if n == 0 {
		return
	}
	p.held.Add(n)
	p.m.met.held.Add(float64(n))
}

// handle dispatches one message by its Sluice-Type header.
func (p *partition) handle(ctx context.Context, msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		p.log.Error("message without metadata", "subject", msg.Subject(), "err", err)
		return
	}
	h := handle{reply: msg.Reply(), seq: md.Sequence.Stream, delivered: md.NumDelivered}
	if pin := msg.Headers().Get(hdrPinID); pin != "" && !p.notePin(ctx, pin) {
		p.log.Debug("message of a lost ownership handed back", "seq", h.seq, "pin", pin)
		_ = p.m.ack.nak(h) // delivered under an ownership we no longer have
		return
	}
	switch t := msg.Headers().Get(bus.HdrType); t {
	case bus.TypeChunk:
		p.onChunk(ctx, h, msg)
	case bus.TypeComplete:
		p.onComplete(ctx, h, msg)
	case bus.TypeAbort:
		p.onAbort(ctx, h, msg)
	default:
		p.m.poisonMessage(ctx, h, msg, fmt.Sprintf("unknown %s %q", bus.HdrType, t), "", "")
	}
}

// batchForLocked returns the open batch of key, creating it; nil when key finished recently.
// p.mu is held.
func (p *partition) batchForLocked(key batchKey, partner, delim string) *batch {
	if b, ok := p.batches[key]; ok {
		return b
	}
	if _, done := p.tomb[key]; done {
		return nil
	}
	p.nextOrder++
	cc := p.m.commit.collectConfig()
	cc.early = p.m.early
	b := newBatch(key, p, p.nextOrder, partner, p.m.tables.options(partner, key.table, delim), cc, p.m.src, p.m.now())
	p.batches[key] = b
	p.m.mem.remember(b)
	return b
}

// settled reports whether key names no open batch and the ledger shows it done
// (ledger.Record.BatchSettled: committed or dead-lettered at that attempt, its archive committed,
// or a newer attempt started): a redelivery of finished work (an ack lost in a crash, or a consumer reset at
// start-up, bus.RecoverDeliveries). The key is then remembered as finished, so the batch's other
// messages are acked without a second lookup. A failed archive is not settled here: its other
// batches still commit, so that a retried dead letter can complete it.
func (p *partition) settled(ctx context.Context, key batchKey) bool {
	p.mu.Lock()
	_, open := p.batches[key]
	_, done := p.tomb[key]
	p.mu.Unlock()
	if open || done || !p.ledgerSettled(ctx, key) {
		return false
	}
	p.mu.Lock()
	p.tomb[key] = time.Now()
	p.mu.Unlock()
	return true
}

// ledgerSettled looks key up in the ledger (false without one, or on error).
func (p *partition) ledgerSettled(ctx context.Context, key batchKey) bool {
	l := p.m.deps.Ledger
	if l == nil {
		return false
	}
	// A lookup the cluster cannot answer now (the ledger's leader being elected) is retried:
	// answering "not settled" would send a finished batch's lone marker towards a dead letter.
	var rec ledger.Record
	err := p.m.retryCluster(ctx, func(ctx context.Context) error {
		var err error
		rec, _, err = l.Get(ctx, key.archive)
		if err != nil && !bus.Transient(err) {
			return backoff.Permanent(err)
		}
		return err
	})
	if err != nil || !rec.BatchSettled(key.attempt, key.table) {
		return false
	}
	p.log.Info("batch already settled, acking its redelivery", "table", key.table, "archive", key.archive,
		"attempt", key.attempt, "ledger_attempt", rec.Attempt, "ledger_state", rec.State)
	return true
}

func (p *partition) onChunk(ctx context.Context, h handle, msg jetstream.Msg) {
	var c sluicev1.Chunk
	if err := bus.DecodeChunk(msg.Data(), &c); err != nil { // c.Data aliases the message
		p.m.poisonMessage(ctx, h, msg, "decode chunk: "+err.Error(), msg.Headers().Get(bus.HdrArchive), msg.Headers().Get(bus.HdrTable))
		return
	}
	key := batchKey{archive: c.ArchiveId, attempt: c.Attempt, table: c.Table}
	if p.settled(ctx, key) {
		_ = p.m.ack.ack(h)
		return
	}
	p.mu.Lock()
	b := p.batchForLocked(key, c.Partner, c.Delimiter)
	if b == nil {
		p.mu.Unlock()
		_ = p.m.ack.ack(h) // a late duplicate of a finished batch
		return
	}
	if b.addHandle(h) {
		p.addHeld(1)
	}
	n, _ := b.addChunk(&c, h.seq, &p.decodeBuf)
	p.mu.Unlock()
	if b.collect.early != nil {
		n += b.writeEarly(c.ProcessDate, c.BatchId)
	}
	if n != 0 {
		p.m.mem.add(n)
		if p.m.mem.over() {
			p.m.mem.relieve()
		}
	}
}

func (p *partition) onAbort(ctx context.Context, h handle, msg jetstream.Msg) {
	var a sluicev1.BatchAborted
	if err := proto.Unmarshal(msg.Data(), &a); err != nil {
		p.m.poisonMessage(ctx, h, msg, "decode abort: "+err.Error(), msg.Headers().Get(bus.HdrArchive), msg.Headers().Get(bus.HdrTable))
		return
	}
	key := batchKey{archive: a.ArchiveId, attempt: a.Attempt, table: a.Table}
	p.mu.Lock()
	b := p.batches[key]
	delete(p.batches, key)
	p.tomb[key] = time.Now()
	p.mu.Unlock()
	chunks := 0
	if b != nil {
		chunks = len(b.orderedChunks())
		p.dropBatch(b, p.m.ack.ack)
	}
	if err := p.m.ack.ackSync(ctx, h); err != nil {
		p.log.Warn("ack abort", "batch", key.String(), "err", err)
	}
	p.m.met.aborted.Inc()
	p.log.Info("batch aborted", "table", key.table, "archive", key.archive, "attempt", key.attempt, "chunks", chunks, "reason", a.Reason)
}

func (p *partition) onComplete(ctx context.Context, h handle, msg jetstream.Msg) {
	var mk sluicev1.BatchComplete
	if err := proto.Unmarshal(msg.Data(), &mk); err != nil {
		p.m.poisonMessage(ctx, h, msg, "decode marker: "+err.Error(), msg.Headers().Get(bus.HdrArchive), msg.Headers().Get(bus.HdrTable))
		return
	}
	key := batchKey{archive: mk.ArchiveId, attempt: mk.Attempt, table: mk.Table}
	if p.settled(ctx, key) {
		if err := p.m.ack.ackSync(ctx, h); err != nil {
			p.log.Warn("ack settled marker", "batch", key.String(), "err", err)
		}
		return
	}
	received := p.m.now()
	p.mu.Lock()
	b := p.batchForLocked(key, mk.Partner, "")
	if b == nil {
		p.mu.Unlock()
		if err := p.m.ack.ackSync(ctx, h); err != nil {
			p.log.Warn("ack duplicate marker", "batch", key.String(), "err", err)
		}
		return
	}
	reason := b.poison
	if reason == "" {
		reason = b.check(&mk)
	}
	if reason != "" && b.poison == "" {
		// Chunks missing: after a crash they may have been acked by a commit whose marker ack
		// was lost (the marker then comes back without them). The ledger knows (recordCommitted).
		p.mu.Unlock()
		if p.ledgerSettled(ctx, key) {
			p.mu.Lock()
			delete(p.batches, key)
			p.tomb[key] = time.Now()
			p.mu.Unlock()
			p.dropBatch(b, p.m.ack.ack)
			if err := p.m.ack.ackSync(ctx, h); err != nil {
				p.log.Warn("ack settled marker", "batch", key.String(), "err", err)
			}
			return
		}
		p.mu.Lock()
	}
	if reason != "" {
		if b.poison == "" && int(h.delivered) < p.m.cfg.MaxDeliver {
			p.mu.Unlock()
			p.log.Info("batch incomplete, marker redelivery requested", "table", key.table, "archive", key.archive,
				"delivery", h.delivered, "max_deliver", p.m.cfg.MaxDeliver, "reason", reason)
			_ = p.m.ack.nakDelay(h, p.m.cfg.RetryDelay)
			return
		}
		delete(p.batches, key)
		p.mu.Unlock()
		if p.m.deadLetterBatch(ctx, b, h, msg, reason, nil) {
			p.mu.Lock()
			p.tomb[key] = time.Now()
			p.mu.Unlock()
		}
		return
	}
	b.committing = true
	if b.addHandle(h) {
		p.addHeld(1)
	}
	p.mu.Unlock()

	err := p.m.commitBatch(ctx, b, &mk, h, msg, received)

	p.mu.Lock()
	b.committing = false
	if err != nil && !errors.Is(err, errDeadLettered) {
		// Shutdown, or a dead letter that could not be published (everything was handed back
		// then); commitBatch retries every other failure. Merger.Run hands the batch back.
		if b.heldCount() == 0 {
			delete(p.batches, key)
			p.mu.Unlock()
			p.dropBatch(b, func(handle) error { return nil }) // nothing held: only its memory to free
			return
		}
		p.mu.Unlock()
		return
	}
	delete(p.batches, key)
	p.tomb[key] = time.Now()
	p.pruneTombLocked()
	p.mu.Unlock()
	p.dropBatch(b, func(handle) error { return nil }) // already acked
}

func (p *partition) pruneTombLocked() {
	if len(p.tomb) < 1024 {
		return
	}
	cut := time.Now().Add(-tombTTL)
	for k, t := range p.tomb {
		if t.Before(cut) {
			delete(p.tomb, k)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
