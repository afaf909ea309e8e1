package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/sluice-dev/sluice/internal/gen"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/internal/objstore/s3test"
	"github.com/sluice-dev/sluice/internal/pipeline"
	"github.com/sluice-dev/sluice/internal/statedir"
)

// The tests of this file hold `sluice run --once` to its word: exit 0 and OK only when every
// archive is committed and checked, whatever happened to earlier runs on the same --state.

var sluiceBin = struct {
	once sync.Once
	path string
	err  error
}{}

// buildSluice builds the binary once per test process.
func buildSluice(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	sluiceBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-bin-")
		if err != nil {
			sluiceBin.err = err
			return
		}
		sluiceBin.path = filepath.Join(dir, "sluice")
		if out, err := exec.Command("go", "build", "-o", sluiceBin.path, ".").CombinedOutput(); err != nil {
			sluiceBin.err = errors.New(string(out))
		}
	})
	if sluiceBin.err != nil {
		t.Fatalf("build sluice: %v", sluiceBin.err)
	}
	return sluiceBin.path
}

// testCorpus is a fresh test directory with generated archives in landing, and where a run
// writes (out) and keeps its state.
type testCorpus struct {
	dir, landing, out, state string
	m                        *gen.Manifest
}

// newCorpus generates a corpus with the seed and shape given: days × archives archives of tables
// tables, rows rows per member (more knobs through adjust, which may be nil).
func newCorpus(t *testing.T, seed int64, days, archives, tables, rows int, adjust func(*gen.Config)) testCorpus {
	t.Helper()
	dir := t.TempDir()
	c := testCorpus{dir: dir, landing: filepath.Join(dir, "landing"), out: filepath.Join(dir, "out"), state: filepath.Join(dir, "state")}
	cfg := gen.DefaultConfig()
	cfg.Out, cfg.Seed, cfg.Days, cfg.Archives, cfg.Tables, cfg.RowsPerMember = c.landing, seed, days, archives, tables, rows
	if adjust != nil {
		adjust(&cfg)
	}
	m, err := gen.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.m = m
	return c
}

// file writes body to name in the corpus directory and returns its path.
func (c testCorpus) file(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitFor polls cond every 20ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// parquetRows sums the footers' row counts of every table's Parquet objects under out (a folder
// that may still be written), and lists the temporary files and the objects that do not open.
func parquetRows(out string) (rows map[string]int64, tmp []string, bad []error) {
	rows = map[string]int64{}
	_ = filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(out, p)
		switch {
		case strings.HasPrefix(d.Name(), ".tmp-"):
			tmp = append(tmp, rel)
			return nil
		case !strings.HasSuffix(p, ".parquet") || strings.HasPrefix(rel, "_"):
			return nil
		}
		r, err := file.OpenParquetFile(p, false)
		if err != nil {
			bad = append(bad, fmt.Errorf("%s: %w", rel, err))
			return nil
		}
		rows[strings.Split(rel, string(filepath.Separator))[0]] += r.NumRows()
		r.Close()
		return nil
	})
	return rows, tmp, bad
}

// countParquetRows sums the footers' row counts of every table's Parquet objects under out, and
// fails on a temporary or partial file left behind.
func countParquetRows(t *testing.T, out string) map[string]int64 {
	t.Helper()
	rows, tmp, bad := parquetRows(out)
	for _, rel := range tmp {
		t.Errorf("temporary file left: %s", rel)
	}
	for _, err := range bad {
		t.Fatal(err)
	}
	return rows
}

func checkRows(t *testing.T, m *gen.Manifest, out string) {
	t.Helper()
	got := countParquetRows(t, out)
	for table, tt := range m.Tables {
		if got[table] != int64(tt.Rows) {
			t.Errorf("table %s: %d rows in Parquet, want %d", table, got[table], tt.Rows)
		}
	}
	if len(got) != len(m.Tables) {
		t.Errorf("%d tables in the output, want %d", len(got), len(m.Tables))
	}
}

func anyFile(dir, suffix string) func() bool {
	return func() bool {
		found := false
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, suffix) {
				found = true
				return filepath.SkipAll
			}
			return nil
		})
		return found
	}
}

// TestRunOnceAfterKills: `sluice run --once` killed with SIGKILL at several points of its work
// (its embedded server dies with it), then run once more on the same --state: that run takes up
// every unfinished archive, exits 0 and every row is in the Parquet exactly once.
func TestRunOnceAfterKills(t *testing.T) {
	bin := buildSluice(t)
	c := newCorpus(t, 33, 2, 3, 6, 25000, nil)
	landing, out, state, m := c.landing, c.out, c.state, c.m
	args := []string{"run", "--once", "--landing", landing, "--out", out, "--state", state, "--progress", "off", "--log-level", "warn"}
	kills := []struct {
		name string
		when func() bool
	}{
		{"server up", func() bool { _, err := statedir.ReadServer(state); return err == nil }},
		{"first parquet", anyFile(out, ".parquet")},
		{"first summary", anyFile(filepath.Join(out, "_summaries"), "summary.json")},
	}
	killed := 0
	for _, k := range kills {
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		waitFor(t, 2*time.Minute, k.name, func() bool { return k.when() || len(exited) > 0 })
		if len(exited) == 0 {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			killed++
		}
		err := <-exited
		t.Logf("run killed at %q: %v", k.name, err)
	}
	if killed == 0 {
		t.Fatal("every run finished before it could be killed: the corpus is too small to test recovery")
	}
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("final run --once took %s:\n%s", time.Since(start).Round(time.Millisecond), stdout.String())
	if err != nil {
		t.Fatalf("final run --once: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "\nOK: ") {
		t.Errorf("final run --once exited 0 without saying OK")
	}
	checkRows(t, m, out)
	for _, d := range []string{"2025-03-01", "2025-03-02"} {
		if _, err := os.Stat(filepath.Join(out, "_summaries", "process_date="+d, "summary.txt")); err != nil {
			t.Errorf("summary of %s: %v", d, err)
		}
	}
}

// TestStateDirOwnedByOneProcess: while `sluice run` holds --state, a second run or a stage on the
// same --state is refused with the holder named, and status/dlq reach the live server.
func TestStateDirOwnedByOneProcess(t *testing.T) {
	bin := buildSluice(t)
	dir := t.TempDir()
	landing, out, state := filepath.Join(dir, "landing"), filepath.Join(dir, "out"), filepath.Join(dir, "state")
	cfg := gen.DefaultConfig()
	cfg.Out, cfg.Seed, cfg.Days, cfg.Archives, cfg.Tables, cfg.RowsPerMember = landing, 7, 1, 1, 2, 100
	if _, err := gen.Generate(cfg); err != nil {
		t.Fatal(err)
	}
	run := exec.Command(bin, "run", "--landing", landing, "--out", out, "--state", state, "--progress", "off", "--log-level", "warn")
	var runLog bytes.Buffer
	run.Stdout, run.Stderr = &runLog, &runLog
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = run.Process.Kill(); _ = run.Wait() })
	if !waitFor(t, time.Minute, "server.json", func() bool { _, err := statedir.ReadServer(state); return err == nil }) {
		t.Fatalf("sluice run did not publish its server:\n%s", runLog.String())
	}
	if !waitFor(t, time.Minute, "a summary", anyFile(filepath.Join(out, "_summaries"), "summary.json")) {
		t.Fatalf("sluice run did not ingest:\n%s", runLog.String())
	}
	for _, c := range [][]string{
		{"run", "--once", "--landing", landing, "--out", out},
		{"extractor"},
		{"merger", "--out", out},
	} {
		cmd := exec.Command(bin, append(c, "--state", state)...)
		outp, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitFailure {
			t.Errorf("%v on a held state: %v, want exit %d\n%s", c, err, exitFailure, outp)
		}
		want := "is in use by sluice run (pid " + strconv.Itoa(run.Process.Pid)
		if !strings.Contains(string(outp), want) {
			t.Errorf("%v: message lacks %q:\n%s", c, want, outp)
		}
	}
	status, err := exec.Command(bin, "status", "--state", state).CombinedOutput()
	if err != nil || !strings.Contains(string(status), "committed") {
		t.Errorf("status through the live server: %v\n%s", err, status)
	}
	if dl, err := exec.Command(bin, "dlq", "list", "--state", state).CombinedOutput(); err != nil {
		t.Errorf("dlq list through the live server: %v\n%s", err, dl)
	}
	// The owner still works: a new archive is taken after the other commands came and went.
	cfg.Seed, cfg.StartDate = 8, "20250305"
	if _, err := gen.Generate(cfg); err != nil {
		t.Fatal(err)
	}
	if !waitFor(t, time.Minute, "the new date's summary", func() bool {
		_, err := os.Stat(filepath.Join(out, "_summaries", "process_date=2025-03-05", "summary.json"))
		return err == nil
	}) {
		t.Fatalf("no summary for the archive landed later:\n%s", runLog.String())
	}
	_ = run.Process.Signal(syscall.SIGTERM)
	if err := run.Wait(); err != nil {
		t.Errorf("run on SIGTERM: %v", err)
	}
	// Once it is gone, the state is free again and server.json is removed.
	if _, err := statedir.ReadServer(state); err == nil {
		t.Errorf("server.json left after a clean stop")
	}
	if st, err := exec.Command(bin, "status", "--state", state).CombinedOutput(); err != nil || !strings.Contains(string(st), "committed") {
		t.Errorf("status on the released state: %v\n%s", err, st)
	}
}

// openEnv opens the store of state (creating it and its streams) as a stage does.
func openEnv(ctx context.Context, t *testing.T, state string) (*pipeline.Env, func(), error) {
	t.Helper()
	// Set up as a stage is, which ensures the streams (the operator's tools use what is there, and
	// a fresh --state has nothing).
	c := newCommon("producer")
	if err := c.parse([]string{"--state", state, "--log-level", "warn"}); err != nil {
		return nil, nil, err
	}
	return c.setup(ctx, "producer")
}

// runOnce runs cmdRun in-process and returns its exit code and stdout.
func runOnce(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() { _, _ = buf.ReadFrom(r); close(done) }()
	err = cmdRun(ctx, append([]string{"--once", "--progress", "off", "--log-level", "warn"}, args...))
	os.Stdout = saved
	w.Close()
	<-done
	if err != nil && exitCode(err) != 0 && !strings.Contains(buf.String(), "sluice run --once") {
		t.Logf("run: %v", err)
	}
	return exitCode(err), buf.String()
}

// TestRunOnceDrivesRequestedWork: a re-extraction requested after a run (sluice reextract) is
// done by the next `run --once`, which waits for it instead of saying nothing was new.
func TestRunOnceDrivesRequestedWork(t *testing.T) {
	c := newCorpus(t, 9, 1, 2, 3, 200, func(c *gen.Config) { c.Extras = false })
	landing, out, state, m := c.landing, c.out, c.state, c.m
	common := []string{"--landing", landing, "--out", out, "--state", state}
	if code, outp := runOnce(t, common...); code != 0 {
		t.Fatalf("first run: exit %d\n%s", code, outp)
	}
	ctx := context.Background()
	var id string
	{
		e, closeAll, err := openEnv(ctx, t, state)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := e.Ledger.List(ctx)
		closeAll()
		if err != nil || len(recs) != 2 {
			t.Fatalf("ledger: %v %v", recs, err)
		}
		id = recs[0].ArchiveID
	}
	if err := cmdReextract(ctx, []string{"--state", state, "--log-level", "warn", id}); err != nil {
		t.Fatalf("reextract: %v", err)
	}
	code, outp := runOnce(t, common...)
	if code != 0 || !strings.Contains(outp, "1 resumed") || strings.Contains(outp, "nothing new") {
		t.Fatalf("run after reextract: exit %d\n%s", code, outp)
	}
	e, closeAll, err := openEnv(ctx, t, state)
	if err != nil {
		t.Fatal(err)
	}
	rec, _, err := e.Ledger.Get(ctx, id)
	closeAll()
	if err != nil || rec.State != "committed" || rec.Attempt != 1 {
		t.Fatalf("re-extracted archive: %+v %v", rec, err)
	}
	checkRows(t, m, out)
}

// TestRunOnceFindings: what must not end in exit 0 — a member_pattern that takes no member —
// and what must not end in a failure — expected sources whose deadline is still ahead.
func TestRunOnceFindings(t *testing.T) {
	c := newCorpus(t, 11, 1, 1, 2, 50, func(c *gen.Config) { c.Extras = false })
	dir, landing, m := c.dir, c.landing, c.m
	write := func(name, body string) string { return c.file(t, name, body) }
	t.Run("pattern takes nothing", func(t *testing.T) {
		conf := write("nomatch.yaml", "partners:\n  - name: p\n    member_pattern: '^(?P<table>[a-z]+)-(?P<date>\\d{4}-\\d{2}-\\d{2})-(?P<batch>\\d+)\\.tsv$'\n")
		code, outp := runOnce(t, "--landing", landing, "--out", filepath.Join(dir, "out1"), "--state", filepath.Join(dir, "s1"), "--config", conf)
		if code != exitFindings || !strings.Contains(outp, "no member was taken as a table") || strings.Contains(outp, "\nOK") {
			t.Fatalf("exit %d, want %d with the reason:\n%s", code, exitFindings, outp)
		}
	})
	t.Run("archive of two partners", func(t *testing.T) {
		conf := write("two.yaml", "partners:\n  - name: a\n    archive_glob: 'partner_*'\n  - name: b\n    archive_glob: '*.tar.gz'\n")
		code, outp := runOnce(t, "--landing", landing, "--out", filepath.Join(dir, "out4"), "--state", filepath.Join(dir, "s4"), "--config", conf)
		if code != exitFindings || !strings.Contains(outp, "archive_glob of several partners matches: a, b") {
			t.Fatalf("exit %d, want %d naming both partners:\n%s", code, exitFindings, outp)
		}
	})
	t.Run("expected sources awaited", func(t *testing.T) {
		// A deadline 30 days from now for the corpus's dates, whatever today is (a fixed one fell
		// due some day).
		start, err := time.Parse("20060102", gen.DefaultStartDate)
		if err != nil {
			t.Fatal(err)
		}
		deadline := int(time.Since(start).Hours()) + 30*24
		conf := write("expected.yaml", fmt.Sprintf("partners:\n  - name: p\n    expected:\n      sources: [\"partner_{date}_*.tar.gz\", \"other_{date}.tar.gz\"]\n      deadline: %dh\n", deadline))
		out := filepath.Join(dir, "out2")
		code, outp := runOnce(t, "--landing", landing, "--out", out, "--state", filepath.Join(dir, "s2"), "--config", conf)
		if code != 0 || strings.Contains(outp, "CHECK FAILED") || strings.Count(outp, "\n  20") > len(m.Archives) {
			t.Fatalf("exit %d, want 0 without failed dates:\n%s", code, outp)
		}
		if !strings.Contains(outp, "await expected sources") {
			t.Errorf("awaited sources not reported:\n%s", outp)
		}
		checkRows(t, m, out)
	})
	t.Run("config error", func(t *testing.T) {
		conf := write("bad.yaml", "partners:\n  - name: p\n    encoding: utf16\n")
		if code, outp := runOnce(t, "--landing", landing, "--out", filepath.Join(dir, "out3"), "--state", filepath.Join(dir, "s3"), "--config", conf); code != exitConfig {
			t.Fatalf("exit %d, want %d:\n%s", code, exitConfig, outp)
		}
	})
	t.Run("usage error", func(t *testing.T) {
		if code, _ := runOnce(t, "--landing", landing); code != exitUsage {
			t.Fatalf("exit %d, want %d", code, exitUsage)
		}
		if code, _ := runOnce(t, "--landing", landing, "--out", dir, "--log-level", "loud"); code != exitUsage {
			t.Fatalf("bad --log-level: exit %d, want %d", code, exitUsage)
		}
		// A stray word ends flag parsing: what follows it (here --state) would be dropped silently.
		stray := filepath.Join(dir, "stray-state")
		if code, _ := runOnce(t, "--landing", landing, "--out", dir, "oops", "--state", stray); code != exitUsage {
			t.Fatalf("stray word: exit %d, want %d", code, exitUsage)
		}
		for _, bad := range [][]string{
			{"--parquet-zstd-level", "99"}, {"--chunk-codec", "gzip"}, {"--publish-window", "-1"}, {"--serve-partitions", "9"},
			{"--poll", "-1s"}, {"--stable-for", "-5s"}, {"--partitions", "0"}, {"--memory-budget", "0"},
			{"--extract-concurrency", "0"}, {"--retention", "0s"}, {"--out", "s3:/lake/e"},
		} {
			args := append([]string{"--landing", landing, "--out", dir, "--state", stray}, bad...)
			if code, outp := runOnce(t, args...); code != exitUsage {
				t.Errorf("%v: exit %d, want %d\n%s", bad, code, exitUsage, outp)
			}
		}
		if _, err := os.Stat(stray); err == nil {
			t.Errorf("a refused command line created %s", stray)
		}
	})
	t.Run("re-run tools without state", func(t *testing.T) {
		for name, run := range map[string]func(context.Context, []string) error{
			"replay": func(ctx context.Context, s []string) error {
				return cmdReplay(ctx, append(s, "--table", "t", "--out", dir))
			},
			"reextract": func(ctx context.Context, s []string) error {
				return cmdReextract(ctx, append(s, "ffffffffffffffffffff"))
			},
		} {
			empty := filepath.Join(dir, "empty-"+name)
			err := run(context.Background(), []string{"--state", empty})
			if exitCode(err) != exitFailure || !strings.Contains(err.Error(), "no sluice state") {
				t.Errorf("%s on an empty dir: %v", name, err)
			}
			if _, serr := os.Stat(filepath.Join(empty, "jetstream")); serr == nil {
				t.Errorf("%s created a store", name)
			}
		}
	})
	t.Run("status without state", func(t *testing.T) {
		err := cmdStatus(context.Background(), []string{"--state", filepath.Join(dir, "nothing-here")})
		if exitCode(err) != exitFailure || !strings.Contains(err.Error(), "no sluice state") {
			t.Fatalf("status on an empty dir: %v", err)
		}
		if _, serr := os.Stat(filepath.Join(dir, "nothing-here", "jetstream")); serr == nil {
			t.Errorf("status created a store")
		}
	})
}

// TestRunOnceS3AccessDenied: wrong credentials fail the run at start, within seconds, with the
// reason — not after minutes of retried commits.
func TestRunOnceS3AccessDenied(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	dir := t.TempDir()
	landing := filepath.Join(dir, "landing")
	cfg := gen.DefaultConfig()
	cfg.Out, cfg.Seed, cfg.Days, cfg.Archives, cfg.Tables, cfg.RowsPerMember = landing, 13, 1, 1, 2, 50
	if _, err := gen.Generate(cfg); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := cmdRun(ctx, []string{"--once", "--progress", "off", "--log-level", "error", "--landing", landing,
		"--out", "s3://" + bucket + "/lake", "--state", filepath.Join(dir, "state"), "--s3-endpoint", endpoint, "--s3-path-style"})
	took := time.Since(start)
	if exitCode(err) != exitFailure || !strings.Contains(err.Error(), "access denied") || !strings.Contains(err.Error(), "s3://"+bucket+"/lake") {
		t.Fatalf("run with a wrong secret: exit %d, %v", exitCode(err), err)
	}
	if took > 20*time.Second {
		t.Errorf("took %s to report a wrong secret", took)
	}
	t.Logf("refused in %s: %v", took.Round(time.Millisecond), err)
}

// TestRunOnceReextractsExpired: an archive the ledger shows unfinished since longer than the rows
// stream keeps messages (its chunks are gone) is extracted again by `run --once`, not waited for
// forever.
func TestRunOnceReextractsExpired(t *testing.T) {
	c := newCorpus(t, 17, 1, 1, 2, 100, nil)
	landing, out, state, m := c.landing, c.out, c.state, c.m
	body, err := os.ReadFile(m.Archives[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	id := hex.EncodeToString(sum[:])[:20]
	ctx := context.Background()
	e, closeAll, err := openEnv(ctx, t, state)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := e.Bus.Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	long := ledger.New(kv, func() time.Time { return time.Now().Add(-100 * time.Hour) })
	if _, _, err := long.Create(ctx, ledger.Record{ArchiveID: id, SHA256: hex.EncodeToString(sum[:]), URI: "file://" + m.Archives[0].Path,
		Name: m.Archives[0].Name, Size: int64(len(body)), Partner: "default"}); err != nil {
		t.Fatal(err)
	}
	if _, err := long.Transition(ctx, id, ledger.Extracted, ""); err != nil {
		t.Fatal(err)
	}
	closeAll()
	code, outp := runOnce(t, "--landing", landing, "--out", out, "--state", state)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, outp)
	}
	e, closeAll, err = openEnv(ctx, t, state)
	if err != nil {
		t.Fatal(err)
	}
	rec, _, err := e.Ledger.Get(ctx, id)
	closeAll()
	if err != nil || rec.State != ledger.Committed || rec.Attempt != 1 {
		t.Fatalf("expired archive: %+v %v", rec, err)
	}
	checkRows(t, m, out)
}

// TestStateBoundToItsOutput (a user trial): a once run on a state whose archives were committed
// to another --out is refused (exit 64) instead of saying "OK: committed and checked before"
// about a folder that holds none of them; the re-run tools check the same; the right --out works.
func TestStateBoundToItsOutput(t *testing.T) {
	c := newCorpus(t, 37, 1, 1, 2, 50, nil)
	// A first run that commits nothing (its --out cannot be created) does not bind the state.
	notDir := filepath.Join(c.dir, "a-file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, outp := runOnce(t, "--landing", c.landing, "--out", filepath.Join(notDir, "lake"), "--state", c.state); code != exitFailure {
		t.Fatalf("run into a path under a file: exit %d\n%s", code, outp)
	}
	if code, outp := runOnce(t, "--landing", c.landing, "--out", c.out, "--state", c.state); code != 0 {
		t.Fatalf("first run: exit %d\n%s", code, outp)
	}
	wrong := filepath.Join(c.dir, "wrong_out")
	code, outp := runOnce(t, "--landing", c.landing, "--out", wrong, "--state", c.state)
	if code != exitUsage {
		t.Fatalf("run with another --out: exit %d, want %d\n%s", code, exitUsage, outp)
	}
	if _, err := os.Stat(filepath.Join(wrong, "_summaries")); err == nil {
		t.Errorf("the refused run wrote summaries into %s", wrong)
	}
	err := cmdReplay(context.Background(), []string{"--table", "hotel_rates", "--out", wrong, "--state", c.state, "--log-level", "error"})
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "were committed to "+c.out) {
		t.Errorf("replay into another --out: %v", err)
	}
	for _, same := range []string{c.out + "/", "file://" + c.out} {
		if code, outp := runOnce(t, "--landing", c.landing, "--out", same, "--state", c.state); code != 0 {
			t.Fatalf("run with the same --out written %s: exit %d\n%s", same, code, outp)
		}
	}
	checkRows(t, c.m, c.out)
}

func TestOutRoot(t *testing.T) {
	for in, want := range map[string]string{"s3://lake/tables": "s3://lake/tables", "s3://lake/tables//": "s3://lake/tables",
		"s3://lake//tables": "s3://lake/tables", "s3://lake/": "s3://lake", "s3://lake": "s3://lake", "/tmp/x/": "/tmp/x",
		"file:///tmp/x": "/tmp/x", "/tmp/./x/../x": "/tmp/x"} {
		if got, err := outRoot(in); err != nil || got != want {
			t.Errorf("outRoot(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestReextractNeedsItsFile (a user trial): reextract of a committed archive whose file has left
// the landing area is refused (exit 1), and the archive stays committed; it used to start an
// attempt that failed "not found", leaving the archive failed while its objects stayed.
func TestReextractNeedsItsFile(t *testing.T) {
	c := newCorpus(t, 41, 1, 1, 2, 50, nil)
	if code, outp := runOnce(t, "--landing", c.landing, "--out", c.out, "--state", c.state); code != 0 {
		t.Fatalf("first run: exit %d\n%s", code, outp)
	}
	ctx := context.Background()
	e, closeAll, err := openEnv(ctx, t, c.state)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := e.Ledger.List(ctx)
	closeAll()
	if err != nil || len(recs) != 1 {
		t.Fatalf("ledger %v %v", recs, err)
	}
	id, path := recs[0].ArchiveID, strings.TrimPrefix(recs[0].URI, "file://")
	moved := filepath.Join(c.dir, "elsewhere.tar.gz")
	if err := os.Rename(path, moved); err != nil {
		t.Fatal(err)
	}
	err = cmdReextract(ctx, []string{"--state", c.state, "--log-level", "error", id})
	if exitCode(err) != exitFailure || !strings.Contains(err.Error(), "put the file back") {
		t.Fatalf("reextract of a gone file: %v", err)
	}
	e, closeAll, err = openEnv(ctx, t, c.state)
	if err != nil {
		t.Fatal(err)
	}
	rec, _, err := e.Ledger.Get(ctx, id)
	closeAll()
	if err != nil || rec.State != "committed" || rec.Attempt != 0 {
		t.Fatalf("record after the refused reextract: %+v %v", rec, err)
	}
	if err := os.Rename(moved, path); err != nil {
		t.Fatal(err)
	}
	if err := cmdReextract(ctx, []string{"--state", c.state, "--log-level", "error", id}); err != nil {
		t.Fatalf("reextract with the file back: %v", err)
	}
	// The tools serve no metrics: the stage's SLUICE_METRICS_ADDR in the same container
	// (compose.yaml) is not theirs to bind.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	t.Setenv("SLUICE_METRICS_ADDR", busy.Addr().String())
	if err := cmdStatus(ctx, []string{"--state", c.state, "--log-level", "error"}); err != nil {
		t.Fatalf("status with the stage's SLUICE_METRICS_ADDR: %v", err)
	}
	if err := cmdDLQ(ctx, []string{"list", "--state", c.state, "--log-level", "error"}); err != nil {
		t.Fatalf("dlq list with the stage's SLUICE_METRICS_ADDR: %v", err)
	}
}
