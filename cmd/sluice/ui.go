package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/pipeline"
	"github.com/sluice-dev/sluice/internal/statedir"
	"github.com/sluice-dev/sluice/internal/ui"
)

// cmdUI serves the read-only dashboard alone: against --nats, or against the server of the
// process that owns --state (it never starts a store of its own, so it never holds --state).
func cmdUI(ctx context.Context, args []string) error {
	c := newCommon("ui")
	var addr, out string
	registerUIFlags(c.fs, &addr, &out)
	if err := c.parse(args); err != nil {
		return err
	}
	if c.nats == "" {
		srv, err := statedir.ReadServer(c.state)
		if err != nil || !reachable(srv.URL) {
			return &exitError{code: exitFailure, err: fmt.Errorf(
				"no running sluice owns %s: start `sluice run` there, or point --nats at the NATS server the stages use", c.state)}
		}
	}
	if out != "" && !strings.HasPrefix(out, "s3://") {
		if _, err := os.Stat(strings.TrimPrefix(out, "file://")); err != nil {
			return &exitError{code: exitUsage, err: fmt.Errorf("--out: %w", err)}
		}
	}
	e, closeAll, err := c.setup(ctx, "ui")
	if err != nil {
		return err
	}
	defer closeAll()
	s3 := objstore.Options{Endpoint: c.s3Endpoint, PathStyle: c.s3PathStyle}
	stop, err := startUI(ctx, e, out, s3, addr)
	if err != nil {
		return err
	}
	<-ctx.Done()
	return stop()
}

func registerUIFlags(fs *flag.FlagSet, addr, out *string) {
	fs.StringVar(addr, "http-addr", ui.DefaultAddr, "serve the dashboard on host:port (a host-less :port binds 127.0.0.1)")
	fs.StringVar(out, "out", "", "output root (directory or s3://bucket/prefix) to read the summaries from; optional")
}

// startUI serves the dashboard on addr until the returned stop is called (which returns the
// dashboard's error, if it failed). The listener is open when it returns, so a taken port is
// reported at start. With out empty the dashboard shows dates without their summaries.
func startUI(ctx context.Context, e *pipeline.Env, out string, s3 objstore.Options, addr string) (func() error, error) {
	deps := ui.Deps{Bus: e.Bus, Log: e.Log.With("component", "ui")}
	if out != "" {
		b, err := e.Bucket(ctx, out, s3)
		if err != nil {
			return nil, &exitError{code: exitFailure, err: err}
		}
		deps.Out = b
	}
	srv, err := ui.New(ui.Config{Addr: addr}, deps)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	ln, err := net.Listen("tcp", ui.ListenAddr(addr))
	if err != nil {
		return nil, &exitError{code: exitFailure, err: fmt.Errorf("dashboard listen %s: %w", addr, err)}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		err := srv.Serve(ctx, ln)
		if err != nil {
			e.Log.Error("dashboard stopped", "err", err)
		}
		done <- err
	}()
	return func() error {
		cancel()
		err := <-done
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		return err
	}, nil
}
