package merger

import (
	"fmt"
	"net/url"
	"strings"
)

// tableDir is the table's top-level folder: the name as written, path-escaped when it could not
// be one key segment.
func tableDir(t string) string { return keySegment(t) }

// keySegment returns s when it is usable as one object key segment, else its URL path escape.
func keySegment(s string) string {
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

func groupPrefix(tbl, processDate, batchID string) string {
	return fmt.Sprintf("%s/process_date=%s/batch_id=%s/", tableDir(tbl), keySegment(processDate), keySegment(batchID))
}

func partName(archive string, i int) string {
	if i == 0 {
		return "part-" + archive + ".parquet"
	}
	return fmt.Sprintf("part-%s-%04d.parquet", archive, i)
}

// schemaKey is where the registry document of a version is copied to in the output.
func schemaKey(tbl string, version uint32) string {
	return fmt.Sprintf("_schemas/%s/v%d.json", tableDir(tbl), version)
}
