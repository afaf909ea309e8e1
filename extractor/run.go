package extractor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

const (
	// fetchWait is how long one pull request waits for a landed event.
	fetchWait = 5 * time.Second
	// handBackDeliveries is how many deliveries past MaxDeliver the server still makes, so an
	// archive handed back at shutdown during its last delivery is not stranded (see Run).
	handBackDeliveries = 2
	// settleTimeout bounds acking, naking and dead-lettering after the work is done.
	settleTimeout = 10 * time.Second
	// handBackDelay is the Nak delay of a shutdown hand-back when Run abandoned a pull request:
	// longer than the request can still wait on the server (see stopState).
	handBackDelay = fetchWait
)

// stopState tells the archives in progress how to hand their landed events back once Run stops.
//
// Cancelling ctx abandons the pull request in flight: Next returns at once, but the request
// stays on the server until it expires (fetchWait less 10%, counted from when the server got
// it), and the client unsubscribes the request's inbox only after Next has returned, from
// another goroutine. A landed event Nak'ed without delay before the server has seen that
// unsubscribe is redelivered into the abandoned request: the client drops it, and it comes
// back only after AckWait (60 s by default) instead of at once to the next process. So a
// hand-back waits until the loop pulls no more (no request can follow the Nak), and when a
// request was abandoned the Nak carries handBackDelay: the server reads a connection in
// order, so it got the request before the Nak, and the request has expired before the
// redelivery.
type stopState struct {
	stopped chan struct{} // closed once Run's loop sends no more pull requests
	delay   time.Duration // hand-back delay; written before stopped is closed
}

// Run consumes landed events with the durable pull consumer cfg.Consumer (explicit ack, at most
// cfg.Concurrency archives at once) until ctx is done. Each archive is acked once its outcome is
// published: ArchiveExtracted, or ArchiveFailed plus a dead letter for an archive that cannot be
// extracted (corrupt, truncated, over the limits) or that still fails on its MaxDeliver-th
// delivery. A transient failure before that is handed back with a delayed Nak.
//
// Shutdown is a stop, not a drain: cancelling ctx interrupts the archives in progress, which are
// handed back (Nak) with their batches left open; the next delivery completes them under the same
// Nats-Msg-Ids. So that a hand-back during the last delivery is not lost, the consumer's server-side
// MaxDeliver is cfg.MaxDeliver + 2, while the extractor itself treats delivery cfg.MaxDeliver and
// later as the last one. Run returns nil after a shutdown, once every archive it held is handed
// back.
func (e *Extractor) Run(ctx context.Context) error {
	cons, err := e.openConsumer(ctx)
	if err != nil {
		return err
	}
	e.log.Info("consuming landed archives", "consumer", e.cfg.Consumer, "concurrency", e.cfg.Concurrency,
		"chunk_bytes", e.cfg.ChunkBytes, "publish_window", e.cfg.PublishWindow, "chunk_codec", e.cfg.ChunkCodec)

	pulls := bus.NewOutage(e.log, "fetch landed events", 5*time.Second)
	slots := make(chan struct{}, e.cfg.Concurrency)
	stop := &stopState{stopped: make(chan struct{})}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop.stopped) // before wg.Wait: the archives in progress hand back after it
	for {
		select { // a pull request only when an archive can start right away
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		msg, err := e.next(ctx, cons)
		if msg == nil {
			<-slots
			if ctx.Err() != nil { // the pull request may still be waiting on the server
				stop.delay = handBackDelay
				return nil
			}
		} else {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				e.handle(ctx, msg, stop)
			}()
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// The server may be restarting, the consumer electing a leader: back off, and log
			// once per outage rather than once per attempt.
			if !pulls.Wait(ctx, err) {
				return nil
			}
		} else {
			pulls.OK()
		}
	}
}

// next pulls one message, waiting at most fetchWait; (nil, nil) when there was none.
func (e *Extractor) next(ctx context.Context, cons jetstream.Consumer) (jetstream.Msg, error) {
	fctx, cancel := context.WithTimeout(ctx, fetchWait)
	defer cancel()
	msg, err := cons.Next(jetstream.FetchContext(fctx))
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			return nil, nil
		}
		return nil, err
	}
	return msg, nil
}

// openConsumer opens the extractor's durable consumer of landed events, creating or updating it,
// and retries while JetStream cannot answer (a cluster node lost, a leader being elected), as
// the fetch loop does; an error that is not transient is returned at once, and so is the last
// one when ctx ends.
func (e *Extractor) openConsumer(ctx context.Context) (jetstream.Consumer, error) {
	out := bus.NewOutage(e.log, "extractor start", 5*time.Second)
	for {
		cons, err := e.openConsumerOnce(ctx)
		if err == nil {
			out.OK()
			return cons, nil
		}
		if !bus.Transient(err) || !out.Wait(ctx, err) {
			return nil, err
		}
	}
}

func (e *Extractor) openConsumerOnce(ctx context.Context) (jetstream.Consumer, error) {
	stream, err := e.js.Stream(ctx, e.subj.EventsStream())
	if err != nil {
		return nil, fmt.Errorf("extractor: events stream: %w", err)
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       e.cfg.Consumer,
		Description:   "sluice extractor: landed archives",
		FilterSubject: e.subj.Landed(),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       e.cfg.AckWait,
		MaxDeliver:    e.cfg.MaxDeliver + handBackDeliveries,
		MaxAckPending: e.cfg.Concurrency * 4,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("extractor: consumer %s: %w", e.cfg.Consumer, err)
	}
	return cons, nil
}

// handle extracts the archive of one landed event and settles the message.
func (e *Extractor) handle(ctx context.Context, msg jetstream.Msg, stop *stopState) {
	deliveries := uint64(1)
	var streamSeq uint64
	if md, err := msg.Metadata(); err == nil {
		deliveries, streamSeq = md.NumDelivered, md.Sequence.Stream
	}
	final := deliveries >= uint64(e.cfg.MaxDeliver)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	log := e.log.With("seq", streamSeq, "deliveries", deliveries)

	ev := &sluicev1.ArchiveLanded{}
	if err := proto.Unmarshal(msg.Data(), ev); err != nil || ev.ArchiveId == "" || ev.Uri == "" {
		reason := "landed event lacks archive_id or uri"
		if err != nil {
			reason = "undecodable landed event: " + err.Error()
		}
		log.Error("dropping landed event", "reason", reason)
		e.deadLetter(sctx, msg, ev, streamSeq, deliveries, reason)
		_ = msg.TermWithReason(reason)
		e.m.archives.WithLabelValues(outcomeDeadLettered).Inc()
		return
	}
	log = log.With("archive", ev.ArchiveId)

	if e.alreadyExtracted(ctx, ev) {
		log.Info("archive already extracted, acking redelivery")
		e.m.archives.WithLabelValues(outcomeSkipped).Inc()
		e.ack(sctx, msg, log)
		return
	}

	stopKeepAlive := e.keepAlive(msg)
	_, err := e.extract(ctx, ev, final, true)
	stopKeepAlive()
	// The settle deadline starts now: extracting a large archive can take longer than it.
	after, cancelAfter := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancelAfter()
	sctx = after

	var ae *ArchiveError
	switch {
	case err == nil:
		e.ack(sctx, msg, log)
	case errors.As(err, &ae) && ae.Final:
		// The failure is recorded (aborts, ArchiveFailed, ledger): dead-letter and stop.
		e.deadLetter(sctx, msg, ev, streamSeq, deliveries, ae.Reason)
		e.m.archives.WithLabelValues(outcomeDeadLettered).Inc()
		if terr := msg.TermWithReason("extractor: " + ae.Reason); terr != nil {
			log.Warn("terminate landed event", "err", terr)
		}
	default:
		// Shutdown, or a transient failure with deliveries left (or one that could not even be
		// recorded): hand it back; batches stay open for the next delivery.
		delay := min(time.Duration(deliveries)*2*time.Second, 30*time.Second)
		if ctx.Err() != nil {
			<-stop.stopped
			delay = stop.delay
		}
		if nerr := msg.NakWithDelay(delay); nerr != nil {
			log.Warn("nak landed event", "err", nerr)
		}
	}
}

func (e *Extractor) ack(ctx context.Context, msg jetstream.Msg, log interface{ Warn(string, ...any) }) {
	if err := msg.DoubleAck(ctx); err != nil {
		log.Warn("ack landed event", "err", err)
	}
}

// alreadyExtracted reports whether the ledger shows this attempt of the archive finished or
// superseded, i.e. the event is a redelivery (after a lost ack, or a consumer reset after a
// crash): the ledger holds a newer attempt, or this attempt extracted, committed or failed. A
// re-extraction (`sluice reextract`, replay=true) bumps the attempt and moves the record back to
// landed, so its own event still runs once.
func (e *Extractor) alreadyExtracted(ctx context.Context, ev *sluicev1.ArchiveLanded) bool {
	if e.ledger == nil {
		return false
	}
	rec, _, err := e.ledger.Get(ctx, ev.ArchiveId)
	if err != nil {
		return false
	}
	if rec.Attempt > ev.Attempt {
		return true
	}
	return rec.Attempt == ev.Attempt && (rec.State == ledger.Extracted || rec.State == ledger.Committed || rec.State == ledger.Failed)
}

// keepAlive tells the server the message is being worked on, every third of AckWait, until
// the returned function is called.
func (e *Extractor) keepAlive(msg jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(e.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = msg.InProgress()
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// deadLetter publishes a DeadLetter carrying the landed event.
func (e *Extractor) deadLetter(ctx context.Context, msg jetstream.Msg, ev *sluicev1.ArchiveLanded, seq, deliveries uint64, reason string) {
	hdrs := map[string]string{}
	for k, v := range msg.Headers() {
		if len(v) > 0 {
			hdrs[k] = v[0]
		}
	}
	dl := &sluicev1.DeadLetter{
		Stage: "extractor", Stream: e.subj.EventsStream(), Subject: msg.Subject(), StreamSeq: seq, Deliveries: deliveries,
		Reason: reason, ArchiveId: ev.GetArchiveId(), Payload: msg.Data(), Headers: hdrs, DeadUnixMs: e.now().UnixMilli(),
	}
	out, err := bus.EventMsg(e.subj.DLQ("extractor"), bus.ExtractorDeadLetterID(e.subj.EventsStream(), seq), "", dl)
	if err != nil {
		e.log.Error("encode dead letter", "err", err)
		return
	}
	if err := publishSync(ctx, e.js, out); err != nil {
		e.log.Error("publish dead letter", "archive", ev.GetArchiveId(), "err", err)
	}
}
