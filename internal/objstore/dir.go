package objstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// dirBucket stores objects as files under a directory. Every file operation goes through an
// os.Root, so neither a key nor a symbolic link inside the tree can reach outside of it (keys
// are validated first as well, for clear errors).
//
// Writes are atomic: data goes to "<dir of key>/.tmp-<random>", which is fsynced, renamed over
// the key, and the directory is fsynced. Directories created for a key are fsynced into their
// parents. Empty directories are never removed (the tree may be a partner's landing area).
type dirBucket struct {
	root *os.Root
	dir  string // absolute path of the root, for URIs
	log  *slog.Logger
}

var _ Bucket = (*dirBucket)(nil)

func openDir(dir string, opts Options) (*dirBucket, error) {
	abs, err := absDir(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("create directory: %w", err)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, err
	}
	return &dirBucket{root: root, dir: abs, log: opts.Logger}, nil
}

// checkDirKey adds the directory bucket's reservation of ".tmp-" names to checkKey.
func checkDirKey(key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	for seg := range strings.SplitSeq(key, "/") {
		if strings.HasPrefix(seg, tmpPrefix) {
			return fmt.Errorf("%w %q: %q names are reserved for temporary files", ErrInvalidKey, key, tmpPrefix+"*")
		}
	}
	return nil
}

// notFound maps "no such file" (and "a parent is not a directory") to ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

func (b *dirBucket) Create(ctx context.Context, key string) (Writer, error) {
	if err := checkDirKey(key); err != nil {
		return nil, fmt.Errorf("create %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create %s: %w", key, err)
	}
	f, tmp, err := b.createTemp(path.Dir(key))
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", key, err)
	}
	return &dirWriter{b: b, key: key, tmp: tmp, f: f}, nil
}

// createTemp creates an empty temporary file in dir ("." for the root), creating dir if needed.
func (b *dirBucket) createTemp(dir string) (*os.File, string, error) {
	if err := b.mkdirAll(dir); err != nil {
		return nil, "", err
	}
	for range 10 {
		var rnd [8]byte
		_, _ = rand.Read(rnd[:])
		tmp := path.Join(dir, tmpPrefix+hex.EncodeToString(rnd[:]))
		f, err := b.root.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		return f, tmp, nil
	}
	return nil, "", fmt.Errorf("create temporary file in %s: too many name collisions", dir)
}

// mkdirAll creates dir and its missing parents, fsyncing each new directory's parent so that
// the new entries survive a crash together with the object renamed into them.
func (b *dirBucket) mkdirAll(dir string) error {
	if dir == "." {
		return nil
	}
	if fi, err := b.root.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	cur := ""
	for seg := range strings.SplitSeq(dir, "/") {
		parent := cur
		cur = path.Join(cur, seg)
		err := b.root.Mkdir(cur, 0o755)
		switch {
		case errors.Is(err, fs.ErrExist):
			continue
		case err != nil:
			return err
		}
		if parent == "" {
			parent = "."
		}
		if err := b.syncDir(parent); err != nil {
			return err
		}
	}
	return nil
}

func (b *dirBucket) syncDir(dir string) error {
	d, err := b.root.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

func (b *dirBucket) Put(ctx context.Context, key string, r io.Reader) error {
	w, err := b.Create(ctx, key)
	if err != nil {
		return fmt.Errorf("put: %w", err)
	}
	if _, err := io.Copy(w, r); err != nil {
		_ = w.Abort(ctx)
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := w.Commit(ctx); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	return nil
}

// openRegular opens key for reading; directories and other non-regular files are "not found".
func (b *dirBucket) openRegular(key string) (*os.File, fs.FileInfo, error) {
	if err := checkDirKey(key); err != nil {
		return nil, nil, err
	}
	f, err := b.root.Open(key)
	if err != nil {
		return nil, nil, notFound(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%w: %s is not a regular file", ErrNotFound, key)
	}
	return f, fi, nil
}

func (b *dirBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	f, _, err := b.openRegular(key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return f, nil
}

type sectionReadCloser struct {
	*io.SectionReader
	io.Closer
}

func (b *dirBucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get range %s: %w", key, err)
	}
	f, fi, err := b.openRegular(key)
	if err != nil {
		return nil, fmt.Errorf("get range %s: %w", key, err)
	}
	if err := checkRange(off, length, fi.Size()); err != nil {
		f.Close()
		return nil, fmt.Errorf("get range %s: %w", key, err)
	}
	if length < 0 || off+length > fi.Size() {
		length = fi.Size() - off
	}
	return sectionReadCloser{io.NewSectionReader(f, off, length), f}, nil
}

// checkRange applies S3's rules for a range read of an object of the given size, so that both
// bucket kinds agree: a zero length is always fine, the whole object (0, -1) is fine even when
// empty, otherwise off must be inside the object; a length past the end is cut.
func checkRange(off, length, size int64) error {
	switch {
	case off < 0:
		return fmt.Errorf("%w: negative offset %d", ErrInvalidRange, off)
	case length == 0, off == 0 && length < 0:
		return nil
	case off >= size:
		return fmt.Errorf("%w: offset %d of a %d-byte object", ErrInvalidRange, off, size)
	}
	return nil
}

func (b *dirBucket) Stat(ctx context.Context, key string) (Attrs, error) {
	if err := ctx.Err(); err != nil {
		return Attrs{}, fmt.Errorf("stat %s: %w", key, err)
	}
	if err := checkDirKey(key); err != nil {
		return Attrs{}, fmt.Errorf("stat %s: %w", key, err)
	}
	fi, err := b.root.Stat(key)
	if err != nil {
		return Attrs{}, fmt.Errorf("stat %s: %w", key, notFound(err))
	}
	if !fi.Mode().IsRegular() {
		return Attrs{}, fmt.Errorf("stat %s: %w: not a regular file", key, ErrNotFound)
	}
	return fileAttrs(key, fi), nil
}

// fileAttrs describes a file. A directory has no ETag of its own; a synthetic one from the
// modification time and size ("<mtime-ns hex>-<size hex>") changes whenever the file is replaced.
func fileAttrs(key string, fi fs.FileInfo) Attrs {
	return Attrs{
		Key:     key,
		Size:    fi.Size(),
		ModTime: fi.ModTime(),
		ETag:    fmt.Sprintf("%x-%x", fi.ModTime().UnixNano(), fi.Size()),
	}
}

// dirEntry is one entry of a directory with the key it sorts by: directories sort as "name/",
// which makes a depth-first walk yield keys in plain lexical order ("a-c" < "a/b" because
// '-' < '/', although the directory "a" sorts before the file "a-c").
type dirEntry struct {
	key    string // full key (directories: with trailing "/")
	isDir  bool
	isTemp bool // name starts with ".tmp-"
	entry  fs.DirEntry
}

// readDir lists dir ("" for the root) in key order. A missing directory is empty.
func (b *dirBucket) readDir(dir string) ([]dirEntry, error) {
	name := strings.TrimSuffix(dir, "/")
	if name == "" {
		name = "."
	}
	f, err := b.root.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, nil
		}
		return nil, err
	}
	ents, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", name, err)
	}
	out := make([]dirEntry, 0, len(ents))
	for _, e := range ents {
		switch {
		case e.IsDir():
			out = append(out, dirEntry{key: dir + e.Name() + "/", isDir: true, isTemp: strings.HasPrefix(e.Name(), tmpPrefix), entry: e})
		case e.Type().IsRegular():
			out = append(out, dirEntry{key: dir + e.Name(), isTemp: strings.HasPrefix(e.Name(), tmpPrefix), entry: e})
		}
		// symbolic links, sockets, devices: not objects
	}
	slices.SortFunc(out, func(a, b dirEntry) int { return strings.Compare(a.key, b.key) })
	return out, nil
}

// mayHold reports whether the directory key dk ("a/b/") can contain keys starting with prefix.
func mayHold(dk, prefix string) bool {
	return strings.HasPrefix(dk, prefix) || strings.HasPrefix(prefix, dk)
}

func (b *dirBucket) List(ctx context.Context, prefix, after string, fn func(Attrs) error) error {
	if err := checkPrefix(prefix); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	start, _ := splitPrefix(prefix)
	err := b.walk(ctx, start, func(e dirEntry) (bool, error) {
		if e.isDir {
			// Skip a directory outside the prefix, or whose keys all sort at or before after
			// (after is past dk and does not start with it).
			return !e.isTemp && mayHold(e.key, prefix) && (after < e.key || strings.HasPrefix(after, e.key)), nil
		}
		if e.isTemp || !strings.HasPrefix(e.key, prefix) || e.key <= after {
			return false, nil
		}
		fi, err := e.entry.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil // deleted while listing
		}
		if err != nil {
			return false, err
		}
		if err := fn(fileAttrs(e.key, fi)); err != nil {
			return false, &fnError{err}
		}
		return false, nil
	})
	var fe *fnError
	if errors.As(err, &fe) {
		return fe.err // the callback's own error, unwrapped
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	return nil
}

// fnError carries a List callback's error out of walk, to return it unwrapped.
type fnError struct{ err error }

func (e *fnError) Error() string { return fmt.Sprint(e.err) }

// walk visits the tree under dir depth-first in key order. visit returns whether to descend
// into a directory; an error stops the walk.
func (b *dirBucket) walk(ctx context.Context, dir string, visit func(dirEntry) (bool, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ents, err := b.readDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		descend, err := visit(e)
		if err != nil {
			return err
		}
		if descend {
			if err := b.walk(ctx, e.key, visit); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *dirBucket) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := checkDirKey(key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	fi, err := b.root.Lstat(key)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || err == nil && fi.IsDir() {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := b.root.Remove(key); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// AbortStale removes temporary files last written before olderThan in directories that can hold
// keys under prefix (a temporary file belongs to a directory, not to a key, so a prefix that
// ends inside a name covers every temporary file of that directory). A writer still working
// there keeps its file's modification time fresh with every write.
func (b *dirBucket) AbortStale(ctx context.Context, prefix string, olderThan time.Time) (int, error) {
	if err := checkPrefix(prefix); err != nil {
		return 0, fmt.Errorf("abort stale %s: %w", prefix, err)
	}
	start, _ := splitPrefix(prefix)
	n := 0
	err := b.walk(ctx, start, func(e dirEntry) (bool, error) {
		if e.isDir {
			return !e.isTemp && mayHold(e.key, prefix), nil
		}
		if !e.isTemp {
			return false, nil
		}
		fi, err := e.entry.Info()
		if err != nil || !fi.ModTime().Before(olderThan) {
			return false, nil
		}
		if err := b.root.Remove(e.key); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return false, nil // committed or aborted meanwhile
			}
			return false, err
		}
		n++
		b.log.Info("removed stale temporary file", "file", e.key, "mtime", fi.ModTime())
		return false, nil
	})
	if err != nil {
		return n, fmt.Errorf("abort stale %s: %w", prefix, err)
	}
	return n, nil
}

func (b *dirBucket) URI(key string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(b.dir, filepath.FromSlash(key)))}).String()
}

func (b *dirBucket) Close() error { return b.root.Close() }

// dirWriter writes one object into a temporary file.
type dirWriter struct {
	b      *dirBucket
	key    string
	tmp    string
	f      *os.File
	closed bool // Commit or Abort was called
}

var errWriterClosed = errors.New("writer already committed or aborted")

func (w *dirWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, fmt.Errorf("write %s: %w", w.key, errWriterClosed)
	}
	n, err := w.f.Write(p)
	if err != nil {
		return n, fmt.Errorf("write %s: %w", w.key, err)
	}
	return n, nil
}

func (w *dirWriter) Commit(ctx context.Context) error {
	if w.closed {
		return fmt.Errorf("commit %s: %w", w.key, errWriterClosed)
	}
	w.closed = true
	err := ctx.Err()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = w.b.root.Rename(w.tmp, w.key)
	}
	if err != nil {
		_ = w.b.root.Remove(w.tmp)
		return fmt.Errorf("commit %s: %w", w.key, err)
	}
	if err := w.b.syncDir(path.Dir(w.key)); err != nil {
		// The object is in place but maybe not durable; the caller may write it again.
		return fmt.Errorf("commit %s: %w", w.key, err)
	}
	return nil
}

// Abort discards the temporary file. After Commit (successful or not) it does nothing, so
// `defer w.Abort(ctx)` is safe.
func (w *dirWriter) Abort(ctx context.Context) error {
	if w.closed {
		return nil
	}
	w.closed = true
	w.f.Close()
	if err := w.b.root.Remove(w.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("abort %s: %w", w.key, err)
	}
	return nil
}
