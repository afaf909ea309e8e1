package main

import (
	"context"
	"flag"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/term"

	"github.com/sluice-dev/sluice/summarizer"
)

// cmdRun starts every stage in one process. With --once it ingests what is in the landing area,
// waits until each archive is committed and summarized, prints the summary and exits
// 0 (everything ingested), 2 (finished, but something was rejected or quarantined — all recorded)
// or 1 (a reconciliation mismatch or an internal error).
func cmdRun(ctx context.Context, args []string) error {
	c := newCommon("run")
	var s stageFlags
	s.register(c.fs, stageWants["run"]...)
	var progress string
	registerRunFlags(c.fs, &progress)
	if err := c.parse(args); err != nil {
		return err
	}
	if s.landing == "" || s.out == "" {
		return &exitError{code: 2, err: errors.New("--landing and --out are required")}
	}
	start := time.Now()
	e, closeAll, err := c.setup(ctx, "run")
	if err != nil {
		return err
	}
	defer closeAll()

	prod, err := newProducer(ctx, c, &s, e)
	if err != nil {
		return err
	}
	ext, err := newExtractor(ctx, c, &s, e)
	if err != nil {
		return err
	}
	mrg, err := newMerger(ctx, c, &s, e)
	if err != nil {
		return err
	}
	sum, err := newSummarizer(ctx, c, &s, e)
	if err != nil {
		return err
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(runCtx)
	for _, st := range []interface{ Run(context.Context) error }{ext, mrg, sum} {
		g.Go(func() error { return ignoreCanceled(st.Run(gctx)) })
	}
	showProgress := progress == "on" || (progress == "auto" && term.IsTerminal(int(os.Stderr.Fd())))

	if !s.once {
		g.Go(func() error { return ignoreCanceled(prod.Run(gctx)) })
		e.log.Info("running", "landing", s.landing, "out", s.out)
		if showProgress {
			go progressLoop(gctx, sum, start)
		}
		err := g.Wait()
		return err
	}

	res, err := prod.Scan(gctx)
	if err != nil {
		cancel()
		_ = g.Wait()
		return fmt.Errorf("scan landing: %w", err)
	}
	e.log.Info("landing scanned", "new", len(res.Landed), "pending", len(res.Pending), "duplicates", len(res.Duplicates), "unchanged", res.Unchanged)
	wait := append(append([]string{}, res.Landed...), res.Pending...)
	if showProgress {
		go progressLoop(gctx, sum, start)
	}
	type result struct {
		st  summarizer.Status
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := sum.WaitFor(gctx, wait)
		done <- result{st, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-gctx.Done():
		// a stage failed (or we were interrupted): report that error
		cancel()
		werr := g.Wait()
		if werr == nil {
			werr = ctx.Err()
		}
		return &exitError{code: 1, err: fmt.Errorf("pipeline stopped before finishing: %w", werr)}
	}
	cancel()
	if werr := g.Wait(); werr != nil && r.err == nil {
		r.err = werr
	}
	if r.err != nil {
		return &exitError{code: 1, err: r.err}
	}
	code := printRunSummary(os.Stdout, r.st, res.Duplicates, time.Since(start))
	return &exitError{code: code}
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func progressLoop(ctx context.Context, sum *summarizer.Summarizer, start time.Time) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprint(os.Stderr, "\r\033[K")
			return
		case <-t.C:
			fmt.Fprintf(os.Stderr, "\r\033[K%s", progressLine(sum.Status(), time.Since(start)))
		}
	}
}

func printRunSummary(w io.Writer, st summarizer.Status, dups any, took time.Duration) int {
	fmt.Fprintln(w, renderStatus(st))
	fmt.Fprintf(w, "wall time %s\n", took.Round(time.Millisecond))
	return exitCode(st)
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var _ = strings.TrimSpace

func registerRunFlags(fs *flag.FlagSet, progress *string) {
	fs.StringVar(progress, "progress", "auto", "progress display: auto (on a terminal), on, off")
}
