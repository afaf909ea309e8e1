package extractor

import (
	"archive/tar"
	stdflate "compress/flate"
	stdgzip "compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
)

// ArchiveError is why an archive was not extracted. Extract returns it (wrapped in nothing
// else), so callers can branch on Transient and record Reason.
type ArchiveError struct {
	ArchiveID string
	Reason    string // what ArchiveFailed and the ledger say
	// Transient: trying again may succeed (NATS unavailable, source read error, shutdown). A
	// permanent failure (corrupt or truncated archive, limits, content changed) will not get
	// better by retrying.
	Transient bool
	// Final: the failure was made visible (aborts, ArchiveFailed, ledger failed). A transient
	// failure on a delivery that is not the last one is not: the batch stays open for the retry.
	Final bool
	Err   error
}

func (e *ArchiveError) Error() string {
	return fmt.Sprintf("extract archive %s: %s", e.ArchiveID, e.Reason)
}

func (e *ArchiveError) Unwrap() error { return e.Err }

// IsTransient reports whether err is an ArchiveError that a retry may cure.
func IsTransient(err error) bool {
	var ae *ArchiveError
	return errors.As(err, &ae) && ae.Transient
}

// limitError is a decompression bomb guard tripping.
type limitError struct{ reason string }

func (e *limitError) Error() string { return e.reason }

// sourceError is an I/O error reading the archive's bytes (not its format).
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "read archive: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// formatError is a corrupt or truncated gzip/tar stream.
type formatError struct {
	what string
	err  error
}

func (e *formatError) Error() string { return e.what + ": " + e.err.Error() }
func (e *formatError) Unwrap() error { return e.err }

// permanentError is any other failure that retrying cannot cure.
type permanentError struct {
	reason  string
	missing bool // the archive is not at its location (openArchive)
}

func (e *permanentError) Error() string { return e.reason }

// transientError is a failure of the bus or ledger that a later attempt may not see.
type transientError struct {
	what string
	err  error
}

func (e *transientError) Error() string { return e.what + ": " + e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// asFormatError tags an error raised while decoding the gzip/tar stream, unless it came from
// below (the source, the limits) or from the context.
func asFormatError(what string, err error) error {
	var se *sourceError
	var le *limitError
	if err == nil || errors.As(err, &se) || errors.As(err, &le) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &formatError{what: "truncated archive", err: io.ErrUnexpectedEOF}
	}
	if isGzipFormat(err) {
		what = "corrupt gzip stream"
	}
	return &formatError{what: what, err: err}
}

// classify turns any error of an extraction into a reason and whether it is transient.
func classify(err error) (reason string, transient bool) {
	var (
		le *limitError
		se *sourceError
		fe *formatError
		pe *permanentError
		te *transientError
	)
	switch {
	case errors.As(err, &le):
		return le.reason, false
	case errors.As(err, &fe):
		return fe.Error(), false
	case errors.As(err, &pe):
		return pe.reason, false
	case errors.As(err, &se):
		return se.Error(), true
	case errors.As(err, &te):
		return te.Error(), true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "interrupted: " + err.Error(), true
	case isGzipFormat(err):
		return "corrupt gzip stream: " + err.Error(), false
	case errors.Is(err, fs.ErrNotExist):
		return "archive not found: " + err.Error(), false
	}
	return err.Error(), true
}

func isGzipFormat(err error) bool {
	var ce flate.CorruptInputError
	var sce stdflate.CorruptInputError
	return errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum) || errors.Is(err, stdgzip.ErrHeader) ||
		errors.Is(err, stdgzip.ErrChecksum) || errors.As(err, &ce) || errors.As(err, &sce) ||
		errors.Is(err, tar.ErrHeader) || strings.HasPrefix(err.Error(), "flate: ")
}
