package main

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/gen"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/objstore/s3test"
	"github.com/sluice-dev/sluice/internal/quality"
	"github.com/sluice-dev/sluice/merger"
	"github.com/sluice-dev/sluice/summarizer"
)

// plantedRates counts, in the generated archives, the hotel_rates rows whose rate_usd is the
// planted -1, and those of the others whose rate_id is the planted blank (the key rule runs on the
// rows the quarantine rules kept): the independent counts the rules must match.
func plantedRates(t *testing.T, m *gen.Manifest) (negative, blankIDs int) {
	t.Helper()
	for _, a := range m.Archives {
		err := gen.WalkArchive(a.Path, func(h *tar.Header, body io.Reader) error {
			if !strings.HasPrefix(filepath.Base(h.Name), "hotel_rates_") {
				return nil
			}
			r := csv.NewReader(bufio.NewReader(body))
			r.FieldsPerRecord = -1
			recs, err := r.ReadAll()
			if err != nil {
				return err
			}
			col := map[string]int{}
			for i, c := range recs[0] {
				col[strings.TrimPrefix(c, "\xef\xbb\xbf")] = i
			}
			for _, rec := range recs[1:] {
				if rec[col["rate_usd"]] == "-1" {
					negative++
				}
				if rec[col["rate_id"]] == "" && rec[col["rate_usd"]] != "-1" {
					blankIDs++
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return negative, blankIDs
}

// readResults reads every _dq/results object of tbl under out.
func readResults(t *testing.T, out objstore.Bucket, tbl string) []quality.Result {
	t.Helper()
	ctx := context.Background()
	var rs []quality.Result
	err := out.List(ctx, "_dq/results/"+tbl+"/", "", func(a objstore.Attrs) error {
		r, err := objstore.ReaderAt(ctx, out, a.Key)
		if err != nil {
			return err
		}
		defer r.Close()
		got, err := quality.ReadResults(r, memory.DefaultAllocator)
		rs = append(rs, got...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func sumFailed(rs []quality.Result, rule, column string) (failed int64, n int) {
	for _, r := range rs {
		if r.Rule == rule && r.Column == column {
			failed += r.FailedRows
			n++
		}
	}
	return failed, n
}

// TestQualityRulesEndToEnd: `sluice run --once` with the demo's rules on archives with planted
// defects, on a folder and on S3: the quarantine rule removes exactly the planted rows (read back
// from the Parquet and the quarantine objects), the warn rule counts the planted blanks, results
// and profiles are under _dq/, and the run exits 2 (rows were quarantined).
func TestQualityRulesEndToEnd(t *testing.T) {
	for _, where := range []string{"dir", "s3"} {
		t.Run(where, func(t *testing.T) {
			c := newCorpus(t, 23, 2, 2, 6, 1500, func(c *gen.Config) { c.Defects = true })
			dir, landing, m := c.dir, c.landing, c.m
			negative, blanks := plantedRates(t, m)
			if negative == 0 || blanks == 0 {
				t.Fatalf("no planted defects: %d negative, %d blank ids", negative, blanks)
			}
			outLoc := filepath.Join(dir, "out")
			args := []string{"--landing", landing, "--state", filepath.Join(dir, "state"), "--config", "../../examples/partners-dq.yaml"}
			if where == "s3" {
				endpoint, bucket := s3test.Start(t)
				outLoc = "s3://" + bucket + "/lake"
				args = append(args, "--s3-endpoint", endpoint, "--s3-path-style")
			}
			code, outp := runOnce(t, append(args, "--out", outLoc)...)
			if code != exitFindings || !strings.Contains(outp, "rows quarantined") {
				t.Fatalf("exit %d, want %d (quarantined rows):\n%s", code, exitFindings, outp)
			}
			out := s3test.Open(t, outLoc, s3OptionsFor(t, args))
			rs := readResults(t, out, "hotel_rates")
			if got, n := sumFailed(rs, quality.RuleRange, "rate_usd"); got != int64(negative) || n == 0 {
				t.Errorf("range(rate_usd) failed rows %d in %d results, planted %d", got, n, negative)
			}
			if got, _ := sumFailed(rs, quality.RuleKey, "rate_id"); got != int64(blanks) {
				t.Errorf("key(rate_id) failed rows %d, planted blanks %d", got, blanks)
			}
			// The quarantine objects hold exactly the planted rows, with rule, column and value.
			var quarantined int
			_ = out.List(context.Background(), "_quarantine/hotel_rates/", "", func(a objstore.Attrs) error {
				rc, err := out.Get(context.Background(), a.Key)
				if err != nil {
					return err
				}
				defer rc.Close()
				sc := bufio.NewScanner(rc)
				sc.Buffer(nil, 1<<20)
				for sc.Scan() {
					var ql struct {
						Rule, Column, Value string
						Row                 map[string]string
					}
					if err := json.Unmarshal(sc.Bytes(), &ql); err != nil {
						t.Fatal(err)
					}
					if ql.Rule == quality.RuleRange && ql.Column == "rate_usd" && ql.Value == "-1" && ql.Row["rate_usd"] == "-1" {
						quarantined++
					}
				}
				return sc.Err()
			})
			if quarantined != negative {
				t.Errorf("%d quarantine lines for range(rate_usd), planted %d", quarantined, negative)
			}
			// The written rows are the others: every row in, minus the quarantined.
			if where == "dir" {
				got := countParquetRows(t, outLoc)
				if want := int64(m.Tables["hotel_rates"].Rows - negative); got["hotel_rates"] != want {
					t.Errorf("hotel_rates: %d rows in Parquet, want %d", got["hotel_rates"], want)
				}
			}
			var profiles int
			_ = out.List(context.Background(), "_dq/profiles/", "", func(objstore.Attrs) error { profiles++; return nil })
			if profiles == 0 {
				t.Error("no column profiles under _dq/profiles/")
			}
		})
	}
}

// s3OptionsFor returns the objstore options the run used (endpoint and path style from args).
func s3OptionsFor(t *testing.T, args []string) objstore.Options {
	for i, a := range args {
		if a == "--s3-endpoint" && i+1 < len(args) {
			return s3test.Options(t, args[i+1])
		}
	}
	return objstore.Options{}
}

// TestQualityFailRuleDeadLetters: a batch a `fail` rule rejects is not committed: it is
// dead-lettered with the rule, the archive fails and `run --once` exits 2. `sluice dlq retry`
// commits it once the rule is relaxed, or with --force (recorded in the event).
func TestQualityFailRuleDeadLetters(t *testing.T) {
	c := newCorpus(t, 29, 1, 1, 6, 300, func(c *gen.Config) { c.Extras = false })
	dir, landing, out, state, m := c.dir, c.landing, c.out, c.state, c.m
	rules := func(name, hotelMin string) string {
		p := filepath.Join(dir, name)
		y := "partners:\n  - name: partner\n    tables:\n" +
			"      hotel_rates:\n        quality:\n          table:\n            row_count: {min: " + hotelMin + ", action: fail}\n" +
			"      competitor_prices:\n        quality:\n          table:\n            row_count: {min: 1000000, action: fail}\n"
		if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	strict, relaxed := rules("strict.yaml", "1000000"), rules("relaxed.yaml", "1")
	code, outp := runOnce(t, "--landing", landing, "--out", out, "--state", state, "--config", strict)
	if code != exitFindings || !strings.Contains(outp, "data quality: row_count failed") || !strings.Contains(outp, "DQ FAIL") {
		t.Fatalf("run with failing rules: exit %d, want %d naming the rule, DQ FAIL:\n%s", code, exitFindings, outp)
	}
	if got := countParquetRows(t, out); got["hotel_rates"] != 0 || got["competitor_prices"] != 0 {
		t.Fatalf("rejected batches were committed: %v", got)
	}
	ctx := context.Background()
	// The ledger (`sluice status`) says the archive failed, and why, as the summary does; the next
	// run finds it done before, not unfinished.
	ledgerSays := func(want ledger.State, reason string) {
		t.Helper()
		e, closeAll, err := openEnv(ctx, t, state)
		if err != nil {
			t.Fatal(err)
		}
		defer closeAll()
		recs, err := e.Ledger.List(ctx)
		if err != nil || len(recs) != 1 || recs[0].State != want || !strings.Contains(recs[0].Reason, reason) {
			t.Fatalf("ledger: %+v %v, want %s with a reason holding %q", recs, err, want, reason)
		}
	}
	ledgerSays(ledger.Failed, "dead-lettered by the merger: commit: data quality: row_count failed")
	if code, outp := runOnce(t, "--landing", landing, "--out", out, "--state", state, "--config", strict, "--quiet-summary"); code != exitFindings ||
		!strings.Contains(outp, "0 resumed, 1 done before") {
		t.Fatalf("second run: exit %d, want %d with the archive done before:\n%s", code, exitFindings, outp)
	}
	dlq := func(conf string, extra ...string) int {
		return exitCode(cmdDLQ(ctx, append([]string{"retry", "--all", "--out", out, "--state", state, "--log-level", "warn", "--config", conf}, extra...)))
	}
	// Without --config the retry commits under the configuration the mergers recorded: the rules
	// still reject both batches (exit 1), nothing is committed. (It used to commit them under the
	// defaults, quietly letting the rejected rows in.)
	if c := exitCode(cmdDLQ(ctx, []string{"retry", "--all", "--out", out, "--state", state, "--log-level", "warn"})); c != exitFailure {
		t.Fatalf("dlq retry without --config: exit %d, want %d", c, exitFailure)
	}
	if got := countParquetRows(t, out); got["hotel_rates"] != 0 || got["competitor_prices"] != 0 {
		t.Fatalf("dlq retry without --config committed rejected batches: %v", got)
	}
	// Relaxing hotel_rates' rule lets its batch commit; competitor_prices' still fails (exit 1).
	if c := dlq(relaxed); c != exitFailure {
		t.Fatalf("dlq retry with one rule still failing: exit %d, want %d", c, exitFailure)
	}
	got := countParquetRows(t, out)
	if got["hotel_rates"] != int64(m.Tables["hotel_rates"].Rows) || got["competitor_prices"] != 0 {
		t.Fatalf("after the relaxed retry: %v", got)
	}
	if c := dlq(strict, "--force"); c != 0 {
		t.Fatalf("dlq retry --force: exit %d", c)
	}
	// The first run stopped once the archive had failed; the next one commits the batches of its
	// other tables that were still in flight (RecoverDeliveries hands them back at once).
	code, outp = runOnce(t, "--landing", landing, "--out", out, "--state", state, "--config", relaxed)
	if code == exitFailure {
		t.Fatalf("run after the retries: exit %d:\n%s", code, outp)
	}
	checkRows(t, m, out)
	ledgerSays(ledger.Committed, "")
	rs := readResults(t, s3test.Open(t, out, objstore.Options{}), "competitor_prices")
	if len(rs) == 0 || rs[0].Status != quality.StatusFail {
		t.Fatalf("forced batch's results: %+v", rs)
	}
	// The summary says which batch went past its fail rule (BatchCommitted.quality_forced).
	sums, err := filepath.Glob(filepath.Join(out, "_summaries", "process_date=*", "summary.json"))
	if err != nil || len(sums) == 0 {
		t.Fatalf("summaries: %v %v", sums, err)
	}
	forced := map[string]bool{}
	for _, p := range sums {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var doc summarizer.SummaryJSON
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, tj := range doc.Tables {
			if tj.Quality != nil && tj.Quality.Forced {
				forced[tj.Table] = true
				if tj.Quality.Status != summarizer.QualityFail {
					t.Errorf("%s: forced table %s has quality %s, want FAIL", p, tj.Table, tj.Quality.Status)
				}
			}
		}
	}
	if !forced["competitor_prices"] || forced["hotel_rates"] || len(forced) != 1 {
		t.Fatalf("tables shown forced in the summaries: %v, want competitor_prices alone", forced)
	}
}

// TestQualityRulesRefusedAtStart: rules that do not fit a known table's schema (a regex on a
// number column) stop the run at start with the reason, as a configuration error (exit 78); so
// does a rule name that does not exist, naming its line. A range on a text column is not refused:
// it reads the values as numbers (a column widened to text by the data keeps its rule).
func TestQualityRulesRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	landing, out, state := filepath.Join(dir, "landing"), filepath.Join(dir, "out"), filepath.Join(dir, "state")
	cfg := gen.DefaultConfig()
	cfg.Out, cfg.Seed, cfg.Days, cfg.Archives, cfg.Tables, cfg.RowsPerMember = landing, 31, 1, 1, 3, 100
	if _, err := gen.Generate(cfg); err != nil {
		t.Fatal(err)
	}
	if code, outp := runOnce(t, "--landing", landing, "--out", out, "--state", state); code != 0 {
		t.Fatalf("first run: exit %d\n%s", code, outp)
	}
	write := func(name, y string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mismatch := write("mismatch.yaml", "partners:\n  - name: partner\n    tables:\n      hotel_rates:\n        quality:\n          columns:\n            nights: {regex: '^1'}\n")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := cmdRun(ctx, []string{"--once", "--progress", "off", "--log-level", "error", "--landing", landing, "--out", out, "--state", state, "--config", mismatch})
	if exitCode(err) != exitConfig || !strings.Contains(err.Error(), "column nights is int64: regex needs a string column") {
		t.Fatalf("regex on a number column: exit %d, %v", exitCode(err), err)
	}
	// A configuration refused at start is not the one replay and dlq retry fall back on.
	{
		e, closeAll, err := openEnv(ctx, t, state)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := merger.RecordedPartners(ctx, e.Bus)
		closeAll()
		if err != nil || rec != nil {
			t.Fatalf("recorded configuration after a refused start: %+v %v, want the first run's defaults", rec, err)
		}
	}
	text := write("text.yaml", "partners:\n  - name: partner\n    tables:\n      hotel_rates:\n        quality:\n          columns:\n            hotel_name: {range: {min: 0}}\n")
	if code, outp := runOnce(t, "--landing", landing, "--out", out, "--state", state, "--config", text); code != 0 {
		t.Fatalf("range on a text column: exit %d, want 0 (nothing new to check)\n%s", code, outp)
	}
	unknown := write("unknown.yaml", "partners:\n  - name: partner\n    tables:\n      hotel_rates:\n        quality:\n          columns:\n            hotel_name: {not_nul: true}\n")
	err = cmdRun(ctx, []string{"--once", "--progress", "off", "--landing", landing, "--out", out, "--state", state, "--config", unknown})
	if exitCode(err) != exitConfig || !strings.Contains(err.Error(), "line 7") || !strings.Contains(err.Error(), "not_null") {
		t.Fatalf("unknown rule: exit %d, %v", exitCode(err), err)
	}
}

// TestRuleKeepsWorkingAfterItsColumnWidens (a user trial): one value of another form widens a
// number column to text. Its quarantine range rule keeps taking out what is out of range, and
// also the value that is not a number; the next run starts (it used to refuse every partner:
// "rules do not fit the tables' schemas", until someone deleted the rule).
func TestRuleKeepsWorkingAfterItsColumnWidens(t *testing.T) {
	dir := t.TempDir()
	landing, out, state := filepath.Join(dir, "landing"), filepath.Join(dir, "out"), filepath.Join(dir, "state")
	conf := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(conf, []byte("partners:\n  - name: p\n    archive_glob: 'p_*.tar.gz'\n    tables:\n      pay:\n        quality:\n"+
		"          columns:\n            amount: {range: {min: 0, max: 1000}, action: quarantine}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	day := func(date, body string) {
		t.Helper()
		if err := gen.WriteArchive(filepath.Join(landing, "p_"+date+"_1.tar.gz"),
			[]gen.Member{{Name: "pay_" + date + "_1.csv", Body: []byte("id,amount\n" + body)}}); err != nil {
			t.Fatal(err)
		}
	}
	run := func(want int) {
		t.Helper()
		if code, outp := runOnce(t, "--landing", landing, "--out", out, "--state", state, "--config", conf, "--quiet-summary"); code != want {
			t.Fatalf("run: exit %d, want %d\n%s", code, want, outp)
		}
	}
	day("20250310", "1,10\n2,20\n")
	run(0)
	day("20250311", "3,\"1,200\"\n4,-50\n5,99999\n6,30\n")
	run(exitFindings) // three rows quarantined
	day("20250312", "7,40\n8,5000\n")
	run(exitFindings)
	b := s3test.Open(t, out, objstore.Options{})
	var quarantined []string
	if err := b.List(context.Background(), "_quarantine/pay/", "", func(a objstore.Attrs) error {
		r, err := b.Get(context.Background(), a.Key)
		if err != nil {
			return err
		}
		defer r.Close()
		data, err := io.ReadAll(r)
		quarantined = append(quarantined, string(data))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(quarantined, "")
	for _, v := range []string{`1,200`, `-50`, `99999`, `5000`} {
		if !strings.Contains(all, v) {
			t.Errorf("%s not quarantined:\n%s", v, all)
		}
	}
	if n := strings.Count(all, "\n"); n != 4 {
		t.Errorf("%d quarantined rows, want 4:\n%s", n, all)
	}
	if got := countParquetRows(t, out)["pay"]; got != 4 {
		t.Errorf("rows of pay %d, want 4 (ids 1, 2, 6, 7)", got)
	}
}
