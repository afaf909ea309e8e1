// Command sluice is the single binary: one subcommand per stage, `run` for all of them in one
// process, plus tools (gen, status). main only parses flags, wires and runs.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

// Exit codes. 0 and 2 are the verdicts of a command that ran (`run --once`: everything ingested
// and checked / finished with recorded rejections); anything that stopped it from running or
// finishing has its own code, so a scheduler never mistakes a typo for "finished with findings".
const (
	exitOK       = 0
	exitFailure  = 1  // an error while running: a check that failed, S3 access, NATS, a held state dir
	exitFindings = 2  // finished, with rejections, quarantined rows, failed archives or missing sources (recorded)
	exitUsage    = 64 // bad command line (sysexits EX_USAGE)
	exitConfig   = 78 // bad partner configuration (sysexits EX_CONFIG)
)

// exitError carries a process exit code out of a subcommand.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{"run", "run producer, extractor, merger and summarizer in one process", cmdRun},
		{"producer", "watch a landing area and publish one event per new archive", cmdProducer},
		{"extractor", "stream archives into per-table chunks on JetStream", cmdExtractor},
		{"merger", "merge chunks into Parquet and commit atomically", cmdMerger},
		{"summarizer", "write summaries and reconcile rows in against rows out", cmdSummarizer},
		{"status", "print the archive ledger", cmdStatus},
		{"ui", "serve the read-only dashboard (also: --http-addr on run and summarizer)", cmdUI},
		{"gen", "write synthetic partner archives", cmdGen},
		{"reextract", "re-run extraction of one archive", cmdReextract},
		{"replay", "re-merge a table from the rows stream, rewriting the same objects", cmdReplay},
		{"dlq", "list, show or retry dead letters", cmdDLQ},
		{"dq", "data-quality tools: suggest rules from the column profiles", cmdDQ},
		{"healthcheck", "exit 0 when a stage's health endpoint answers (for container healthchecks)", cmdHealthcheck},
		{"version", "print the version and VCS revision of this binary", cmdVersion},
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, versionString())
	fmt.Fprintln(os.Stderr, "usage: sluice <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(os.Stderr, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(os.Stderr, "\n`sluice <command> -h` lists a command's flags; every flag can also be set as SLUICE_<FLAG> (e.g. SLUICE_NATS).")
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(exitUsage)
	}
	switch os.Args[1] {
	case "-h", "-help", "--help", "help":
		usage()
		os.Exit(exitOK)
	case "-version", "--version", "-v":
		printVersion(os.Stdout)
		os.Exit(exitOK)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, c := range commands() {
		if c.name != os.Args[1] {
			continue
		}
		stopProfile, err := startCPUProfile(os.Getenv("SLUICE_CPU_PROFILE"))
		if err == nil {
			err = c.run(ctx, os.Args[2:])
			stopProfile()
		}
		var ee *exitError
		switch {
		case err == nil:
			os.Exit(0)
		case errors.As(err, &ee):
			if ee.err != nil {
				fmt.Fprintln(os.Stderr, "sluice:", ee.err)
			}
			os.Exit(ee.code)
		default:
			fmt.Fprintln(os.Stderr, "sluice:", err)
			os.Exit(1)
		}
	}
	fmt.Fprintf(os.Stderr, "sluice: unknown command %q\n", os.Args[1])
	usage()
	os.Exit(exitUsage)
}

// startCPUProfile writes a CPU profile of the whole command to path (SLUICE_CPU_PROFILE; "" for none) until the
// returned stop is called. The merger labels its partitions' work (stage, partition), so `go tool pprof -tagfocus`
// and `-tags` split it (scripts/bench-partitions.sh).
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: fmt.Errorf("SLUICE_CPU_PROFILE: %w", err)}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, &exitError{code: exitUsage, err: fmt.Errorf("SLUICE_CPU_PROFILE: %w", err)}
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}
