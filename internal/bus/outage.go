package bus

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Outage paces and logs the retries of one repeated operation (a stage's fetch loop, a scan)
// while NATS or JetStream is unavailable: a node restarting, a stream or consumer electing a new
// leader, a cluster without quorum for a while. It logs once per outage — at the first failure
// and at the recovery, with how long it lasted and how many attempts failed — not once per
// attempt, and the wait between attempts grows exponentially (cenkalti/backoff, 100 ms doubling
// up to Max, jittered). It belongs to the one goroutine that runs the operation: no lock.
type Outage struct {
	log   *slog.Logger
	what  string
	bo    *backoff.ExponentialBackOff
	since time.Time // zero while the operation succeeds
	fails int
	first error
}

// NewOutage returns an Outage for the operation what (a log message: "fetch landed events"),
// waiting at most max between attempts (default 5 s).
func NewOutage(log *slog.Logger, what string, max time.Duration) *Outage {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if max <= 0 {
		max = 5 * time.Second
	}
	return &Outage{log: log, what: what, bo: backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.3),
		backoff.WithMaxInterval(max),
		backoff.WithMaxElapsedTime(0), // never gives up: the stage keeps retrying
	)}
}

// Fail records a failed attempt and returns how long to wait before the next one. The first
// failure of an outage is logged (warn); the following ones only at debug level.
func (o *Outage) Fail(err error) time.Duration {
	o.fails++
	if o.since.IsZero() {
		o.since, o.first = time.Now(), err
		o.bo.Reset()
		o.log.Warn(o.what+" failing; retrying with backoff until it recovers", "err", err, "transient", Transient(err))
	} else {
		o.log.Debug(o.what+" still failing", "err", err, "attempt", o.fails)
	}
	return o.bo.NextBackOff()
}

// Wait is Fail followed by the wait it returns (or less when ctx ends); it reports whether ctx
// is still live.
func (o *Outage) Wait(ctx context.Context, err error) bool {
	t := time.NewTimer(o.Fail(err))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// OK records a successful attempt; after an outage it logs the recovery and returns its length
// (0 when there was none).
func (o *Outage) OK() time.Duration {
	if o.since.IsZero() {
		return 0
	}
	d := time.Since(o.since)
	o.log.Info(o.what+" recovered", "outage", d.Round(time.Millisecond).String(), "failed_attempts", o.fails, "first_err", o.first)
	o.since, o.fails, o.first = time.Time{}, 0, nil
	return d
}

// Failing reports whether an outage is in progress.
func (o *Outage) Failing() bool { return !o.since.IsZero() }

// Retry runs fn until it succeeds, fails with an error that is not Transient, or ctx ends; the
// failures in between are paced and logged once by an Outage named what.
func Retry(ctx context.Context, log *slog.Logger, what string, fn func(context.Context) error) error {
	var out *Outage
	for {
		err := fn(ctx)
		if err == nil || !Transient(err) || ctx.Err() != nil {
			if out != nil && err == nil {
				out.OK()
			}
			return err
		}
		if out == nil {
			out = NewOutage(log, what, 5*time.Second)
		}
		if !out.Wait(ctx, err) {
			return err
		}
	}
}

// errCodeNoPeers is nats-server's JSClusterNoPeersErr ("no suitable peers for placement, peer
// offline"): a replicated stream, bucket or consumer cannot be placed while its peers are down.
const errCodeNoPeers jetstream.ErrorCode = 10005

// errCodeDupInProcess is nats-server's JSStreamDuplicateMessageConflict ("duplicate message id is
// in process", 409): a replicated stream is storing a message with the same Nats-Msg-Id that
// another process published a moment before (two summarizers writing the same date's event).
// Publishing again shortly is answered as a duplicate, which is success.
const errCodeDupInProcess jetstream.ErrorCode = 10158

// Transient reports whether err is one a retry may cure: the server or the cluster is briefly
// unavailable (no responders while a leader is elected or a node restarts, a timeout, a
// disconnected client, a JetStream API answering 5xx, a replicated asset that cannot be placed
// while peers are offline, a pull ended by a leader change or a server shutdown, a message id
// another publisher is storing). A bad request, a missing stream and a closed connection are not.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	switch {
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, jetstream.ErrNoHeartbeat), errors.Is(err, jetstream.ErrServerShutdown),
		errors.Is(err, jetstream.ErrConsumerLeadershipChanged), errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, jetstream.ErrAsyncPublishTimeout):
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 408 || apiErr.Code >= 500 || apiErr.ErrorCode == errCodeNoPeers || apiErr.ErrorCode == errCodeDupInProcess
	}
	return false
}
