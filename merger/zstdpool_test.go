package merger

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/klauspost/compress/zstd"
)

// TestKeptZstd: the registered zstd codec is keptZstd; a page (at most 1 MiB) comes out byte for byte as from
// an encoder built as arrow-go builds it (the smaller window changes nothing within one window), a larger input
// still round-trips, and the encoders survive a garbage collection.
func TestKeptZstd(t *testing.T) {
	c, err := compress.GetCodec(compress.Codecs.Zstd)
	if err != nil {
		t.Fatal(err)
	}
	k, ok := c.(*keptZstd)
	if !ok {
		t.Fatalf("registered zstd codec is %T", c)
	}
	src := bytes.Repeat([]byte("2025-03-01 00:10:10,32,46,SAN,MSP\n"), 30000) // 1,020,000 bytes: one page
	for _, level := range []int{1, 3, compress.DefaultCompressionLevel} {
		got := k.EncodeLevel(nil, src, level)
		l := zstd.EncoderLevelFromZstd(level)
		if level == compress.DefaultCompressionLevel {
			l = zstd.SpeedDefault
		}
		ref, err := zstd.NewWriter(nil, zstd.WithZeroFrames(true), zstd.WithEncoderLevel(l), zstd.WithEncoderConcurrency(1),
			zstd.WithAllLitEntropyCompression(true))
		if err != nil {
			t.Fatal(err)
		}
		if want := ref.EncodeAll(src, nil); !bytes.Equal(got, want) {
			t.Fatalf("level %d: %d bytes, arrow-go's encoder makes %d", level, len(got), len(want))
		}
		big := bytes.Repeat(src, 3)
		if back := k.Decode(nil, k.EncodeLevel(nil, big, level)); !bytes.Equal(back, big) {
			t.Fatalf("level %d: round trip lost data", level)
		}
	}
	l := zstd.EncoderLevelFromZstd(1)
	k.EncodeLevel(nil, src, 1)
	k.mu.Lock()
	before := len(k.idle[l])
	k.mu.Unlock()
	runtime.GC()
	k.mu.Lock()
	after := len(k.idle[l])
	k.mu.Unlock()
	if before == 0 || after != before {
		t.Fatalf("idle encoders %d before a GC, %d after", before, after)
	}
}
