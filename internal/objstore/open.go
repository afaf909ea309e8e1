package objstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Environment variables read by Open when the matching Options field is zero.
const (
	EnvS3Endpoint  = "SLUICE_S3_ENDPOINT"   // e.g. http://127.0.0.1:7070
	EnvS3PathStyle = "SLUICE_S3_PATH_STYLE" // "1" or "true": path-style addressing (versitygw, MinIO)
)

const (
	// DefaultPartSize is the S3 multipart part size when Options.PartSize is zero.
	DefaultPartSize = 8 << 20
	// MinPartSize is the smallest part S3 accepts (except for the last part).
	MinPartSize = 5 << 20
	// DefaultRetryMaxElapsed bounds the retries of one S3 call when Options.RetryMaxElapsed is zero.
	DefaultRetryMaxElapsed = 2 * time.Minute
	// maxParts is S3's limit on the number of parts of one multipart upload.
	maxParts = 10000
)

// Options configures Open. The zero value is usable; only S3 locations read the S3 fields.
// Credentials are never part of Options: they come from the AWS default chain
// (environment, shared config/credentials files, web identity, IMDS, …).
type Options struct {
	// Endpoint overrides the S3 endpoint (scheme required: http://host:port). Empty: env
	// SLUICE_S3_ENDPOINT, else whatever the SDK resolves (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL,
	// the shared config, else AWS).
	Endpoint string
	// Region of the bucket. Empty: the SDK default chain (AWS_REGION, shared config), else us-east-1.
	Region string
	// PathStyle selects path-style addressing (http://host/bucket/key), needed by versitygw and
	// MinIO. Also enabled by env SLUICE_S3_PATH_STYLE=1.
	PathStyle bool
	// PartSize is the multipart part size (default 8 MiB, minimum 5 MiB). A writer holds at most
	// two parts in memory.
	PartSize int
	// RetryMaxElapsed bounds the time spent retrying one S3 call (default 2 min).
	RetryMaxElapsed time.Duration
	// Logger receives retry warnings and housekeeping messages. Nil: discarded.
	Logger *slog.Logger
	// Registerer, when set, makes Open wrap the bucket with WrapWithMetrics and register the S3
	// retry counter. To tell several buckets apart, wrap it with prometheus.WrapRegistererWith.
	Registerer prometheus.Registerer
	// OnRetry, when set, is called before each retry of an S3 call with the operation name
	// (e.g. "PutObject") and the error that is being retried.
	OnRetry func(op string, err error)

	// retryInitial overrides the first backoff interval (tests).
	retryInitial time.Duration
	// headerTimeout overrides DefaultResponseHeaderTimeout (tests).
	headerTimeout time.Duration
}

// DefaultResponseHeaderTimeout is how long an S3 request waits for the answer's headers once its body is sent:
// what tells a silent endpoint (a hung gateway, a black-holed load balancer) from a slow one. With the SDK's two
// attempts, a silent endpoint shows in the retry log and the failure metrics within about two minutes; it was 5
// min per attempt, so 10 min without any sign. Servers that take long to complete a large multipart upload send
// their headers first (S3 keeps the connection alive with whitespace).
const DefaultResponseHeaderTimeout = time.Minute

func (o Options) withDefaults() (Options, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.PartSize < MinPartSize {
		return o, fmt.Errorf("part size %d is below the S3 minimum of %d bytes", o.PartSize, MinPartSize)
	}
	if o.RetryMaxElapsed == 0 {
		o.RetryMaxElapsed = DefaultRetryMaxElapsed
	}
	if o.RetryMaxElapsed < 0 {
		return o, fmt.Errorf("negative retry max elapsed %s", o.RetryMaxElapsed)
	}
	if o.retryInitial == 0 {
		o.retryInitial = 200 * time.Millisecond
	}
	if o.headerTimeout == 0 {
		o.headerTimeout = DefaultResponseHeaderTimeout
	}
	if o.Endpoint == "" {
		o.Endpoint = os.Getenv(EnvS3Endpoint)
	}
	if o.Endpoint != "" && !strings.HasPrefix(o.Endpoint, "http://") && !strings.HasPrefix(o.Endpoint, "https://") {
		return o, fmt.Errorf("s3 endpoint %q: scheme http:// or https:// required", o.Endpoint)
	}
	if !o.PathStyle {
		switch strings.ToLower(os.Getenv(EnvS3PathStyle)) {
		case "1", "true", "yes":
			o.PathStyle = true
		}
	}
	return o, nil
}

// Open returns the bucket at location: a local directory (a path, or file:///path), created if
// missing, or an S3 bucket with an optional key prefix (s3://bucket/optional/prefix). When
// opts.Registerer is set the bucket is wrapped with WrapWithMetrics.
func Open(ctx context.Context, location string, opts Options) (Bucket, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", location, err)
	}
	var b Bucket
	switch {
	case strings.HasPrefix(location, "s3://"):
		bucket, prefix, _ := strings.Cut(strings.TrimPrefix(location, "s3://"), "/")
		if bucket == "" {
			return nil, fmt.Errorf("open %s: missing bucket name", location)
		}
		b, err = openS3(ctx, bucket, prefix, opts)
	case strings.HasPrefix(location, "file://"):
		b, err = openDir(strings.TrimPrefix(location, "file://"), opts)
	case strings.Contains(location, "://"):
		return nil, fmt.Errorf("open %s: unsupported scheme (want a directory, file:// or s3://)", location)
	case location == "":
		return nil, errors.New("open: empty location")
	default:
		b, err = openDir(location, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", location, err)
	}
	if opts.Registerer != nil {
		b = WrapWithMetrics(b, opts.Registerer)
	}
	return b, nil
}

// cleanPrefix turns an S3 location's prefix into "" or "a/b/".
func cleanPrefix(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return ""
	}
	return p + "/"
}

// absDir resolves a directory location for display in URIs.
func absDir(dir string) (string, error) {
	if dir == "" {
		return "", errors.New("empty directory")
	}
	return filepath.Abs(dir)
}
