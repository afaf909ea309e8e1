package summarizer

// Check verdicts in summaries.
const (
	CheckOK      = "OK"
	CheckFail    = "FAIL"
	CheckPending = "PENDING"
)

// Data-quality statuses of a table and of a date in summaries (docs/DATA-QUALITY.md).
const (
	QualityOK   = "OK"   // every result passed
	QualityWarn = "WARN" // some result warned (or its column was missing), none failed
	QualityFail = "FAIL" // some result failed, or a batch was committed with --force past a failed rule
)

// SummaryKey is the key of a process date's summary.json (summary.txt sits next to it).
func SummaryKey(date string) string { return "_summaries/process_date=" + date + "/summary.json" }

func textKey(date string) string { return "_summaries/process_date=" + date + "/summary.txt" }

// SummaryJSON is the content of summary.json. Per-table figures are for this process date
// only: an archive spanning several dates contributes the rows of its members of this date.
type SummaryJSON struct {
	ProcessDate string          `json:"process_date"`
	AsOf        string          `json:"as_of,omitempty"` // newest event time that contributed (RFC 3339)
	Check       string          `json:"check"`           // OK | FAIL | PENDING
	Complete    bool            `json:"complete"`        // every expected source in, or none expected
	Totals      TotalsJSON      `json:"totals"`
	Tables      []TableJSON     `json:"tables"`
	Archives    []ArchiveJSON   `json:"archives"`
	Failed      []FailedJSON    `json:"failed_archives"`
	Duplicates  []DuplicateJSON `json:"duplicates_skipped"`
	Rejected    []RejectedJSON  `json:"rejected_members"`
	Sources     []SourcesJSON   `json:"expected_sources,omitempty"`
	// Quality is the worst data-quality status of the date's tables (OK | WARN | FAIL); absent when
	// no table of the date has a data-quality result.
	Quality string `json:"quality,omitempty"`
}

// TotalsJSON sums a date.
type TotalsJSON struct {
	Archives        int   `json:"archives"`
	Committed       int   `json:"committed"`
	Failed          int   `json:"failed"`
	Pending         int   `json:"pending"`
	Duplicates      int   `json:"duplicates_skipped"`
	RowsIn          int64 `json:"rows_in"`
	RowsOut         int64 `json:"rows_out"`
	Quarantined     int64 `json:"quarantined"`
	Objects         int   `json:"objects"`
	Bytes           int64 `json:"bytes"`
	RejectedMembers int   `json:"rejected_members"`
	SkippedMembers  int   `json:"skipped_members"`
	CheckFailures   int   `json:"check_failures"`
	ExtractMs       int64 `json:"extract_ms"`
	CommitMs        int64 `json:"commit_ms"`
}

// TableJSON aggregates one table over the date's archives.
type TableJSON struct {
	Table             string       `json:"table"`
	Archives          int          `json:"archives"`
	RowsIn            int64        `json:"rows_in"`
	RowsOut           int64        `json:"rows_out"`
	Quarantined       int64        `json:"quarantined"`
	QuarantineReasons []ReasonJSON `json:"quarantine_reasons,omitempty"`
	Objects           int          `json:"objects"`
	Bytes             int64        `json:"bytes"`
	SchemaVersion     uint32       `json:"schema_version"`
	SchemaChanges     []string     `json:"schema_changes,omitempty"`
	CommitMs          int64        `json:"commit_ms"`
	Check             string       `json:"check"`
	// Quality: the table's data-quality results of the date (its batches' and the date's volume);
	// absent when it has none.
	Quality *QualityJSON `json:"quality,omitempty"`
}

// QualityJSON is the data quality of a table on the date (TableJSON), or of one archive's table
// (ArchiveTableJSON). The counts are of results: one per rule and batch, plus one per date rule
// (volume), as the _dq/results Parquet holds them.
type QualityJSON struct {
	Status       string `json:"status"` // OK | WARN | FAIL
	RulesPassed  int    `json:"rules_passed"`
	RulesWarned  int    `json:"rules_warned"`
	RulesFailed  int    `json:"rules_failed"`
	RulesMissing int    `json:"rules_missing_column,omitempty"` // the batch lacked the rule's column (counts as WARN)
	// Forced: a batch was committed with `sluice dlq retry --force` although a fail rule failed:
	// the date's quality is FAIL.
	Forced bool `json:"forced,omitempty"`
	// Results: every result that did not pass, then the date's results (volume) whatever their
	// status, so that the volume baseline and band are always visible.
	Results []QualityResultJSON `json:"results"`
}

// QualityResultJSON is one data-quality result.
type QualityResultJSON struct {
	Rule        string `json:"rule"`
	Column      string `json:"column,omitempty"`
	Kind        string `json:"kind"`   // row | table | date
	Action      string `json:"action"` // warn | quarantine | fail
	Status      string `json:"status"` // pass | warn | fail | missing_column
	CheckedRows int64  `json:"checked_rows"`
	FailedRows  int64  `json:"failed_rows"`
	Observed    string `json:"observed,omitempty"`
	Expected    string `json:"expected,omitempty"`   // volume: the baseline and the band
	Archive     string `json:"archive,omitempty"`    // archive name, in the date-level list (none for date results)
	ArchiveID   string `json:"archive_id,omitempty"` // in the date-level list
	BatchID     string `json:"batch_id,omitempty"`   // none for date results
	Forced      bool   `json:"forced,omitempty"`     // a failed result of a batch committed with --force
}

// ReasonJSON is a count of quarantined rows for one reason.
type ReasonJSON struct {
	Reason string `json:"reason"`
	Rows   int64  `json:"rows"`
}

// ArchiveJSON is one archive as it contributes to the date.
type ArchiveJSON struct {
	ArchiveID         string             `json:"archive_id"`
	Name              string             `json:"name"`
	URI               string             `json:"uri,omitempty"`
	Partner           string             `json:"partner,omitempty"`
	Attempt           uint32             `json:"attempt"`
	State             ArchiveState       `json:"state"`
	Reason            string             `json:"reason,omitempty"` // why it failed, or why a committed one took no table
	Check             string             `json:"check,omitempty"`  // OK | FAIL once checked
	Dates             []string           `json:"process_dates"`
	CompressedBytes   int64              `json:"compressed_bytes,omitempty"`
	UncompressedBytes int64              `json:"uncompressed_bytes,omitempty"`
	ExtractMs         int64              `json:"extract_ms"`
	CommitMs          int64              `json:"commit_ms"`
	LandedToDoneMs    int64              `json:"landed_to_committed_ms,omitempty"`
	RowsIn            int64              `json:"rows_in"`
	RowsOut           int64              `json:"rows_out"`
	Quarantined       int64              `json:"quarantined"`
	Tables            []ArchiveTableJSON `json:"tables"`
	Rejected          []RejectedJSON     `json:"rejected,omitempty"`
	LastEventUnixMs   int64              `json:"last_event_unix_ms"`
}

// ArchiveTableJSON is one table of one archive, for the date.
type ArchiveTableJSON struct {
	Table             string       `json:"table"`
	RowsIn            int64        `json:"rows_in"`
	RowsOut           int64        `json:"rows_out"`
	Quarantined       int64        `json:"quarantined"`
	QuarantineReasons []ReasonJSON `json:"quarantine_reasons,omitempty"`
	QuarantineKey     string       `json:"quarantine_key,omitempty"`
	Objects           []ObjectJSON `json:"objects"`
	Bytes             int64        `json:"bytes"`
	SchemaVersion     uint32       `json:"schema_version"`
	SchemaChanges     []string     `json:"schema_changes,omitempty"`
	CommitMs          int64        `json:"commit_ms"`
	Committed         bool         `json:"committed"`
	// Replayed: the table's current commit is a re-run (`sluice replay`, a dead-letter re-merge,
	// or a re-extraction), not the first merge of the archive.
	Replayed    bool   `json:"replayed,omitempty"`
	Check       string `json:"check,omitempty"`
	CheckDetail string `json:"check_detail,omitempty"`
	// Quality: the data-quality results of the table's commit for this date (absent without any).
	Quality *QualityJSON `json:"quality,omitempty"`
}

// ObjectJSON is one committed Parquet object.
type ObjectJSON struct {
	Key        string `json:"key"`
	Rows       int64  `json:"rows"`                  // as committed
	FooterRows *int64 `json:"footer_rows,omitempty"` // as read back (absent until checked)
	Bytes      int64  `json:"bytes"`
}

// RejectedJSON is a member that produced no rows.
type RejectedJSON struct {
	Archive string `json:"archive,omitempty"` // archive name, in the date-level list
	Member  string `json:"member"`
	Kind    string `json:"kind"`
	Reason  string `json:"reason"`
	Size    int64  `json:"size"`
}

// FailedJSON is a failed archive.
type FailedJSON struct {
	ArchiveID string `json:"archive_id"`
	Name      string `json:"name"`
	Reason    string `json:"reason"`
}

// DuplicateJSON is a skipped duplicate location.
type DuplicateJSON struct {
	ArchiveID  string `json:"archive_id"`
	Name       string `json:"name"`
	URI        string `json:"uri"`
	FirstURI   string `json:"first_uri,omitempty"`
	SeenUnixMs int64  `json:"seen_unix_ms,omitempty"`
}

// SourcesJSON is the readiness of one partner's expected sources for the date.
type SourcesJSON struct {
	Partner        string     `json:"partner"`
	Deadline       string     `json:"deadline"` // RFC 3339, UTC
	DeadlinePassed bool       `json:"deadline_passed"`
	In             []SourceIn `json:"in"`
	Awaited        []string   `json:"awaited,omitempty"` // not in yet, deadline ahead
	Missing        []string   `json:"missing,omitempty"` // not in, deadline passed
}

// SourceIn is an expected source and the archives that matched it.
type SourceIn struct {
	Source   string   `json:"source"`
	Archives []string `json:"archives"`
}
