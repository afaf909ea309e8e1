package bus

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// MessageID is the Nats-Msg-Id of a message: the stream stores one message per id inside its
// duplicate window, so publishing the same work again (a redelivery, a crash and restart) stores
// nothing twice. Every id sluice publishes is built by one of the functions below, one per kind of
// message. Their string values must never change: a re-run by a newer version has to be
// de-duplicated against what an older one stored (msgid_test.go pins every format).
//
// Most ids start with the archive's content identity and the extraction attempt, which only
// `sluice reextract` bumps, so a deliberate re-run gets new ids while a repeat does not.
type MessageID string

func (id MessageID) String() string { return string(id) }

// Rows messages: <archive>.<attempt>.<table-token>.<kind>.<index>.

func rowsID(archiveID string, attempt uint32, table, kind string, index uint32) MessageID {
	return MessageID(fmt.Sprintf("%s.%d.%s.%s.%d", archiveID, attempt, TableToken(table), kind, index))
}

// ChunkID is the id of a Chunk: kind "c", index its chunk_index in the batch.
func ChunkID(archiveID string, attempt uint32, table string, chunkIndex uint32) MessageID {
	return rowsID(archiveID, attempt, table, "c", chunkIndex)
}

// MarkerID is the id of a table's BatchComplete: kind "done", index 0.
func MarkerID(archiveID string, attempt uint32, table string) MessageID {
	return rowsID(archiveID, attempt, table, "done", 0)
}

// AbortID is the id of a table's BatchAborted: kind "abort", index 0.
func AbortID(archiveID string, attempt uint32, table string) MessageID {
	return rowsID(archiveID, attempt, table, "abort", 0)
}

// RequeuedChunkID is the id of a chunk the merger moved to the tail of the rows stream: the
// chunk's id and ".rq<gen>", gen telling one requeue from another.
func RequeuedChunkID(archiveID string, attempt uint32, table string, chunkIndex uint32, gen int64) MessageID {
	return MessageID(fmt.Sprintf("%s.rq%d", ChunkID(archiveID, attempt, table, chunkIndex), gen))
}

// MsgID builds the Nats-Msg-Id of a rows message.
//
// Deprecated: use ChunkID, MarkerID or AbortID; kept for tests written against it.
func MsgID(archiveID string, attempt uint32, table, kind string, index uint32) string {
	return string(rowsID(archiveID, attempt, table, kind, index))
}

// Archive events: <archive>.<attempt>.<kind>, or with the table <archive>.<attempt>.<table-token>.<kind>.

// LandedID is the id of an ArchiveLanded (producer, reextract).
func LandedID(archiveID string, attempt uint32) MessageID {
	return MessageID(fmt.Sprintf("%s.%d.landed", archiveID, attempt))
}

// DuplicateID is the id of an ArchiveDuplicate: one per (archive, location), the location as the
// first 12 hex digits of the SHA-1 of its URI. It has no attempt: a duplicate is about the bytes.
func DuplicateID(archiveID, uri string) MessageID {
	h := sha1.Sum([]byte(uri))
	return MessageID(archiveID + ".dup." + hex.EncodeToString(h[:])[:12])
}

// ExtractedID is the id of an ArchiveExtracted.
func ExtractedID(archiveID string, attempt uint32) MessageID {
	return MessageID(fmt.Sprintf("%s.%d.extracted", archiveID, attempt))
}

// ExtractFailedID is the id of the extractor's ArchiveFailed.
func ExtractFailedID(archiveID string, attempt uint32) MessageID {
	return MessageID(fmt.Sprintf("%s.%d.failed", archiveID, attempt))
}

// mergerFailedSuffix ends the id of the merger's ArchiveFailed.
const mergerFailedSuffix = ".merger-failed"

// MergerFailedID is the id of the ArchiveFailed the merger publishes when it dead-letters a
// table's batch.
func MergerFailedID(archiveID string, attempt uint32, table string) MessageID {
	return MessageID(fmt.Sprintf("%s.%d.%s", archiveID, attempt, TableToken(table)) + mergerFailedSuffix)
}

// IsMergerFailedID reports whether id was built by MergerFailedID. Only for ArchiveFailed events
// written before ArchiveFailed.origin existed: a reader branches on origin, never on an id.
func IsMergerFailedID(id string) bool { return strings.HasSuffix(id, mergerFailedSuffix) }

// CommittedID is the id of a BatchCommitted published by a merger.
func CommittedID(archiveID string, attempt uint32, table string) MessageID {
	return MessageID(fmt.Sprintf("%s.%d.%s.committed", archiveID, attempt, TableToken(table)))
}

// ReplayCommittedID is the id of a BatchCommitted published by a replay: CommittedID and
// ".replay.<replay id>", so that a replay's event is not swallowed by de-duplication (two replays
// with the same id inside the duplicate window publish it once).
func ReplayCommittedID(archiveID string, attempt uint32, table, replayID string) MessageID {
	return CommittedID(archiveID, attempt, table) + MessageID(".replay."+replayID)
}

// CheckedID is the id of a CheckResult: one per checked commit (fingerprint) and outcome.
func CheckedID(archiveID string, attempt uint32, table, fingerprint string, ok bool) MessageID {
	return MessageID(fmt.Sprintf("check.%s.%d.%s.%s.%t", archiveID, attempt, TableToken(table), fingerprint, ok))
}

// SummaryID is the id of a SummaryWritten: one per date and content, digest being the hex
// digest of the summary document (its first 24 characters are used).
func SummaryID(date, digest string) MessageID {
	return MessageID("summary." + date + "." + digest[:min(24, len(digest))])
}

// Dead letters and their retries.

// ExtractorDeadLetterID is the id of an extractor dead letter: the landed event's sequence in
// the events stream.
func ExtractorDeadLetterID(eventsStream string, seq uint64) MessageID {
	return MessageID(fmt.Sprintf("extractor.%s.%d", eventsStream, seq))
}

// MergerDeadLetterID is the id of a merger dead letter: the message's sequence in the rows
// stream and its delivery count.
func MergerDeadLetterID(rowsStream string, seq, delivered uint64) MessageID {
	return MessageID(fmt.Sprintf("merger.%s.%d.%d", rowsStream, seq, delivered))
}

// RetryID is the id of a dead-lettered message republished by `sluice dlq retry`: the original
// id (<stream>.<seq> of the original when it had none) and ".retry-<dlq seq>", so that
// de-duplication does not drop it while a retry repeated after a crash is stored once.
func RetryID(original, stream string, streamSeq, dlqSeq uint64) MessageID {
	if original == "" {
		original = fmt.Sprintf("%s.%d", stream, streamSeq)
	}
	return MessageID(original + ".retry-" + strconv.FormatUint(dlqSeq, 10))
}
