package bus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Recovered is one consumer whose outstanding deliveries RecoverDeliveries handed back.
type Recovered struct {
	Stream, Consumer string
	AckPending       int    // deliveries that were outstanding (held by a process that is gone)
	From             uint64 // stream sequence the consumer now delivers from (its ack floor + 1)
}

// RecoverDeliveries makes every durable consumer of sluice's streams deliver again, at once, what
// it had delivered without an ack: each consumer with ack-pending messages is reset to its ack
// floor (JetStream's consumer reset) and, when it is a pinned priority group, unpinned.
//
// It is only sound when no live client can hold any of those deliveries: an embedded server just
// started by the process that owns the state directory (statedir), before any stage runs. Then
// every outstanding delivery belongs to a process that died, and waiting out AckWait (and a
// pinned TTL) would only delay the work. A reset also re-delivers messages above the ack floor
// that were acked out of order; the stages treat them as redeliveries (the extractor skips an
// attempt the ledger shows finished, the merger a batch of an archive the ledger shows
// terminal, and a batch committed again writes the same objects).
func (b *Bus) RecoverDeliveries(ctx context.Context) ([]Recovered, error) {
	var out []Recovered
	for _, name := range []string{b.Subjects.EventsStream(), b.Subjects.RowsStream()} {
		st, err := b.JS.Stream(ctx, name)
		if err != nil {
			return out, fmt.Errorf("open stream %s: %w", name, err)
		}
		lister := st.ListConsumers(ctx)
		var infos []*jetstream.ConsumerInfo
		for ci := range lister.Info() {
			infos = append(infos, ci)
		}
		if err := lister.Err(); err != nil {
			return out, fmt.Errorf("list consumers of %s: %w", name, err)
		}
		for _, ci := range infos {
			if ci.Config.Durable == "" || ci.NumAckPending == 0 {
				continue
			}
			if ci.Config.PriorityPolicy == jetstream.PriorityPolicyPinned {
				for _, g := range ci.Config.PriorityGroups {
					_ = st.UnpinConsumer(ctx, ci.Name, g) // no pin: nothing to undo
				}
			}
			resp, err := b.JS.ResetConsumer(ctx, name, ci.Name)
			if err != nil {
				return out, fmt.Errorf("reset consumer %s > %s: %w", name, ci.Name, err)
			}
			out = append(out, Recovered{Stream: name, Consumer: ci.Name, AckPending: ci.NumAckPending, From: resp.ResetSeq})
		}
	}
	return out, nil
}
