package merger

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// hdrPinID is the header JetStream sets on messages delivered to the pinned client.
const hdrPinID = "Nats-Pin-Id"

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

// keeper keeps the pin alive whenever the loop has not sent a pull request for keepEvery
// (handling a long fetch, committing, paused on memory or ack-pending): the server unpins a
// client that sends no request for PinnedTTL. It also notices a lost pin (423) early, and hands
// the partition's batches back so that the new owner receives them whole.
func (p *partition) keeper(ctx context.Context) error {
	return every(ctx, max(p.m.keepEvery/2, 10*time.Millisecond), func() {
		if p.isPinned() && time.Since(time.Unix(0, p.lastPull.Load())) >= p.m.keepEvery {
			p.keepAlive(ctx)
		}
	})
}

// keepAlive sends a pull request that cannot take a message (max_bytes 1): it renews the pin's
// TTL on the server and tells whether the pin was lost (423).
func (p *partition) keepAlive(ctx context.Context) {
	d := min(p.m.pollWait, 500*time.Millisecond)
	p.lastPull.Store(time.Now().UnixNano())
	mb, err := p.cons.Fetch(1, jetstream.FetchMaxBytes(1), jetstream.FetchMaxWait(d), jetstream.FetchPriorityGroup(priorityGroup))
	if err != nil {
		if ctx.Err() == nil {
			p.keepOut.Fail(err) // the keeper ticks on; a failing keep-alive is logged once
		}
		return
	}
	if !receive(ctx, mb.Messages(), func(msg jetstream.Msg) { // cannot happen: every message is larger than 1 byte
		p.log.Warn("keep-alive pull received a message; handing it back", "subject", msg.Subject())
		_ = msg.Nak()
	}) {
		return // shutting down: do not wait out the pull
	}
	switch err := mb.Error(); {
	case errors.Is(err, jetstream.ErrPinIDMismatch):
		p.keepOut.OK()
		p.lostPin(ctx)
	case errors.Is(err, jetstream.ErrConsumerLeadershipChanged), errors.Is(err, jetstream.ErrServerShutdown):
		p.keepOut.OK()
		if p.owner() {
			p.resyncWanted.Store(true) // the loop resets the consumer once it is not committing
		}
		p.leaderChanged(ctx)
	case err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled):
		p.keepOut.Fail(err)
	default:
		p.keepOut.OK()
	}
}

// leaderChanged handles a pull ended by "409 Leadership Change": the consumer's leader moved to
// another node (the old one stopped, stepped down, or lost quorum). nats-server keeps a pinned
// group's pin in the leader's memory only, so the new leader starts without one: the ownership
// is gone, even if this merger wins it again. It is handled as a lost pin — the batches held
// here (all but one being committed, whose acks reach the new leader) are handed back, so that
// whichever merger the next pin goes to receives them whole — and the loop pulls again at once,
// without a pin: the new leader pins the first pull it sees (here or on another merger). Our
// next request may still carry the old pin and be answered 423 first; lostPin is then a no-op.
// No commit is repeated by this: a batch being committed is not handed back, and a redelivered
// one that was committed is acked from the ledger (settled) or rewritten with the same bytes.
func (p *partition) leaderChanged(ctx context.Context) {
	p.log.Info("consumer leader changed; re-acquiring the partition")
	p.lostPin(ctx)
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

// resync makes the partition's consumer deliver again, now, everything it delivered without an
// ack, after an event that can lose deliveries in flight: the consumer's leader moved (the node
// leading it stopped; messages it had sent towards us may not have arrived), or our connection
// was re-established (what was on the wire to us is gone). Such a delivery would otherwise come
// back only after AckWait (60 s) — a marker lost that way holds its whole batch, un-committed,
// for that long. It runs on the partition loop, so no commit of this partition is in progress.
// The consumer is reset to its ack floor (bus.RecoverDeliveries uses the same reset at
// start-up); the batches held here stay (after a leader change leaderChanged has handed them
// back already): the redeliveries join them (one handle per stream sequence, one chunk per
// index), or, should the pin have moved, go to the new owner, and our next pull is answered 423
// and hands ours back. The pin is kept: after a mere reconnect the server still knows it, and a
// pin retired here while the server keeps delivering under it would have every message handed
// back as "of a lost ownership", round after round, until MaxDeliver.
//
// Only an unreplicated (R1) consumer is reset: there the server resets it at once, under the
// consumer's lock. A replicated one (a cluster) is left as it is, and what was lost in flight comes
// back after AckWait, because a reset of a consumer in use can lose messages there: nats-server
// (from 2.14, nats-io/nats-server#8062; 2.15.2 here) computes the sequence to reset to when asked
// but applies the reset only once it has quorum, and in between the leader goes on with its old
// state — a delivery to a pull waiting there (ours or another merger's), a skip past other
// partitions' new messages, the new deadline of an InProgress or a delayed Nak — each a
// replicated update that lands after the reset. It raises the replicated "delivered" sequence
// past messages the reset then hands out again, and the replicas do not record a redelivery below
// that sequence as pending. The leader's memory is right, so nothing shows until the next leader
// change: the new leader counts those messages as acked and never delivers them again. A CI run
// of the cluster-node-lost fault case failed that way: a reset between two leader changes of
// merger-p3, then the markers of two batches came back after AckWait, four times, without their
// chunks, and were dead-lettered. TestReplicatedConsumerResetLosesPending reproduces the server's
// side, TestLeaderChangeOnReplicatedConsumer checks the merger's.
//
// Only an owner resyncs (owner: pinned, or holding messages): a merger whose pull was merely
// waiting had nothing delivered to lose, and its reset would take back messages the owner holds
// — even the batch it is committing, which another merger would then commit a second time.
// Duplicates a reset makes are absorbed as for any redelivery (a finished batch is acked from
// its tomb or the ledger; a batch committed again writes the same objects and a de-duplicated
// event).
func (p *partition) resync(ctx context.Context, reason string) {
	var info *jetstream.ConsumerInfo
	err := p.m.retryCluster(ctx, func(ctx context.Context) error {
		var err error
		info, err = p.cons.Info(ctx)
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("look up consumer after "+reason+"; not resetting it: undelivered messages return after AckWait", "err", err)
		}
		return
	}
	if replicated(info) {
		p.log.Info("replicated consumer not reset: messages lost in flight return after AckWait",
			"reason", reason, "ack_wait", p.m.cfg.AckWait)
		return
	}
	err = p.m.retryCluster(ctx, func(ctx context.Context) error {
		_, err := p.m.deps.Bus.JS.ResetConsumer(ctx, p.m.deps.Bus.Subjects.RowsStream(), p.name)
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("reset consumer after "+reason+"; undelivered messages return after AckWait", "err", err)
		}
		return
	}
	p.log.Info("partition resynced: its un-acked messages are delivered again now", "reason", reason)
}

// replicated reports whether a consumer is replicated (R>1): resync does not reset those.
func replicated(info *jetstream.ConsumerInfo) bool {
	return info.Config.Replicas > 1 || (info.Cluster != nil && len(info.Cluster.Replicas) > 0)
}

// owner reports whether deliveries of this partition were being made to this merger: it is
// pinned, or holds messages.
func (p *partition) owner() bool { return p.isPinned() || p.held.Load() > 0 }

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
