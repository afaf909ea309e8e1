package bustest

import (
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
)

// CountAcks counts the acknowledgements of body (e.g. "+WPI", an InProgress) that nc's server
// relays from any client from now until the test ends: it subscribes to every JetStream ack
// subject and flushes, so an ack sent after the call is counted.
func CountAcks(t testing.TB, nc *nats.Conn, body string) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	sub, err := nc.Subscribe("$JS.ACK.>", func(m *nats.Msg) {
		if string(m.Data) == body {
			n.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &n
}
