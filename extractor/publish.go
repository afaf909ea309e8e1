package extractor

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/internal/crashpoint"
)

const (
	// publishAckTimeout bounds the wait for one async publish's ack (jetstream option).
	publishAckTimeout = 30 * time.Second
	// publishAttemptTimeout bounds one synchronous publish attempt.
	publishAttemptTimeout = 10 * time.Second
	// publishRetries is how many synchronous attempts a failed publish gets before the
	// extraction gives up with a transient error.
	publishRetries = 4
)

// bufPool hands out the chunk buffers. Its capacity is the publish window: a buffer is held
// from the moment the chunker starts filling it until the server acknowledged the chunk, so
// PublishWindow × ChunkBytes bounds chunk memory across all concurrent archives. Buffers are
// allocated on first use and dropped by trim when the extractor goes idle.
type bufPool struct {
	size int
	ch   chan []byte // holds exactly cap(ch) tokens; nil = not allocated
}

func newBufPool(window, size int) *bufPool {
	p := &bufPool{size: size, ch: make(chan []byte, window)}
	for range window {
		p.ch <- nil
	}
	return p
}

func (p *bufPool) get(ctx context.Context) ([]byte, error) {
	select {
	case b := <-p.ch:
		if b == nil {
			b = make([]byte, p.size)
		}
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// put returns a token; nil gives back the slot without the memory (a buffer that may still be
// referenced elsewhere must never be reused).
func (p *bufPool) put(b []byte) { p.ch <- b }

// trim releases the memory of the buffers currently in the pool.
func (p *bufPool) trim() {
	for range cap(p.ch) {
		select {
		case b := <-p.ch:
			_ = b
			p.ch <- nil
		default:
			return
		}
	}
}

// publisher publishes one archive's chunks asynchronously and collects their acks in order in
// a goroutine it owns. A chunk whose publish fails is published again synchronously with the
// same Nats-Msg-Id (the stream de-duplicates); when that fails too the error sticks and every
// later publish returns it.
type publisher struct {
	js     jetstream.JetStream
	pool   *bufPool
	queue  chan pubItem
	done   chan struct{}
	ctx    context.Context // cancelled to abandon waiting (shutdown)
	cancel context.CancelFunc
	onAck  func()

	mu  sync.Mutex
	err error
}

type pubItem struct {
	msg     *nats.Msg
	fut     jetstream.PubAckFuture
	perr    error // PublishMsgAsync failed at once
	buf     []byte
	barrier chan struct{}
}

func newPublisher(js jetstream.JetStream, pool *bufPool, onAck func()) *publisher {
	ctx, cancel := context.WithCancel(context.Background())
	p := &publisher{js: js, pool: pool, queue: make(chan pubItem, cap(pool.ch)+1), done: make(chan struct{}),
		ctx: ctx, cancel: cancel, onAck: onAck}
	go p.collect()
	return p
}

func (p *publisher) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *publisher) setErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

// publish sends msg asynchronously. buf (the memory behind msg.Data) goes back to the pool once
// the chunk is stored.
func (p *publisher) publish(msg *nats.Msg, buf []byte) error {
	if err := p.failed(); err != nil {
		p.pool.put(buf)
		return err
	}
	fut, err := p.js.PublishMsgAsync(msg)
	crashpoint.Hit("extractor.chunk") // fault tests only (SLUICE_CRASH_AT); no-op otherwise
	// The queue holds more items than there are buffers, so this never blocks for long.
	p.queue <- pubItem{msg: msg, fut: fut, perr: err, buf: buf}
	return nil
}

// flush waits until every chunk published so far is stored, and returns the first failure.
func (p *publisher) flush(ctx context.Context) error {
	b := make(chan struct{})
	select {
	case p.queue <- pubItem{barrier: b}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-b:
	case <-ctx.Done():
		return ctx.Err()
	}
	return p.failed()
}

// close stops the collector after it has handled everything queued. abandon=true stops waiting
// for acks: buffers still in flight are not reused (their slots come back empty).
func (p *publisher) close(abandon bool) {
	if abandon {
		p.cancel()
	}
	close(p.queue)
	<-p.done
	p.cancel()
}

func (p *publisher) collect() {
	defer close(p.done)
	for it := range p.queue {
		if it.barrier != nil {
			close(it.barrier)
			continue
		}
		if p.await(it) {
			p.pool.put(it.buf)
		} else {
			p.pool.put(nil)
		}
	}
}

// await waits for one chunk's ack, republishing it on failure. It returns whether the buffer is
// free for reuse (false when it gave up waiting while the client might still send it).
func (p *publisher) await(it pubItem) bool {
	err := it.perr
	if it.fut != nil {
		select {
		case <-it.fut.Ok():
			p.onAck()
			return true
		case err = <-it.fut.Err():
		case <-p.ctx.Done():
			p.setErr(p.ctx.Err())
			return false
		}
	}
	if p.failed() != nil {
		return true // the extraction is failing anyway; do not hold the line retrying
	}
	if err = publishSync(p.ctx, p.js, it.msg); err != nil {
		p.setErr(&transientError{what: "publish chunk " + it.msg.Header.Get(nats.MsgIdHdr), err: err})
		return true
	}
	p.onAck()
	return true
}

// publishSync publishes msg and waits for its ack, retrying with backoff. msg carries a
// Nats-Msg-Id, so a retry of a publish that was in fact stored stores nothing twice.
func publishSync(ctx context.Context, js jetstream.JetStream, msg *nats.Msg) error {
	var err error
	wait := 200 * time.Millisecond
	for attempt := 1; attempt <= publishRetries; attempt++ {
		actx, cancel := context.WithTimeout(ctx, publishAttemptTimeout)
		_, err = js.PublishMsg(actx, msg)
		cancel()
		if err == nil || errors.Is(err, nats.ErrMaxPayload) || ctx.Err() != nil {
			break
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		wait *= 2
	}
	return err
}
