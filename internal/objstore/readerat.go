package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// tailSize is how much of an object's end ObjectReaderAt fetches at once on the first read near
// the end: a Parquet reader reads the 8-byte trailer, then the footer just before it; one
// request usually covers both.
const tailSize = 64 << 10

// ObjectReaderAt reads an object in ranges: io.ReaderAt, io.Seeker, io.Reader and Size, which
// is what parquet/file.NewParquetReader needs (parquet.ReaderAtSeeker). Every ReadAt outside the
// cached tail is one GetRange of exactly the bytes asked for; the object is never downloaded
// whole unless asked to.
//
// ReadAt is safe for concurrent use; Read and Seek share a position and are not. The size is
// taken once from Stat: an object replaced meanwhile yields io.ErrUnexpectedEOF or mixed
// content (sluice never replaces an object with different bytes).
type ObjectReaderAt struct {
	ctx  context.Context
	b    Bucket
	key  string
	size int64
	pos  int64 // for Read and Seek

	mu   sync.Mutex
	tail []byte // the last min(size, tailSize) bytes, once read
}

var _ interface {
	io.ReaderAt
	io.ReadSeekCloser
} = (*ObjectReaderAt)(nil)

// ReaderAt opens key of b for ranged reads; ctx bounds every read made through it.
func ReaderAt(ctx context.Context, b Bucket, key string) (*ObjectReaderAt, error) {
	a, err := b.Stat(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("open reader: %w", err)
	}
	return &ObjectReaderAt{ctx: ctx, b: b, key: key, size: a.Size}, nil
}

// Size is the object's size in bytes.
func (r *ObjectReaderAt) Size() int64 { return r.size }

// ReadAt reads len(p) bytes at off; fewer only at the end of the object, with io.EOF.
func (r *ObjectReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s at %d: %w", r.key, off, ErrInvalidRange)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), r.size-off)
	var n int
	var err error
	if tailStart := r.size - min(r.size, tailSize); off >= tailStart {
		n, err = r.readTail(p[:want], off-tailStart)
	} else {
		n, err = r.readRange(p[:want], off)
	}
	if err != nil {
		return n, err
	}
	if want < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}

func (r *ObjectReaderAt) readTail(p []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tail == nil {
		t := make([]byte, min(r.size, tailSize))
		if _, err := r.readRange(t, r.size-int64(len(t))); err != nil {
			return 0, err
		}
		r.tail = t
	}
	return copy(p, r.tail[off:]), nil
}

func (r *ObjectReaderAt) readRange(p []byte, off int64) (int, error) {
	rc, err := r.b.GetRange(r.ctx, r.key, off, int64(len(p)))
	if err != nil {
		return 0, fmt.Errorf("read %s at %d: %w", r.key, off, err)
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, p)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // Stat said the bytes were there
		}
		return n, fmt.Errorf("read %s at %d: %w", r.key, off, err)
	}
	return n, nil
}

// Read reads from the current position.
func (r *ObjectReaderAt) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := r.ReadAt(p, r.pos)
	r.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil // report io.EOF on the next call
	}
	return n, err
}

// Seek sets the position for Read; io.SeekEnd is relative to Size.
func (r *ObjectReaderAt) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.pos + offset
	case io.SeekEnd:
		abs = r.size + offset
	default:
		return r.pos, fmt.Errorf("seek %s: invalid whence %d", r.key, whence)
	}
	if abs < 0 {
		return r.pos, fmt.Errorf("seek %s: negative position %d", r.key, abs)
	}
	r.pos = abs
	return abs, nil
}

// Close drops the cached tail. The reader holds no other resources.
func (r *ObjectReaderAt) Close() error {
	r.mu.Lock()
	r.tail = nil
	r.mu.Unlock()
	return nil
}
