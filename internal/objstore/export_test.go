package objstore

import "time"

// WaitPartUploads waits until the part upload a Writer may have in flight is acknowledged (S3),
// so a test can act on a writer's multipart upload without racing its background upload.
func WaitPartUploads(w Writer) error {
	if sw, ok := w.(*s3Writer); ok {
		return sw.wait()
	}
	return nil
}

// WithHeaderTimeout sets how long a request waits for the answer's headers (DefaultResponseHeaderTimeout).
func WithHeaderTimeout(o Options, d time.Duration) Options {
	o.headerTimeout = d
	return o
}
