package bus_test

import (
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

func TestChunkData(t *testing.T) {
	records := []byte(strings.Repeat("1,abc,2025-01-01\n", 200))
	block := s2.Encode(nil, records)

	raw := &sluicev1.Chunk{Data: records}
	got, err := bus.ChunkData(raw, nil)
	if err != nil || &got[0] != &records[0] || bus.ChunkDataSize(raw) != int64(len(records)) {
		t.Fatalf("raw chunk: %v (must be returned as is)", err)
	}

	// An S2 chunk decodes into dst when it is large enough.
	c := &sluicev1.Chunk{Data: block, Codec: sluicev1.Chunk_CODEC_S2, DataBytes: uint32(len(records))}
	dst := make([]byte, 0, 8<<10)
	got, err = bus.ChunkData(c, dst)
	if err != nil || string(got) != string(records) || &got[0] != &dst[:1][0] || bus.ChunkDataSize(c) != int64(len(records)) {
		t.Fatalf("s2 chunk: %v", err)
	}
	if got, err = bus.ChunkData(c, nil); err != nil || string(got) != string(records) {
		t.Fatalf("s2 chunk, no dst: %v", err)
	}

	// A message written before codec existed (fields 17/18 absent) reads as CODEC_NONE.
	wire, err := proto.Marshal(&sluicev1.Chunk{ChunkIndex: 3, Data: records})
	if err != nil {
		t.Fatal(err)
	}
	var old sluicev1.Chunk
	if err := proto.Unmarshal(wire, &old); err != nil || old.Codec != sluicev1.Chunk_CODEC_NONE {
		t.Fatalf("old message: %v codec %v", err, old.Codec)
	}
	if got, err := bus.ChunkData(&old, nil); err != nil || string(got) != string(records) {
		t.Fatalf("old message: %v", err)
	}

	for name, bad := range map[string]*sluicev1.Chunk{
		"corrupt":       {Data: append(block[:2:2], 0xff, 0xff, 0xff), Codec: sluicev1.Chunk_CODEC_S2, DataBytes: uint32(len(records))},
		"short":         {Data: block, Codec: sluicev1.Chunk_CODEC_S2, DataBytes: uint32(len(records) - 1)},
		"empty block":   {Codec: sluicev1.Chunk_CODEC_S2, DataBytes: 10},
		"raw size":      {Data: records, DataBytes: 1},
		"unknown codec": {Data: records, Codec: 42},
	} {
		if _, err := bus.ChunkData(bad, nil); err == nil || !strings.HasPrefix(err.Error(), "chunk data: ") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}
