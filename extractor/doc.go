// Package extractor turns landed partner archives (.tar.gz of CSV members) into chunks on the
// rows stream, one batch per (archive, attempt, table), closed by a BatchComplete marker.
//
// # Pipeline
//
// Everything streams; an archive is never whole in memory or on disk:
//
//	open(uri) → count+sha256 → bufio 64 KiB → gzip (klauspost) → limits → archive/tar
//	  → per member: path/type checks → pattern → [latin1/cp1252 → UTF-8] → chunker
//	  → chunk encoded in place (S2-compressed when it pays) → PublishMsgAsync (bounded window) → acks
//	→ end of archive: gzip trailer, sha256 check, wait for every ack → one BatchComplete per table
//	→ ArchiveExtracted → ledger extracted → ack
//
// klauspost/compress/gzip is used because it is the faster decoder here (BenchmarkGunzip);
// multi-member gzip streams are read as one stream.
//
// # Chunks (what the merger receives)
//
// A Chunk's data holds whole CSV records only, exactly as they are in the member (after the
// BOM strip and, for latin1/windows-1252 partners, transcoding to UTF-8): the concatenation of
// a member's chunk data in chunk order is the member's bytes after its header record's
// terminator. Record boundaries follow encoding/csv with LazyQuotes=true (see recordScanner):
// parse each chunk on its own with
//
//	csv.Reader{Comma: rune(delimiter[0]), LazyQuotes: true, FieldsPerRecord: -1}
//
// and it yields exactly Chunk.rows records. Blank lines ("\n", "\r\n") are kept in data but are
// not rows (encoding/csv skips them). Records keep their own terminators ("\n" or "\r\n"); the
// member's last record may have none.
//
//   - header: the first non-blank record, raw, terminator removed; it may hold quoted newlines.
//     Blank lines before it are dropped (they still count as physical lines).
//   - first_line: physical line (1-based, '\n'-counted, header = line 1 when the member starts
//     with it) of data's first byte; a record's line is first_line plus the newlines before it in
//     data, so csv.Reader.FieldPos lines map as first_line + line - 1.
//   - chunk_index: dense 0..n-1 over the whole batch, across members in archive order;
//     member_chunk: 0.. within the member; member_index: the member's position in the marker's
//     members list; last_in_member on the member's last chunk.
//   - Nats-Msg-Id bus.ChunkID(archive, attempt, table, chunk_index); the marker bus.MarkerID and
//     an abort bus.AbortID. A re-run of the same attempt stores nothing twice.
//   - Each message (protobuf + NATS headers) is at most Config.ChunkBytes ≤ the server's max
//     payload. Chunks are filled up to it with raw records and cut at the last record boundary
//     that fits; compression only makes a message smaller, so the cuts do not depend on it.
//   - codec, data_bytes: with Config.ChunkCodec "s2" (default) the records are S2-encoded into a
//     per-archive scratch buffer; when the block saves at least 1/8 it is copied over the records
//     in place (shorter, so it fits; the prefix is then written in front of it) and the chunk says
//     CODEC_S2 with data_bytes = the records' length. Otherwise, and with "none", data is the raw
//     records (CODEC_NONE, data_bytes 0). Everything above about data is about the decoded records
//     (bus.ChunkData); so are the byte counts of markers, members and metrics.
//
// # Member outcomes
//
//   - Table member with records: announced in the marker's members with rows, bytes (raw member
//     bytes), chunks, first_chunk and invalid_utf8_rows.
//   - Header only (no records): one chunk with rows=0 and empty data (it carries the header so
//     the merger can register the columns), announced with header_only=true.
//   - Empty (zero bytes, only a BOM, only blank lines): not announced, no chunk; recorded in
//     ArchiveExtracted.rejected as kind "skipped", reason "empty file". Not an archive error.
//   - Not matching the partner's pattern, directories, tar metadata entries: kind "skipped".
//   - Hostile entries (absolute paths, ".." escaping the root, backslash variants, symlinks, hard
//     links, char/block devices, fifos, sparse files) and table names with control characters:
//     kind "rejected" with the reason; the archive continues.
//
// Invalid UTF-8 (utf-8 partners) is deliberately not repaired: rows travel as the partner's
// bytes and are only counted, per member, in MemberInfo.invalid_utf8_rows. The merger decides
// per row (it quarantines such rows with the raw line), so nothing is silently altered here.
//
// A member that cannot be chunked — a record larger than one message ("record at line N exceeds
// max message size"), a quoted field still open at the end ("unterminated quoted field at line
// N"), a header larger than half a chunk — is rejected. If none of its chunks was published yet,
// only that member is dropped. Otherwise its published chunks cannot be taken back, so the
// table's batch is aborted as a whole: every chunk in flight is awaited, then BatchAborted is
// published (the batch's last message, no marker ever follows), every member of that table in
// the archive is recorded as rejected ("table batch aborted: …"), and later members of the table
// are rejected too. Other tables continue. The merger therefore never sees a marker for a batch
// holding a partial member.
//
// # Failures
//
// A corrupt or truncated gzip/tar stream, a decompression bomb (MaxUncompressed, or MaxRatio
// once past 64 MiB of output), content that no longer matches the landed sha256, or a missing
// archive is permanent: BatchAborted for every table started (after its chunks in flight are
// stored), ArchiveFailed on events.failed, ledger failed, and Run acks (terminates) the landed
// event and dead-letters it. A transient failure (NATS publish or ledger errors, source read
// errors, shutdown) publishes nothing: the batches stay open, Run naks with a delay, and the
// next delivery re-publishes under the same Nats-Msg-Ids, so the stream de-duplicates what was
// already stored and the batch completes. On the MaxDeliver-th delivery a transient failure is
// made final like a permanent one. Extract called directly (`sluice reextract`) is always final.
// No marker is published for a table once anything went wrong for it, and markers are published
// only after every chunk of the archive is acknowledged, so a marker is never stored before any
// of its chunks.
//
// # Memory
//
// Memory is flat in archive and member size. Chunk buffers come from one pool of PublishWindow
// buffers of ChunkBytes shared by all concurrent archives; a buffer is held from the moment the
// chunker starts filling it until the server acknowledged the chunk (records are read straight
// into it and the protobuf prefix is written in front of them, so no chunk is copied). Budget at
// the defaults (1 MiB max payload):
//
//	PublishWindow × ChunkBytes                         64 × 896 KiB = 56 MiB (upper bound)
//	+ Concurrency × (bufio 64 KiB + gzip ~50 KiB + header scratch ≥ 32 KiB + tar/transform)
//	                                                   ≈ 2 × 0.2 MiB
//	+ Concurrency × S2 scratch (MaxEncodedLen(chunk))  ≈ 2 × 1 MiB (ChunkCodec "s2")
//	+ NATS client write buffer (one to two messages)   ≈ 1-2.5 MiB
//	                                                   ≈ 61 MiB live, ≤ 64 MiB
//
// That is live memory. The Go heap also holds garbage until the next collection (a few KiB per
// chunk: message headers, ack bookkeeping), so the process footprint depends on GOGC; set
// GOMEMLIMIT to cap it.
//
// The window is rarely full (acks return within milliseconds), so the measured peak is lower;
// BenchmarkExtract1GiB reports it. A header record larger than usual adds its size per archive;
// during a NATS reconnect the client may buffer up to its reconnect buffer (bus: 64 MiB).
//
// # Goroutines
//
// Run owns one goroutine per archive in progress (at most Concurrency) and waits for them. Each
// archive owns a publisher goroutine collecting acks in order, stopped before the archive's
// outcome is decided, and Run owns a keep-alive goroutine per message (InProgress every
// AckWait/3).
package extractor
