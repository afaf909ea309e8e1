package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/sluice-dev/sluice/internal/pipeline"
	"github.com/sluice-dev/sluice/summarizer"
)

// runHeapHeadroom is what `run`'s soft Go memory limit allows above the merger's budget: the heap
// the budget does not account (the embedded server's message-block buffers and caches, about 50–100
// MB while archives arrive; extraction buffers; Parquet encoders) plus room for garbage. With 160 MiB
// the live heap sat within ~80 MB of the limit and the collector ran back to back: 0.3–0.4 CPU-s more
// on the flights preset (27 collections instead of 19) and 2.8 CPU-s more on the 1 GiB member, for
// ~100 MiB less peak RSS (docs/BENCHMARKS.md, section "Session 7", item 2).
const runHeapHeadroom = 256 << 20

// newRunFlags builds `sluice run`'s flag set (also for the compose test and docs/FLAGS.md).
func newRunFlags() (c *common, s *stageFlags, rf *runFlags, quiet *bool) {
	c, s, rf = newCommon("run"), new(stageFlags), new(runFlags)
	s.register(c.fs, stageWants["run"]...)
	registerRunFlags(c.fs, rf)
	quiet = c.fs.Bool("quiet-summary", false, "with --once, print only the totals, not each date's summary.txt")
	// One process holds every stage, so it gets smaller defaults than the stages run alone
	// (see docs/BENCHMARKS.md): a 96 MiB merger budget, 16 chunks in flight per extraction,
	// and a soft Go memory limit of budget + runHeapHeadroom unless GOMEMLIMIT is set.
	s.memoryBudget = 96 << 20
	c.fs.Lookup("memory-budget").DefValue = sizeValue{&s.memoryBudget}.String()
	s.extractWindow = 16
	c.fs.Lookup("publish-window").DefValue = "16"
	return c, s, rf, quiet
}

// cmdRun starts every stage in one process. With --once it ingests what is in the landing area,
// waits until each archive is committed and summarized, prints the summary and exits
// 0 (everything ingested), 2 (finished, but something was rejected or quarantined — all recorded)
// or 1 (a reconciliation mismatch or an internal error).
func cmdRun(ctx context.Context, args []string) error {
	c, s, rf, quiet := newRunFlags()
	if err := c.parse(args); err != nil {
		return err
	}
	progress := rf.progress
	if progress != "auto" && progress != "on" && progress != "off" {
		return &exitError{code: exitUsage, err: fmt.Errorf("--progress %q: want auto, on or off", progress)}
	}
	if rf.progressEvery <= 0 {
		return &exitError{code: exitUsage, err: fmt.Errorf("--progress-interval %s: want a positive duration", rf.progressEvery)}
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(s.memoryBudget + runHeapHeadroom)
	}
	if s.landing == "" || s.out == "" {
		return &exitError{code: exitUsage, err: errors.New("--landing and --out are required")}
	}
	o, err := s.options(c)
	if err != nil {
		return err
	}
	tty := term.IsTerminal(int(os.Stderr.Fd()))
	showLine := progress == "on" || (progress == "auto" && tty)
	var line *statusLine
	if showLine {
		width, _, _ := term.GetSize(int(os.Stderr.Fd()))
		line = newStatusLine(os.Stderr, width)
		c.logOut = line // logs print above the line instead of tearing it
	}
	e, closeAll, err := c.setup(ctx, "run")
	if err != nil {
		return err
	}
	defer closeAll()
	if err := c.bindOut(ctx, e, s.out, true); err != nil {
		return err
	}
	// Only a process whose server no other stage uses owns --out alone.
	o.ReclaimStale = c.soleServer()
	if s.httpAddr != "" {
		stopUI, err := startUI(ctx, e, o.Out, o.S3, s.httpAddr)
		if err != nil {
			return err
		}
		defer stopUI()
	}
	c.ops.stageReady("extractor", e.Bus, o)
	c.ops.stageReady("merger", e.Bus, o)
	pctx, stopProgress := context.WithCancel(ctx)
	var progressDone sync.WaitGroup
	defer progressDone.Wait()
	defer stopProgress()
	start := time.Now()
	var ps *progressSource
	o.OnWork = func(ids []string, bytes int64) {
		if ps != nil {
			ps.setWork(ids, bytes)
		}
	}
	res, err := pipeline.Run(ctx, e, o, func(sum *summarizer.Summarizer) {
		c.ops.summarizerReady(sum)
		ps = newProgressSource(sum, c.ops.reg, start)
		switch {
		case showLine:
			progressDone.Go(func() { progressLoop(pctx, ps, line) })
		case progress == "auto":
			progressDone.Go(func() { logLoop(pctx, ps, e.Log, rf.progressEvery) })
		}
	})
	stopProgress()
	progressDone.Wait() // the line is erased before the summary is printed
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil && !o.Once {
			return nil // clean shutdown on a signal
		}
		return stageFailure(err)
	}
	if !o.Once {
		return nil
	}
	if !*quiet {
		printSummaries(ctx, os.Stdout, e, o, res)
	}
	printRunSummary(os.Stdout, res, o.Out)
	return &exitError{code: res.Code}
}

// runFlags are the flags of `sluice run` alone.
type runFlags struct {
	progress      string
	progressEvery time.Duration
}

func registerRunFlags(fs *flag.FlagSet, rf *runFlags) {
	fs.StringVar(&rf.progress, "progress", "auto", "progress display: auto (a line on a terminal, else a progress log line every --progress-interval), on (the line), off")
	fs.DurationVar(&rf.progressEvery, "progress-interval", 10*time.Second, "without a terminal, how often --progress auto logs a progress line")
}

func printRunSummary(w io.Writer, res *pipeline.Result, out string) {
	st := res.Status
	fmt.Fprintf(w, "sluice run --once: %d archives (%d new, %d resumed, %d done before, %d duplicates skipped) in %s\n",
		len(res.Found), len(res.Scan.Landed), len(res.Resumed), len(res.Found)-len(res.Taken),
		len(res.Scan.Duplicates), res.Took.Round(time.Millisecond))
	// The totals of what this run took (new and resumed), not of the events stream's history.
	var committed, failed, rejected, skipped int
	var rowsIn, rowsOut, quarantined int64
	for _, id := range res.Taken {
		a := st.Archives[id]
		switch a.State {
		case summarizer.StateCommitted:
			committed++
		case summarizer.StateFailed:
			failed++
		}
		rowsIn, rowsOut, quarantined = rowsIn+a.RowsIn, rowsOut+a.RowsOut, quarantined+a.Quarantined
		rejected, skipped = rejected+a.Rejected, skipped+a.Skipped
	}
	fmt.Fprintf(w, "  this run: committed %d, failed %d; rows in %d, rows out %d, quarantined %d; members rejected %d, skipped %d\n",
		committed, failed, rowsIn, rowsOut, quarantined, rejected, skipped)
	awaited := 0
	for _, d := range res.Dates() {
		ds := st.Dates[d]
		line := fmt.Sprintf("  %s: %d archives, summary %s", d, ds.Archives, summaryURI(out, ds.Key))
		switch {
		case !ds.Written:
			line += ", summary NOT WRITTEN"
		case !ds.CheckOK:
			line += ", CHECK FAILED"
		default:
			line += ", check OK"
		}
		if ds.Quality != "" {
			line += ", DQ " + ds.Quality
		}
		if len(ds.Missing) > 0 {
			line += fmt.Sprintf(", MISSING sources %v", ds.Missing)
		} else if !ds.Complete {
			awaited++
		}
		fmt.Fprintln(w, line)
	}
	if awaited > 0 {
		fmt.Fprintf(w, "  %d of these dates still await expected sources (their deadlines are ahead)\n", awaited)
	}
	for _, f := range res.Findings {
		fmt.Fprintln(w, "  "+f)
	}
	switch {
	case res.Code == 0 && len(res.Taken) == 0:
		fmt.Fprintf(w, "OK: nothing new to ingest; every archive in the landing area was committed and checked before; Parquet under %s/\n", strings.TrimSuffix(out, "/"))
	case res.Code == 0:
		fmt.Fprintf(w, "OK: every archive committed and checked; Parquet under %s/<table>/process_date=*/batch_id=*/\n", strings.TrimSuffix(out, "/"))
	case res.Code == 2:
		fmt.Fprintf(w, "DONE WITH FINDINGS (exit 2): %d, each recorded with its reason in the summaries\n", len(res.Findings))
	default:
		fmt.Fprintf(w, "FAILED (exit 1): %d problems above\n", len(res.Findings))
	}
}

// summaryURI renders the summary.txt beside a summary.json key under out.
func summaryURI(out, jsonKey string) string {
	return strings.TrimSuffix(out, "/") + "/" + strings.TrimSuffix(jsonKey, ".json") + ".txt"
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// printSummaries prints the summary.txt of every process date of this run.
func printSummaries(ctx context.Context, w io.Writer, e *pipeline.Env, o pipeline.Options, res *pipeline.Result) {
	out, err := e.Bucket(ctx, o.Out, o.S3)
	if err != nil {
		return
	}
	for _, d := range res.Dates() {
		key := strings.TrimSuffix(res.Status.Dates[d].Key, ".json") + ".txt"
		rc, err := out.Get(ctx, key)
		if err != nil {
			continue
		}
		fmt.Fprintf(w, "──── %s ────\n", out.URI(key))
		_, _ = io.Copy(w, rc)
		rc.Close()
		fmt.Fprintln(w)
	}
}
