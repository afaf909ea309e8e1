package pipeline_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/gen"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/objstore/s3test"
	"github.com/sluice-dev/sluice/internal/pipeline"
	"github.com/sluice-dev/sluice/merger"
)

// lockedBuffer collects log output from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startAuthServer runs a nats-server with JetStream that requires user "sluice" and password.
func startAuthServer(t *testing.T, password string) (host string, port int) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		Username: "sluice", Password: password, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	addr := srv.Addr().(interface{ String() string }).String()
	var p int
	h, ps, _ := strings.Cut(addr, ":")
	fmt.Sscanf(ps, "%d", &p)
	return h, p
}

// TestSecretsNeverLeak runs the whole pipeline against a password-protected nats-server
// reached through a URL that embeds the password, writing to S3 (versitygw, credentials from the
// AWS environment) when available, else to a folder, with debug logging captured. The NATS
// password and the AWS secret key must appear in no log line, no returned error (including
// failed connections with the password in the URL, one of them a URL that does not parse), no
// output object (summaries, schemas, quarantine) and no event or dead letter.
func TestSecretsNeverLeak(t *testing.T) {
	const natsPassword = "n4ts-Pa55-zq81"
	host, port := startAuthServer(t, natsPassword)

	out, s3opts := filepath.Join(t.TempDir(), "out"), objstore.Options{}
	awsSecret := "aws-secret-never-logged-7f3k"
	if s3test.Binary() != "" {
		endpoint, bucket := s3test.Start(t) // sets AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
		out, s3opts = "s3://"+bucket+"/lake", s3test.Options(t, endpoint)
		awsSecret = os.Getenv("AWS_SECRET_ACCESS_KEY")
	} else {
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIDSLUICETEST")
		t.Setenv("AWS_SECRET_ACCESS_KEY", awsSecret)
	}
	secrets := []string{natsPassword, awsSecret}

	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Connections that fail, each with a password in the URL.
	for _, u := range []string{
		fmt.Sprintf("nats://sluice:%s@127.0.0.1:1", natsPassword),                                  // nothing listens
		fmt.Sprintf("nats://sluice:wrong-%s@%s:%d", natsPassword, host, port),                      // wrong password
		fmt.Sprintf("nats://sluice:%s%%zz@127.0.0.1:1", natsPassword),                              // does not parse
		fmt.Sprintf("nats://a:%s@127.0.0.1:1,nats://b:%s@127.0.0.1:2", natsPassword, natsPassword), // a list
	} {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		b, err := bus.Connect(cctx, bus.Config{URL: u, Name: "leak-test"}, log)
		ccancel()
		if err == nil {
			b.Close()
			t.Fatalf("connect %s: no error", strings.ReplaceAll(u, natsPassword, "…"))
		}
		errs = append(errs, err)
	}

	// The whole pipeline through a URL with the password in it.
	url := fmt.Sprintf("nats://sluice:%s@%s:%d", natsPassword, host, port)
	b, err := bus.Connect(ctx, bus.Config{URL: url, Subjects: bus.Subjects{Prefix: "sluice", Partitions: 4}}, log)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer b.Close()
	if err := b.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	env, err := pipeline.NewEnv(ctx, b, nil, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	landing := filepath.Join(t.TempDir(), "landing")
	generate(t, landing, 29)
	// Plus an archive that fails, so that failure paths (events, dead letters) are exercised.
	os.WriteFile(filepath.Join(landing, "partner_20250301_9.tar.gz"), []byte("\x1f\x8bnot gzip"), 0o644)
	past := time.Now().Add(-time.Minute)
	os.Chtimes(filepath.Join(landing, "partner_20250301_9.tar.gz"), past, past)
	opts := pipeline.Options{Landing: landing, Out: out, Once: true, SpillDir: t.TempDir(), MemoryBudget: 64 << 20, S3: s3opts}
	res, err := pipeline.Run(ctx, env, opts, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.Code != 2 || res.Status.Totals.Failed != 1 {
		t.Fatalf("exit code %d, totals %+v", res.Code, res.Status.Totals)
	}
	// A replay too (it logs its own lines).
	bucket, err := env.Bucket(ctx, out, s3opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := merger.Replay(ctx, merger.Config{SpillDir: t.TempDir()}, merger.Deps{Bus: b, Out: bucket, Log: log, Ledger: env.Ledger},
		merger.ReplaySpec{Table: "hotel_rates"}); err != nil {
		t.Fatal(err)
	}
	// S3 with a wrong secret key: the error and the retry logs must not show the key either.
	if strings.HasPrefix(out, "s3://") {
		wrong := "wrong-" + awsSecret
		secrets = append(secrets, wrong)
		t.Setenv("AWS_SECRET_ACCESS_KEY", wrong)
		o := s3opts
		o.Logger, o.RetryMaxElapsed = log, time.Second
		bad, err := objstore.Open(ctx, out, o)
		if err == nil {
			err = bad.Put(ctx, "probe", strings.NewReader("x"))
			bad.Close()
		}
		if err == nil {
			t.Fatal("put with a wrong secret key succeeded")
		}
		errs = append(errs, err)
	}

	check := func(what, text string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s contains a secret:\n%s", what, excerpt(text, s))
			}
		}
	}
	logText := logs.String()
	if len(logText) < 1000 || !strings.Contains(logText, `"level":"DEBUG"`) {
		t.Fatalf("too little debug output captured (%d bytes)", len(logText))
	}
	check("the log", logText)
	for _, err := range errs {
		check("error", err.Error())
	}
	for key := range listKeys(t, bucket, "") {
		if strings.HasSuffix(key, ".parquet") {
			continue // CSV data only
		}
		rc, err := bucket.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		check("object "+key, string(data))
	}
	for _, stream := range []string{b.Subjects.EventsStream(), b.Subjects.DLQStream()} {
		n := 0
		err := b.ReadOrdered(ctx, stream, jetstream.OrderedConsumerConfig{}, 0, nil,
			func(m jetstream.Msg, _ *jetstream.MsgMetadata) (bool, error) {
				n++
				var hdr strings.Builder
				for k, v := range m.Headers() {
					fmt.Fprintf(&hdr, "%s: %v\n", k, v)
				}
				check(fmt.Sprintf("message %s", m.Subject()), hdr.String()+string(m.Data()))
				return true, nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("stream %s is empty", stream)
		}
	}
	recs, err := env.Ledger.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check("ledger", fmt.Sprintf("%+v", recs))
}

func excerpt(text, secret string) string {
	i := strings.Index(text, secret)
	lo, hi := max(i-200, 0), min(i+len(secret)+100, len(text))
	return strings.ReplaceAll(text[lo:hi], secret, "<SECRET>")
}

// TestMembersStayInsideOutputRoot is the end-to-end regression for hostile member names: paths
// with "..", absolute paths, links, and names whose table or batch part is ".." or holds
// separators must never make anything appear outside --out (nor under another table). The
// member-level rules are unit-tested in extractor (TestExtractHostileAndOddMembers, TestMemberPath)
// and the key escaping in merger (keySegment); TestRunOnceHostileArchives covers the rejections.
func TestMembersStayInsideOutputRoot(t *testing.T) {
	h := newHarness(t, "", objstore.Options{})
	root := t.TempDir()
	h.out = filepath.Join(root, "out")
	h.opts.Out = h.out
	good := []byte("id,name\n1,a\n")
	if err := gen.WriteArchive(filepath.Join(h.landing, "p_20250301_1.tar.gz"), []gen.Member{
		{Name: "../../escape_20250301_001.csv", Body: good},
		{Name: "/tmp/abs_20250301_001.csv", Body: good},
		{Name: `..\..\win_20250301_001.csv`, Body: good},
		{Name: "dir/../../up_20250301_001.csv", Body: good},
		{Name: ".._20250301_001.csv", Body: good}, // table ".."
		{Name: "t_20250301_...csv", Body: good},   // batch ".."
		{Name: "._20250301_001.csv", Body: good},  // table "."
		{Name: "link_20250301_001.csv", Typeflag: '2', Linkname: "../../outside"},
		{Name: "hard_20250301_001.csv", Typeflag: '1', Linkname: "/etc/passwd"},
		{Name: "ok_20250301_001.csv", Body: good},
	}); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Minute)
	os.Chtimes(filepath.Join(h.landing, "p_20250301_1.tar.gz"), past, past)
	res := h.runOnce()
	if res.Status.Totals.Committed != 1 {
		t.Fatalf("totals %+v", res.Status.Totals)
	}
	var tops []string
	des, _ := os.ReadDir(h.out)
	for _, d := range des {
		tops = append(tops, d.Name())
	}
	if !slices.Contains(tops, "%2E%2E") || !slices.Contains(tops, "ok") {
		t.Fatalf("the table named \"..\" was not written escaped inside the root: %v", tops)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 || entries[0].Name() != "out" {
		t.Fatalf("something was written next to the output root: %v", entries)
	}
	for _, dir := range []string{filepath.Dir(h.landing), os.TempDir()} {
		for _, name := range []string{"escape_20250301_001.csv", "abs_20250301_001.csv", "outside", "escape", "up"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				t.Errorf("%s appeared in %s", name, dir)
			}
		}
	}
	err := filepath.WalkDir(h.out, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(h.out, path)
		if strings.HasPrefix(rel, "..") {
			t.Errorf("walked outside the output root: %s", path)
		}
		if d.Type()&os.ModeSymlink != 0 {
			t.Errorf("symlink in the output: %s", rel)
		}
		top, _, _ := strings.Cut(rel, string(filepath.Separator))
		switch top {
		case ".", "_summaries", "_schemas", "_quarantine", "_dq", "ok", "%2E%2E", "%2E", "t":
		default:
			t.Errorf("unexpected top-level entry %q (%s)", top, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
