package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluice-dev/sluice/internal/dlq"
	"github.com/sluice-dev/sluice/merger"
	"github.com/sluice-dev/sluice/producer"
)

const dlqUsage = "usage: sluice dlq list | show SEQ | retry SEQ|--all [flags]"

// cmdDLQ lists, shows and retries dead letters (internal/dlq).
func cmdDLQ(ctx context.Context, args []string) error {
	if helpOnly(args) {
		fmt.Println(dlqUsage + "\n(`sluice dlq ACTION --help` lists an action's flags)")
		return nil
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return &exitError{code: exitUsage, err: errors.New(dlqUsage)}
	}
	action := args[0]
	c := newCommon("dlq " + action)
	var s stageFlags
	var asJSON, all, force bool
	c.fs.BoolVar(&asJSON, "json", false, "print JSON")
	switch action {
	case "list", "show":
	case "retry":
		s.register(c.fs, "out")
		c.fs.BoolVar(&all, "all", false, "retry every dead letter")
		c.fs.BoolVar(&force, "force", false, "re-merge batches although a data-quality fail rule rejects them (recorded in the event and the summary)")
	default:
		return &exitError{code: exitUsage, err: fmt.Errorf("dlq: unknown action %q; %s", action, dlqUsage)}
	}
	pos, err := parseInterspersed(c, args[1:])
	if err != nil {
		return err
	}
	var seq uint64
	switch {
	case action == "list" && len(pos) == 0, action == "retry" && all && len(pos) == 0:
	case action != "list" && !all && len(pos) == 1:
		if seq, err = strconv.ParseUint(pos[0], 10, 64); err != nil || seq == 0 {
			return &exitError{code: exitUsage, err: fmt.Errorf("dlq %s: %q is not a sequence number", action, pos[0])}
		}
	default:
		return &exitError{code: exitUsage, err: errors.New(dlqUsage)}
	}
	c.mergersConfig = action == "retry"
	e, closeAll, err := c.setup(ctx, "dlq")
	if err != nil {
		return err
	}
	defer closeAll()
	deps := dlq.Deps{Bus: e.Bus, Log: e.Log.With("stage", "dlq"),
		Reextract: reextracter(producer.Deps{Bus: e.Bus, Ledger: e.Ledger, Partners: e.Partners, Log: e.Log})}
	if s.out != "" {
		o, err := s.options(c)
		if err != nil {
			return err
		}
		if err := c.bindOut(ctx, e, s.out, false); err != nil {
			return err
		}
		out, err := e.Bucket(ctx, s.out, o.S3)
		if err != nil {
			return err
		}
		deps.Remerge = remerger(merger.Config{SpillDir: filepath.Join(c.state, "spill")},
			merger.Deps{Bus: e.Bus, Out: out, Partners: e.Partners, Ledger: e.Ledger, Log: e.Log.With("stage", "replay")}, force)
	}
	q, err := dlq.New(ctx, deps)
	if err != nil {
		return err
	}
	now := time.Now()
	switch action {
	case "list":
		ls, err := q.List(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			if ls == nil {
				ls = []dlq.Letter{}
			}
			return printJSON(ls)
		}
		printLetters(os.Stdout, ls, now)
		return nil
	case "show":
		l, err := q.Get(ctx, seq)
		if err != nil {
			return &exitError{code: exitFailure, err: err}
		}
		if asJSON {
			return printJSON(l)
		}
		printLetter(os.Stdout, l, now)
		return nil
	}
	var outs []dlq.Outcome
	if all {
		outs, err = q.RetryAll(ctx)
	} else {
		var o dlq.Outcome
		o, err = q.Retry(ctx, seq)
		outs = []dlq.Outcome{o}
	}
	if len(outs) == 0 && err == nil {
		fmt.Println("no dead letters")
	}
	for _, o := range outs {
		if o.Err != nil {
			fmt.Printf("%d\t%s\tnot retried: %v\n", o.Seq, o.Kind, o.Err)
		} else {
			fmt.Printf("%d\t%s\t%s: %s (dead letter removed)\n", o.Seq, o.Kind, o.Action, o.Detail)
			if o.Kind == dlq.KindArchive {
				fmt.Println("\tthe archive is extracted by a running `sluice run`/extractor, or by the next `sluice run --once`")
			}
		}
	}
	if err != nil {
		return &exitError{code: exitFailure}
	}
	return nil
}

// parseInterspersed parses flags anywhere among the positional arguments, which it returns.
func parseInterspersed(c *common, args []string) ([]string, error) {
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil, &exitError{code: exitOK}
			}
			return nil, &exitError{code: exitUsage, err: err}
		}
		args = c.fs.Args()
		if len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	return pos, applyEnv(c.fs)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printLetters(w io.Writer, ls []dlq.Letter, now time.Time) {
	if len(ls) == 0 {
		fmt.Fprintln(w, "no dead letters")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tSTAGE\tKIND\tSUBJECT\tSTREAM SEQ\tDELIVERIES\tAGE\tARCHIVE\tTABLE\tREASON")
	for _, l := range ls {
		reason := l.Reason
		if len(reason) > 100 {
			reason = reason[:100] + "…"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", l.Seq, l.Stage, l.Kind(), l.DeadLetter.Subject, l.StreamSeq,
			l.Deliveries, l.Age(now), l.Archive(), l.Table, reason)
	}
	_ = tw.Flush()
}

func printLetter(w io.Writer, l dlq.Letter, now time.Time) {
	fmt.Fprintf(w, "dead letter %d (%s)\n", l.Seq, l.DLQSubject)
	fmt.Fprintf(w, "  stage:       %s (%s)\n", l.Stage, l.Kind())
	fmt.Fprintf(w, "  original:    %s seq %d on %s\n", l.Stream, l.StreamSeq, l.DeadLetter.Subject)
	fmt.Fprintf(w, "  deliveries:  %d\n", l.Deliveries)
	fmt.Fprintf(w, "  died:        %s (%s ago)\n", time.UnixMilli(l.DeadUnixMs).UTC().Format(time.RFC3339), l.Age(now))
	fmt.Fprintf(w, "  archive:     %s\n", l.Archive())
	fmt.Fprintf(w, "  table:       %s\n", l.Table)
	fmt.Fprintf(w, "  reason:      %s\n", l.Reason)
	fmt.Fprintf(w, "  payload:     %s\n", l.PayloadSummary())
	keys := make([]string, 0, len(l.Headers))
	for k := range l.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  header:      %s: %s\n", k, l.Headers[k])
	}
	switch l.Kind() {
	case dlq.KindArchive:
		fmt.Fprintln(w, "  retry:       re-extracts the archive (a new attempt)")
	case dlq.KindBatch:
		fmt.Fprintln(w, "  retry:       re-merges the batch from the rows stream (needs --out)")
	default:
		fmt.Fprintln(w, "  retry:       republishes the payload to its subject")
	}
}

// remerger returns a dlq.Deps.Remerge that re-merges a batch with merger.Replay (filtered to its
// archive and table) under cfg and deps: it fails when the replay committed nothing, with the
// reason the replay gives (incomplete, aborted, not in the stream any more).
func remerger(cfg merger.Config, deps merger.Deps, force bool) func(ctx context.Context, archiveID, table string) (string, error) {
	return func(ctx context.Context, archiveID, table string) (string, error) {
		res, err := merger.Replay(ctx, cfg, deps, merger.ReplaySpec{Table: table, Archive: archiveID, Force: force})
		if err != nil {
			return "", err
		}
		if len(res.Committed) == 0 {
			var why []string
			for _, s := range append(append([]merger.SkippedBatch{}, res.Incomplete...), res.Aborted...) {
				why = append(why, fmt.Sprintf("attempt %d: %s", s.Attempt, s.Reason))
			}
			if len(why) == 0 {
				why = append(why, fmt.Sprintf("no marker of it in the rows stream (sequences %d..%d): expired?", res.FirstSeq, res.LastSeq))
			}
			return "", fmt.Errorf("batch %s of table %q did not commit: %s", archiveID, table, strings.Join(why, "; "))
		}
		c := res.Committed[len(res.Committed)-1]
		return fmt.Sprintf("attempt %d committed: %d objects, %d rows (replay %s)", c.Attempt, len(c.Objects), c.RowsOut, res.ID), nil
	}
}

// reextracter returns a dlq.Deps.Reextract running producer.Reextract with deps.
func reextracter(deps producer.Deps) func(ctx context.Context, archiveID string) error {
	return func(ctx context.Context, archiveID string) error { return producer.Reextract(ctx, deps, archiveID) }
}
