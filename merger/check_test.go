package merger

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/table"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// TestBatchCheck: the marker is checked against the chunks held before a batch commits: their
// count, rows and decoded bytes, and each member's chunk range, rows, process date and batch id.
// Each disagreement is named (the batch is dead-lettered with it); a chunk delivered twice is held
// once.
func TestBatchCheck(t *testing.T) {
	key := batchKey{archive: "c0000000000000000002", attempt: 0, table: "t"}
	type member struct{ name, date, batch, data string }
	members := []member{
		{"t_20250301_001.csv", "2025-03-01", "001", "1,a\n2,b\n"},
		{"t_20250301_001.csv", "2025-03-01", "001", "3,c\n"},
		{"t_20250302_002.csv", "2025-03-02", "002", "4,d\n5,e\n6,f\n"},
		{"t_20250302_002.csv", "2025-03-02", "002", "7,g\n"},
	}
	b := newBatch(key, nil, 0, "default", table.Options{Delimiter: ','}, collectConfig{}, chunkSource{}, time.Now())
	mk := &sluicev1.BatchComplete{ArchiveId: key.archive, Table: key.table, Chunks: uint32(len(members))}
	chunks := make([]*sluicev1.Chunk, len(members))
	var scratch []byte
	for i, m := range members {
		c := &sluicev1.Chunk{ArchiveId: key.archive, Table: key.table, Member: m.name, Header: []byte("id,v"),
			ProcessDate: m.date, BatchId: m.batch, ChunkIndex: uint32(i), Rows: uint32(strings.Count(m.data, "\n"))}
		encodeData(c, []byte(m.data), "none")
		if _, err := b.addChunk(c, uint64(i+1), &scratch); err != nil {
			t.Fatal(err)
		}
		chunks[i] = c
		if i == 0 || members[i-1].name != m.name {
			mk.Members = append(mk.Members, &sluicev1.MemberInfo{Name: m.name, ProcessDate: m.date, BatchId: m.batch, FirstChunk: uint32(i)})
		}
		mi := mk.Members[len(mk.Members)-1]
		mi.Chunks++
		mi.Rows += int64(c.Rows)
		mk.Rows += int64(c.Rows)
		mk.Bytes += int64(len(m.data))
	}
	if got := b.check(mk); got != "" {
		t.Fatalf("a consistent batch: %q", got)
	}
	// A redelivered chunk (same index, another stream sequence) is held once: nothing counted twice.
	if n, err := b.addChunk(proto.Clone(chunks[0]).(*sluicev1.Chunk), 99, &scratch); n != 0 || err != nil {
		t.Fatalf("a redelivered chunk: addChunk = %d, %v", n, err)
	}
	if got := b.check(mk); got != "" {
		t.Fatalf("after a redelivery: %q", got)
	}

	for _, tc := range []struct {
		name   string
		change func(mk *sluicev1.BatchComplete)
		want   string
	}{
		{"rows", func(mk *sluicev1.BatchComplete) { mk.Rows++ }, "rows 7, marker says 8"},
		{"bytes", func(mk *sluicev1.BatchComplete) { mk.Bytes-- }, "data bytes 28, marker says 27"},
		{"fewer chunks", func(mk *sluicev1.BatchComplete) { mk.Chunks = 3 }, "chunk indexes beyond the marker's 3: 3"},
		{"more chunks", func(mk *sluicev1.BatchComplete) { mk.Chunks = 5 }, "missing 1 of 5 chunks (4)"},
		{"member rows", func(mk *sluicev1.BatchComplete) { mk.Members[1].Rows = 3 },
			"member t_20250302_002.csv: rows 4, marker says 3"},
		{"member date", func(mk *sluicev1.BatchComplete) { mk.Members[1].ProcessDate = "2025-03-03" },
			"member t_20250302_002.csv: chunk 2 belongs to t_20250302_002.csv (2025-03-02/002)"},
		{"member batch", func(mk *sluicev1.BatchComplete) { mk.Members[0].BatchId = "009" },
			"member t_20250301_001.csv: chunk 0 belongs to t_20250301_001.csv (2025-03-01/001)"},
		{"member range", func(mk *sluicev1.BatchComplete) { mk.Members[1].Chunks = 1; mk.Members[1].Rows = 3 },
			"members hold 3 chunks, marker says 4"},
		{"member beyond the batch", func(mk *sluicev1.BatchComplete) { mk.Members[1].Chunks = 3 },
			"member t_20250302_002.csv: chunk 4 beyond the batch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := proto.Clone(mk).(*sluicev1.BatchComplete)
			tc.change(m)
			if got := b.check(m); !strings.Contains(got, tc.want) {
				t.Fatalf("check = %q, want it to say %q", got, tc.want)
			}
		})
	}
}
