package merger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// priorityGroup is the priority group of every partition consumer.
const priorityGroup = "sluice"

// hdrPinID is the header JetStream sets on messages delivered to the pinned client.
const hdrPinID = "Nats-Pin-Id"

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

// handBackAbandoned Naks what the pull abandoned at shutdown has delivered so far, without
// waiting for more. A message the server sends into it later is redelivered after AckWait, as
// after a crash; the unpin that follows makes the server end the request.
func (p *partition) handBackAbandoned() {
	if p.abandoned == nil {
		return
	}
	for {
		select {
		case msg, ok := <-p.abandoned:
			if !ok {
				return
			}
			_ = msg.Nak()
		default:
			return
		}
	}
}

// orphaned reports (checking the consumer at most every two heartbeats) whether the partition has
// messages waiting but no pinned merger: its preferred merger is not pulling on it.
func (p *partition) orphaned(ctx context.Context) bool {
	if time.Since(p.orphanAt) < 2*p.m.hbEvery {
		return p.orphan
	}
	p.orphanAt = time.Now()
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := p.cons.Info(ictx)
	if err != nil {
		return p.orphan
	}
	pinned := false
	for _, g := range info.PriorityGroups {
		if g.Group == priorityGroup && g.PinnedClientID != "" {
			pinned = true
		}
	}
	p.orphan = !pinned && (info.NumPending > 0 || info.NumAckPending > 0)
	return p.orphan
}

func (p *partition) isPinned() bool { return p.pinned.Load() }

func (p *partition) setPin(id string) {
	p.pinID = id
	p.pinned.Store(id != "")
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
			if m.mem.over() { // nothing left to spill: pause until commits free memory
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
		p.lastPull.Store(time.Now().UnixNano())
		mb, err := p.cons.Fetch(min(room, 256),
			jetstream.FetchMaxBytes(maxBytes),
			jetstream.FetchMaxWait(m.pollWait),
			jetstream.FetchPriorityGroup(priorityGroup))
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("fetch", "err", err)
				sleepCtx(ctx, m.pollWait)
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
		case errors.Is(err, jetstream.ErrPinIDMismatch):
			p.lostPin(ctx)
		case err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled):
			p.log.Debug("fetch ended", "err", err)
			sleepCtx(ctx, m.pollWait/4)
		}
		if got == 0 && p.held.Load() > 0 && int(p.held.Load()) >= m.cfg.MaxAckPending/2 {
			p.ackPendingFull(ctx)
		}
	}
	return nil
}

// keeper keeps the pin alive whenever the loop has not sent a pull request for keepEvery
// (handling a long fetch, committing, paused on memory or ack-pending): the server unpins a
// client that sends no request for PinnedTTL. It also notices a lost pin (423) early, and hands
// the partition's batches back so that the new owner receives them whole.
func (p *partition) keeper(ctx context.Context) error {
	t := time.NewTicker(max(p.m.keepEvery/2, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if !p.isPinned() || time.Since(time.Unix(0, p.lastPull.Load())) < p.m.keepEvery {
			continue
		}
		p.keepAlive(ctx)
	}
}

// keepAlive sends a pull request that cannot take a message (max_bytes 1): it renews the pin's
// TTL on the server and tells whether the pin was lost (423).
func (p *partition) keepAlive(ctx context.Context) {
	d := min(p.m.pollWait, 500*time.Millisecond)
	p.lastPull.Store(time.Now().UnixNano())
	mb, err := p.cons.Fetch(1, jetstream.FetchMaxBytes(1), jetstream.FetchMaxWait(d), jetstream.FetchPriorityGroup(priorityGroup))
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("keep-alive pull", "err", err)
		}
		return
	}
	if !receive(ctx, mb.Messages(), func(msg jetstream.Msg) { // cannot happen: every message is larger than 1 byte
		p.log.Warn("keep-alive pull received a message; handing it back", "subject", msg.Subject())
		_ = msg.Nak()
	}) {
		return // shutting down: do not wait out the pull
	}
	if errors.Is(mb.Error(), jetstream.ErrPinIDMismatch) {
		p.lostPin(ctx)
	}
}

// lostPin hands back every batch not being committed: another merger owns the partition now
// and must receive all of a batch's messages.
func (p *partition) lostPin(ctx context.Context) {
	p.mu.Lock()
	was := p.pinID
	p.retirePinLocked()
	p.mu.Unlock()
	if was != "" {
		p.log.Info("lost partition ownership")
	}
	p.handBack(ctx, "lost ownership", 0, false)
}

// retirePinLocked forgets the current pin and remembers it as dead: a message still carrying it
// (delivered before the loss, handled after) is handed back instead of being held. p.mu is held.
func (p *partition) retirePinLocked() {
	if p.pinID != "" {
		if len(p.deadPins) > 64 {
			clear(p.deadPins)
		}
		p.deadPins[p.pinID] = true
	}
	p.setPin("")
}

// notePin records the pin of a received message and reports whether the message may be held:
// false for a message of an ownership already given up or lost. A new pin after another one
// means ownership was lost and regained meanwhile, so batches held from before are handed back.
func (p *partition) notePin(ctx context.Context, id string) bool {
	p.mu.Lock()
	if p.deadPins[id] {
		p.mu.Unlock()
		return false
	}
	old := p.pinID
	if old != id {
		p.retirePinLocked()
	}
	p.setPin(id)
	p.mu.Unlock()
	switch {
	case old == "":
		p.log.Info("partition owned")
	case old != id:
		p.log.Info("partition ownership changed")
		p.handBack(ctx, "ownership changed", 0, false)
	}
	return true
}

// giveUp hands everything back and releases the pin so that another merger takes the partition.
func (p *partition) giveUp(ctx context.Context, reason string) {
	p.mu.Lock()
	pin := p.pinID
	p.retirePinLocked()
	p.mu.Unlock()
	p.handBack(ctx, reason, 0, false)
	if pin == "" {
		return
	}
	p.unpin(ctx, pin)
	p.log.Info("released partition", "reason", reason)
}

// unpin asks the server to drop the pin, if it is still ours.
func (p *partition) unpin(ctx context.Context, pin string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := p.cons.Info(ctx)
	if err != nil {
		return
	}
	for _, g := range info.PriorityGroups {
		if g.Group == priorityGroup && g.PinnedClientID == pin {
			if err := p.m.stream.UnpinConsumer(ctx, p.name, priorityGroup); err != nil {
				p.log.Warn("unpin", "err", err)
			}
		}
	}
}

// handBack Naks (after delay) every message of every open batch (all, or all but the one being
// committed) and drops their state, so that they are redelivered whole, to us or another merger.
func (p *partition) handBack(ctx context.Context, reason string, delay time.Duration, includeCommitting bool) {
	p.mu.Lock()
	var drop []*batch
	for k, b := range p.batches {
		if b.committing && !includeCommitting {
			continue
		}
		drop = append(drop, b)
		delete(p.batches, k)
	}
	p.mu.Unlock()
	for _, b := range drop {
		p.dropBatch(b, func(h handle) error { return p.m.ack.nakDelay(h, delay) })
		p.m.met.handedBack.Inc()
		p.log.Debug("batch handed back", "batch", b.key.String(), "table", b.key.table, "archive", b.key.archive, "reason", reason)
	}
	if len(drop) > 0 {
		p.log.Info("handed batches back", "batches", len(drop), "reason", reason)
	}
}

// dropBatch closes b (already removed from p.batches), settles each held message with settle and
// releases its memory.
func (p *partition) dropBatch(b *batch, settle func(handle) error) {
	p.m.mem.forget(b)
	hs, mem, spilled := b.close()
	for _, h := range hs {
		if err := settle(h); err != nil {
			p.log.Warn("settle message", "seq", h.seq, "err", err)
		}
	}
	p.addHeld(-int64(len(hs)))
	p.m.mem.add(-mem)
	p.m.met.spillBytes.Sub(float64(spilled))
}

func (p *partition) addHeld(n int64) {
	if n == 0 {
		return
	}
	p.held.Add(n)
	p.m.met.held.Add(float64(n))
}

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
	var buf []byte
	for _, c := range b.orderedChunks() {
		data, nbuf, err := b.stored(c, buf)
		buf = nbuf
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
	b := newBatch(key, p, p.nextOrder, partner, p.m.tables.options(partner, key.table, delim), p.m.now())
	p.batches[key] = b
	p.m.mem.remember(b)
	return b
}

// settled reports whether key names no open batch and the ledger shows it done
// (ledger.Record.BatchSettled: committed at that attempt, its archive committed, or a newer
// attempt started): a redelivery of finished work (an ack lost in a crash, or a consumer reset at
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
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	rec, _, err := l.Get(lctx, key.archive)
	cancel()
	if err != nil || !rec.BatchSettled(key.attempt, key.table) {
		return false
	}
	p.log.Info("batch already settled, acking its redelivery", "table", key.table, "archive", key.archive,
		"attempt", key.attempt, "ledger_attempt", rec.Attempt, "ledger_state", rec.State)
	return true
}

func (p *partition) onChunk(ctx context.Context, h handle, msg jetstream.Msg) {
	var c sluicev1.Chunk
	if err := proto.Unmarshal(msg.Data(), &c); err != nil {
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
	n, _ := b.addChunk(&c, &p.decodeBuf)
	p.mu.Unlock()
	if n > 0 {
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
		if p.m.deadLetterBatch(ctx, b, h, msg, reason) {
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
