package dlq

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// PayloadSummary describes the original message a dead letter kept, decoded by what it was
// (a landed archive, a rows chunk, a marker, an abort), without dumping its data.
func (l Letter) PayloadSummary() string {
	p := l.Payload
	if len(p) == 0 {
		return "no payload kept"
	}
	undecodable := func(what string, err error) string {
		return fmt.Sprintf("%d bytes, not decodable as %s (%v); starts %s", len(p), what, err, preview(p, 48))
	}
	if l.Stage == "extractor" {
		var ev sluicev1.ArchiveLanded
		if err := proto.Unmarshal(p, &ev); err != nil {
			return undecodable("ArchiveLanded", err)
		}
		return fmt.Sprintf("archive landed: id %s, name %q, uri %s, %d bytes, partner %q, attempt %d",
			ev.ArchiveId, ev.Name, ev.Uri, ev.Size, ev.Partner, ev.Attempt)
	}
	switch t := l.Headers[bus.HdrType]; t {
	case bus.TypeComplete:
		var mk sluicev1.BatchComplete
		if err := proto.Unmarshal(p, &mk); err != nil {
			return undecodable("BatchComplete", err)
		}
		var ms []string
		for _, mi := range mk.Members {
			ms = append(ms, fmt.Sprintf("%s (%s, batch %s, %d rows, chunks %d..%d)", mi.Name, mi.ProcessDate, mi.BatchId,
				mi.Rows, mi.FirstChunk, int64(mi.FirstChunk)+int64(mi.Chunks)-1))
		}
		return fmt.Sprintf("batch marker: archive %s attempt %d table %q partition %d: %d chunks, %d rows, %d bytes; members: %s",
			mk.ArchiveId, mk.Attempt, mk.Table, mk.Partition, mk.Chunks, mk.Rows, mk.Bytes, strings.Join(ms, "; "))
	case bus.TypeChunk:
		var c sluicev1.Chunk
		if err := proto.Unmarshal(p, &c); err != nil {
			return undecodable("Chunk", err)
		}
		var data string
		switch records, err := bus.ChunkData(&c, nil); {
		case err != nil:
			data = fmt.Sprintf("%d data bytes %s, undecodable: %v", len(c.Data), codecName(c.Codec), err)
		case c.Codec == sluicev1.Chunk_CODEC_NONE:
			data = fmt.Sprintf("%d data bytes", len(records))
		default:
			data = fmt.Sprintf("%d data bytes (%d %s)", len(records), len(c.Data), codecName(c.Codec))
		}
		return fmt.Sprintf("chunk %d of archive %s attempt %d table %q: member %s (%s, batch %s) chunk %d, %d rows from line %d, %s",
			c.ChunkIndex, c.ArchiveId, c.Attempt, c.Table, c.Member, c.ProcessDate, c.BatchId, c.MemberChunk, c.Rows, c.FirstLine, data)
	case bus.TypeAbort:
		var a sluicev1.BatchAborted
		if err := proto.Unmarshal(p, &a); err != nil {
			return undecodable("BatchAborted", err)
		}
		return fmt.Sprintf("batch abort: archive %s attempt %d table %q: %s", a.ArchiveId, a.Attempt, a.Table, a.Reason)
	default:
		return fmt.Sprintf("%d bytes (%s %q); starts %s", len(p), bus.HdrType, t, preview(p, 48))
	}
}

// codecName names a chunk codec for people, or gives the enum's number when unknown.
func codecName(c sluicev1.Chunk_Codec) string {
	switch c {
	case sluicev1.Chunk_CODEC_NONE:
		return "uncompressed"
	case sluicev1.Chunk_CODEC_S2:
		return "S2-compressed"
	}
	return fmt.Sprintf("codec %d", int32(c))
}

// preview quotes the first n bytes of p (valid UTF-8 shown as text, else escaped).
func preview(p []byte, n int) string {
	more := ""
	if len(p) > n {
		p, more = p[:n], "…"
	}
	if utf8.Valid(p) {
		return fmt.Sprintf("%q%s", p, more)
	}
	return fmt.Sprintf("%+q%s", p, more)
}
