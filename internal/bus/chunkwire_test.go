package bus_test

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// fullChunk has every field of Chunk set to a value other than its default.
func fullChunk() *sluicev1.Chunk {
	return &sluicev1.Chunk{
		ArchiveId: "a1b2", Attempt: 3, Table: "seattle_weather", Member: "data/seattle_weather_20250301_001.csv",
		MemberIndex: 2, ProcessDate: "2025-03-01", BatchId: "001", ChunkIndex: 7, MemberChunk: 5,
		FirstLine: 1 << 40, Rows: 4096, Header: []byte("a,b,c"), Data: []byte("1,2,3\n4,5,6\n"), Delimiter: ";",
		Partner: "acme é", LastInMember: true, Codec: sluicev1.Chunk_CODEC_S2, DataBytes: 1 << 30,
	}
}

// TestDecodeChunkEveryField: each field of the message, set alone and all together, decodes to
// what proto.Unmarshal gives; a field added to the .proto and not to DecodeChunk fails here.
func TestDecodeChunkEveryField(t *testing.T) {
	full := fullChunk()
	fields := full.ProtoReflect().Descriptor().Fields()
	set := 0
	full.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		set++
		one := &sluicev1.Chunk{}
		one.ProtoReflect().Set(fd, v)
		wire, err := proto.Marshal(one)
		if err != nil {
			t.Fatal(err)
		}
		var got sluicev1.Chunk
		if err := bus.DecodeChunk(wire, &got); err != nil {
			t.Fatalf("field %s: %v", fd.Name(), err)
		}
		if !proto.Equal(&got, one) {
			t.Errorf("field %s: decoded %v, want %v", fd.Name(), &got, one)
		}
		return true
	})
	if set != fields.Len() {
		t.Fatalf("fullChunk sets %d of the %d fields of Chunk: give the new field a value there", set, fields.Len())
	}
	wire, err := proto.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	var got sluicev1.Chunk
	got.Rows = 99 // a reused message is reset first
	if err := bus.DecodeChunk(wire, &got); err != nil || !proto.Equal(&got, full) {
		t.Fatalf("full chunk: %v: %v", err, &got)
	}
	// The payload is not copied.
	if len(got.Data) == 0 || !within(got.Data, wire) || !within(got.Header, wire) {
		t.Fatal("data and header must alias the message")
	}
}

// within reports whether s is the bytes of b where they occur (the same memory, not a copy).
func within(s, b []byte) bool {
	i := bytes.Index(b, s)
	return len(s) > 0 && i >= 0 && &b[i] == &s[0]
}

// TestDecodeChunkAsProto: messages proto.Unmarshal reads in its own way (unknown fields, a field
// repeated, a known field with another wire type) or refuses (truncated, not UTF-8, field 0).
func TestDecodeChunkAsProto(t *testing.T) {
	for _, tc := range chunkWireCases(t) {
		checkDecodeChunk(t, tc)
	}
}

func chunkWireCases(t testing.TB) [][]byte {
	full, err := proto.Marshal(fullChunk())
	if err != nil {
		t.Fatal(err)
	}
	var cases [][]byte
	add := func(b []byte) { cases = append(cases, b) }
	add(full)
	add(nil)
	add(full[:len(full)-3])                                                                                                  // truncated inside data
	add(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 5))                                       // unknown field
	add(append(append([]byte{}, full...), protowire.AppendVarint(protowire.AppendTag(nil, 11, protowire.VarintType), 7)...)) // rows again
	add(protowire.AppendBytes(protowire.AppendTag(nil, 11, protowire.BytesType), []byte("x")))                               // rows as bytes
	add(protowire.AppendVarint(protowire.AppendTag(nil, 13, protowire.VarintType), 1))                                       // data as a varint
	add(protowire.AppendFixed32(protowire.AppendTag(nil, 3, protowire.Fixed32Type), 1))                                      // table as fixed32
	add(protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), []byte{0xff, 0xfe}))                         // table not UTF-8
	add(protowire.AppendBytes(protowire.AppendTag(nil, 13, protowire.BytesType), []byte{0xff, 0xfe}))                        // data: any bytes
	add([]byte{0x00, 0x01})                                                                                                  // field 0
	add(protowire.AppendTag(nil, 5, protowire.EndGroupType))                                                                 // end group without a start
	add(append(protowire.AppendTag(nil, 20, protowire.StartGroupType), protowire.AppendTag(nil, 20, protowire.EndGroupType)...))
	add(protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 1<<40)) // attempt above uint32
	return cases
}

// checkDecodeChunk: DecodeChunk refuses b exactly when proto.Unmarshal does, and otherwise reads
// what proto.Unmarshal reads, less the unknown fields it keeps.
func checkDecodeChunk(t *testing.T, b []byte) {
	t.Helper()
	var want, got sluicev1.Chunk
	werr := proto.Unmarshal(b, &want)
	gerr := bus.DecodeChunk(b, &got)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%x: proto.Unmarshal says %v, DecodeChunk %v", b, werr, gerr)
	}
	if werr != nil {
		return
	}
	want.ProtoReflect().SetUnknown(nil)
	if !proto.Equal(&got, &want) {
		t.Fatalf("%x: decoded %v, proto.Unmarshal %v", b, &got, &want)
	}
}

func FuzzDecodeChunk(f *testing.F) {
	for _, b := range chunkWireCases(f) {
		f.Add(b)
	}
	f.Fuzz(checkDecodeChunk)
}
