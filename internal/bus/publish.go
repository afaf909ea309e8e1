package bus

import (
	"context"
	"errors"
	"fmt"

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
	if _, err := b.JS.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish %s %s: %w", subject, id, err)
	}
	return nil
}

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
