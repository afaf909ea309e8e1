package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/pipeline"
	"github.com/sluice-dev/sluice/internal/table"
	"github.com/sluice-dev/sluice/merger"
	"github.com/sluice-dev/sluice/producer"
	"github.com/sluice-dev/sluice/summarizer"
)

// object is a Parquet object as read back: its bytes, rows rendered as text, and the schema
// version in its footer.
type object struct {
	data    []byte
	rows    []string
	version string
}

func readObjects(t *testing.T, b objstore.Bucket) map[string]object {
	t.Helper()
	out := map[string]object{}
	for k := range listKeys(t, b, "") {
		if !strings.HasSuffix(k, ".parquet") || strings.HasPrefix(k, "_dq/") { // data objects only
			continue
		}
		rc, err := b.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		pf, err := file.NewParquetReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("parquet %s: %v", k, err)
		}
		fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := fr.Schema()
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := fr.ReadTable(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pf.Close()
		o := object{data: data}
		if v, ok := sc.Metadata().GetValue(table.MetaSchemaVersion); ok {
			o.version = v
		}
		o.rows = make([]string, tbl.NumRows())
		for c := range int(tbl.NumCols()) {
			r := 0
			for _, ch := range tbl.Column(c).Data().Chunks() {
				for i := range ch.Len() {
					o.rows[r] += "\x1f" + cellText(ch, i)
					r++
				}
			}
		}
		tbl.Release()
		out[k] = o
	}
	return out
}

func cellText(a interface {
	IsNull(int) bool
	ValueStr(int) string
}, i int) string {
	if a.IsNull(i) {
		return "<null>"
	}
	if s, ok := a.(*array.String); ok {
		return s.Value(i)
	}
	return a.ValueStr(i)
}

func readSummary(t *testing.T, b objstore.Bucket, date string) summarizer.SummaryJSON {
	t.Helper()
	rc, err := b.Get(context.Background(), summarizer.SummaryKey(date))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var doc summarizer.SummaryJSON
	if err := json.NewDecoder(rc).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestRerunsWhileRunning: with the pipeline running continuously, `sluice reextract` of one
// archive re-runs it end to end (attempt 1) and rewrites the same objects with the same rows
// (byte for byte where the table's schema version did not move meanwhile), the summary marks its
// tables as re-run and the ledger shows the new attempt; then `sluice replay` of one table is
// recorded in the summary (replayed) and in the ledger (replays) of every archive it touched.
func TestRerunsWhileRunning(t *testing.T) {
	h := newHarness(t, "", objstore.Options{})
	h.opts.Once = false
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sumc := make(chan *summarizer.Summarizer, 1)
	done := make(chan error, 1)
	go func() {
		_, err := pipeline.Run(ctx, h.env, h.opts, func(s *summarizer.Summarizer) { sumc <- s })
		done <- err
	}()
	sum := <-sumc
	m := generate(t, h.landing, 17)
	settled := func(what string, cond func(summarizer.Status) bool) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			st := sum.Status()
			all := true
			for _, d := range st.Dates {
				all = all && d.Written
			}
			if cond(st) && all {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: timed out: %+v", what, st.Totals)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	settled("first run", func(st summarizer.Status) bool {
		return st.Totals.Committed == len(m.Archives) && st.Totals.SummariesWritten > 0
	})
	before := readObjects(t, h.bucket())
	recs, err := h.env.Ledger.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var target ledger.Record
	for _, r := range recs {
		if r.Name == m.Archives[0].Name {
			target = r
		}
	}
	if target.ArchiveID == "" {
		t.Fatalf("archive %s not in the ledger", m.Archives[0].Name)
	}

	// sluice reextract ARCHIVE
	if err := producer.Reextract(ctx, producer.Deps{Bus: h.env.Bus, Ledger: h.env.Ledger, Partners: h.env.Partners}, target.ArchiveID); err != nil {
		t.Fatal(err)
	}
	settled("re-extraction", func(st summarizer.Status) bool {
		a := st.Archives[target.ArchiveID]
		return a.Attempt == 1 && a.State == summarizer.StateCommitted && a.CheckOK
	})
	after := readObjects(t, h.bucket())
	if len(after) != len(before) {
		t.Fatalf("objects before %d, after %d", len(before), len(after))
	}
	identical := 0
	for k, o := range before {
		n, ok := after[k]
		if !ok {
			t.Fatalf("object %s disappeared", k)
		}
		if o.version == "" || n.version == "" {
			t.Fatalf("%s: no schema version in the footer", k)
		}
		if len(n.rows) != len(o.rows) {
			t.Errorf("%s: %d rows, %d before", k, len(n.rows), len(o.rows))
		}
		// Under the same schema version: the same rows, byte for byte. A table whose schema was
		// widened by a later archive is rewritten under the current schema (same rows, wider
		// types), like a redelivery would.
		if n.version == o.version {
			if !slices.Equal(n.rows, o.rows) {
				t.Errorf("%s: rows changed under the same schema version %s", k, o.version)
			}
			if !bytes.Equal(n.data, o.data) {
				t.Errorf("%s: bytes changed though its schema version (%s) did not", k, o.version)
			}
			identical++
		}
	}
	if identical < len(before)/2 {
		t.Fatalf("only %d of %d objects compared byte for byte", identical, len(before))
	}
	if got := checkTablesEqualInput(t, m, h.bucket()); got != totalRows(m) {
		t.Fatalf("rows %d, want %d", got, totalRows(m))
	}
	rec, _, err := h.env.Ledger.Get(ctx, target.ArchiveID)
	if err != nil || rec.Attempt != 1 || rec.State != ledger.Committed {
		t.Fatalf("ledger after reextract: %+v %v", rec, err)
	}
	date := sum.Status().Archives[target.ArchiveID].Dates[0]
	doc := readSummary(t, h.bucket(), date)
	found := false
	for _, a := range doc.Archives {
		if a.ArchiveID != target.ArchiveID {
			continue
		}
		found = a.Attempt == 1 && len(a.Tables) > 0
		for _, x := range a.Tables {
			found = found && x.Replayed && x.Committed
		}
	}
	if !found {
		t.Fatalf("summary of %s does not show the re-extraction of %s", date, target.ArchiveID)
	}

	// sluice replay --table T
	var tbl string
	for name := range m.Tables {
		if tbl == "" || name < tbl {
			tbl = name
		}
	}
	res, err := merger.Replay(ctx, merger.Config{SpillDir: t.TempDir()}, merger.Deps{Bus: h.env.Bus, Out: h.bucket(),
		Partners: h.env.Partners, Ledger: h.env.Ledger}, merger.ReplaySpec{Table: tbl})
	if err != nil || len(res.Committed) == 0 || res.Skipped() {
		t.Fatalf("replay %s: %+v %v", tbl, res, err)
	}
	replayed := map[string]bool{}
	for _, c := range res.Committed {
		replayed[c.Archive] = true
		rec, _, err := h.env.Ledger.Get(ctx, c.Archive)
		if err != nil || rec.Replays != 1 {
			t.Fatalf("ledger %s: replays %d %v", c.Archive, rec.Replays, err)
		}
	}
	settled("replay", func(st summarizer.Status) bool {
		for id := range replayed {
			if a := st.Archives[id]; a.State != summarizer.StateCommitted || !a.CheckOK {
				return false
			}
		}
		return true
	})
	deadline := time.Now().Add(time.Minute)
	for {
		missing := 0
		for _, d := range []string{"2025-03-01", "2025-03-02"} {
			for _, a := range readSummary(t, h.bucket(), d).Archives {
				for _, x := range a.Tables {
					if replayed[a.ArchiveID] && x.Table == tbl && !x.Replayed {
						missing++
					}
				}
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d archive tables of %s not shown as replayed in the summaries", missing, tbl)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := checkTablesEqualInput(t, m, h.bucket()); got != totalRows(m) {
		t.Fatalf("rows after replay %d, want %d", got, totalRows(m))
	}
	cancel()
	if err := <-done; err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}
}
