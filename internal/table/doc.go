// Package table is the core of sluice's row handling: it splits CSV records (RFC 4180), infers column types over
// every value of a batch, evolves a table's versioned schema, and builds Arrow record batches under that schema.
//
// # Flow (what the merger does)
//
//	names, renamed, err := table.ParseHeader(chunk.Header, delim)    // once per member
//	in := table.NewInferer(opts); in.Observe(names, chunk.Data, chunk.FirstLine) // every chunk of the batch
//	next, changed := table.Evolve(tableName, registered, in.Columns(), opts)     // on BatchComplete
//	b := table.NewBuilder(mem, next, opts); b.Append(names, chunk.Data, chunk.FirstLine, quarantine) // replay
//	rec := b.NewRecordBatch()                                          // whenever b.ApproxBytes() is large enough
//
// Inferer and Builder apply exactly the same record rules, so a row the Inferer accepted is never quarantined by a
// Builder working under the schema Evolve derived from that Inferer.
//
// # Records
//
// Records follow RFC 4180 as encoding/csv reads it with LazyQuotes=false: a field that starts with '"' is quoted and
// may hold the delimiter, '""' (an escaped quote), '\n' and '\r\n'; records end in '\n' or '\r\n'; the last record
// may lack a terminator. Inside quotes every byte is data: a quoted '\r\n' is kept as '\r\n' (as DuckDB and
// Arrow read it; encoding/csv would turn it into '\n'), only '""' is unescaped. Outside quotes '\r\n' is a record
// terminator like '\n' and is not part of the last field. Like encoding/csv, a '\r' right before the end of the
// data is dropped, and blank lines (nothing between two terminators) are skipped: they are counted
// (ObserveStats.Blank) but are not rows (the extractor does not count them either). Three departures from strict
// encoding/csv: the quoted '\r\n' above, and two shared with the extractor's chunking (encoding/csv with
// LazyQuotes=true):
//   - a '"' inside an unquoted field is data (`5" pipe` is the value 5" pipe), not an error;
//   - a record whose quoted field is not closed properly (its closing quote is followed by something other than
//     the delimiter or a line end, or it never closes) is malformed; it extends as far as LazyQuotes reading takes
//     it, so record counts and line numbers agree with the extractor's and no byte is lost or read twice.
//
// A record is rejected (the Builder quarantines it, the Inferer skips it) when, checked in this order,
//   - it is malformed (above);
//   - it is ragged: its field count differs from the header's;
//   - it holds invalid UTF-8 anywhere;
//   - a value does not fit its column's type (possible only under a strict hint, see Hint).
//
// # Values
//
// Every value is classified on its own; a column's type is the Widen of the types of all its non-null values.
// Nothing is trimmed: surrounding spaces make any value a string ("5 " is a string, " NULL" is not null).
//   - null: a value equal to one of Options.NullTokens (default "", "NULL", "null", "NA", "N/A"), with Arrow
//     C++'s rule (ConvertOptions.strings_can_be_null = false). Inference treats every token as null, so a
//     numeric column holding "NA" stays numeric. What the Builder writes depends on the column's type in the
//     schema it writes under: the empty token is null in every column; the other tokens are null in a column of
//     any type but string (a column of type null, which has seen nothing but tokens, holds nulls), and are kept
//     as text in a string column, unless Options.StringsCanBeNull makes them null there too. A quoted empty
//     field ("") is the same as an empty one; a quoted token ("NA") is the same as an unquoted one.
//   - bool: "true" or "false", any letter case. Not 0/1, not yes/no.
//   - int64: optional '+' or '-', then ASCII digits, fitting int64. A leading zero followed by more digits ("007",
//     "00501", "-01") makes the value a string, so identifiers and zip codes keep their zeros; "0", "-0", "+0"
//     are the integer 0. Integers that do not fit int64 are strings (a float64 could not hold them).
//   - float64: [+-] digits [. digits] [(e|E) [+-] digits], or [+-] . digits [exponent], as strconv.ParseFloat
//     reads it, when a float64 holds it to the digit: the float64 written with as many significant digits is
//     the number written ("0.1", "0.30000000000000004", "0.10000000000000001" as %.17g writes it, and the exact
//     expansion of a float64 are floats; "1234567890.123456789", which no float64 holds, is not). "nan", "inf", hex floats, '_' separators, a leading zero followed by digits
//     ("01.5"), values that overflow float64 or underflow to zero, and those a float64 would round are strings
//     (so no digit is lost, as with integers beyond int64).
//   - date: YYYY-MM-DD, a valid proleptic Gregorian calendar date, year 0000-9999.
//   - timestamp: YYYY-MM-DD, then ' ' or 'T', then HH:MM:SS (00-23, 00-59, 00-59), then optionally '.' and 1 to 9
//     fraction digits. Stored in microseconds: digits past the sixth are truncated.
//   - timestamptz: a timestamp followed by 'Z', ±HH:MM or ±HHMM (HH 00-23, MM 00-59), stored as the UTC instant
//     (the original offset is not kept).
//   - string: anything else that is valid UTF-8.
//
// Types form a lattice (see Widen): null < every type < string; int64 < float64; date < timestamp. Joins not
// listed are string. In a float64 column an integer is read as a float, except an integer float64 cannot hold
// exactly (beyond ±2^53): a column mixing such an integer with floats is a string column, so no digit is lost.
// In a timestamp column a date is read as midnight.
//
// # Hints
//
// A non-strict Hint is the column's starting type: the column widens from it (hint string keeps zip codes as
// text even when every value looks like an integer). A strict Hint fixes the type: a non-null value whose own type
// does not widen to it (the same rule as above, e.g. "abc" or "007" for int64) rejects its row.
package table
