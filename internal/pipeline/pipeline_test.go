package pipeline_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/gen"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/objstore/s3test"
	"github.com/sluice-dev/sluice/internal/pipeline"
	"github.com/sluice-dev/sluice/producer"
	"github.com/sluice-dev/sluice/summarizer"
)

type harness struct {
	t       testing.TB
	env     *pipeline.Env
	landing string
	out     string
	opts    pipeline.Options
}

func newHarnessB(b *testing.B) *harness { return newHarness(b, "", objstore.Options{}) }

func newHarness(t testing.TB, out string, s3 objstore.Options) *harness {
	t.Helper()
	b := bustest.New(t, func(c *bus.Config) { c.Subjects.Partitions = 4 })
	env, err := pipeline.NewEnv(context.Background(), b, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	h := &harness{t: t, env: env, landing: filepath.Join(t.TempDir(), "landing"), out: out}
	if out == "" {
		h.out = filepath.Join(t.TempDir(), "out")
	}
	os.MkdirAll(h.landing, 0o755)
	h.opts = pipeline.Options{Landing: h.landing, Out: h.out, Once: true, SpillDir: t.TempDir(), MemoryBudget: 64 << 20, S3: s3}
	return h
}

func (h *harness) runOnce() *pipeline.Result {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := pipeline.Run(ctx, h.env, h.opts, nil)
	if err != nil {
		h.t.Fatalf("run --once: %v", err)
	}
	return res
}

func (h *harness) bucket() objstore.Bucket {
	b, err := h.env.Bucket(context.Background(), h.out, h.opts.S3)
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

func generate(t *testing.T, dir string, seed int64) *gen.Manifest {
	t.Helper()
	cfg := gen.DefaultConfig()
	cfg.Out, cfg.Seed, cfg.Days, cfg.Archives, cfg.Tables, cfg.RowsPerMember = dir, seed, 2, 2, 4, 400
	m, err := gen.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func listKeys(t *testing.T, b objstore.Bucket, prefix string) map[string]string {
	t.Helper()
	keys := map[string]string{}
	if err := b.List(context.Background(), prefix, "", func(a objstore.Attrs) error {
		keys[a.Key] = a.ETag
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

func totalRows(m *gen.Manifest) int {
	n := 0
	for _, tt := range m.Tables {
		n += tt.Rows
	}
	return n
}

// TestRunOnceEndToEnd: generated archives → run --once → every table read back from Parquet
// equals the input, value by value; re-running with a duplicate changes nothing; a changed
// archive at the same path is ingested.
func TestRunOnceEndToEnd(t *testing.T) {
	h := newHarness(t, "", objstore.Options{})
	m := generate(t, h.landing, 11)
	res := h.runOnce()
	if res.Code != 0 {
		t.Fatalf("exit code %d, status %+v", res.Code, res.Status.Totals)
	}
	if got, want := res.Status.Totals.RowsOut, int64(totalRows(m)); got != want {
		t.Fatalf("rows out %d, want %d", got, want)
	}
	if got := checkTablesEqualInput(t, m, h.bucket()); got != totalRows(m) {
		t.Fatalf("rows compared %d, want %d", got, totalRows(m))
	}
	for table, tt := range m.Tables {
		for part := range tt.RowsByPartition {
			d, _, _ := strings.Cut(part, "/")
			if _, err := os.Stat(filepath.Join(h.out, "_summaries", "process_date="+d, "summary.txt")); err != nil {
				t.Errorf("%s: summary for %s: %v", table, d, err)
			}
		}
	}
	before := listKeys(t, h.bucket(), "")

	// the same bytes under another name: reported as a duplicate, nothing re-ingested
	src := m.Archives[0].Path
	data, _ := os.ReadFile(src)
	os.WriteFile(filepath.Join(h.landing, "copy_of_first.tar.gz"), data, 0o644)
	res = h.runOnce()
	if len(res.Scan.Duplicates) != 1 || len(res.Scan.Landed) != 0 {
		t.Fatalf("duplicate run: landed %v duplicates %v", res.Scan.Landed, res.Scan.Duplicates)
	}
	if res.Status.Totals.Duplicates < 1 {
		t.Errorf("summarizer did not record the duplicate: %+v", res.Status.Totals)
	}
	after := listKeys(t, h.bucket(), "")
	for k, etag := range before {
		if strings.HasPrefix(k, "_summaries/") {
			continue
		}
		if after[k] != etag {
			t.Errorf("object %s changed on a duplicate run", k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok && !strings.HasPrefix(k, "_summaries/") {
			t.Errorf("new object %s on a duplicate run", k)
		}
	}

	// a changed archive at the same path is a new version and is ingested
	cfg := gen.DefaultConfig()
	cfg.Out, cfg.Seed, cfg.Days, cfg.Archives, cfg.Tables, cfg.RowsPerMember, cfg.StartDate = t.TempDir(), 99, 1, 1, 2, 100, "20250310"
	m2, err := gen.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	data2, _ := os.ReadFile(m2.Archives[0].Path)
	tmp := src + ".tmp"
	os.WriteFile(tmp, data2, 0o644)
	os.Rename(tmp, src)
	past := time.Now().Add(-time.Minute)
	os.Chtimes(src, past, past)
	res = h.runOnce()
	if len(res.Scan.Landed) != 1 || res.Code != 0 {
		t.Fatalf("changed archive: landed %v code %d", res.Scan.Landed, res.Code)
	}
	if got := checkTablesEqualInput(t, m2, h.bucket()); got != totalRows(m2) {
		t.Fatalf("changed archive rows %d want %d", got, totalRows(m2))
	}
}

// TestRunOnceAnswersForACrashedRunsGoneArchives: a run that crashed left two archives
// unfinished whose files are then moved out of the landing area. One's landed event is out (the
// extractor fails it "not found" as soon as it starts: before the once run's scan is done, it
// used to leave the run's answer, which then said OK); the other's record was written but the
// run stopped before its event (no stage would ever take it up: the once run waited forever).
// A third had its event out and its path indexed. All must end failed and be reported (exit 2),
// next to the landing area's archives.
func TestRunOnceAnswersForACrashedRunsGoneArchives(t *testing.T) {
	h := newHarness(t, "", objstore.Options{})
	m := generate(t, h.landing, 21)
	ctx := t.Context()
	var logs bustest.Logs
	h.env.Log = logs.Logger()
	var ids []string
	for i, name := range []string{"partner_20250301_8.tar.gz", "partner_20250301_9.tar.gz", "partner_20250301_10.tar.gz"} {
		rec := ledger.Record{ArchiveID: fmt.Sprintf("%020x", 0xa0+i), SHA256: strings.Repeat("ab", 32), Name: name, Size: 1000,
			URI: (&url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(h.landing, name))}).String()}
		if created, _, err := h.env.Ledger.Create(ctx, rec); err != nil || !created {
			t.Fatalf("create %s: %v, created %v", rec.ArchiveID, err, created)
		}
		if i != 1 {
			if err := producer.Reland(ctx, producer.Deps{Bus: h.env.Bus, Ledger: h.env.Ledger}, rec); err != nil {
				t.Fatal(err)
			}
		}
		if i == 2 {
			if err := h.env.Ledger.PutPath(ctx, ledger.PathEntry{URI: rec.URI, Size: rec.Size, ArchiveID: rec.ArchiveID}); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, rec.ArchiveID)
	}
	runCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	res, err := pipeline.Run(runCtx, h.env, h.opts, nil)
	if err != nil {
		t.Fatalf("run --once: %v", err)
	}
	if res.Code != 2 {
		t.Errorf("exit code %d, want 2; findings %q", res.Code, res.Findings)
	}
	for _, id := range ids {
		a := res.Status.Archives[id]
		if !slices.Contains(res.Found, id) || a.State != summarizer.StateFailed || !strings.Contains(a.Reason, "not found") {
			t.Errorf("archive %s: found %v, status %+v", id, slices.Contains(res.Found, id), a)
		}
		if !slices.ContainsFunc(res.Findings, func(f string) bool { return strings.Contains(f, id) && strings.Contains(f, "failed") }) {
			t.Errorf("archive %s: not among the findings %q", id, res.Findings)
		}
	}
	if got, want := res.Status.Totals.RowsOut, int64(totalRows(m)); got != want {
		t.Errorf("rows out %d, want %d (the landing area's archives)", got, want)
	}
	if !strings.Contains(logs.String(), "left unpublished\" archive="+ids[1]) {
		t.Errorf("archive %s: its landed event was not published", ids[1])
	}
}

// TestRunOnceExtractsAMovedStuckArchive: a run that crashed between an archive's ledger record
// and its landed event left the record landed; the file was then renamed within the landing area.
// The next once run sees the bytes at the new name (a duplicate of the record), publishes the
// stuck record's event, and the extractor reads the archive from where it is now: everything is
// committed, exit 0 (it used to fail "not found", and the renamed copy was never ingested).
func TestRunOnceExtractsAMovedStuckArchive(t *testing.T) {
	h := newHarness(t, "", objstore.Options{})
	m := generate(t, h.landing, 23)
	ctx := t.Context()
	path := m.Archives[0].Path
	name := filepath.Base(path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	rec := ledger.Record{ArchiveID: hexSum[:20], SHA256: hexSum, Name: name, Size: int64(len(data)), Partner: "default",
		URI: (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()}
	if created, _, err := h.env.Ledger.Create(ctx, rec); err != nil || !created {
		t.Fatalf("create: %v, created %v", err, created)
	}
	if err := os.Rename(path, filepath.Join(filepath.Dir(path), "resent-"+name)); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	res, err := pipeline.Run(runCtx, h.env, h.opts, nil)
	if err != nil {
		t.Fatalf("run --once: %v", err)
	}
	if a := res.Status.Archives[rec.ArchiveID]; res.Code != 0 || a.State != summarizer.StateCommitted {
		t.Fatalf("exit code %d, archive %+v; findings %q", res.Code, a, res.Findings)
	}
	if err := os.Rename(filepath.Join(filepath.Dir(path), "resent-"+name), path); err != nil { // where the manifest reads it
		t.Fatal(err)
	}
	if got := checkTablesEqualInput(t, m, h.bucket()); got != totalRows(m) {
		t.Fatalf("rows %d want %d", got, totalRows(m))
	}
}

// TestRunOnceHostileArchives: rejected members, a corrupt archive and ragged rows finish with
// exit code 2 and their reasons in the summary; good tables are still committed.
func TestRunOnceHostileArchives(t *testing.T) {
	h := newHarness(t, "", objstore.Options{})
	good := "id,name\n1,a\n2,b\n"
	err := gen.WriteArchive(filepath.Join(h.landing, "p_20250301_1.tar.gz"), []gen.Member{
		{Name: "orders_20250301_001.csv", Body: []byte(good)},
		{Name: "../evil_20250301_001.csv", Body: []byte(good)},
		{Name: "link_20250301_001.csv", Typeflag: '2', Linkname: "/etc/passwd"},
		{Name: "ragged_20250301_001.csv", Body: []byte("a,b\n1,2\n3\n4,5\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(h.landing, "p_20250301_2.tar.gz"), []byte("\x1f\x8bthis is not gzip"), 0o644)
	past := time.Now().Add(-time.Minute)
	for _, n := range []string{"p_20250301_1.tar.gz", "p_20250301_2.tar.gz"} {
		os.Chtimes(filepath.Join(h.landing, n), past, past)
	}
	res := h.runOnce()
	if res.Code != 2 {
		t.Fatalf("exit code %d, want 2 (totals %+v)", res.Code, res.Status.Totals)
	}
	if res.Status.Totals.Failed != 1 || res.Status.Totals.Quarantined != 1 {
		t.Fatalf("totals %+v", res.Status.Totals)
	}
	sum, err := os.ReadFile(filepath.Join(h.out, "_summaries", "process_date=2025-03-01", "summary.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"p_20250301_2.tar.gz", "evil", "link_20250301_001.csv", "ragged"} {
		if !strings.Contains(string(sum), want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
	if _, err := os.Stat(filepath.Join(h.out, "orders", "process_date=2025-03-01", "batch_id=001")); err != nil {
		t.Errorf("good table not committed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(h.out), "evil")); err == nil {
		t.Error("a member escaped the output root")
	}
}

// TestContinuousPicksUpNewArchive: an archive dropped while running is committed.
func TestContinuousPicksUpNewArchive(t *testing.T) {
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
	time.Sleep(300 * time.Millisecond)
	m := generate(t, h.landing, 5)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st := sum.Status()
		if st.Totals.Committed == len(m.Archives) && st.Totals.SummariesWritten > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not committed in time: %+v", st.Totals)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := checkTablesEqualInput(t, m, h.bucket()); got != totalRows(m) {
		t.Fatalf("rows %d want %d", got, totalRows(m))
	}
	cancel()
	if err := <-done; err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}
}

// TestRunOnceS3: the same pipeline writing to a real S3 protocol server (versitygw).
func TestRunOnceS3(t *testing.T) {
	endpoint, bucket := s3test.Start(t)
	h := newHarness(t, "s3://"+bucket+"/lake", s3test.Options(t, endpoint))
	m := generate(t, h.landing, 3)
	res := h.runOnce()
	if res.Code != 0 {
		t.Fatalf("exit code %d: %+v", res.Code, res.Status.Totals)
	}
	if got := checkTablesEqualInput(t, m, h.bucket()); got != totalRows(m) {
		t.Fatalf("rows %d want %d", got, totalRows(m))
	}
	if keys := listKeys(t, h.bucket(), "_summaries/"); len(keys) == 0 {
		t.Fatal("no summaries in S3")
	}
}
