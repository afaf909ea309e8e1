package objstore_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/objstore/s3test"
)

// BenchmarkUpload streams a 32 MiB object through Create/Write/Commit into a folder and into a
// real S3 protocol server (versitygw on loopback): multipart with 8 MiB parts (MB/s).
func BenchmarkUpload(b *testing.B) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 2<<20) // 32 MiB
	for _, sink := range []string{"dir", "s3"} {
		b.Run(sink, func(b *testing.B) {
			ctx := context.Background()
			var bk objstore.Bucket
			if sink == "dir" {
				var err error
				if bk, err = objstore.Open(ctx, b.TempDir(), objstore.Options{}); err != nil {
					b.Fatal(err)
				}
			} else {
				endpoint, bucket := s3test.Start(b)
				o := s3test.Options(b, endpoint)
				o.PartSize = 8 << 20
				bk = s3test.Open(b, "s3://"+bucket+"/bench", o)
			}
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w, err := bk.Create(ctx, fmt.Sprintf("obj-%d.bin", i))
				if err != nil {
					b.Fatal(err)
				}
				for off := 0; off < len(payload); off += 1 << 20 {
					if _, err := w.Write(payload[off : off+1<<20]); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Commit(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
