package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// cmdHealthcheck asks a running stage's health endpoint whether it is alive: exit 0 for a 2xx
// answer, 1 otherwise. It exists for container healthchecks (compose.yaml): the image is
// distroless, with no shell, curl or wget.
func cmdHealthcheck(ctx context.Context, args []string) error {
	fs, url, timeout := healthcheckFlags()
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return &exitError{code: exitOK}
		}
		return &exitError{code: exitUsage, err: err}
	}
	if fs.NArg() > 0 {
		return &exitError{code: exitUsage, err: fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return &exitError{code: exitFailure, err: fmt.Errorf("%s: %s %s", *url, resp.Status, body)}
	}
	return nil
}

func healthcheckFlags() (fs *flag.FlagSet, url *string, timeout *time.Duration) {
	fs = flag.NewFlagSet("sluice healthcheck", flag.ContinueOnError)
	url = fs.String("url", "http://127.0.0.1:9090/healthz", "health endpoint to ask (a stage's --metrics-addr serves /healthz and /readyz)")
	timeout = fs.Duration("timeout", 3*time.Second, "give up after this long")
	return fs, url, timeout
}
