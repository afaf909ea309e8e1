package producer_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/producer"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

func TestNewArchiveLandsOnceAndIsNotRehashed(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	data := archive(t, "a")
	abs := write(t, dir, "a.tar.gz", data, time.Time{})
	id := idOf(data)
	p := e.producer(t, producer.Config{Landing: dir}, nil)

	res := scan(t, p)
	if !slices.Equal(res.Landed, []string{id}) || !slices.Equal(res.Seen, []string{id}) {
		t.Fatalf("first scan: %+v", res)
	}
	evs := e.landed(t)
	if len(evs) != 1 {
		t.Fatalf("%d landed events, want 1", len(evs))
	}
	ev := evs[0]
	if ev.ArchiveId != id || ev.Uri != "file://"+filepath.ToSlash(abs) || ev.Name != "a.tar.gz" || ev.Size != int64(len(data)) ||
		ev.Partner != "default" || ev.Attempt != 0 || ev.Replay || len(ev.Sha256) != 64 || ev.MtimeUnixMs != old.UnixMilli() {
		t.Fatalf("event %v", ev)
	}
	rec := e.record(t, id)
	if rec.State != ledger.Landed || rec.URI != ev.Uri || rec.Size != int64(len(data)) || rec.Partner != "default" {
		t.Fatalf("record %+v", rec)
	}
	if got := e.metric(t, "sluice_producer_files_hashed_total"); got != 1 {
		t.Fatalf("hashed %v files", got)
	}

	res = scan(t, p)
	if len(res.Landed) != 0 || res.Unchanged != 1 || !slices.Equal(res.Seen, []string{id}) {
		t.Fatalf("second scan: %+v", res)
	}
	// A restarted producer (empty memory) recognises the file from the ledger's path index.
	p2 := e.producer(t, producer.Config{Landing: dir}, nil)
	if res := scan(t, p2); len(res.Landed) != 0 || res.Unchanged != 1 {
		t.Fatalf("after restart: %+v", res)
	}
	if got := e.metric(t, "sluice_producer_files_hashed_total"); got != 1 {
		t.Fatalf("re-hashed: %v files hashed", got)
	}
	if n := len(e.landed(t)); n != 1 {
		t.Fatalf("%d landed events after rescans", n)
	}
	if got := e.metric(t, "sluice_producer_archives_landed_total"); got != 1 {
		t.Fatalf("landed metric %v", got)
	}
}

func TestSameBytesUnderAnotherNameIsADuplicate(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	data := archive(t, "dup")
	first := write(t, dir, "a.tar.gz", data, time.Time{})
	p := e.producer(t, producer.Config{Landing: dir}, nil)
	scan(t, p)

	second := write(t, dir, "later/copy.tgz", data, time.Time{})
	res := scan(t, p)
	id := idOf(data)
	want := producer.Duplicate{ArchiveID: id, URI: "file://" + second, FirstURI: "file://" + first}
	if len(res.Landed) != 0 || !slices.Equal(res.Duplicates, []producer.Duplicate{want}) || !slices.Equal(res.Seen, []string{id}) {
		t.Fatalf("scan: %+v", res)
	}
	msgs := e.events(t, e.bus.Subjects.Duplicate())
	if len(msgs) != 1 {
		t.Fatalf("%d duplicate events", len(msgs))
	}
	ev := &sluicev1.ArchiveDuplicate{}
	if err := proto.Unmarshal(msgs[0].Data, ev); err != nil {
		t.Fatal(err)
	}
	if ev.ArchiveId != id || ev.Uri != want.URI || ev.FirstUri != want.FirstURI ||
		msgs[0].Header.Get("Nats-Msg-Id") != bus.DuplicateID(id, want.URI).String() {
		t.Fatalf("duplicate event %v %v", ev, msgs[0].Header)
	}
	if !strings.HasPrefix(bus.DuplicateID(id, want.URI).String(), id+".dup.") || len(bus.DuplicateID(id, want.URI).String()) != len(id)+5+12 {
		t.Fatalf("msg id %s", bus.DuplicateID(id, want.URI).String())
	}
	if rec := e.record(t, id); !slices.Equal(rec.Duplicates, []string{want.URI}) || rec.URI != want.FirstURI {
		t.Fatalf("record %+v", rec)
	}
	if n := len(e.landed(t)); n != 1 {
		t.Fatalf("%d landed events", n)
	}
	if res := scan(t, p); len(res.Duplicates) != 0 || res.Unchanged != 2 {
		t.Fatalf("rescan: %+v", res)
	}
	// A crash after the duplicate was recorded but before its path was indexed: the next
	// producer records it again, and the record and the events still hold it once.
	if err := e.ledger.PutPath(context.Background(), ledger.PathEntry{URI: want.URI}); err != nil { // forget the path
		t.Fatal(err)
	}
	if res := scan(t, e.producer(t, producer.Config{Landing: dir}, nil)); !slices.Equal(res.Duplicates, []producer.Duplicate{want}) {
		t.Fatalf("scan after the crash: %+v", res)
	}
	if rec := e.record(t, id); !slices.Equal(rec.Duplicates, []string{want.URI}) {
		t.Fatalf("record after the crash %+v", rec)
	}
	if n := len(e.events(t, e.bus.Subjects.Duplicate())); n != 1 {
		t.Fatalf("%d duplicate events after the crash", n)
	}
}

func TestRewrittenPathIsANewVersion(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	v1, v2 := archive(t, "v1"), archive(t, "v2-longer")
	write(t, dir, "daily.tar.gz", v1, time.Time{})
	p := e.producer(t, producer.Config{Landing: dir}, nil)
	scan(t, p)
	write(t, dir, "daily.tar.gz", v2, old.Add(time.Minute))
	res := scan(t, p)
	if !slices.Equal(res.Landed, []string{idOf(v2)}) {
		t.Fatalf("rewrite: %+v", res)
	}
	evs := e.landed(t)
	if len(evs) != 2 || evs[0].ArchiveId != idOf(v1) || evs[1].ArchiveId != idOf(v2) || evs[0].Uri != evs[1].Uri {
		t.Fatalf("events %v", evs)
	}
	// Rewritten again keeping the mtime (cp -p, rsync -t): the size still tells.
	v3 := archive(t, "v3-longer-still")
	write(t, dir, "daily.tar.gz", v3, old.Add(time.Minute))
	if res := scan(t, p); !slices.Equal(res.Landed, []string{idOf(v3)}) {
		t.Fatalf("rewrite keeping the mtime: %+v", res)
	}
}

func TestNamesAndPartners(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	partners := &config.File{Partners: []config.Partner{{Name: "acme", ArchiveGlob: "acme_*.tar.gz"}, {Name: "other"}}}
	if err := partners.Validate(); err != nil {
		t.Fatal(err)
	}
	ignored := []string{
		"x.tar.gz.tmp", "x.tar.gz.part", "X.TAR.GZ.PART", ".x.tar.gz", ".tmp-123.tar.gz", "_x.tar.gz",
		"notes.txt", "x.tar.gz.sig", "_tmp/", ".hidden/",
	}
	for _, n := range ignored {
		if strings.HasSuffix(n, "/") {
			write(t, dir, n+"y.tar.gz", archive(t, n), time.Time{})
			continue
		}
		write(t, dir, n, archive(t, n), time.Time{})
	}
	if err := os.Mkdir(filepath.Join(dir, "empty.tar.gz"), 0o755); err != nil { // a folder with an archive's name
		t.Fatal(err)
	}
	want := map[string]string{ // name -> partner
		"acme_1.tar.gz":      "acme",
		"acme_2.tgz":         "acme",
		"deep/er/b.tar.gz":   "other",
		"c.tgz":              "other",
		"link-to-a.tar.gz":   "other",
		"deep/er/acme_3.tgz": "acme",
	}
	ids := map[string]string{}
	for n := range want {
		if n == "link-to-a.tar.gz" {
			continue
		}
		b := archive(t, n)
		ids[idOf(b)] = n
		write(t, dir, n, b, time.Time{})
	}
	// a symlink to a file elsewhere is followed
	target := write(t, t.TempDir(), "target.bin", archive(t, "link"), time.Time{})
	if err := os.Symlink(target, filepath.Join(dir, "link-to-a.tar.gz")); err != nil {
		t.Fatal(err)
	}
	ids[idOf(archive(t, "link"))] = "link-to-a.tar.gz"

	p := e.producer(t, producer.Config{Landing: dir}, partners)
	res := scan(t, p)
	slices.Sort(res.Ignored)
	wantIgnored := slices.Clone(ignored)
	slices.Sort(wantIgnored)
	if !slices.Equal(res.Ignored, wantIgnored) {
		t.Fatalf("ignored %q\nwant    %q", res.Ignored, wantIgnored)
	}
	if len(res.Landed) != len(want) {
		t.Fatalf("landed %d, want %d: %+v", len(res.Landed), len(want), res)
	}
	for _, ev := range e.landed(t) {
		name := ids[ev.ArchiveId]
		if ev.Partner != want[name] || ev.Name != filepath.Base(name) {
			t.Errorf("%s: event partner %q name %q", name, ev.Partner, ev.Name)
		}
		if !strings.HasSuffix(ev.Uri, "/"+name) {
			t.Errorf("%s: uri %s", name, ev.Uri)
		}
	}
	if got := e.metric(t, "sluice_producer_files_ignored"); got != float64(len(ignored)) {
		t.Errorf("ignored gauge %v", got)
	}
	if got := e.metric(t, "sluice_producer_archives_seen"); got != float64(len(want)) {
		t.Errorf("seen gauge %v", got)
	}
}

func TestGrowingFileIsTakenWhenStable(t *testing.T) {
	e := newEnv(t)
	e.clock = newClock(time.Now().Truncate(time.Second))
	dir := t.TempDir()
	data := archive(t, "growing")
	half := data[:len(data)/2]
	write(t, dir, "g.tar.gz", half, e.clock.Now())
	p := e.producer(t, producer.Config{Landing: dir, StableFor: time.Second}, nil)

	if res := scan(t, p); len(res.Landed) != 0 || !slices.Equal(res.Waiting, []string{"g.tar.gz"}) {
		t.Fatalf("fresh file taken: %+v", res)
	}
	e.clock.Add(600 * time.Millisecond)
	write(t, dir, "g.tar.gz", data, e.clock.Now()) // it grew
	if res := scan(t, p); len(res.Landed) != 0 || len(res.Waiting) != 1 {
		t.Fatalf("growing file taken: %+v", res)
	}
	e.clock.Add(600 * time.Millisecond) // 1.2s since first seen, but only 0.6s since it last changed
	if res := scan(t, p); len(res.Landed) != 0 || len(res.Waiting) != 1 {
		t.Fatalf("file taken before StableFor of quiet: %+v", res)
	}
	e.clock.Add(500 * time.Millisecond)
	res := scan(t, p)
	if !slices.Equal(res.Landed, []string{idOf(data)}) || len(res.Waiting) != 0 {
		t.Fatalf("stable file not taken: %+v", res)
	}
	if got := e.metric(t, "sluice_producer_files_hashed_total"); got != 1 {
		t.Fatalf("hashed %v times", got)
	}
}

func TestOnceWaitsForASettlingFile(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	data := archive(t, "fresh")
	write(t, dir, "fresh.tar.gz", data, time.Now())
	write(t, dir, "old.tar.gz", archive(t, "old"), time.Time{})
	p := e.producer(t, producer.Config{Landing: dir, Once: true, StableFor: 200 * time.Millisecond, PollInterval: 50 * time.Millisecond}, nil)
	res := scan(t, p)
	if len(res.Landed) != 2 || len(res.Waiting) != 0 || len(res.Seen) != 2 {
		t.Fatalf("once: %+v", res)
	}
	// Run with Once is one scan: everything present is already known now.
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(e.landed(t)); n != 2 {
		t.Fatalf("%d events", n)
	}
}

func TestRunPicksUpADroppedFile(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	p := e.producer(t, producer.Config{Landing: dir}, nil) // defaults: poll 100ms, stable 200ms
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	// Run is polling: its first scan (of the empty folder) is done.
	for e.metric(t, "sluice_producer_scan_duration_seconds") == 0 {
		if time.Since(start) > 5*time.Second {
			t.Fatal("no scan within 5s of Run")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Writers land files under a temporary name and rename them when complete.
	data := archive(t, "dropped")
	tmp := filepath.Join(dir, ".incoming-x.tar.gz")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := os.Rename(tmp, filepath.Join(dir, "dropped.tar.gz")); err != nil {
		t.Fatal(err)
	}
	for {
		if evs := e.landed(t); len(evs) == 1 && evs[0].ArchiveId == idOf(data) {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("dropped file not landed within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	t.Logf("landed %s after the drop", took)
	if took > 3*time.Second { // polls of 100 ms, 200 ms of stability: ~0.4 s, more when loaded
		t.Errorf("took %s, want well under 3s (about 0.4s unloaded)", took)
	}
}

func TestCrashBeforePublishIsRepublished(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	data := archive(t, "crash")
	abs := write(t, dir, "c.tar.gz", data, time.Time{})
	id := idOf(data)
	// A previous run created the record, then died before publishing and indexing the path.
	if _, _, err := e.ledger.Create(context.Background(), ledger.Record{ArchiveID: id, URI: "file://" + abs, Name: "c.tar.gz", Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	p := e.producer(t, producer.Config{Landing: dir}, nil)
	res := scan(t, p)
	if len(res.Landed) != 0 || !slices.Equal(res.Pending, []string{id}) || !slices.Equal(res.Seen, []string{id}) {
		t.Fatalf("scan: %+v", res)
	}
	if evs := e.landed(t); len(evs) != 1 || evs[0].ArchiveId != id || evs[0].Attempt != 0 {
		t.Fatalf("events %v", evs)
	}
	// Publishing again (e.g. the crash came after the publish) is swallowed by the Msg-Id.
	p2 := e.producer(t, producer.Config{Landing: dir}, nil)
	if err := e.ledger.PutPath(context.Background(), ledger.PathEntry{URI: "file://" + abs}); err != nil { // forget the path
		t.Fatal(err)
	}
	if res := scan(t, p2); !slices.Equal(res.Pending, []string{id}) {
		t.Fatalf("scan: %+v", res)
	}
	if n := len(e.landed(t)); n != 1 {
		t.Fatalf("%d events after re-publish", n)
	}
	// Further along (extracting): reported as pending, not published again.
	if _, err := e.ledger.Transition(context.Background(), id, ledger.Extracting, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.ledger.PutPath(context.Background(), ledger.PathEntry{URI: "file://" + abs}); err != nil {
		t.Fatal(err)
	}
	p3 := e.producer(t, producer.Config{Landing: dir}, nil)
	if res := scan(t, p3); !slices.Equal(res.Pending, []string{id}) || e.metric(t, "sluice_producer_archives_republished_total") != 2 {
		t.Fatalf("scan: %+v", res)
	}
}

func TestReextractPublishesNextAttempt(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	data := archive(t, "re")
	write(t, dir, "r.tar.gz", data, time.Time{})
	id := idOf(data)
	scan(t, e.producer(t, producer.Config{Landing: dir}, nil))
	if _, err := e.ledger.Transition(context.Background(), id, ledger.Failed, "boom"); err != nil {
		t.Fatal(err)
	}
	if err := producer.Reextract(context.Background(), e.deps(t, nil), id); err != nil {
		t.Fatal(err)
	}
	evs := e.landed(t)
	if len(evs) != 2 {
		t.Fatalf("%d events", len(evs))
	}
	ev := evs[1]
	if ev.ArchiveId != id || ev.Attempt != 1 || !ev.Replay || ev.Uri != evs[0].Uri || ev.Partner != "default" || ev.MtimeUnixMs != old.UnixMilli() {
		t.Fatalf("event %v", ev)
	}
	rec := e.record(t, id)
	if rec.Attempt != 1 || rec.State != ledger.Landed || rec.Reason != producer.ReextractReason {
		t.Fatalf("record %+v", rec)
	}
	if err := producer.Reextract(context.Background(), e.deps(t, nil), "nope"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	e := newEnv(t)
	file := write(t, t.TempDir(), "f", nil, time.Time{})
	for name, cfg := range map[string]producer.Config{
		"empty":      {},
		"scheme":     {Landing: "gs://b/p"},
		"missing":    {Landing: filepath.Join(t.TempDir(), "nope")},
		"not a dir":  {Landing: file},
		"s3 no deps": {Landing: "s3://b/p"},
		"negative":   {Landing: t.TempDir(), StableFor: -1},
	} {
		if _, err := producer.New(cfg, e.deps(t, nil)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := producer.New(producer.Config{Landing: "file://" + t.TempDir()}, e.deps(t, nil)); err != nil {
		t.Errorf("file:// landing: %v", err)
	}
	if _, err := producer.New(producer.Config{Landing: t.TempDir()}, producer.Deps{}); err == nil {
		t.Error("no bus: no error")
	}
}

// TestSymlinkedLandingFolder: a landing folder given as a symlink to a directory is walked
// through its target.
func TestSymlinkedLandingFolder(t *testing.T) {
	e := newEnv(t)
	real := t.TempDir()
	data := archive(t, "a")
	write(t, real, "a.tar.gz", data, time.Time{})
	link := filepath.Join(t.TempDir(), "landing")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	p := e.producer(t, producer.Config{Landing: link}, nil)
	if res := scan(t, p); !slices.Equal(res.Landed, []string{idOf(data)}) {
		t.Fatalf("scan through a symlinked landing folder: %+v", res)
	}
}
