package extractor

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of Config.
const (
	DefaultConcurrency     = 2
	DefaultMaxUncompressed = 64 << 30
	DefaultMaxRatio        = 200
	DefaultPublishWindow   = 64
	DefaultAckWait         = 60 * time.Second
	DefaultMaxDeliver      = 5
	DefaultConsumer        = "extractor"
	DefaultChunkCodec      = "s2"

	// ratioCheckAfter is how much output the extractor lets through before it starts checking
	// MaxRatio: small archives of repetitive text legitimately compress very well.
	ratioCheckAfter = 64 << 20
	// minChunkBytes keeps room for a chunk's metadata and a useful amount of data.
	minChunkBytes = 1 << 10
)

// Config tunes the extractor. The zero value is valid: every field has a default.
type Config struct {
	Concurrency     int     // archives extracted at once, default 2
	MaxUncompressed int64   // per archive, default 64 GiB
	MaxRatio        float64 // uncompressed/compressed bytes, default 200 (checked once past 64 MiB out)
	// ChunkBytes is the size a chunk message (protobuf + NATS headers) is filled up to. Default:
	// the server's max payload minus headroom (1/8 of it, at least 4 KiB); never above the
	// server's max payload (a larger value is lowered to it).
	ChunkBytes int
	// PublishWindow is how many chunk buffers exist at once across the whole Extractor: the
	// chunks published and not yet acknowledged plus the one each archive is filling. Default
	// 64; memory for chunks is at most PublishWindow × ChunkBytes. Must exceed Concurrency.
	PublishWindow int
	AckWait       time.Duration // default 60s, kept alive with InProgress while working
	MaxDeliver    int           // default 5; the last failed delivery dead-letters the archive
	Consumer      string        // durable name, default "extractor"
	// ChunkCodec is how chunk data is sent: "s2" (default) compresses each chunk's records into
	// one S2 block (Chunk.codec CODEC_S2) when that saves at least 1/8 of them, else sends them
	// raw; "none" always sends them raw. Compressing here, once, spares the server compressing
	// blocks and decompressing them on every read, and lets the merger buffer compressed bytes.
	ChunkCodec string
}

func (c *Config) withDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxUncompressed == 0 {
		c.MaxUncompressed = DefaultMaxUncompressed
	}
	if c.MaxRatio == 0 {
		c.MaxRatio = DefaultMaxRatio
	}
	if c.PublishWindow == 0 {
		c.PublishWindow = max(DefaultPublishWindow, c.Concurrency+1)
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if c.Consumer == "" {
		c.Consumer = DefaultConsumer
	}
	if c.ChunkCodec == "" {
		c.ChunkCodec = DefaultChunkCodec
	}
}

// Validate fills defaults and reports a configuration that cannot work. ChunkBytes is checked
// against the server's max payload by New.
func (c *Config) Validate() error {
	c.withDefaults()
	var errs []error
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("concurrency must be at least 1, got %d", c.Concurrency))
	}
	if c.MaxUncompressed < 1 {
		errs = append(errs, fmt.Errorf("max uncompressed bytes must be positive, got %d", c.MaxUncompressed))
	}
	if c.MaxRatio < 1 {
		errs = append(errs, fmt.Errorf("max compression ratio must be at least 1, got %g", c.MaxRatio))
	}
	if c.ChunkBytes != 0 && c.ChunkBytes < minChunkBytes {
		errs = append(errs, fmt.Errorf("chunk bytes must be at least %d, got %d", minChunkBytes, c.ChunkBytes))
	}
	if c.PublishWindow <= c.Concurrency {
		// Each archive holds one buffer while it waits for the next; with no buffer left over
		// for publishing, every archive would wait forever.
		errs = append(errs, fmt.Errorf("publish window (%d) must exceed concurrency (%d)", c.PublishWindow, c.Concurrency))
	}
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("ack wait must be at least 1s, got %s", c.AckWait))
	}
	if c.MaxDeliver < 1 {
		errs = append(errs, fmt.Errorf("max deliver must be at least 1, got %d", c.MaxDeliver))
	}
	if c.Consumer == "" {
		errs = append(errs, errors.New("consumer name is empty"))
	}
	if c.ChunkCodec != "s2" && c.ChunkCodec != "none" {
		errs = append(errs, fmt.Errorf("chunk codec must be s2 or none, got %q", c.ChunkCodec))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("extractor config: %w", err)
	}
	return nil
}

// defaultChunkBytes is the server's max payload minus headroom. Every chunk is sized exactly
// (metadata, header record and NATS headers included), so the headroom is not needed for
// correctness: it keeps PublishWindow × ChunkBytes, the per-archive buffers and the NATS client's
// write buffer under 64 MiB at the defaults (64 × 896 KiB = 56 MiB of chunk buffers).
func defaultChunkBytes(maxPayload int64) int {
	headroom := max(maxPayload/8, 4<<10)
	return int(maxPayload - headroom)
}
