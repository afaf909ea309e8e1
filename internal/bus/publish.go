package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
)

// ErrEncode marks a message that could not be encoded (proto.Marshal failed, e.g. a string
// field that is not UTF-8): publishing it again cannot succeed.
var ErrEncode = errors.New("encode")

// EventOption adds a header to an event.
type EventOption func(nats.Header)

// WithTable sets the Sluice-Table header (when table is not empty).
func WithTable(table string) EventOption {
	return func(h nats.Header) {
		if table != "" {
			h.Set(HdrTable, table)
		}
	}
}

// WithHeader sets header key to value.
func WithHeader(key, value string) EventOption {
	return func(h nats.Header) { h.Set(key, value) }
}

// EventMsg is the message PublishEvent stores: m encoded on subject, with the Nats-Msg-Id id,
// the Sluice-Archive header (when archive is not empty) and what opts add. A stage that publishes
// with a retry policy of its own (the extractor) builds its events here.
func EventMsg(subject string, id MessageID, archive string, m proto.Message, opts ...EventOption) (*nats.Msg, error) {
	data, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrEncode, subject, err)
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set(nats.MsgIdHdr, string(id))
	if archive != "" {
		msg.Header.Set(HdrArchive, archive)
	}
	for _, o := range opts {
		o(msg.Header)
	}
	return msg, nil
}

// PublishEvent stores one event (or dead letter) and waits for the stream's ack; the id makes a
// repeat inside the duplicate window store nothing. An error wrapping ErrEncode is permanent;
// any other may be retried with the same id. It sets no timeout of its own: the caller's ctx does.
func (b *Bus) PublishEvent(ctx context.Context, subject string, id MessageID, archive string, m proto.Message, opts ...EventOption) error {
	msg, err := EventMsg(subject, id, archive, m, opts...)
	if err != nil {
		return err
	}
	// An attempt lasts at most publishAttempt: a publish whose ack was lost (the stream's leader
	// stopped, the connection moved to another node) is sent again under the same Nats-Msg-Id,
	// which the stream de-duplicates, instead of waiting out the caller's whole deadline. Without
	// a deadline: one attempt (the client's default timeout).
	if _, ok := ctx.Deadline(); !ok {
		if _, err := b.JS.PublishMsg(ctx, msg); err != nil {
			return fmt.Errorf("publish %s %s: %w", subject, id, err)
		}
		return nil
	}
	for {
		actx, cancel := context.WithTimeout(ctx, publishAttempt)
		_, err := b.JS.PublishMsg(actx, msg)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !Transient(err) {
			return fmt.Errorf("publish %s %s: %w", subject, id, err)
		}
		b.log.Debug("publish event again", "subject", subject, "id", string(id), "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("publish %s %s: %w", subject, id, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// publishAttempt bounds one attempt of PublishEvent.
const publishAttempt = 5 * time.Second

// RowsHeader is the header of a rows message: its Sluice-Type (TypeChunk, TypeComplete or
// TypeAbort), archive, table and id.
func RowsHeader(typ, archive, table string, id MessageID) nats.Header {
	return nats.Header{
		HdrType:       {typ},
		HdrArchive:    {archive},
		HdrTable:      {table},
		nats.MsgIdHdr: {string(id)},
	}
}
