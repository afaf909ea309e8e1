package extractor

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/internal/objstore"
)

// source reads the archive's bytes, counting and (optionally) hashing them, and marks read
// errors as source errors so they are not mistaken for a corrupt archive.
type source struct {
	r     io.Reader
	ctx   context.Context
	n     int64
	h     hash.Hash
	count func(n int) // nil: not counted elsewhere; else told every read (live progress)
}

func (s *source) Read(p []byte) (int, error) {
	if s.ctx != nil && s.ctx.Err() != nil {
		return 0, s.ctx.Err()
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	if s.count != nil && n > 0 {
		s.count(n)
	}
	if s.h != nil {
		s.h.Write(p[:n])
	}
	if err != nil && err != io.EOF {
		err = &sourceError{err: err}
	}
	return n, err
}

// limitReader sits between gzip and tar and stops decompression bombs: it counts every
// decompressed byte (members, skipped entries, tar blocks) against MaxUncompressed and, once
// past ratioCheckAfter, against MaxRatio × compressed bytes read so far.
type limitReader struct {
	r        io.Reader
	src      *source
	n        int64
	max      int64
	maxRatio float64
}

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.max {
		return n, &limitError{reason: fmt.Sprintf("decompression bomb: uncompressed size exceeds limit of %d bytes", l.max)}
	}
	if l.n > ratioCheckAfter && float64(l.n) > l.maxRatio*float64(l.src.n) {
		return n, &limitError{reason: fmt.Sprintf("decompression bomb: compression ratio exceeds %g", l.maxRatio)}
	}
	return n, err
}

// countingReader counts the bytes of one member.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// formatErrors tags the errors of a tar member's reader as a corrupt or truncated archive
// (unless they come from the source or the limits).
type formatErrors struct{ r io.Reader }

func (f formatErrors) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err != nil && err != io.EOF {
		err = asFormatError("corrupt archive", err)
	}
	return n, err
}

// bomSkipper drops a UTF-8 byte order mark at the start of a member before it is transcoded
// (for a latin1 partner the BOM's bytes would otherwise become "ï»¿").
type bomSkipper struct {
	r       io.Reader
	started bool
	head    []byte
}

func (b *bomSkipper) Read(p []byte) (int, error) {
	if !b.started {
		b.started = true
		var h [3]byte
		n, err := io.ReadFull(b.r, h[:])
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return 0, err
		}
		if n != 3 || string(h[:]) != string(utf8BOM) {
			b.head = append([]byte(nil), h[:n]...)
		}
	}
	if len(b.head) > 0 {
		n := copy(p, b.head)
		b.head = b.head[n:]
		return n, nil
	}
	return b.r.Read(p)
}

// openLocal opens a file:// URI or a plain path; any other scheme needs Deps.Open.
func openLocal(_ context.Context, uri string) (io.ReadCloser, error) {
	p := uri
	if strings.HasPrefix(uri, "file://") {
		u, err := url.Parse(uri)
		if err != nil {
			return nil, &permanentError{reason: fmt.Sprintf("archive uri %q: %v", uri, err)}
		}
		if u.Host != "" && u.Host != "localhost" {
			return nil, &permanentError{reason: fmt.Sprintf("archive uri %q: remote file host", uri)}
		}
		p = u.Path
	} else if strings.Contains(uri, "://") {
		return nil, &permanentError{reason: fmt.Sprintf("cannot open %s: no opener for this scheme (set Deps.Open)", uri)}
	}
	return os.Open(p)
}

// openArchive opens uri and classifies a failure.
func openArchive(ctx context.Context, open func(context.Context, string) (io.ReadCloser, error), uri string) (io.ReadCloser, error) {
	rc, err := open(ctx, uri)
	if err == nil {
		return rc, nil
	}
	var pe *permanentError
	switch {
	case errors.As(err, &pe):
		return nil, err
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, objstore.ErrNotFound):
		return nil, &permanentError{reason: "archive not found: " + uri, missing: true}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil, err
	}
	return nil, &transientError{what: "open archive " + uri, err: err}
}

// Reasons recorded for members that produce no rows. The reason class doubles as the metric
// label; reasons with details (line numbers) use the class as a prefix.
const (
	reasonNotTable      = "not a table file"
	reasonEmpty         = "empty file"
	reasonMetadata      = "tar metadata entry"
	reasonUnsupported   = "unsupported entry type"
	reasonAbsolute      = "absolute path"
	reasonEscapes       = "path escapes archive root"
	reasonSymlink       = "symlink"
	reasonHardLink      = "hard link"
	reasonDevice        = "device"
	reasonFifo          = "fifo"
	reasonSparse        = "sparse file"
	reasonBadName       = "member name is not valid UTF-8"
	reasonBadTable      = "table name contains control characters"
	reasonBadDate       = "date is not a calendar date"
	reasonTableAborted  = "table batch aborted"
	reasonMarkerTooBig  = "too many members for one batch marker"
	kindSkipped         = "skipped"
	kindRejected        = "rejected"
	classRecordTooLarge = "record exceeds max message size"
	classHeaderTooLarge = "header exceeds max message size"
	classUnterminated   = "unterminated quoted field"
)

// memberPath checks a tar entry name and returns it cleaned (slash-separated, relative). A
// backslash counts as a separator, so Windows-style names cannot sneak past.
func memberPath(name string) (clean, reason string) {
	n := strings.ReplaceAll(name, "\\", "/")
	if strings.HasPrefix(n, "/") || (len(n) >= 2 && n[1] == ':' && n[0] < utf8.RuneSelf && unicode.IsLetter(rune(n[0]))) {
		return n, reasonAbsolute
	}
	c := path.Clean(n)
	if c == ".." || strings.HasPrefix(c, "../") {
		return n, reasonEscapes
	}
	return c, ""
}

// entryReason says why a tar entry is not read as a member, or "" for a regular file.
func entryReason(h *tar.Header) (kind, reason string) {
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeCont:
		if isSparse(h) {
			return kindRejected, reasonSparse
		}
		return "", ""
	case tar.TypeSymlink:
		return kindRejected, reasonSymlink
	case tar.TypeLink:
		return kindRejected, reasonHardLink
	case tar.TypeChar, tar.TypeBlock:
		return kindRejected, reasonDevice
	case tar.TypeFifo:
		return kindRejected, reasonFifo
	case tar.TypeGNUSparse:
		return kindRejected, reasonSparse
	case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		return kindSkipped, reasonMetadata
	}
	return kindSkipped, fmt.Sprintf("%s %q", reasonUnsupported, h.Typeflag)
}

// isSparse reports a PAX-format GNU sparse file: its logical content is not its stored bytes.
func isSparse(h *tar.Header) bool {
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// validTable reports whether a table name can travel in subjects, headers and paths.
func validTable(t string) bool {
	for _, r := range t {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}
