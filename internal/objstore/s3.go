package objstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"
	"github.com/prometheus/client_golang/prometheus"
)

// s3Bucket is a bucket prefix on S3 (or an S3-compatible server).
type s3Bucket struct {
	client   *s3.Client
	bucket   string
	prefix   string // "" or "a/b/"
	partSize int
	log      *slog.Logger
	r        *retrier
}

var _ Bucket = (*s3Bucket)(nil)

// sdkRetryer keeps the SDK's own retries small; retrier.do is the retry policy (see retry.go).
func sdkRetryer() aws.Retryer {
	return retry.AddWithMaxAttempts(retry.NewStandard(func(o *retry.StandardOptions) {
		o.RateLimiter = ratelimit.None
		o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) {
			return time.Duration(50+rand.IntN(100)) * time.Millisecond, nil
		})
	}), 2)
}

func openS3(ctx context.Context, bucket, prefix string, opts Options) (*s3Bucket, error) {
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.ResponseHeaderTimeout = opts.headerTimeout // a silent server (DefaultResponseHeaderTimeout)
	})
	loadOpts := []func(*config.LoadOptions) error{
		config.WithRetryer(sdkRetryer),
		config.WithHTTPClient(httpClient),
		config.WithLogger(sdkLogger{opts.Logger}),
	}
	if opts.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("load aws config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
		// GetObject of a multipart object or a range has no whole-object checksum to verify.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	r := &retrier{
		initial:    opts.retryInitial,
		maxElapsed: opts.RetryMaxElapsed,
		log:        opts.Logger,
		onRetry:    opts.OnRetry,
	}
	if opts.Registerer != nil {
		r.retries = registerCounterVec(opts.Registerer, prometheus.CounterOpts{
			Name: "sluice_objstore_s3_retries_total",
			Help: "S3 calls retried after a transient error, by S3 operation.",
		}, "operation")
	}
	opts.Logger.Debug("opened s3 bucket", "bucket", bucket, "prefix", cleanPrefix(prefix),
		"region", cfg.Region, "endpoint", opts.Endpoint, "path_style", opts.PathStyle)
	return &s3Bucket{
		client:   client,
		bucket:   bucket,
		prefix:   cleanPrefix(prefix),
		partSize: opts.PartSize,
		log:      opts.Logger,
		r:        r,
	}, nil
}

// sdkLogger sends the SDK's own log lines to slog (its default writes to stderr).
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	l.log.Log(context.Background(), level, "aws sdk: "+fmt.Sprintf(format, v...))
}

func (b *s3Bucket) full(key string) *string { return aws.String(b.prefix + key) }

func (b *s3Bucket) URI(key string) string { return "s3://" + b.bucket + "/" + b.prefix + key }

func (b *s3Bucket) Close() error { return nil }

func (b *s3Bucket) Create(ctx context.Context, key string) (Writer, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("create %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create %s: %w", b.URI(key), err)
	}
	return &s3Writer{b: b, ctx: ctx, key: key}, nil
}

// Put buffers r like a Writer does: a body up to one part is sent with a single PutObject,
// a larger one as a multipart upload.
func (b *s3Bucket) Put(ctx context.Context, key string, r io.Reader) error {
	w, err := b.Create(ctx, key)
	if err != nil {
		return fmt.Errorf("put: %w", err)
	}
	if _, err := io.Copy(w, r); err != nil {
		_ = w.Abort(ctx)
		return fmt.Errorf("put %s: %w", b.URI(key), err)
	}
	if err := w.Commit(ctx); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	return nil
}

// Get retries until the response headers arrive; errors while the body is read are the caller's.
func (b *s3Bucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return b.get(ctx, "get", key, &s3.GetObjectInput{Bucket: &b.bucket, Key: b.full(key)})
}

func (b *s3Bucket) get(ctx context.Context, what, key string, in *s3.GetObjectInput) (io.ReadCloser, error) {
	var body io.ReadCloser
	err := b.r.do(ctx, "GetObject", b.URI(key), func(ctx context.Context, _ int) error {
		out, err := b.client.GetObject(ctx, in)
		if err != nil {
			return err
		}
		body = out.Body
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, b.URI(key), mapS3Err(err))
	}
	return body, nil
}

func (b *s3Bucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("get range %s: %w", key, err)
	}
	if off < 0 {
		return nil, fmt.Errorf("get range %s: %w", b.URI(key), checkRange(off, length, 0))
	}
	in := &s3.GetObjectInput{Bucket: &b.bucket, Key: b.full(key)}
	switch {
	case length == 0:
		// S3 cannot express an empty range; keep the "not found" answer consistent.
		if _, err := b.Stat(ctx, key); err != nil {
			return nil, fmt.Errorf("get range: %w", err)
		}
		return io.NopCloser(strings.NewReader("")), nil
	case off == 0 && length < 0:
		// whole object: no Range header, so that an empty object reads fine
	case length < 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	default:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+length-1))
	}
	return b.get(ctx, "get range", key, in)
}

func (b *s3Bucket) Stat(ctx context.Context, key string) (Attrs, error) {
	if err := checkKey(key); err != nil {
		return Attrs{}, fmt.Errorf("stat %s: %w", key, err)
	}
	var out *s3.HeadObjectOutput
	err := b.r.do(ctx, "HeadObject", b.URI(key), func(ctx context.Context, _ int) (err error) {
		out, err = b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: b.full(key)})
		return err
	})
	if err != nil {
		return Attrs{}, fmt.Errorf("stat %s: %w", b.URI(key), mapS3Err(err))
	}
	return Attrs{
		Key:     key,
		Size:    aws.ToInt64(out.ContentLength),
		ModTime: aws.ToTime(out.LastModified),
		ETag:    trimETag(out.ETag),
	}, nil
}

// trimETag drops the quotes S3 puts around ETags.
func trimETag(s *string) string { return strings.Trim(aws.ToString(s), `"`) }

// List pages through ListObjectsV2 with StartAfter, so resuming after the last key seen costs
// no more than the new keys. "Directory marker" keys ending in "/" are skipped.
func (b *s3Bucket) List(ctx context.Context, prefix, after string, fn func(Attrs) error) error {
	if err := checkPrefix(prefix); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	in := &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: aws.String(b.prefix + prefix)}
	if after != "" {
		in.StartAfter = aws.String(b.prefix + after)
	}
	for {
		var out *s3.ListObjectsV2Output
		err := b.r.do(ctx, "ListObjectsV2", b.URI(prefix), func(ctx context.Context, _ int) (err error) {
			out, err = b.client.ListObjectsV2(ctx, in)
			return err
		})
		if err != nil {
			return fmt.Errorf("list %s: %w", b.URI(prefix), err)
		}
		for _, o := range out.Contents {
			key, ok := strings.CutPrefix(aws.ToString(o.Key), b.prefix)
			if !ok || key == "" || strings.HasSuffix(key, "/") || key <= after {
				continue
			}
			err := fn(Attrs{
				Key:     key,
				Size:    aws.ToInt64(o.Size),
				ModTime: aws.ToTime(o.LastModified),
				ETag:    trimETag(o.ETag),
			})
			if err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextContinuationToken) == "" {
			return nil
		}
		in.ContinuationToken = out.NextContinuationToken
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", b.URI(prefix), err)
		}
	}
}

func (b *s3Bucket) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	err := b.r.do(ctx, "DeleteObject", b.URI(key), func(ctx context.Context, _ int) error {
		_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.bucket, Key: b.full(key)})
		return err
	})
	if err != nil && !isS3NotFound(err) {
		return fmt.Errorf("delete %s: %w", b.URI(key), err)
	}
	return nil
}

// AbortStale aborts the multipart uploads under prefix initiated before olderThan. A writer
// whose upload is aborted this way fails with NoSuchUpload; choose olderThan well past the
// longest write (hours, not minutes).
func (b *s3Bucket) AbortStale(ctx context.Context, prefix string, olderThan time.Time) (int, error) {
	if err := checkPrefix(prefix); err != nil {
		return 0, fmt.Errorf("abort stale %s: %w", prefix, err)
	}
	in := &s3.ListMultipartUploadsInput{Bucket: &b.bucket, Prefix: aws.String(b.prefix + prefix)}
	n := 0
	for {
		var out *s3.ListMultipartUploadsOutput
		err := b.r.do(ctx, "ListMultipartUploads", b.URI(prefix), func(ctx context.Context, _ int) (err error) {
			out, err = b.client.ListMultipartUploads(ctx, in)
			return err
		})
		if err != nil {
			return n, fmt.Errorf("abort stale %s: %w", b.URI(prefix), err)
		}
		for _, u := range out.Uploads {
			if u.Initiated == nil || !u.Initiated.Before(olderThan) {
				continue
			}
			key := aws.ToString(u.Key)
			uri := "s3://" + b.bucket + "/" + key
			err := b.abortUpload(ctx, key, aws.ToString(u.UploadId))
			if err != nil {
				return n, fmt.Errorf("abort stale %s: upload of %s: %w", b.URI(prefix), uri, err)
			}
			n++
			b.log.Info("aborted stale multipart upload", "object", uri, "initiated", *u.Initiated)
		}
		if !aws.ToBool(out.IsTruncated) {
			return n, nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// abortUpload aborts one multipart upload by its full key; an upload already gone is fine.
func (b *s3Bucket) abortUpload(ctx context.Context, fullKey, uploadID string) error {
	err := b.r.do(ctx, "AbortMultipartUpload", "s3://"+b.bucket+"/"+fullKey, func(ctx context.Context, _ int) error {
		_, err := b.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
			Bucket: &b.bucket, Key: &fullKey, UploadId: &uploadID,
		})
		return err
	})
	if err != nil && errorCode(err) != "NoSuchUpload" && httpStatus(err) != 404 {
		return err
	}
	return nil
}

// putObject stores a whole object with one request; body is kept for retries.
func (b *s3Bucket) putObject(ctx context.Context, key string, body []byte) error {
	return b.r.do(ctx, "PutObject", b.URI(key), func(ctx context.Context, _ int) error {
		_, err := b.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        &b.bucket,
			Key:           b.full(key),
			Body:          bytes.NewReader(body),
			ContentLength: aws.Int64(int64(len(body))),
		})
		return err
	})
}
