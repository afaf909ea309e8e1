package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/sluice-dev/sluice/internal/gen"
)

// cmdGen writes synthetic partner archives: several tables with their own schemas, day-by-day
// drift, quoted fields, sizes from KB to GB.
func cmdGen(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("sluice gen", flag.ContinueOnError)
	var cfg gen.Config
	fs.StringVar(&cfg.Out, "out", "", "directory to write archives into")
	fs.Int64Var(&cfg.Seed, "seed", 1, "random seed (same seed, same bytes)")
	fs.IntVar(&cfg.Days, "days", 2, "process dates")
	fs.StringVar(&cfg.StartDate, "start", "20250301", "first process date (YYYYMMDD)")
	fs.IntVar(&cfg.Archives, "archives", 2, "archives per day")
	fs.IntVar(&cfg.Tables, "tables", 6, "tables in the catalogue")
	fs.IntVar(&cfg.RowsPerMember, "rows", 2000, "rows per member (±50%)")
	fs.Var(sizeValue{&cfg.TargetBytes}, "target-bytes", "aim for this many CSV bytes in total (overrides --rows), e.g. 100MB")
	fs.BoolVar(&cfg.LargeTable, "large-table", false, "one table much larger than the others")
	fs.Float64Var(&cfg.LargeShare, "large-share", 0, "with --large-table: the large table's share of the bytes (default ~0.4)")
	fs.BoolVar(&cfg.FlightRecords, "flight-records", false, "the first table is narrow and numeric, like public on-time flight data (a timestamp, two small integers, two airport codes); with --large-table it is the large one")
	fs.Var(sizeValue{&cfg.HugeMemberBytes}, "huge-member", "also write one archive with a single member of about this size, e.g. 1GiB")
	noDrift := fs.Bool("no-drift", false, "keep schemas fixed across days")
	noExtras := fs.Bool("no-extras", false, "no non-table members (README.txt, manifest.json, notes.csv)")
	fs.BoolVar(&cfg.Defects, "defects", false, "plant data-quality defects into the last day: empty ids, negative amounts, an unexpected category, a table with a third of its rows")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &exitError{code: exitOK}
		}
		return &exitError{code: exitUsage, err: err}
	}
	if err := applyEnv(fs); err != nil {
		return err
	}
	if cfg.Out == "" {
		return &exitError{code: exitUsage, err: errors.New("--out is required")}
	}
	cfg.Drift, cfg.Extras = !*noDrift, !*noExtras
	m, err := gen.Generate(cfg)
	if err != nil {
		return err
	}
	var rows int
	var bytes int64
	for _, a := range m.Archives {
		for _, mem := range a.Members {
			rows += mem.Rows
			bytes += mem.Bytes
		}
	}
	fmt.Printf("wrote %d archives, %d tables, %d rows, %.1f MB of CSV to %s\n", len(m.Archives), len(m.Tables), rows, float64(bytes)/1e6, cfg.Out)
	return nil
}
