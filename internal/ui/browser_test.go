package ui_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluice-dev/sluice/summarizer"
)

// browser finds Debian's chromium (installed by `make tools`). Without one the test is skipped,
// unless SLUICE_REQUIRE_BROWSER=1 (set by `make test`): then it fails.
func browser(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("SLUICE_REQUIRE_BROWSER") == "1" {
		t.Fatal("no chromium on PATH (SLUICE_REQUIRE_BROWSER=1): `make tools` installs it")
	}
	t.Skip("no chromium on PATH; set SLUICE_REQUIRE_BROWSER=1 to fail instead")
	return ""
}

// shots is where screenshots go: $SLUICE_ARTIFACTS/dashboard, else the test's temp dir; with
// SLUICE_UPDATE_SCREENSHOTS=1 they are also written to docs/img/dashboard-<view>.png.
func shots(t *testing.T) func(view string, png []byte) {
	dir := t.TempDir()
	if a := os.Getenv("SLUICE_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "dashboard")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	update := os.Getenv("SLUICE_UPDATE_SCREENSHOTS") == "1"
	return func(view string, png []byte) {
		t.Helper()
		p := filepath.Join(dir, "dashboard-"+view+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s", p)
		if update {
			if err := os.WriteFile(filepath.Join("..", "..", "docs", "img", "dashboard-"+view+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestDashboardInBrowser drives headless Chromium over the dashboard of a running pipeline:
// every view renders the numbers the summaries hold, and a new archive dropped into the landing
// area shows up, committed, without a reload.
func TestDashboardInBrowser(t *testing.T) {
	exe := browser(t)
	f := newFixture(t)
	st := f.waitIngested(f.ids...)
	sums := f.summaries(st)
	save := shots(t)

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.WindowSize(1400, 1000),
		chromedp.Flag("disable-dev-shm-usage", true))
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // starts the browser, on a context without a deadline
		t.Fatalf("start chromium: %v", err)
	}
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, stop := context.WithTimeout(ctx, 60*time.Second)
		defer stop()
		if err := chromedp.Do(sctx, steps...); err != nil {
			page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("view").innerText`))
			t.Fatalf("%s: %v\npage: %s", what, err, page)
		}
	}
	eval := func(expr string) map[string]string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}
	// waitFor polls a JavaScript predicate in the page until it is true.
	waitFor := func(what, predicate string) {
		t.Helper()
		run(what, chromedp.Action[chromedp.Void](func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.Poll[bool](predicate, chromedp.WithPollingTimeout(45*time.Second))(ctx, tg)
			return chromedp.Void{}, err
		}))
	}
	shot := func(view string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", view, err)
		}
		save(view, png)
	}
	digits := func(s string) int64 {
		n, _ := strconv.ParseInt(strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, s), 10, 64)
		return n
	}
	var rowsOut, rowsIn int64
	for _, doc := range sums {
		rowsOut += doc.Totals.RowsOut
		rowsIn += doc.Totals.RowsIn
	}

	// Overview: archives and rows out as the summaries count them.
	start := time.Now()
	run("open overview", chromedp.Navigate(f.url+"/#overview"))
	waitFor("overview rendered", fmt.Sprintf(`document.body.dataset.view === "overview" && document.getElementById("archives-total")?.textContent === "%d" && document.getElementById("rows-out")?.textContent === %q && document.querySelectorAll("#partitions tr").length === 5`,
		len(f.ids), fmtInt(rowsOut)))
	got := eval(`({rate: document.getElementById("rows-rate").textContent, mergers: document.getElementById("mergers-alive").textContent, dlq: document.getElementById("dead-letters").textContent})`)
	if !strings.HasSuffix(got["rate"], "rows/s") || got["mergers"] != "1" || got["dlq"] != "0" {
		t.Errorf("overview: %v", got)
	}
	shot("overview")

	// Tables: every (table, date) cell equals the summary's rows out.
	run("open tables", chromedp.Navigate(f.url+"/#tables"))
	waitFor("tables rendered", `document.body.dataset.view === "tables" && document.querySelectorAll("#rows-per-day td[data-day]").length > 0`)
	cells := eval(`Object.fromEntries([...document.querySelectorAll("#rows-per-day td[data-day]")].map(e => [e.dataset.table + "/" + e.dataset.day, e.textContent]))`)
	n := 0
	for d, doc := range sums {
		for _, tj := range doc.Tables {
			n++
			if c, ok := cells[tj.Table+"/"+d]; !ok || digits(c) != tj.RowsOut {
				t.Errorf("tables: %s on %s shows %q, summary says %d", tj.Table, d, c, tj.RowsOut)
			}
		}
	}
	if n == 0 {
		t.Fatal("the summaries hold no table")
	}
	history := eval(`({rows: String(document.querySelectorAll("#schemas tr").length - 1), links: String(document.querySelectorAll("#schemas a[href^='#archives/']").length)})`)
	if digits(history["rows"]) < int64(len(f.m.Tables)) || digits(history["links"]) == 0 {
		t.Errorf("schema history: %v", history)
	}
	shot("tables")

	// Dates: each date's check and rows as its summary says, with its summary.txt linked.
	run("open dates", chromedp.Navigate(f.url+"/#dates"))
	waitFor("dates rendered", fmt.Sprintf(`document.body.dataset.view === "dates" && document.querySelectorAll("#dates tr[data-date] a[href$='summary.txt']").length === %d`, len(sums)))
	for d, doc := range sums {
		row := eval(fmt.Sprintf(`(() => { const r = document.querySelector('#dates tr[data-date="%s"]'); return {out: r.querySelector('[data-k=rows-out]').textContent, in: r.querySelector('[data-k=rows-in]').textContent, check: r.querySelector('.badge').textContent, link: r.querySelector('a').getAttribute('href')}; })()`, d))
		if digits(row["out"]) != doc.Totals.RowsOut || digits(row["in"]) != doc.Totals.RowsIn || row["check"] != doc.Check || row["link"] != "/summaries/"+d+"/summary.txt" {
			t.Errorf("dates: %s shows %v, summary says rows in %d out %d check %s", d, row, doc.Totals.RowsIn, doc.Totals.RowsOut, doc.Check)
		}
	}
	shot("dates")

	// Archives: the list, then one archive's timeline.
	run("open archives", chromedp.Navigate(f.url+"/#archives"))
	waitFor("archives rendered", fmt.Sprintf(`document.body.dataset.view === "archives" && document.querySelectorAll("#archives tr[data-archive]").length === %d`, len(f.ids)))
	shot("archives")
	run("open an archive", chromedp.Navigate(f.url+"/#archives/"+f.ids[0]))
	waitFor("archive timeline", `[...document.querySelectorAll("#timeline .step .k")].map(e => e.textContent).join(",") === "landed,extracted,committed,checked"`)
	shot("archive")

	// Live: back to the list (a hash change, no reload), then an archive lands.
	run("back to the list", chromedp.Navigate(f.url+"/#archives"))
	waitFor("archives list again", fmt.Sprintf(`document.querySelectorAll("#archives tr[data-archive]").length === %d`, len(f.ids)))
	run("mark the page", chromedp.Action[chromedp.Void](func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[bool](`window.sluiceNoReload = true`)(ctx, tg)
		return chromedp.Void{}, err
	}))
	id, name := f.land("20250310")
	waitFor("the new archive appears committed", fmt.Sprintf(`document.querySelector('#archives tr[data-archive="%s"][data-state="committed"]') !== null`, id))
	run("switch to dates (no reload)", chromedp.Action[chromedp.Void](func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[bool](`(location.hash = "#dates", true)`)(ctx, tg)
		return chromedp.Void{}, err
	}))
	st = f.waitIngested(id)
	want := f.summaries(st)["2025-03-10"]
	waitFor("the new date appears with its summary", fmt.Sprintf(`(() => { const r = document.querySelector('#dates tr[data-date="2025-03-10"]'); return r !== null && r.querySelector("a") !== null && r.querySelector("[data-k=rows-out]").textContent === %q; })()`, fmtInt(want.Totals.RowsOut)))
	shot("dates") // now with a date whose second expected archive is missing
	still := eval(`({same: String(window.sluiceNoReload === true)})`)
	if still["same"] != "true" {
		t.Errorf("the page was reloaded")
	}
	if want.Check != summarizer.CheckOK {
		t.Errorf("new date check %s", want.Check)
	}
	t.Logf("browser part took %s (archive %s)", time.Since(start).Round(time.Millisecond), name)
}

// fmtInt formats n as the page does (en-US grouping).
func fmtInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
