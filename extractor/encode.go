package extractor

import (
	"math"
	"net/textproto"

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
type chunkEncoder struct {
	meta    sluicev1.Chunk // member-constant fields set; Data stays nil
	scratch []byte
}

// reserve is the most bytes the prefix can take for this member: metadata with every varying
// field at its widest, plus the data field's tag and a 5-byte length.
func (e *chunkEncoder) reserve() int {
	m := proto.CloneOf(&e.meta)
	m.ChunkIndex, m.MemberChunk, m.Rows = math.MaxUint32, math.MaxUint32, math.MaxUint32
	m.FirstLine, m.LastInMember = math.MaxInt64, true
	return proto.Size(m) + protowire.SizeTag(chunkDataField) + protowire.SizeVarint(math.MaxUint32)
}

// encode fills the varying fields from c, writes the prefix in front of c's data and returns
// the whole message, a sub-slice of c.buf.
func (e *chunkEncoder) encode(c *chunkOut, chunkIndex, memberChunk uint32) ([]byte, error) {
	m := &e.meta
	m.ChunkIndex, m.MemberChunk, m.FirstLine = chunkIndex, memberChunk, c.firstLine
	m.Rows, m.LastInMember = uint32(c.rows), c.last
	var err error
	e.scratch, err = proto.MarshalOptions{}.MarshalAppend(e.scratch[:0], m)
	if err != nil {
		return nil, err
	}
	e.scratch = protowire.AppendTag(e.scratch, chunkDataField, protowire.BytesType)
	e.scratch = protowire.AppendVarint(e.scratch, uint64(c.n))
	start := c.off - len(e.scratch)
	copy(c.buf[start:c.off], e.scratch)
	return c.buf[start : c.off+c.n], nil
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
