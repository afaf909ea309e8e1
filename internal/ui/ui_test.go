package ui_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/gen"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/pipeline"
	"github.com/sluice-dev/sluice/internal/ui"
	"github.com/sluice-dev/sluice/summarizer"
)

// fixture is a pipeline running in this process (every stage, embedded NATS, folder landing
// and output) with the dashboard served on a loopback port.
type fixture struct {
	t       *testing.T
	env     *pipeline.Env
	sum     *summarizer.Summarizer
	out     objstore.Bucket
	landing string
	url     string
	m       *gen.Manifest
	ids     []string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	b := bustest.New(t, func(c *bus.Config) { c.Subjects.Partitions = 4 })
	// The demo's partner: data-quality rules, plus two expected archives a day.
	partners, err := config.Load(filepath.Join("..", "..", "examples", "partners-dq.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	partners.Partners[0].Expected = &config.Expected{Sources: []string{"partner_{date}_1.tar.gz", "partner_{date}_2.tar.gz"},
		Deadline: config.Duration{Duration: 30 * time.Hour}}
	env, err := pipeline.NewEnv(context.Background(), b, partners, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	dir := t.TempDir()
	f := &fixture{t: t, env: env, landing: filepath.Join(dir, "landing")}
	cfg := gen.DefaultConfig()
	cfg.Out, cfg.Seed, cfg.Days, cfg.Archives, cfg.Tables, cfg.RowsPerMember = f.landing, 7, 2, 2, 4, 300
	cfg.Defects = true // quarantined rows and data-quality findings on the last day
	if f.m, err = gen.Generate(cfg); err != nil {
		t.Fatal(err)
	}
	for _, a := range f.m.Archives {
		f.ids = append(f.ids, archiveID(t, a.Path))
	}
	opts := pipeline.Options{Landing: f.landing, Out: filepath.Join(dir, "out"), SpillDir: t.TempDir(), MemoryBudget: 64 << 20}
	if f.out, err = env.Bucket(context.Background(), opts.Out, opts.S3); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *summarizer.Summarizer, 1)
	done := make(chan error, 1)
	go func() {
		_, err := pipeline.Run(ctx, env, opts, func(s *summarizer.Summarizer) { started <- s })
		done <- err
	}()
	srv, err := ui.New(ui.Config{Addr: "127.0.0.1:0"}, ui.Deps{Bus: b, Out: f.out})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.url = "http://" + ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("pipeline: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("dashboard: %v", err)
		}
	})
	select {
	case f.sum = <-started:
	case err := <-done:
		t.Fatalf("pipeline stopped: %v", err)
	}
	f.waitIngested(f.ids...)
	return f
}

// waitIngested waits until the summarizer has every archive terminal and its dates summarized.
func (f *fixture) waitIngested(ids ...string) summarizer.Status {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := f.sum.WaitFor(ctx, ids)
	if err != nil {
		f.t.Fatalf("ingest: %v (totals %+v)", err, st.Totals)
	}
	for _, id := range ids {
		if a := st.Archives[id]; a.State != summarizer.StateCommitted {
			f.t.Fatalf("archive %s: %s %s", id, a.State, a.Reason)
		}
	}
	return st
}

// land writes one more archive (a process date of its own, of which the second expected archive
// never comes) into the landing area, atomically, and returns its id and name.
func (f *fixture) land(date string) (id, name string) {
	f.t.Helper()
	cfg := gen.DefaultConfig()
	cfg.Out, cfg.Seed, cfg.Days, cfg.Archives, cfg.Tables, cfg.RowsPerMember, cfg.StartDate = f.t.TempDir(), 8, 1, 1, 4, 200, date
	m, err := gen.Generate(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	a := m.Archives[0]
	name = a.Name
	if err := os.Rename(a.Path, filepath.Join(f.landing, name)); err != nil {
		f.t.Fatal(err)
	}
	return archiveID(f.t, filepath.Join(f.landing, name)), name
}

func archiveID(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:20]
}

// summaries reads the summary.json of every date of the status that has one.
func (f *fixture) summaries(st summarizer.Status) map[string]summarizer.SummaryJSON {
	f.t.Helper()
	out := map[string]summarizer.SummaryJSON{}
	for d, ds := range st.Dates {
		if !ds.Written {
			continue
		}
		rc, err := f.out.Get(context.Background(), summarizer.SummaryKey(d))
		if err != nil {
			f.t.Fatal(err)
		}
		var doc summarizer.SummaryJSON
		err = json.NewDecoder(rc).Decode(&doc)
		rc.Close()
		if err != nil {
			f.t.Fatal(err)
		}
		out[d] = doc
	}
	return out
}

func (f *fixture) getJSON(path string, v any) {
	f.t.Helper()
	resp, err := http.Get(f.url + path)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		f.t.Fatalf("GET %s: %s %s", path, resp.Status, body)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		f.t.Fatalf("GET %s: %v", path, err)
	}
}

// TestAPI: the JSON API says what the summaries say (rows per table and date, dates' totals
// and checks), lists every archive with its timeline, serves summary.txt as written, and
// refuses a Host that is not a loopback name.
func TestAPI(t *testing.T) {
	f := newFixture(t)
	st := f.waitIngested(f.ids...)
	sums := f.summaries(st)

	want := map[string]int64{} // table/date → rows out
	for d, doc := range sums {
		for _, tj := range doc.Tables {
			want[tj.Table+"/"+d] = tj.RowsOut
		}
	}
	var tables ui.Tables
	ui.Eventually(t, 30*time.Second, "tables match the summaries", func() (bool, string) {
		f.getJSON("/api/tables", &tables)
		got := map[string]int64{}
		for _, tv := range tables.Tables {
			for i, d := range tables.Days {
				if tv.RowsByDay[i] != 0 {
					got[tv.Table+"/"+d] = tv.RowsByDay[i]
				}
			}
		}
		return equalMaps(got, want), jsonString(got) + " want " + jsonString(want)
	})
	for _, tv := range tables.Tables {
		if tv.Version == 0 || len(tv.Columns) == 0 || len(tv.History) == 0 || tv.History[len(tv.History)-1].ArchiveID == "" {
			t.Errorf("table %s: schema v%d, %d columns, history %+v", tv.Table, tv.Version, len(tv.Columns), tv.History)
		}
	}

	var dates ui.Dates
	ui.Eventually(t, 30*time.Second, "dates match the summaries", func() (bool, string) {
		f.getJSON("/api/dates", &dates)
		if len(dates.Dates) != len(sums) {
			return false, jsonString(dates)
		}
		for _, d := range dates.Dates {
			s := sums[d.Date]
			if !d.Written || d.Check != s.Check || d.RowsOut != s.Totals.RowsOut || d.RowsIn != s.Totals.RowsIn {
				return false, jsonString(d)
			}
		}
		return true, ""
	})

	var list ui.Archives
	f.getJSON("/api/archives", &list)
	if list.Matched != len(f.ids) {
		t.Fatalf("archives listed %d, want %d", list.Matched, len(f.ids))
	}
	f.getJSON("/api/archives?q="+f.m.Archives[0].Name[:len("partner_20250301")], &list)
	if list.Matched != 2 {
		t.Errorf("search for the first date: %d archives, want 2", list.Matched)
	}
	var detail ui.ArchiveDetail
	f.getJSON("/api/archives/"+f.ids[0], &detail)
	var steps []string
	for _, s := range detail.Timeline {
		steps = append(steps, s.Step)
	}
	if strings.Join(steps, ",") != "landed,extracted,committed,checked" {
		t.Errorf("timeline %v", steps)
	}
	if detail.Skipped == 0 || len(detail.Members) != detail.Skipped+detail.Rejected {
		t.Errorf("members not taken: %d skipped, %d listed", detail.Skipped, len(detail.Members))
	}

	for d := range sums {
		resp, err := http.Get(f.url + "/summaries/" + d + "/summary.txt")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		rc, err := f.out.Get(context.Background(), strings.TrimSuffix(summarizer.SummaryKey(d), ".json")+".txt")
		if err != nil {
			t.Fatal(err)
		}
		wantTxt, _ := io.ReadAll(rc)
		rc.Close()
		if resp.StatusCode != http.StatusOK || string(got) != string(wantTxt) {
			t.Errorf("summary.txt of %s: %s, %d bytes, want %d", d, resp.Status, len(got), len(wantTxt))
		}
	}
	for _, path := range []string{"/summaries/..%2f..%2fetc/summary.txt", "/summaries/2025-03-01/other.txt", "/api/archives/not-hex"} {
		resp, err := http.Get(f.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, f.url+"/api/overview", nil)
	req.Host = "attacker.example:80"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign Host: %s, want 403", resp.Status)
	}
	req, _ = http.NewRequest(http.MethodPost, f.url+"/api/overview", nil)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %s, want 405", resp.Status)
	}
}

func TestListenAddr(t *testing.T) {
	for in, want := range map[string]string{":8089": "127.0.0.1:8089", "0.0.0.0:80": "0.0.0.0:80", "localhost:1": "localhost:1", "[::1]:2": "[::1]:2"} {
		if got := ui.ListenAddr(in); got != want {
			t.Errorf("ListenAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func equalMaps(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
