package merger

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// handle is what the merger keeps of a held message: its ack subject and position, never its
// payload. A released chunk therefore costs a few dozen bytes of memory until it is acked.
type handle struct {
	reply     string // the JetStream ack subject
	seq       uint64 // stream sequence
	delivered uint64 // NumDelivered when received
}

// acker sends acknowledgements for handles over one connection. Acks, Naks, Terms and
// InProgress are fire-and-forget publishes (the JetStream ack protocol); ackSync waits for the
// server's confirmation. Because the server processes one connection's messages in order, a
// confirmed ackSync also means every ack published before it on that connection was processed.
type acker struct{ nc *nats.Conn }

var (
	ackAck      = []byte("+ACK")
	ackNak      = []byte("-NAK")
	ackProgress = []byte("+WPI")
	ackTerm     = []byte("+TERM")
)

func (a acker) ack(h handle) error        { return a.nc.Publish(h.reply, ackAck) }
func (a acker) nak(h handle) error        { return a.nc.Publish(h.reply, ackNak) }
func (a acker) inProgress(h handle) error { return a.nc.Publish(h.reply, ackProgress) }

func (a acker) nakDelay(h handle, d time.Duration) error {
	if d <= 0 {
		return a.nak(h)
	}
	return a.nc.Publish(h.reply, fmt.Appendf(nil, "%s {\"delay\": %d}", ackNak, d.Nanoseconds()))
}

func (a acker) term(h handle, reason string) error {
	if reason == "" {
		return a.nc.Publish(h.reply, ackTerm)
	}
	return a.nc.Publish(h.reply, fmt.Appendf(nil, "%s %s", ackTerm, reason))
}

// ackSync acks and waits for the server's confirmation (JetStream "double ack").
func (a acker) ackSync(ctx context.Context, h handle) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if _, err := a.nc.RequestWithContext(ctx, h.reply, ackAck); err != nil {
		return fmt.Errorf("ack %d: %w", h.seq, err)
	}
	return nil
}
