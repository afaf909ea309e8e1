package bus

import (
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// DecodeChunk decodes a Chunk message into c as proto.Unmarshal does, except that c.Data and
// c.Header alias b instead of being copied, and that fields this version does not know are
// skipped rather than kept. The merger decodes every chunk it receives: the copy of Chunk.data
// that proto.Unmarshal makes (its payload, up to a message's size) cost the 1 GiB member's run
// 0.07–0.8 CPU-s over four series, in copying and in collecting the copies (docs/BENCHMARKS.md,
// "Session 11"). b must not be modified while c is in use; a message's Data is never modified
// after it arrives.
//
// It accepts and refuses what proto.Unmarshal does (FuzzDecodeChunk), including strings that
// are not UTF-8 (proto3 requires it) and a field repeated (the last occurrence wins). A field
// added to the Chunk message must be added here: TestDecodeChunkEveryField fails until it is.
func DecodeChunk(b []byte, c *sluicev1.Chunk) error {
	c.Reset()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return chunkWireError(protowire.ParseError(n))
		}
		if num > protowire.MaxValidNumber {
			return chunkWireError(fmt.Errorf("field number %d out of range", num))
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return chunkWireError(protowire.ParseError(n))
			}
			b = b[n:]
			switch num {
			case 2:
				c.Attempt = uint32(v)
			case 5:
				c.MemberIndex = uint32(v)
			case 8:
				c.ChunkIndex = uint32(v)
			case 9:
				c.MemberChunk = uint32(v)
			case 10:
				c.FirstLine = int64(v)
			case 11:
				c.Rows = uint32(v)
			case 16:
				c.LastInMember = protowire.DecodeBool(v)
			case 17:
				c.Codec = sluicev1.Chunk_Codec(int32(v))
			case 18:
				c.DataBytes = uint32(v)
			}
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return chunkWireError(protowire.ParseError(n))
			}
			b = b[n:]
			var s *string
			switch num {
			case 12:
				c.Header = v
			case 13:
				c.Data = v
			case 1:
				s = &c.ArchiveId
			case 3:
				s = &c.Table
			case 4:
				s = &c.Member
			case 6:
				s = &c.ProcessDate
			case 7:
				s = &c.BatchId
			case 14:
				s = &c.Delimiter
			case 15:
				s = &c.Partner
			}
			if s != nil {
				if !utf8.Valid(v) {
					return chunkWireError(fmt.Errorf("field %d: string is not valid UTF-8", num))
				}
				*s = string(v)
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return chunkWireError(protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	return nil
}

func chunkWireError(err error) error { return fmt.Errorf("chunk: malformed message: %w", err) }
