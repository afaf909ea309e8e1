// Package objstore is sluice's narrow view of an object store: a local directory or an S3 bucket
// prefix, behind one Bucket interface. Objects written through Create become visible only when
// Commit returns (S3: multipart upload completed on Commit; directory: temp file, fsync, rename).
//
// Open picks the implementation from a location (a path, file:///path or s3://bucket/prefix);
// ReaderAt adapts an object to io.ReaderAt+io.Seeker for Parquet readers; WrapWithMetrics adds
// Prometheus metrics. Keys are "/"-separated, relative, without empty, "." or ".." segments
// (ErrInvalidKey otherwise), and list in byte-wise lexical order on both kinds of bucket.
// Package s3test runs a real S3 server (versitygw) for tests.
package objstore

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned (wrapped) when a key does not exist.
var ErrNotFound = errors.New("object not found")

// Attrs describes one object.
type Attrs struct {
	Key     string // relative to the bucket root (the prefix is not included)
	Size    int64
	ModTime time.Time
	ETag    string
}

// Writer streams one object. Nothing is visible at its key until Commit returns nil; Abort
// discards what was written. Exactly one of Commit or Abort must be called; an Abort after
// Commit does nothing, so `defer w.Abort(ctx)` is a safe cleanup. A Writer is not safe for
// concurrent use. For S3 the ctx given to Create bounds the part uploads that Write starts.
type Writer interface {
	io.Writer
	Commit(ctx context.Context) error
	Abort(ctx context.Context) error
}

// Bucket is a directory or an S3 bucket prefix.
type Bucket interface {
	// Create starts an object at key; it becomes visible atomically on Commit.
	Create(ctx context.Context, key string) (Writer, error)
	// Put writes a small object atomically in one call.
	Put(ctx context.Context, key string, r io.Reader) error
	// Get opens an object for streaming.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// GetRange reads length bytes at off (length < 0 means to the end).
	GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error)
	// Stat returns an object's attributes, ErrNotFound when absent.
	Stat(ctx context.Context, key string) (Attrs, error)
	// List calls fn for each object under prefix whose key sorts after `after` (empty: all),
	// in lexical key order. Returning an error from fn stops the listing with that error.
	List(ctx context.Context, prefix, after string, fn func(Attrs) error) error
	// Delete removes an object; deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error
	// AbortStale aborts unfinished uploads (S3 multipart, or leftover temp files) under prefix
	// started before olderThan, returning how many were removed.
	AbortStale(ctx context.Context, prefix string, olderThan time.Time) (int, error)
	// URI renders key as a user-facing location (file:///… or s3://bucket/prefix/key).
	URI(key string) string
	Close() error
}
