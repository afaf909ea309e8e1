// Package quality is sluice's data-quality engine: it checks a table's rules on the Arrow record batches the merger
// builds, accumulates column profiles from the same arrays, decides per batch whether it may be committed, and
// writes its results and profiles as Parquet. It is a library: the merger calls it, nothing here does I/O beyond
// the io.Writer and reader it is given. docs/DATA-QUALITY.md is the user's view (rules, actions, statuses, the
// _dq/ layout, queries); this is the integrator's.
//
// # Flow (what the merger is expected to do)
//
//	rules, err := quality.Compile(table, p.Tables[table].Quality, p.QualityDefaults)   // once per table and config
//	err = quality.CheckSchema(p.Name, table, p.Tables[table].Quality, registrySchema) // at start: refuse bad rules
//
//	b := rules.NewBatch(alloc, quality.BatchMeta{ArchiveID, ProcessDate, BatchID, Schema: s, Absent: absent})
//	for each row group rec (table.Builder.NewRecordBatch):
//	    keep, quarantined, err := b.Check(rec)   // write keep (release it and rec); quarantine `quarantined`
//	results, failed, profiles := b.Finish(quality.FinishInput{RowsIn, QuarantinedOther, SchemaAdded, SchemaWidened})
//	if len(failed) > 0 { dead-letter the batch with failed as the reason; do not commit }
//	else { commit _dq/results/…/part-<archive>.parquet (WriteResults) and _dq/profiles/… (WriteProfiles) with it }
//
//	// once a process date is complete (every archive terminal), per table with a volume rule:
//	res, ok, err := rules.Volume(date, rowsOfTheDate, trailingDayTotals) // → _dq/results/<t>/process_date=D/date.parquet
//
// Keys: ResultsKey, ProfilesKey, DateResultsKey. Results are in a fixed order (key, columns by name, then table
// rules), so a replayed batch writes the same bytes.
//
// # Row rules on Arrow
//
// A row rule is bound at NewBatch (or at the first Check) to its column's index and Arrow type, and then runs as
// one loop over the column's values per record batch: a failing row calls back (rare), a passing one costs a
// comparison. Rules are checked in result order, except unique and key, which run last and skip the rows other
// quarantine rules removed: what is written is unique. A row that fails several quarantine rules is reported once,
// with the first. Rows are removed by copying the runs of kept rows (array.Concatenate of slices) when few are
// removed, else by compute.FilterRecordBatch; Check then returns a new record batch allocated from the Batch's
// allocator, and the original stays the caller's (both are alive until the caller releases them).
//
// # Memory
//
// Nothing Arrow is retained between calls. Go memory: each unique or key rule holds a set of 64-bit hashes bounded
// by Rules.MaxSetBytes (16 MiB, 1.5 M distinct values; beyond, new values are only looked up and the result says
// so); each column profile holds up to 16 KiB of exact hashes, then 16 KiB of HyperLogLog registers, plus up to 32
// short strings. Batch.MemoryBytes reports the total for the caller's budget.
//
// # Cost
//
// BenchmarkCheck (100 000 rows, ten columns): five rules (key, not_null, range, allowed, max_length) cost 50–60 ns
// a row, the profiles of the ten columns 150–160 ns, against 1 900–2 300 ns a row for the merge's own CSV → Arrow →
// zstd Parquet of the same rows. regex is the expensive rule (Go's regexp: about 25 ns a byte of value; outcomes
// are memoised per value for columns that repeat). Figures and the other rules: docs/DATA-QUALITY.md.
package quality
