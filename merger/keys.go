package merger

import (
	"fmt"

	"github.com/sluice-dev/sluice/internal/objstore"
)

// tableDir is the table's top-level folder: the name as written, path-escaped when it could not
// be one key segment.
func tableDir(t string) string { return keySegment(t) }

// keySegment is objstore.KeySegment: one escaping for every key derived from partner data.
func keySegment(s string) string { return objstore.KeySegment(s) }

func groupPrefix(tbl, processDate, batchID string) string {
	return fmt.Sprintf("%s/process_date=%s/batch_id=%s/", tableDir(tbl), objstore.PartitionValue(processDate), objstore.PartitionValue(batchID))
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
