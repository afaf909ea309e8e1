package merger

import (
	"sync"

	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/klauspost/compress/zstd"
)

// arrow-go compresses each Parquet page with a zstd encoder taken from a sync.Pool. The pool is
// emptied by every garbage collection, and `sluice run` collects often (its soft memory limit), so
// pages kept getting fresh encoders, each allocating (and zeroing) a new multi-MiB history window:
// ~6% of a run's CPU and ~24 MB of the heap in a profile of the flights preset. keptZstd keeps a
// bounded set of idle encoders across collections instead, with a 1 MiB window (arrow-go's
// encoders have zstd's default 8 MiB: three commits at once held 24 MB of windows). The other
// options are arrow-go's, and a page (data and dictionary pages are at most 1 MiB by default) fits
// the window, so the pages are byte for byte the same.
type keptZstd struct {
	compress.Codec // arrow-go's zstd codec: decoding, streams, bounds

	mu   sync.Mutex
	idle map[zstd.EncoderLevel][]*zstd.Encoder
}

// maxIdleZstd bounds the idle encoders kept per level (commits encode on a few goroutines at once).
const maxIdleZstd = 8

func init() {
	base, err := compress.GetCodec(compress.Codecs.Zstd)
	if err != nil {
		panic(err) // arrow-go registers it in its own init
	}
	compress.RegisterCodec(compress.Codecs.Zstd, &keptZstd{Codec: base, idle: map[zstd.EncoderLevel][]*zstd.Encoder{}})
}

// EncodeLevel compresses src as arrow-go's codec does, with a kept encoder.
func (z *keptZstd) EncodeLevel(dst, src []byte, level int) []byte {
	l := zstd.EncoderLevelFromZstd(level)
	if level == compress.DefaultCompressionLevel {
		l = zstd.SpeedDefault
	}
	enc := z.get(l)
	out := enc.EncodeAll(src, dst[:0])
	z.put(l, enc)
	return out
}

func (z *keptZstd) get(l zstd.EncoderLevel) *zstd.Encoder {
	z.mu.Lock()
	if n := len(z.idle[l]); n > 0 {
		enc := z.idle[l][n-1]
		z.idle[l] = z.idle[l][:n-1]
		z.mu.Unlock()
		return enc
	}
	z.mu.Unlock()
	enc, err := zstd.NewWriter(nil, zstd.WithZeroFrames(true), zstd.WithEncoderLevel(l), zstd.WithEncoderConcurrency(1),
		zstd.WithAllLitEntropyCompression(true), zstd.WithWindowSize(1<<20))
	if err != nil {
		panic(err) // only invalid options fail
	}
	return enc
}

func (z *keptZstd) put(l zstd.EncoderLevel, enc *zstd.Encoder) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if len(z.idle[l]) < maxIdleZstd {
		z.idle[l] = append(z.idle[l], enc)
	}
}
