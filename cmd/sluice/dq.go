package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/quality"
)

const dqUsage = "usage: sluice dq suggest --table T --out OUT [--days N]"

// cmdDQ holds the data-quality tools. `dq suggest` reads a table's column profiles of the last
// --days process dates from <out>/_dq/profiles/ and prints a `quality:` block to paste into the
// partner configuration (quality.Suggest says what it proposes and why each rule holds).
func cmdDQ(ctx context.Context, args []string) error {
	if helpOnly(args) {
		fmt.Println(dqUsage + "\n(`sluice dq suggest --help` lists its flags)")
		return nil
	}
	if len(args) == 0 || args[0] != "suggest" {
		return &exitError{code: exitUsage, err: errors.New(dqUsage)}
	}
	c := newCommon("dq suggest")
	var s stageFlags
	s.register(c.fs, "out")
	var tbl string
	var days int
	c.fs.StringVar(&tbl, "table", "", "table to suggest rules for (required)")
	c.fs.IntVar(&days, "days", 14, "process dates of history to read (the most recent ones)")
	if err := c.parse(args[1:]); err != nil {
		return err
	}
	if tbl == "" || s.out == "" || days < 1 {
		return &exitError{code: exitUsage, err: errors.New(dqUsage)}
	}
	o, err := s.options(c)
	if err != nil {
		return err
	}
	out, err := objstore.Open(ctx, s.out, o.S3)
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	defer out.Close()
	profiles, dates, err := readProfiles(ctx, out, tbl, days)
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	if len(profiles) == 0 {
		return &exitError{code: exitFailure, err: fmt.Errorf("no column profiles of table %s under %s: nothing committed yet?", tbl, out.URI("_dq/profiles/"))}
	}
	y, err := quality.RenderYAML(quality.Suggest(profiles))
	if err != nil {
		return err
	}
	fmt.Printf("# suggested from %d batch profiles of %s over %d process dates (%s … %s); paste under\n# partners[].tables.%s:\n",
		countBatches(profiles), tbl, len(dates), dates[0], dates[len(dates)-1], tbl)
	_, err = os.Stdout.Write(y)
	return err
}

// readProfiles reads the profiles of tbl's batches of its last `days` process dates, oldest first.
func readProfiles(ctx context.Context, out objstore.Bucket, tbl string, days int) ([]quality.Profile, []string, error) {
	prefix := strings.TrimSuffix(quality.ProfilesKey(tbl, "x", "x", "x"), "process_date=x/batch_id=x/part-x.parquet")
	byDate := map[string][]string{}
	err := out.List(ctx, prefix, "", func(a objstore.Attrs) error {
		rest := strings.TrimPrefix(a.Key, prefix)
		date, _, ok := strings.Cut(strings.TrimPrefix(rest, "process_date="), "/")
		if ok && strings.HasSuffix(a.Key, ".parquet") {
			byDate[date] = append(byDate[date], a.Key)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", out.URI(prefix), err)
	}
	dates := make([]string, 0, len(byDate))
	for d := range byDate {
		dates = append(dates, d)
	}
	slices.Sort(dates)
	if len(dates) > days {
		dates = dates[len(dates)-days:]
	}
	var all []quality.Profile
	for _, d := range dates {
		for _, key := range byDate[d] {
			ps, err := readProfileObject(ctx, out, key)
			if err != nil {
				return nil, nil, err
			}
			all = append(all, ps...)
		}
	}
	return all, dates, nil
}

func readProfileObject(ctx context.Context, out objstore.Bucket, key string) ([]quality.Profile, error) {
	r, err := objstore.ReaderAt(ctx, out, key)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", out.URI(key), err)
	}
	defer r.Close()
	ps, err := quality.ReadProfiles(r, memory.DefaultAllocator)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %s: %w", out.URI(key), err)
	}
	return ps, nil
}

func countBatches(ps []quality.Profile) int {
	seen := map[string]bool{}
	for _, p := range ps {
		seen[p.ArchiveID+"/"+p.ProcessDate+"/"+p.BatchID] = true
	}
	return len(seen)
}
