package extractor

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// incompressibleCSV is rows whose second field is quoted random printable bytes: an LZ coder
// such as S2 finds nothing to reuse in them.
func incompressibleCSV(rows int, seed int64) string {
	rng := rand.New(rand.NewSource(seed))
	var b strings.Builder
	field := make([]byte, 200)
	for i := range rows {
		for j := range field {
			c := byte(0x20 + rng.Intn(0x7f-0x20))
			if c == '"' {
				c = '\''
			}
			field[j] = c
		}
		fmt.Fprintf(&b, "%d,\"%s\"\n", i, field)
	}
	return b.String()
}

// TestChunkCodec: with the default codec a compressible member goes out as S2 blocks that decode
// to its exact records, an incompressible one goes out raw; with codec "none" everything is raw.
// Either way the marker counts raw bytes and the message prefix reserved for the widest codec
// fields is never overrun (the encoder writes within the chunk buffer).
func TestChunkCodec(t *testing.T) {
	oh, ob := ordersCSV(3000)
	rnd := incompressibleCSV(300, 1)
	archive := tarGz(t, file("orders_20250101_b1.csv", oh+"\n"+ob), file("noise_20250101_b1.csv", "id,blob\n"+rnd))
	for _, tc := range []struct {
		codec       string
		wantOrders  sluicev1.Chunk_Codec
		wantNoise   sluicev1.Chunk_Codec
		chunkBytes  int
		wantSmaller bool // orders' messages are smaller than their raw data
	}{
		{codec: "", wantOrders: sluicev1.Chunk_CODEC_S2, wantNoise: sluicev1.Chunk_CODEC_NONE, chunkBytes: 8 << 10, wantSmaller: true},
		{codec: "s2", wantOrders: sluicev1.Chunk_CODEC_S2, wantNoise: sluicev1.Chunk_CODEC_NONE, chunkBytes: 64 << 10, wantSmaller: true},
		{codec: "none", wantOrders: sluicev1.Chunk_CODEC_NONE, wantNoise: sluicev1.Chunk_CODEC_NONE, chunkBytes: 8 << 10},
	} {
		t.Run("codec="+tc.codec, func(t *testing.T) {
			v := newEnv(t, Config{ChunkBytes: tc.chunkBytes, ChunkCodec: tc.codec})
			ev := landArchive(t, "p_20250101.tar.gz", archive)
			if _, err := v.e.Extract(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
			msgs := v.rows(t)
			got := memberData(msgs)
			if got["orders_20250101_b1.csv"] != ob || got["noise_20250101_b1.csv"] != rnd {
				t.Fatal("records differ after decoding")
			}
			for table, want := range map[string]sluicev1.Chunk_Codec{"orders": tc.wantOrders, "noise": tc.wantNoise} {
				ms := byTable(msgs)[table]
				var raw, wire int64
				for _, m := range ms {
					c := m.chunk
					if c == nil {
						if m.done.Bytes != raw {
							t.Fatalf("%s: marker bytes %d, raw data bytes %d", table, m.done.Bytes, raw)
						}
						continue
					}
					if c.Codec != want {
						t.Fatalf("%s chunk %d: codec %v, want %v", table, c.ChunkIndex, c.Codec, want)
					}
					switch c.Codec {
					case sluicev1.Chunk_CODEC_S2:
						if int(c.DataBytes) != len(m.records) || !worthCompressing(len(c.Data), len(m.records)) {
							t.Fatalf("%s chunk %d: data_bytes %d, %d stored for %d records", table, c.ChunkIndex, c.DataBytes, len(c.Data), len(m.records))
						}
						if dec, err := s2.Decode(nil, c.Data); err != nil || string(dec) != string(m.records) {
							t.Fatalf("%s chunk %d: not one plain S2 block: %v", table, c.ChunkIndex, err)
						}
					default:
						if c.DataBytes != 0 {
							t.Fatalf("%s chunk %d: data_bytes %d on a raw chunk", table, c.ChunkIndex, c.DataBytes)
						}
					}
					if len(m.data) > tc.chunkBytes {
						t.Fatalf("%s chunk %d: message of %d bytes, chunk bytes %d", table, c.ChunkIndex, len(m.data), tc.chunkBytes)
					}
					raw += int64(len(m.records))
					wire += int64(len(c.Data))
				}
				if table == "orders" && tc.wantSmaller != (wire < raw) {
					t.Fatalf("orders: %d bytes on the wire for %d raw", wire, raw)
				}
			}
		})
	}
}

// TestEncodeReserveCoversCodec: the prefix of a compressed chunk with every varying field at its
// widest still fits what reserve() set aside, so the in-place encoding never writes before the
// buffer's reserved area.
func TestEncodeReserveCoversCodec(t *testing.T) {
	enc := &chunkEncoder{meta: sluicev1.Chunk{ArchiveId: "0123456789abcdef0123", Table: "t", Member: "m.csv", Header: []byte("a,b"),
		Delimiter: ",", Partner: "default"}, compress: true}
	reserve := enc.reserve()
	data := strings.Repeat("1,aaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", 2000)
	buf := make([]byte, reserve+len(data))
	copy(buf[reserve:], data)
	c := &chunkOut{buf: buf, off: reserve, n: len(data), rows: 2000, firstLine: 1 << 62, last: true}
	msg, err := enc.encode(c, 1<<31, 1<<31)
	if err != nil {
		t.Fatal(err)
	}
	var m sluicev1.Chunk
	if err := proto.Unmarshal(msg, &m); err != nil {
		t.Fatal(err)
	}
	if m.Codec != sluicev1.Chunk_CODEC_S2 || m.DataBytes != uint32(len(data)) {
		t.Fatalf("codec %v data_bytes %d", m.Codec, m.DataBytes)
	}
	records, err := bus.ChunkData(&m, nil)
	if err != nil || string(records) != data {
		t.Fatalf("round trip: %v", err)
	}
	// The widest prefix: the largest varint of every varying field.
	m.Data = nil
	m.ChunkIndex, m.MemberChunk, m.Rows, m.DataBytes = 1<<32-1, 1<<32-1, 1<<32-1, 1<<32-1
	m.FirstLine = 1<<63 - 1
	if widest := proto.Size(&m) + 1 + 5; widest > reserve {
		t.Fatalf("widest prefix %d bytes, reserve %d", widest, reserve)
	}
}
