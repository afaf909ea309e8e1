package bus

import (
	"fmt"

	"github.com/klauspost/compress/s2"

	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// MaxChunkData is the largest decoded Chunk.data accepted: a chunk's records always fit one
// message before compression, and no NATS server accepts a payload above 64 MiB. A larger
// declared size is corruption, refused before anything is allocated for it.
const MaxChunkData = 64 << 20

// ChunkData returns the records of c: Chunk.data decoded as Chunk.codec says. Every reader of
// Chunk.data goes through it (or DecodeChunkData), so no consumer ever parses compressed bytes.
//
// For CODEC_NONE the result is c.Data itself (no copy). For CODEC_S2 the block is decoded into
// dst when cap(dst) is large enough (else into a new slice); the result then aliases dst, so a
// caller reusing dst as scratch must be done with the result before the next call. An error
// (corrupt block, unknown codec, data_bytes not matching) means the chunk can never be used.
func ChunkData(c *sluicev1.Chunk, dst []byte) ([]byte, error) {
	return DecodeChunkData(c.GetCodec(), c.GetData(), int64(c.GetDataBytes()), dst)
}

// DecodeChunkData decodes data stored with codec whose decoded length is size (Chunk.data_bytes;
// 0 with CODEC_NONE means len(data)). It is ChunkData for callers that keep a chunk's fields
// apart from the message (the merger's batches).
func DecodeChunkData(codec sluicev1.Chunk_Codec, data []byte, size int64, dst []byte) ([]byte, error) {
	switch codec {
	case sluicev1.Chunk_CODEC_NONE:
		if size != 0 && size != int64(len(data)) {
			return nil, fmt.Errorf("chunk data: data_bytes %d but %d bytes stored uncompressed", size, len(data))
		}
		return data, nil
	case sluicev1.Chunk_CODEC_S2:
		n, err := s2.DecodedLen(data)
		if err != nil {
			return nil, fmt.Errorf("chunk data: corrupt S2 block: %w", err)
		}
		if int64(n) != size {
			return nil, fmt.Errorf("chunk data: S2 block decodes to %d bytes, data_bytes says %d", n, size)
		}
		if n > MaxChunkData {
			return nil, fmt.Errorf("chunk data: S2 block decodes to %d bytes, above the %d-byte limit", n, MaxChunkData)
		}
		out, err := s2.Decode(dst[:0], data)
		if err != nil {
			return nil, fmt.Errorf("chunk data: corrupt S2 block: %w", err)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("chunk data: unknown codec %d", int32(codec))
	}
}

// ChunkDataSize is the decoded length of c's data (Chunk.data_bytes, or len(data) for CODEC_NONE),
// as declared by the message: nothing is decoded or checked.
func ChunkDataSize(c *sluicev1.Chunk) int64 {
	if c.GetCodec() == sluicev1.Chunk_CODEC_NONE {
		return int64(len(c.GetData()))
	}
	return int64(c.GetDataBytes())
}
