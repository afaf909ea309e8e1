package summarizer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/objstore"
	sluicev1 "github.com/sluice-dev/sluice/proto/sluicev1"
)

// cutBucket serves range reads whose body breaks off half-way, as when the connection to S3
// drops in the middle of a response.
type cutBucket struct{ objstore.Bucket }

func (b cutBucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	rc, err := b.Bucket.GetRange(ctx, key, off, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, _ := io.ReadAll(rc)
	return io.NopCloser(io.MultiReader(bytes.NewReader(data[:len(data)/2]), errReader{io.ErrUnexpectedEOF})), nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// notParquet returns a directory bucket holding one object at key: 4 KiB that are not Parquet.
func notParquet(t *testing.T, key string) objstore.Bucket {
	t.Helper()
	ctx := context.Background()
	dir, err := objstore.Open(ctx, t.TempDir(), objstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.Put(ctx, key, strings.NewReader(strings.Repeat("x", 4096))); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A body cut short by the network is a store failure (retried), not a bad object (a failed check).
func TestFooterReadCutShortIsTransient(t *testing.T) {
	ctx := context.Background()
	dir := notParquet(t, "t/part.parquet")
	_, err := footerRowCount(ctx, cutBucket{dir}, "t/part.parquet")
	var bad *badObjectError
	if err == nil || errors.As(err, &bad) {
		t.Fatalf("footerRowCount = %v, want a transient (non-badObjectError) error", err)
	}
	// The same bytes read whole are simply not Parquet: a failed check.
	if _, err := footerRowCount(ctx, dir, "t/part.parquet"); !errors.As(err, &bad) {
		t.Fatalf("footerRowCount of a non-Parquet object = %v, want a badObjectError", err)
	}
}

// TestCheckTableNamesBadObjects: a committed object that is missing, or is not Parquet, fails the
// check by name, beside the row count it leaves short.
func TestCheckTableNamesBadObjects(t *testing.T) {
	ctx := context.Background()
	s := &Summarizer{out: notParquet(t, "t/junk.parquet")}
	a := newState(nil).archive("a0000000000000000001")
	a.commits[0] = map[string]*sluicev1.BatchCommitted{"t": {ArchiveId: a.id, Table: "t", Objects: []*sluicev1.CommittedObject{
		{Key: "t/gone.parquet", Rows: 3}, {Key: "t/junk.parquet", Rows: 2},
	}}}
	r, err := s.checkTable(ctx, a, &sluicev1.TableCount{Table: "t", Rows: 5})
	if err != nil {
		t.Fatal(err)
	}
	if r.ok || r.found != 0 || !strings.Contains(r.detail, "object t/gone.parquet: missing") ||
		!strings.Contains(r.detail, "object t/junk.parquet: unreadable footer") || !strings.Contains(r.detail, "rows in 5 != footer rows 0") {
		t.Fatalf("check %+v", r)
	}
}
