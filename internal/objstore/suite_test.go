package objstore_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/objstore/s3test"
)

const partSize = objstore.MinPartSize // 5 MiB parts keep the multipart cases small

// backend opens a fresh, empty bucket of one kind for each call.
type backend struct {
	name string
	s3   bool
	open func(t *testing.T) objstore.Bucket
}

func dirBackend() backend {
	return backend{name: "dir", open: func(t *testing.T) objstore.Bucket {
		return openBucket(t, t.TempDir(), objstore.Options{})
	}}
}

// s3Backend starts one versitygw for the calling test; each bucket is a fresh key prefix.
func s3Backend(t *testing.T) backend {
	endpoint, bucket := s3test.Start(t)
	var n atomic.Int32
	return backend{name: "s3", s3: true, open: func(t *testing.T) objstore.Bucket {
		return s3test.Open(t, fmt.Sprintf("s3://%s/suite/t%03d", bucket, n.Add(1)), s3test.Options(t, endpoint))
	}}
}

func openBucket(t *testing.T, location string, opts objstore.Options) objstore.Bucket {
	t.Helper()
	b, err := objstore.Open(t.Context(), location, opts)
	if err != nil {
		t.Fatalf("open %s: %v", location, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// forEachBackend runs fn as a subtest against a directory bucket and a versitygw bucket.
func forEachBackend(t *testing.T, fn func(t *testing.T, be backend)) {
	t.Run("dir", func(t *testing.T) { fn(t, dirBackend()) })
	t.Run("s3", func(t *testing.T) { fn(t, s3Backend(t)) })
}

var suite = []struct {
	name string
	run  func(t *testing.T, be backend, b objstore.Bucket)
}{
	{"put_get_stat", testPutGetStat},
	{"list_order_after", testListOrder},
	{"delete", testDelete},
	{"create_invisible_until_commit", testCreateInvisible},
	{"abort_leaves_nothing", testAbort},
	{"multipart_roundtrip", testMultipart},
	{"single_put_up_to_one_part", testSinglePut},
	{"abort_stale", testAbortStale},
	{"get_range", testGetRange},
	{"reader_at", testReaderAt},
	{"invalid_keys", testInvalidKeys},
	{"uri", testURI},
}

func TestBucket(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		for _, tc := range suite {
			t.Run(tc.name, func(t *testing.T) { tc.run(t, be, be.open(t)) })
		}
	})
}

// randBytes returns n reproducible pseudo-random bytes.
func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			p[i+j] = byte(v >> (8 * j))
		}
	}
	return p
}

func put(t *testing.T, b objstore.Bucket, key string, data []byte) {
	t.Helper()
	if err := b.Put(t.Context(), key, bytes.NewReader(data)); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func get(t *testing.T, b objstore.Bucket, key string) []byte {
	t.Helper()
	rc, err := b.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return data
}

func list(t *testing.T, b objstore.Bucket, prefix, after string) []string {
	t.Helper()
	var keys []string
	err := b.List(t.Context(), prefix, after, func(a objstore.Attrs) error {
		keys = append(keys, a.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("list %q after %q: %v", prefix, after, err)
	}
	return keys
}

func wantNotFound(t *testing.T, b objstore.Bucket, key string) {
	t.Helper()
	if a, err := b.Stat(t.Context(), key); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("stat %s = %+v, %v; want ErrNotFound", key, a, err)
	}
}

func testPutGetStat(t *testing.T, be backend, b objstore.Bucket) {
	ctx := t.Context()
	data := []byte("hello, sluice\n")
	before := time.Now().Add(-2 * time.Second)
	put(t, b, "t/process_date=2024-01-02/part-1.csv", data)
	if got := get(t, b, "t/process_date=2024-01-02/part-1.csv"); !bytes.Equal(got, data) {
		t.Fatalf("get = %q, want %q", got, data)
	}
	a, err := b.Stat(ctx, "t/process_date=2024-01-02/part-1.csv")
	if err != nil {
		t.Fatal(err)
	}
	if a.Key != "t/process_date=2024-01-02/part-1.csv" || a.Size != int64(len(data)) || a.ETag == "" ||
		a.ModTime.Before(before) || a.ModTime.After(time.Now().Add(2*time.Second)) {
		t.Fatalf("stat = %+v", a)
	}
	if strings.Contains(a.ETag, `"`) {
		t.Errorf("etag %q keeps its quotes", a.ETag)
	}

	// Overwrite, and an empty object.
	put(t, b, "t/process_date=2024-01-02/part-1.csv", []byte("v2"))
	if got := get(t, b, "t/process_date=2024-01-02/part-1.csv"); string(got) != "v2" {
		t.Fatalf("get after overwrite = %q", got)
	}
	put(t, b, "empty", nil)
	if a, err := b.Stat(ctx, "empty"); err != nil || a.Size != 0 {
		t.Fatalf("stat empty = %+v, %v", a, err)
	}
	if got := get(t, b, "empty"); len(got) != 0 {
		t.Fatalf("get empty = %q", got)
	}

	// Missing keys, including one below an existing object and a "directory".
	for _, k := range []string{"missing", "t/missing", "empty/below", "t"} {
		wantNotFound(t, b, k)
		if _, err := b.Get(ctx, k); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("get %s: %v, want ErrNotFound", k, err)
		}
		if _, err := b.GetRange(ctx, k, 0, 1); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("get range %s: %v, want ErrNotFound", k, err)
		}
	}
}

func testListOrder(t *testing.T, be backend, b objstore.Bucket) {
	keys := []string{"b", "a/c/d", "a-c", "a/b", "a0", "x/y/z", "a/b.c", "a/ba", "x/yy"}
	for i, k := range keys {
		put(t, b, k, []byte(strings.Repeat("x", i)))
	}
	sorted := slices.Sorted(slices.Values(keys))
	for _, tc := range []struct {
		prefix, after string
		want          []string
	}{
		{"", "", sorted},
		{"a/", "", []string{"a/b", "a/b.c", "a/ba", "a/c/d"}},
		{"a", "", []string{"a-c", "a/b", "a/b.c", "a/ba", "a/c/d", "a0"}},
		{"a/b", "", []string{"a/b", "a/b.c", "a/ba"}},
		{"", "a/b", []string{"a/b.c", "a/ba", "a/c/d", "a0", "b", "x/y/z", "x/yy"}},
		{"", "a/bz", []string{"a/c/d", "a0", "b", "x/y/z", "x/yy"}},
		{"", "a/", []string{"a/b", "a/b.c", "a/ba", "a/c/d", "a0", "b", "x/y/z", "x/yy"}},
		{"a", "a/c/d", []string{"a0"}},
		{"x/y", "", []string{"x/y/z", "x/yy"}},
		{"x/y/", "", []string{"x/y/z"}},
		{"", "x/yy", nil},
		{"nope/", "", nil},
		{"", "0", sorted},
	} {
		if got := list(t, b, tc.prefix, tc.after); !slices.Equal(got, tc.want) {
			t.Errorf("list %q after %q = %q, want %q", tc.prefix, tc.after, got, tc.want)
		}
	}

	// Sizes come with the listing.
	var sizes []int64
	_ = b.List(t.Context(), "x/", "", func(a objstore.Attrs) error { sizes = append(sizes, a.Size); return nil })
	if !slices.Equal(sizes, []int64{5, 8}) {
		t.Errorf("sizes under x/ = %v", sizes)
	}

	// An error from fn stops the listing and is returned.
	stop := errors.New("stop")
	calls := 0
	err := b.List(t.Context(), "", "", func(objstore.Attrs) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("list with failing fn: err %v after %d calls", err, calls)
	}
}

func testDelete(t *testing.T, be backend, b objstore.Bucket) {
	put(t, b, "d/one", []byte("1"))
	put(t, b, "d/two", []byte("2"))
	if err := b.Delete(t.Context(), "d/one"); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, b, "d/one")
	if got := list(t, b, "", ""); !slices.Equal(got, []string{"d/two"}) {
		t.Fatalf("list after delete = %q", got)
	}
	for _, k := range []string{"d/one", "never", "d"} {
		if err := b.Delete(t.Context(), k); err != nil {
			t.Errorf("delete absent %s: %v", k, err)
		}
	}
	if got := get(t, b, "d/two"); string(got) != "2" {
		t.Fatalf("d/two = %q", got)
	}
}

func testCreateInvisible(t *testing.T, be backend, b objstore.Bucket) {
	ctx := t.Context()
	for _, size := range []int{1000, partSize + 1000} { // single put, multipart
		key := fmt.Sprintf("c/obj-%d", size)
		data := randBytes(size, uint64(size))
		w, err := b.Create(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		wantNotFound(t, b, key)
		if got := list(t, b, "", ""); len(got) != 0 {
			t.Fatalf("size %d: listed before commit: %q", size, got)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatalf("commit: %v", err)
		}
		if a, err := b.Stat(ctx, key); err != nil || a.Size != int64(size) {
			t.Fatalf("stat after commit = %+v, %v", a, err)
		}
		if got := list(t, b, "", ""); !slices.Equal(got, []string{key}) {
			t.Fatalf("list after commit = %q", got)
		}
		if !bytes.Equal(get(t, b, key), data) {
			t.Fatalf("content of %s differs", key)
		}
		// The writer is finished: more writes and a second Commit fail, Abort is a no-op.
		if _, err := w.Write([]byte("x")); err == nil {
			t.Error("write after commit succeeded")
		}
		if err := w.Commit(ctx); err == nil {
			t.Error("second commit succeeded")
		}
		if err := w.Abort(ctx); err != nil {
			t.Errorf("abort after commit: %v", err)
		}
		if a, err := b.Stat(ctx, key); err != nil || a.Size != int64(size) {
			t.Fatalf("stat after abort-after-commit = %+v, %v", a, err)
		}
		if err := b.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
}

func testAbort(t *testing.T, be backend, b objstore.Bucket) {
	ctx := t.Context()
	for _, size := range []int{0, 10, partSize + partSize/2} {
		w, err := b.Create(ctx, "ab/obj")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(randBytes(size, 1)); err != nil {
			t.Fatal(err)
		}
		if err := w.Abort(ctx); err != nil {
			t.Fatalf("abort: %v", err)
		}
		if err := w.Commit(ctx); err == nil {
			t.Fatal("commit after abort succeeded")
		}
		wantNotFound(t, b, "ab/obj")
		if got := list(t, b, "", ""); len(got) != 0 {
			t.Fatalf("listed after abort: %q", got)
		}
		// Nothing unfinished is left behind either (no temp file, no multipart upload).
		if n, err := b.AbortStale(ctx, "", time.Now().Add(time.Hour)); err != nil || n != 0 {
			t.Fatalf("size %d: abort stale after abort = %d, %v", size, n, err)
		}
	}
}

// chunkedWrite writes data in uneven chunks, as an encoder would.
func chunkedWrite(t *testing.T, w io.Writer, data []byte) {
	t.Helper()
	for off, i := 0, 0; off < len(data); i++ {
		n := min(len(data)-off, []int{1, 1000003, 77, 4 << 20, 65536}[i%5])
		if k, err := w.Write(data[off : off+n]); err != nil || k != n {
			t.Fatalf("write %d bytes at %d: %d, %v", n, off, k, err)
		}
		off += n
	}
}

func testMultipart(t *testing.T, be backend, b objstore.Bucket) {
	ctx := t.Context()
	data := randBytes(12<<20, 12)
	w, err := b.Create(ctx, "mp/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	chunkedWrite(t, w, data)
	if err := w.Commit(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	got := get(t, b, "mp/big.bin")
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("round trip of %d bytes: got %d bytes, different content", len(data), len(got))
	}
	a, err := b.Stat(ctx, "mp/big.bin")
	if err != nil || a.Size != int64(len(data)) {
		t.Fatalf("stat = %+v, %v", a, err)
	}
	if be.s3 && !strings.HasSuffix(a.ETag, "-3") {
		t.Errorf("etag %q: want a 3-part multipart etag", a.ETag)
	}
	// A range across the first part boundary.
	rc, err := b.GetRange(ctx, "mp/big.bin", partSize-10, 20)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if r, _ := io.ReadAll(rc); !bytes.Equal(r, data[partSize-10:partSize+10]) {
		t.Fatalf("range across part boundary differs")
	}

	// Put of a reader larger than one part goes multipart too.
	if err := b.Put(ctx, "mp/put.bin", io.MultiReader(bytes.NewReader(data[:7<<20]))); err != nil {
		t.Fatal(err)
	}
	if got := get(t, b, "mp/put.bin"); !bytes.Equal(got, data[:7<<20]) {
		t.Fatal("multipart put differs")
	}
}

func testSinglePut(t *testing.T, be backend, b objstore.Bucket) {
	// Exactly one part: a single PutObject (plain MD5 etag, no "-N" multipart suffix).
	data := randBytes(partSize, 5)
	w, err := b.Create(t.Context(), "one/part")
	if err != nil {
		t.Fatal(err)
	}
	chunkedWrite(t, w, data)
	if err := w.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	a, err := b.Stat(t.Context(), "one/part")
	if err != nil || a.Size != partSize {
		t.Fatalf("stat = %+v, %v", a, err)
	}
	if be.s3 && strings.Contains(a.ETag, "-") {
		t.Errorf("etag %q looks like a multipart upload", a.ETag)
	}
	if !bytes.Equal(get(t, b, "one/part"), data) {
		t.Fatal("content differs")
	}
}

func testAbortStale(t *testing.T, be backend, b objstore.Bucket) {
	ctx := t.Context()
	// An abandoned writer: S3 needs more than a part to have started a multipart upload.
	w, err := b.Create(ctx, "stale/x/obj")
	if err != nil {
		t.Fatal(err)
	}
	chunkedWrite(t, w, randBytes(partSize+10, 3))
	// Let the first part land: when AbortMultipartUpload races an UploadPart in flight,
	// versitygw answers both with success and the upload lives on, unlisted, accepting parts,
	// until Complete fails with InvalidPart or 500 InternalError.
	if err := objstore.WaitPartUploads(w); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		prefix string
		cutoff time.Time
		want   int
	}{
		{"stale/", time.Now().Add(-time.Hour), 0}, // too young
		{"other/", time.Now().Add(time.Hour), 0},  // elsewhere
		{"stale/y", time.Now().Add(time.Hour), 0}, // elsewhere
	} {
		if n, err := b.AbortStale(ctx, tc.prefix, tc.cutoff); err != nil || n != tc.want {
			t.Fatalf("abort stale %q before %v = %d, %v; want %d", tc.prefix, tc.cutoff, n, err, tc.want)
		}
	}
	if n, err := b.AbortStale(ctx, "stale/x/o", time.Now().Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("abort stale = %d, %v; want 1", n, err)
	}
	if n, err := b.AbortStale(ctx, "", time.Now().Add(time.Minute)); err != nil || n != 0 {
		t.Fatalf("second abort stale = %d, %v; want 0", n, err)
	}
	// The abandoned writer can no longer commit.
	if err := w.Commit(ctx); err == nil {
		t.Fatal("commit of an aborted upload succeeded")
	} else {
		t.Logf("commit after abort stale: %v", err)
	}
	wantNotFound(t, b, "stale/x/obj")
}

func testGetRange(t *testing.T, be backend, b objstore.Bucket) {
	ctx := t.Context()
	data := []byte("0123456789")
	put(t, b, "r", data)
	put(t, b, "e", nil)
	for _, tc := range []struct {
		key         string
		off, length int64
		want        string
		err         error
	}{
		{"r", 0, -1, "0123456789", nil},
		{"r", 3, -1, "3456789", nil},
		{"r", 3, 4, "3456", nil},
		{"r", 9, 1, "9", nil},
		{"r", 8, 100, "89", nil},
		{"r", 4, 0, "", nil},
		{"r", 10, 1, "", objstore.ErrInvalidRange},
		{"r", 11, -1, "", objstore.ErrInvalidRange},
		{"r", -1, 2, "", objstore.ErrInvalidRange},
		{"e", 0, -1, "", nil},
		{"e", 0, 0, "", nil},
		{"missing", 0, 0, "", objstore.ErrNotFound},
	} {
		rc, err := b.GetRange(ctx, tc.key, tc.off, tc.length)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("range %s %d+%d: err %v, want %v", tc.key, tc.off, tc.length, err, tc.err)
			}
			if err == nil {
				rc.Close()
			}
			continue
		}
		if err != nil {
			t.Errorf("range %s %d+%d: %v", tc.key, tc.off, tc.length, err)
			continue
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(got) != tc.want {
			t.Errorf("range %s %d+%d = %q, %v; want %q", tc.key, tc.off, tc.length, got, err, tc.want)
		}
	}
}

func testReaderAt(t *testing.T, be backend, b objstore.Bucket) {
	ctx := t.Context()
	data := randBytes(300_000, 7)
	put(t, b, "ra/obj", data)
	r, err := objstore.ReaderAt(ctx, b, "ra/obj")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != int64(len(data)) {
		t.Fatalf("size = %d", r.Size())
	}
	n := int64(len(data))
	for _, tc := range []struct {
		off     int64
		length  int
		wantN   int
		wantEOF bool
	}{
		{0, 100, 100, false},
		{1000, 70_000, 70_000, false},
		{n - 8, 8, 8, false},            // the parquet trailer
		{n - 70_000, 5000, 5000, false}, // inside the cached tail
		{n - 100_000, 50_000, 50_000, false},
		{n - 10, 20, 10, true},
		{n, 5, 0, true},
		{n + 5, 5, 0, true},
	} {
		p := make([]byte, tc.length)
		got, err := r.ReadAt(p, tc.off)
		if got != tc.wantN || (err == io.EOF) != tc.wantEOF || (err != nil && err != io.EOF) {
			t.Errorf("ReadAt(%d bytes at %d) = %d, %v; want %d, eof %v", tc.length, tc.off, got, err, tc.wantN, tc.wantEOF)
			continue
		}
		if !bytes.Equal(p[:got], data[min(tc.off, n):min(tc.off, n)+int64(got)]) {
			t.Errorf("ReadAt(%d bytes at %d): wrong bytes", tc.length, tc.off)
		}
	}

	// Seek + Read, and Read to the end.
	if pos, err := r.Seek(-100, io.SeekEnd); err != nil || pos != n-100 {
		t.Fatalf("seek end = %d, %v", pos, err)
	}
	rest, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(rest, data[n-100:]) {
		t.Fatalf("read after seek: %d bytes, %v", len(rest), err)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(all, data) {
		t.Fatalf("read all: %d bytes, %v", len(all), err)
	}
	if _, err := r.Seek(-1, io.SeekStart); err == nil {
		t.Error("seek to a negative position succeeded")
	}

	// Concurrent ReadAt.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			off := int64(i * 37_000)
			p := make([]byte, 30_000)
			k, err := r.ReadAt(p, off)
			if err != nil || !bytes.Equal(p[:k], data[off:off+int64(k)]) {
				t.Errorf("concurrent ReadAt at %d: %d, %v", off, k, err)
			}
		})
	}
	wg.Wait()

	if _, err := objstore.ReaderAt(ctx, b, "ra/missing"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("ReaderAt missing: %v", err)
	}
}

func testInvalidKeys(t *testing.T, be backend, b objstore.Bucket) {
	ctx := t.Context()
	for _, k := range []string{"", "/abs", "../up", "a/../../up", "a//b", "a/./b", "a/", "..", "nul\x00"} {
		if err := b.Put(ctx, k, strings.NewReader("x")); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("put %q: %v, want ErrInvalidKey", k, err)
		}
		if _, err := b.Create(ctx, k); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("create %q: %v, want ErrInvalidKey", k, err)
		}
		if _, err := b.Get(ctx, k); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("get %q: %v, want ErrInvalidKey", k, err)
		}
		if _, err := b.Stat(ctx, k); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("stat %q: %v, want ErrInvalidKey", k, err)
		}
		if err := b.Delete(ctx, k); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("delete %q: %v, want ErrInvalidKey", k, err)
		}
	}
	for _, p := range []string{"/abs", "../", "a/../"} {
		if err := b.List(ctx, p, "", func(objstore.Attrs) error { return nil }); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("list %q: %v, want ErrInvalidKey", p, err)
		}
	}
	if got := list(t, b, "", ""); len(got) != 0 {
		t.Fatalf("something was written: %q", got)
	}
}

func testURI(t *testing.T, be backend, b objstore.Bucket) {
	u := b.URI("t/process_date=2024-01-02/part-x.parquet")
	want := "file:///"
	if be.s3 {
		want = "s3://" + s3test.Bucket + "/suite/t"
	}
	if !strings.HasPrefix(u, want) || !strings.HasSuffix(u, "/t/process_date=2024-01-02/part-x.parquet") {
		t.Errorf("URI = %q", u)
	}
}
