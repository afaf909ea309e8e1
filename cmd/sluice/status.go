package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"
)

// cmdStatus prints the archive ledger: one line per archive content identity.
func cmdStatus(ctx context.Context, args []string) error {
	c := newCommon("status")
	var asJSON bool
	c.fs.BoolVar(&asJSON, "json", false, "print JSON records")
	if err := c.parse(args); err != nil {
		return err
	}
	e, closeAll, err := c.setup(ctx, "status")
	if err != nil {
		return err
	}
	defer closeAll()
	recs, err := e.Ledger.List(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(recs)
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ARCHIVE\tSTATE\tATTEMPT\tTABLES\tROWS IN\tROWS OUT\tDUPLICATES\tREPLAYS\tUPDATED\tNAME\tREASON")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", r.ArchiveID, r.State, r.Attempt, r.Tables, r.RowsIn, r.RowsOut,
			len(r.Duplicates), r.Replays, time.UnixMilli(r.UpdatedMs).UTC().Format(time.RFC3339), r.Name, r.Reason)
	}
	return tw.Flush()
}
