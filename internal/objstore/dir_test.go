package objstore_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/objstore"
)

func TestDirTempFilesHidden(t *testing.T) {
	root := t.TempDir()
	b := openBucket(t, root, objstore.Options{})
	ctx := t.Context()
	w, err := b.Create(ctx, "a/b/obj.parquet")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join(root, "a", "b"))
	if err != nil || len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), ".tmp-") {
		t.Fatalf("before commit the directory holds %v (%v), want one .tmp- file", ents, err)
	}
	tmpKey := "a/b/" + ents[0].Name()
	if got := list(t, b, "", ""); len(got) != 0 {
		t.Fatalf("temp file listed: %q", got)
	}
	if _, err := b.Stat(ctx, tmpKey); !errors.Is(err, objstore.ErrInvalidKey) {
		t.Fatalf("stat of the temp file: %v, want ErrInvalidKey", err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	ents, _ = os.ReadDir(filepath.Join(root, "a", "b"))
	if len(ents) != 1 || ents[0].Name() != "obj.parquet" {
		t.Fatalf("after commit the directory holds %v", ents)
	}
	if fi, err := os.Stat(filepath.Join(root, "a", "b", "obj.parquet")); err != nil || !fi.Mode().IsRegular() || fi.Size() != 4 {
		t.Fatalf("committed file: %v, %v", fi, err)
	}
	// A temp file of a dead process, younger and older than the cutoff.
	stale := filepath.Join(root, "a", ".tmp-dead")
	if err := os.WriteFile(stale, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(stale, time.Now(), time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n, err := b.AbortStale(ctx, "a/", time.Now().Add(-3*time.Hour)); err != nil || n != 0 {
		t.Fatalf("abort stale (cutoff before) = %d, %v", n, err)
	}
	if n, err := b.AbortStale(ctx, "a/", time.Now().Add(-time.Hour)); err != nil || n != 1 {
		t.Fatalf("abort stale = %d, %v", n, err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale temp file still there: %v", err)
	}
}

// TestDirKeysStayInside: keys cannot escape the root, neither by name nor through a symbolic
// link placed in the tree.
func TestDirKeysStayInside(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "filelink")); err != nil {
		t.Fatal(err)
	}
	b := openBucket(t, root, objstore.Options{})
	ctx := t.Context()

	for _, k := range []string{"../" + filepath.Base(outside) + "/secret", "/" + outside + "/secret", "a/../../x"} {
		if _, err := b.Get(ctx, k); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("get %q: %v, want ErrInvalidKey", k, err)
		}
	}
	for _, k := range []string{"link/secret", "filelink"} {
		if rc, err := b.Get(ctx, k); err == nil {
			rc.Close()
			t.Errorf("get %q through a symlink out of the root succeeded", k)
		}
		if _, err := b.Stat(ctx, k); err == nil {
			t.Errorf("stat %q through a symlink out of the root succeeded", k)
		}
	}
	if err := b.Put(ctx, "link/planted", strings.NewReader("x")); err == nil {
		t.Error("put through a symlink out of the root succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "planted")); err == nil {
		t.Error("a file was written outside the root")
	}
	if err := b.Delete(ctx, "link/secret"); err == nil {
		if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
			t.Error("delete through a symlink removed a file outside the root")
		}
	}
	// Listings do not follow links.
	put(t, b, "in", []byte("1"))
	if got := list(t, b, "", ""); len(got) != 1 || got[0] != "in" {
		t.Errorf("list = %q, want only \"in\"", got)
	}
}

func TestOpenLocations(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	b := openBucket(t, "file://"+dir+"/sub", objstore.Options{})
	put(t, b, "k", []byte("v"))
	if _, err := os.Stat(filepath.Join(dir, "sub", "k")); err != nil {
		t.Fatalf("file:// location: %v", err)
	}
	if u := b.URI("k"); u != "file://"+dir+"/sub/k" {
		t.Errorf("URI = %q", u)
	}

	t.Chdir(dir)
	rel := openBucket(t, "sub", objstore.Options{})
	if got := get(t, rel, "k"); string(got) != "v" {
		t.Errorf("relative location reads %q", got)
	}

	for _, loc := range []string{"", "gs://bucket/x", "s3://", "s3:///prefix"} {
		if b, err := objstore.Open(ctx, loc, objstore.Options{}); err == nil {
			b.Close()
			t.Errorf("open %q succeeded", loc)
		}
	}
	if _, err := objstore.Open(ctx, "s3://b", objstore.Options{PartSize: 1 << 20}); err == nil {
		t.Error("a part size below 5 MiB was accepted")
	}
	if _, err := objstore.Open(ctx, "s3://b", objstore.Options{Endpoint: "localhost:9000"}); err == nil {
		t.Error("an endpoint without scheme was accepted")
	}
}
