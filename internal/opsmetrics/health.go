package opsmetrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Checks are the readiness checks of one process: /readyz answers 200 when every one passes and
// 503 with the reasons of those that do not. Stages add theirs as they start.
type Checks struct {
	mu   sync.Mutex // leaf: list
	list []check
}

type check struct {
	name string
	fn   func(context.Context) error
}

// Add adds a named check; fn returns nil when ready, else why not.
func (c *Checks) Add(name string, fn func(context.Context) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.list = append(c.list, check{name, fn})
}

// Ready runs every check (in the order added) and joins the failures as "name: reason".
func (c *Checks) Ready(ctx context.Context) error {
	c.mu.Lock()
	list := slices.Clone(c.list)
	c.mu.Unlock()
	var errs []error
	for _, ch := range list {
		if err := ch.fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ch.name, err))
		}
	}
	return errors.Join(errs...)
}

// ReadyHandler serves /readyz: 200 "ready" or 503 with one failing check per line. A check has
// at most timeout (the JetStream ones answer from the collector's snapshot, refreshed when stale).
func ReadyHandler(c *Checks, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := c.Ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready\n"+err.Error()+"\n")
			return
		}
		io.WriteString(w, "ready\n")
	})
}

// Connected is the check that the NATS connection is up.
func Connected(nc *nats.Conn) func(context.Context) error {
	return func(context.Context) error {
		if !nc.IsConnected() {
			return fmt.Errorf("nats %s", strings.ToLower(nc.Status().String()))
		}
		return nil
	}
}

// StreamsPresent is the check that the server holds every stream sluice needs.
func (j *JetStream) StreamsPresent(ctx context.Context) error {
	s, err := j.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("read stream information: %w", err)
	}
	if len(s.Missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(s.Missing, ", "))
	}
	return nil
}

// ConsumersPresent is the check that the durable consumers named (among JetStreamOptions.Durables)
// exist on stream: the stage that creates them has set itself up (after start-up recovery, see
// bus.RecoverDeliveries).
func (j *JetStream) ConsumersPresent(stream string, names ...string) func(context.Context) error {
	return func(ctx context.Context) error {
		s, err := j.Snapshot(ctx)
		if err != nil {
			return fmt.Errorf("read consumer information: %w", err)
		}
		have := map[string]bool{}
		for _, c := range s.Consumers {
			if c.Stream == stream {
				have[c.Name] = true
			}
		}
		var missing []string
		for _, n := range names {
			if !have[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("consumers not created yet on %s: %s", stream, strings.Join(missing, ", "))
		}
		return nil
	}
}
