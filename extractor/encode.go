package extractor

import (
	"math"
	"net/textproto"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// chunkDataField is the field number of Chunk.data.
const chunkDataField protowire.Number = 13

// chunkEncoder writes a Chunk's protobuf encoding around data that already sits in a buffer,
// so the records are never copied into a separate message. The metadata fields are marshalled
// into the bytes reserved in front of the data, followed by the data field's tag and length:
//
//	buf: [ free | metadata fields | tag 13 | len | data ... ]
//	             ^ message start                  ^ off
//
// Protobuf decoders accept fields in any order, so the message is an ordinary Chunk.
//
// With compress set, the data is first S2-encoded into a scratch buffer; when that saves enough
// (see worthCompressing) the block is copied over the data in place — it is shorter, so it fits
// and the prefix still ends right before it — and the chunk is marked CODEC_S2 with data_bytes.
// Otherwise the raw data goes out as CODEC_NONE. Either way the message never grows past what
// the chunker sized for the raw data.
type chunkEncoder struct {
	meta     sluicev1.Chunk // member-constant fields set; Data stays nil
	compress bool           // try S2 on every chunk (Config.ChunkCodec "s2")
	scratch  []byte         // the marshalled prefix
	s2buf    []byte         // S2 output, s2.MaxEncodedLen of a full chunk buffer, reused
}

// worthCompressing reports whether an S2 block of enc bytes is worth sending instead of raw
// bytes: it must save at least 1/8, so data that barely compresses (already compressed or
// random) is not decoded for nothing by every reader.
func worthCompressing(enc, raw int) bool { return enc <= raw-raw/8 }

// reserve is the most bytes the prefix can take for this member: metadata with every varying
// field at its widest (codec and data_bytes included), plus the data field's tag and a 5-byte
// length.
func (e *chunkEncoder) reserve() int {
	m := proto.CloneOf(&e.meta)
	m.ChunkIndex, m.MemberChunk, m.Rows = math.MaxUint32, math.MaxUint32, math.MaxUint32
	m.FirstLine, m.LastInMember = math.MaxInt64, true
	m.Codec, m.DataBytes = maxCodec, math.MaxUint32
	return proto.Size(m) + protowire.SizeTag(chunkDataField) + protowire.SizeVarint(math.MaxUint32)
}

// maxCodec is the largest codec value, whose varint is the widest: reserve stays an upper bound
// when codecs are added.
var maxCodec = func() sluicev1.Chunk_Codec {
	w := sluicev1.Chunk_CODEC_NONE
	for v := range sluicev1.Chunk_Codec_name {
		w = max(w, sluicev1.Chunk_Codec(v))
	}
	return w
}()

// encode fills the varying fields from c, compresses c's data in place when that pays (see
// chunkEncoder), writes the prefix in front of the data and returns the whole message, a
// sub-slice of c.buf. c.n stays the raw data length; c.data() is not the records any more once
// they were compressed.
func (e *chunkEncoder) encode(c *chunkOut, chunkIndex, memberChunk uint32) ([]byte, error) {
	m := &e.meta
	m.ChunkIndex, m.MemberChunk, m.FirstLine = chunkIndex, memberChunk, c.firstLine
	m.Rows, m.LastInMember = uint32(c.rows), c.last
	m.Codec, m.DataBytes = sluicev1.Chunk_CODEC_NONE, 0
	n := c.n
	if e.compress && c.n > 0 {
		if cap(e.s2buf) < s2.MaxEncodedLen(c.n) {
			// Sized once for the most data a chunk buffer can hold, not for this chunk.
			e.s2buf = make([]byte, s2.MaxEncodedLen(max(c.n, len(c.buf)-c.off)))
		}
		if enc := s2.Encode(e.s2buf[:cap(e.s2buf)], c.data()); worthCompressing(len(enc), c.n) {
			n = copy(c.buf[c.off:c.off+c.n], enc)
			m.Codec, m.DataBytes = sluicev1.Chunk_CODEC_S2, uint32(c.n)
		}
	}
	var err error
	e.scratch, err = proto.MarshalOptions{}.MarshalAppend(e.scratch[:0], m)
	if err != nil {
		return nil, err
	}
	e.scratch = protowire.AppendTag(e.scratch, chunkDataField, protowire.BytesType)
	e.scratch = protowire.AppendVarint(e.scratch, uint64(n))
	start := c.off - len(e.scratch)
	copy(c.buf[start:c.off], e.scratch)
	return c.buf[start : c.off+n], nil
}

// headerSize is the encoded size of NATS message headers, as nats.go computes it.
func headerSize(h nats.Header) int {
	n := len("NATS/1.0\r\n") + len("\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(textproto.TrimString(v)) + 4
		}
	}
	return n
}
