package objstore

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// ErrInvalidKey is returned (wrapped) for a key or prefix that is empty, absolute, has empty, "."
// or ".." segments, is not UTF-8, or (directory buckets) uses the reserved ".tmp-" name prefix.
var ErrInvalidKey = errors.New("invalid object key")

// ErrInvalidRange is returned (wrapped) by GetRange when off is negative or at/after the end of
// the object (S3: 416 InvalidRange).
var ErrInvalidRange = errors.New("invalid range")

// tmpPrefix starts the name of every temporary file of a directory bucket; listings, the
// producer and Stat ignore such files.
const tmpPrefix = ".tmp-"

const maxKeyLen = 1024 // S3's limit, applied to both bucket kinds so they accept the same keys

// checkKey validates an object key. Keys use "/" separators and are relative to the bucket root.
func checkKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case len(key) > maxKeyLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidKey, maxKeyLen)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w %q: not UTF-8", ErrInvalidKey, key)
	case strings.HasPrefix(key, "/"):
		return fmt.Errorf("%w %q: absolute", ErrInvalidKey, key)
	case strings.ContainsRune(key, 0):
		return fmt.Errorf("%w %q: NUL byte", ErrInvalidKey, key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w %q: empty path segment", ErrInvalidKey, key)
		case ".", "..":
			return fmt.Errorf("%w %q: %q segment", ErrInvalidKey, key, seg)
		}
	}
	return nil
}

// checkPrefix validates a listing prefix: "" (everything) or a key prefix whose complete
// segments (those followed by "/") are valid. The last, partial segment only filters names.
func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	dir, _ := splitPrefix(prefix)
	if dir == "" {
		if strings.HasPrefix(prefix, "/") {
			return fmt.Errorf("%w: prefix %q: absolute", ErrInvalidKey, prefix)
		}
		return nil
	}
	if err := checkKey(strings.TrimSuffix(dir, "/")); err != nil {
		return fmt.Errorf("prefix %q: %w", prefix, err)
	}
	return nil
}

// splitPrefix splits "a/b/c" into the directory part "a/b/" and the partial name "c".
func splitPrefix(prefix string) (dir, name string) {
	i := strings.LastIndexByte(prefix, '/')
	return prefix[:i+1], prefix[i+1:]
}

// KeySegment returns s when it is usable as one key segment, else its URL path escape ("" → "_",
// "." and ".." escaped, "/", "\" and NUL escaped). Every writer of keys derived from partner data
// (table names, dates, batch ids) uses it, so the data's objects and the objects about them
// (quarantine, data-quality results) sit under the same names.
func KeySegment(s string) string {
	switch {
	case s == "":
		return "_"
	case s == ".":
		return "%2E"
	case s == "..":
		return "%2E%2E"
	case strings.ContainsAny(s, "/\\") || strings.ContainsRune(s, 0):
		return url.PathEscape(strings.ReplaceAll(s, "\\", "%5C"))
	}
	return s
}

// PartitionValue returns s written as the value of a hive partition segment (key=value): Hive's escaping
// (FileUtils.escapePathName: control characters and "#%'*/:=?\{[]^ as %XX), which hive-partitioned readers
// (DuckDB, Spark, Trino) decode, so they show s itself; "" is "_" as for KeySegment. Without it a batch id
// "a=b" made the table unreadable as a hive layout, and "x%2F" read back as "x/".
func PartitionValue(s string) string {
	if s == "" {
		return "_"
	}
	const special = "\"#%'*/:=?\\{[]^"
	i := 0
	for i < len(s) && s[i] >= 0x20 && s[i] != 0x7f && strings.IndexByte(special, s[i]) < 0 {
		i++
	}
	if i == len(s) {
		return s
	}
	const hexDigits = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+8)
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || strings.IndexByte(special, c) >= 0 {
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}
