package quality

import "github.com/sluice-dev/sluice/internal/objstore"

// Object keys of the data-quality output, relative to the output root (docs/DATA-QUALITY.md):
//
//	_dq/results/<table>/process_date=<d>/batch_id=<b>/part-<archive>.parquet   a batch's row and table results
//	_dq/profiles/<table>/process_date=<d>/batch_id=<b>/part-<archive>.parquet  a batch's column profiles
//	_dq/results/<table>/process_date=<d>/date.parquet                          a date's results (volume)
//
// Segments are escaped as the merger escapes the data's keys (objstore.KeySegment for the table,
// objstore.PartitionValue for a partition's value), so a table's results sit beside its data under the same names.

// ResultsKey is where a batch's results are written.
func ResultsKey(tableName, processDate, batchID, archiveID string) string {
	return batchKey("_dq/results/", tableName, processDate, batchID, archiveID)
}

// ProfilesKey is where a batch's profiles are written.
func ProfilesKey(tableName, processDate, batchID, archiveID string) string {
	return batchKey("_dq/profiles/", tableName, processDate, batchID, archiveID)
}

// DateResultsKey is where a process date's results (volume) are written.
func DateResultsKey(tableName, processDate string) string {
	return "_dq/results/" + keySegment(tableName) + "/process_date=" + objstore.PartitionValue(processDate) + "/date.parquet"
}

func batchKey(root, tableName, processDate, batchID, archiveID string) string {
	return root + keySegment(tableName) + "/process_date=" + objstore.PartitionValue(processDate) + "/batch_id=" + objstore.PartitionValue(batchID) +
		"/part-" + archiveID + ".parquet"
}

// keySegment is objstore.KeySegment: one escaping for every key derived from partner data.
func keySegment(s string) string { return objstore.KeySegment(s) }
