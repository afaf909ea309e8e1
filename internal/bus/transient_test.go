package bus

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestTransient: what a retry may cure (the cluster briefly unable to answer or to place a
// replicated asset) against what it cannot (a bad request, a missing stream, a closed connection).
func TestTransient(t *testing.T) {
	api := func(code int, errCode jetstream.ErrorCode) error {
		return fmt.Errorf("create presence bucket: %w", &jetstream.APIError{Code: code, ErrorCode: errCode, Description: "test"})
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"no responders", fmt.Errorf("open stream: %w", nats.ErrNoResponders), true},
		{"deadline", context.DeadlineExceeded, true},
		{"503 unavailable", api(503, 10008), true},
		{"408", api(408, 0), true},
		{"no peers for placement (a peer offline)", api(400, errCodeNoPeers), true},
		{"the same message id being stored by another publisher", api(409, errCodeDupInProcess), true},
		{"bad request", api(400, jetstream.JSErrCodeBadRequest), false},
		{"stream not found", api(404, jetstream.JSErrCodeStreamNotFound), false},
		{"closed connection", nats.ErrConnectionClosed, false},
		{"other", errors.New("boom"), false},
		{"nil", nil, false},
	} {
		if got := Transient(tc.err); got != tc.want {
			t.Errorf("%s: Transient(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
