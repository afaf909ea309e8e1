// Package summarizer is sluice's last stage (issue #4: the old job's merge_summary,
// post_merge_check and wait_for_all_sources). It turns the EVENTS stream into per-archive
// verdicts and per-process-date summaries.
//
// # A fold over the EVENTS stream
//
// The summarizer's whole state is a pure function of the events it has read: landed, extracted,
// failed, duplicate, committed and checked (its own CheckResults). It reads them with an
// ordered consumer (no durable, no acks) that starts at the beginning of the stream every time
// the process starts, so a restarted summarizer rebuilds exactly the state the previous one had.
//
// Why not a durable consumer: a durable remembers what was acked, not what was learnt from it.
// A summary of a process date aggregates every archive of that date, and an archive is complete
// only when its ArchiveExtracted and one BatchCommitted per table have all been seen, possibly
// hours apart and across a restart. With a durable, a restart would resume after messages whose
// content is gone, so the state would have to be snapshotted elsewhere and kept exactly in step
// with the acks. Replaying the stream instead needs no second store and no ack bookkeeping: the
// stream is the snapshot. It is cheap because the events stream is small (a few messages per
// archive and table) and bounded by its 30-day retention. Config.Consumer prefixes the name of
// the ephemeral consumer (plus a random suffix per run, so that a restart never resumes the
// consumer of a crashed predecessor) so that operators can recognise it.
//
// # Idempotence: nothing lost, nothing doubled
//
//   - Every event is folded into keyed state: (archive, attempt) for extracted/failed,
//     (archive, attempt, table) for commits, (archive id, uri) for duplicates. The same event
//     twice overwrites an entry with itself. An event of an older extraction attempt than the one
//     already seen is ignored; a newer attempt (sluice reextract) resets the archive to pending.
//   - Side effects (footer reads, ledger updates, CheckResult/SummaryWritten events, summary
//     writes) happen only once the replay has caught up with the stream (NumPending 0), so a
//     restart decides on the full history, never on a prefix of it.
//   - A CheckResult carries the header Sluice-Check-Of: a fingerprint of what was checked
//     (archive, attempt, table, extractor rows, committed objects and their row counts,
//     quarantined rows). A check whose fingerprint is already in the stream is not run again, so
//     a restart does not re-read footers or re-publish results; a re-commit with different
//     objects changes the fingerprint and is checked again. Failed checks read back from the
//     stream are re-verified once per process (their per-object footer counts are not in the
//     event), and re-published only if the outcome changed.
//   - Order of effects for a check: ledger first, then the CheckResults. A crash in between
//     leaves no CheckResult in the stream, so the next instance checks again, the ledger update
//     is a no-op and the results are published once (Nats-Msg-Id de-duplicates a repeat within
//     the stream's duplicate window).
//   - A summary is rendered deterministically from the fold (no wall-clock timestamp; "as of" is
//     the newest time carried in the events that contributed, so the same event delivered twice
//     changes nothing). It is written only when its bytes differ from what Out already holds,
//     and SummaryWritten is published only after such a write, so a restart that rebuilds the
//     same state writes nothing and publishes nothing.
//   - Events expire after the stream's max age. An archive listed in an existing summary.json but
//     no longer in the stream is carried over from that file when the date is rewritten, so a
//     late archive never makes a summary forget the old ones.
//
// # Completion and the post-merge check
//
// An archive is complete when the ArchiveExtracted of its current attempt and a BatchCommitted
// (same attempt) for every table it lists, zero-row tables included, have been seen. Then each
// committed Parquet object's footer is read back from Out (ranged reads, never the whole
// object) and, per (archive, table): extractor rows == Σ footer rows + quarantined rows, and each
// object's footer rows == its CommittedObject.rows. An object that is missing or unreadable is a
// mismatch too. The result is published per table on <prefix>.events.checked; the ledger moves
// to committed (RowsIn/RowsOut set) or to failed with the reason. A read error that is not
// "object not found" (the store is down) is retried on the next tick instead of failing the
// archive. An ArchiveFailed makes the archive terminal (failed) at once.
//
// # Summaries and readiness
//
// An archive touches the process dates of its members; a failed archive with no known members
// touches the first valid YYYYMMDD in its name, else the UTC day it failed; a duplicate touches
// the date in its name, else its original's dates, else the day it was seen. When every archive
// touching date D is terminal, _summaries/process_date=D/summary.txt and then summary.json are
// Put (each atomically; json last, so a crash in between is repaired on restart) and a
// SummaryWritten event is published. When more arrives for D the summary is rewritten.
//
// For partners with Expected sources, each date seen (and each "today" since start, and at start
// every recent day whose deadline is still ahead) is checked against the injected clock every
// CheckEvery: sources are globs with {date} replaced by YYYYMMDD, matched against the base names
// of every archive seen (landed, extracted, failed or duplicate). Before D midnight UTC +
// Deadline an unmatched source is only "awaited"; after it, it is "missing", the summary of D is
// written (even with no archives, or with archives still pending, which it lists) and its
// SummaryWritten says complete=false with the missing sources.
//
// # Data quality
//
// Each BatchCommitted carries the data-quality results of its batches (docs/DATA-QUALITY.md). An
// archive's table entry in a date's summary holds its results of that date; the date's table sums
// them into quality {status, rules_passed, rules_warned, rules_failed, results} (results: what did
// not pass, and the date's results). When every archive of the date is terminal, each table whose
// partner has a volume rule is checked against its trailing days' totals (this process's renders of
// those dates, else their summary.json in Out, read once) and the result is written to
// _dq/results/<table>/process_date=D/date.parquet, before the summary and only when its bytes
// change. The date's quality (FAIL: a result failed or a batch was forced; WARN: one warned or
// missed its column; else OK) is in summary.json, summary.txt's headline, Status and SummaryWritten.
//
// # Concurrency
//
// Run owns two goroutines: the consumer pump (stream → channel) and the fold loop, which alone
// mutates state; footer reads fan out under the loop (bounded) and their results are applied by
// the loop. Status and WaitFor read an immutable snapshot published at the end of each settle,
// under a mutex that is never held while doing I/O. Run one summarizer per stream: two would
// each write the same summaries (harmless but wasteful).
package summarizer
