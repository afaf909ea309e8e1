// Package bus owns sluice's NATS wiring: connecting to a server or embedding one, the stream and
// key-value layout, subject names, partitioning and message-type headers. Every stage goes
// through it so the layout is defined once (docs/DESIGN.md describes the same thing in prose).
package bus

import (
	"fmt"
	"hash/fnv"
	"strings"
)

// Header names and message types carried on NATS messages.
const (
	// HdrType names the protobuf message carried on subjects that mix types (the rows subjects).
	HdrType = "Sluice-Type"
	// HdrArchive and HdrTable repeat routing keys so tools can filter without decoding.
	HdrArchive = "Sluice-Archive"
	HdrTable   = "Sluice-Table"

	TypeChunk    = "chunk"
	TypeComplete = "complete"
	TypeAbort    = "abort"
)

// Subjects builds every subject and stream name from one prefix.
type Subjects struct {
	Prefix     string // subject prefix, default "sluice"
	Partitions int    // number of row partitions, default 8
}

// DefaultSubjects is the layout used when nothing is configured.
var DefaultSubjects = Subjects{Prefix: "sluice", Partitions: 8}

// Validate checks that the prefix is a valid subject token sequence and P > 0.
func (s Subjects) Validate() error {
	if s.Prefix == "" || strings.ContainsAny(s.Prefix, " \t\r\n*>") || strings.HasPrefix(s.Prefix, ".") || strings.HasSuffix(s.Prefix, ".") {
		return fmt.Errorf("invalid subject prefix %q", s.Prefix)
	}
	if s.Partitions < 1 || s.Partitions > 1024 {
		return fmt.Errorf("partitions must be in [1,1024], got %d", s.Partitions)
	}
	return nil
}

// Rows is the subject for one table's chunks, markers and aborts on one partition.
func (s Subjects) Rows(partition uint32, table string) string {
	return fmt.Sprintf("%s.rows.%d.%s", s.Prefix, partition, TableToken(table))
}

// RowsPartition is the filter for everything on one partition.
func (s Subjects) RowsPartition(partition uint32) string {
	return fmt.Sprintf("%s.rows.%d.>", s.Prefix, partition)
}

// RowsTable is the filter for one table's subjects on every partition.
func (s Subjects) RowsTable(table string) string {
	return fmt.Sprintf("%s.rows.*.%s", s.Prefix, TableToken(table))
}

// RowsAll is the filter for every rows subject.
func (s Subjects) RowsAll() string { return s.Prefix + ".rows.>" }

// Event subjects (stream EVENTS).
func (s Subjects) Landed() string    { return s.Prefix + ".events.landed" }
func (s Subjects) Extracted() string { return s.Prefix + ".events.extracted" }
func (s Subjects) Failed() string    { return s.Prefix + ".events.failed" }
func (s Subjects) Duplicate() string { return s.Prefix + ".events.duplicate" }
func (s Subjects) Committed() string { return s.Prefix + ".events.committed" }
func (s Subjects) Checked() string   { return s.Prefix + ".events.checked" }
func (s Subjects) Summary() string   { return s.Prefix + ".events.summary" }
func (s Subjects) EventsAll() string { return s.Prefix + ".events.>" }

// DLQ is the dead-letter subject of one stage ("extractor", "merger", ...).
func (s Subjects) DLQ(stage string) string { return s.Prefix + ".dlq." + stage }
func (s Subjects) DLQAll() string          { return s.Prefix + ".dlq.>" }

func (s Subjects) upper() string {
	return strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(s.Prefix))
}

// Stream and bucket names.
func (s Subjects) RowsStream() string    { return s.upper() + "_ROWS" }
func (s Subjects) EventsStream() string  { return s.upper() + "_EVENTS" }
func (s Subjects) DLQStream() string     { return s.upper() + "_DLQ" }
func (s Subjects) LedgerBucket() string  { return s.upper() + "_LEDGER" }
func (s Subjects) SchemasBucket() string { return s.upper() + "_SCHEMAS" }

// Partition maps (archive, table) to a row partition: one table's batch from one archive always
// lands on one partition, while a table spread over many archives spreads over partitions.
//
// The FNV-1a hash is finished with murmur3's fmix32 before the modulo: FNV-1a's low k bits depend
// only on the low k bits of each input byte, so with a power-of-two partition count, names that
// differ in their high bits (or in the same digits twice) would pile onto a few partitions.
func Partition(archiveID, table string, partitions int) uint32 {
	h := fnv.New32a()
	h.Write([]byte(archiveID))
	h.Write([]byte{0})
	h.Write([]byte(table))
	x := h.Sum32()
	x ^= x >> 16
	x *= 0x85ebca6b
	x ^= x >> 13
	x *= 0xc2b2ae35
	x ^= x >> 16
	return x % uint32(partitions)
}

// TableToken turns a table name into one valid subject token. Names made of [A-Za-z0-9_-] are
// kept as they are; any other byte is written as ~HH (hex), and '~' itself too, so the mapping is
// reversible and two tables never share a token.
func TableToken(table string) string {
	if table == "" {
		return "~"
	}
	var b strings.Builder
	for i := 0; i < len(table); i++ {
		c := table[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "~%02X", c)
		}
	}
	return b.String()
}
