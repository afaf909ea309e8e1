package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// readIdle: no message for this long, ReadOrdered asks the server whether any is pending.
const readIdle = 2 * time.Second

// ReadOrdered reads a stream with an ephemeral ordered consumer (no acks: a read, never a
// consumption) and hands fn each message in stream order, up to and including sequence end
// (0: the stream's last sequence when the read starts). It returns when fn says stop, end is
// reached, or nothing is pending on the consumer any more. opts tune the pull (e.g. max bytes).
// A random suffix is added to cc.NamePrefix (the client numbers ordered consumers from 1, so two
// reads with one prefix would otherwise attach to the same server-side consumer); the consumer
// is deleted when the read ends.
func (b *Bus) ReadOrdered(ctx context.Context, stream string, cc jetstream.OrderedConsumerConfig, end uint64,
	opts []jetstream.PullMessagesOpt, fn func(jetstream.Msg, *jetstream.MsgMetadata) (more bool, err error)) error {
	if end == 0 {
		s, err := b.JS.Stream(ctx, stream)
		if err != nil {
			return fmt.Errorf("open stream %s: %w", stream, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			return fmt.Errorf("stream %s info: %w", stream, err)
		}
		if end = info.State.LastSeq; end == 0 {
			return nil
		}
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	cc.NamePrefix = strings.TrimPrefix(cc.NamePrefix+"-"+hex.EncodeToString(rnd[:]), "-")
	cons, err := b.JS.OrderedConsumer(ctx, stream, cc)
	if err != nil {
		return fmt.Errorf("create ordered consumer on %s: %w", stream, err)
	}
	it, err := cons.Messages(opts...)
	if err != nil {
		return fmt.Errorf("read stream %s: %w", stream, err)
	}
	defer func() {
		it.Stop()
		if ci := cons.CachedInfo(); ci != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = b.JS.DeleteConsumer(dctx, stream, ci.Name) // else the server drops it when inactive
			cancel()
		}
	}()
	if info, err := cons.Info(ctx); err == nil && info.NumPending == 0 {
		return nil
	}
	for {
		nctx, cancel := context.WithTimeout(ctx, readIdle)
		msg, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) {
				if info, ierr := cons.Info(ctx); ierr == nil && info.NumPending == 0 {
					return nil
				}
				continue
			}
			return fmt.Errorf("read stream %s: %w", stream, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			continue
		}
		if md.Sequence.Stream > end {
			return nil
		}
		more, err := fn(msg, md)
		if err != nil {
			return err
		}
		if !more || md.Sequence.Stream >= end || md.NumPending == 0 {
			return nil
		}
	}
}
