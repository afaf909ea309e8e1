package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Retries happen in two layers:
//   - the SDK's standard retryer, cut to 2 attempts with a short delay and no client-side retry
//     quota: it absorbs a single blip (a reset keep-alive connection) without ceremony;
//   - retrier.do around every S3 call: exponential backoff bounded by Options.RetryMaxElapsed
//     and the context, logged and reported through Options.OnRetry. This is the policy.
//
// Callers of do must make fn repeatable: request bodies are rebuilt from retained bytes on
// every attempt.
type retrier struct {
	initial    time.Duration
	maxElapsed time.Duration
	log        *slog.Logger
	onRetry    func(op string, err error)
	retries    *prometheus.CounterVec // nil without a registerer
}

// do runs fn until it succeeds, fails permanently, the backoff budget is spent, or ctx ends.
// attempt counts from 1.
func (r *retrier) do(ctx context.Context, op, uri string, fn func(ctx context.Context, attempt int) error) error {
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(r.initial),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMaxInterval(15*time.Second),
		backoff.WithMaxElapsedTime(r.maxElapsed),
	)
	attempt := 0
	var last error
	err := backoff.RetryNotify(func() error {
		attempt++
		err := fn(ctx, attempt)
		if err == nil {
			return nil
		}
		last = err
		if ctx.Err() != nil || !retryable(err) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(bo, ctx), func(err error, wait time.Duration) {
		r.log.Warn("retrying s3 call", "op", op, "object", uri, "attempt", attempt, "wait", wait, "err", err)
		if r.retries != nil {
			r.retries.WithLabelValues(op).Inc()
		}
		if r.onRetry != nil {
			r.onRetry(op, err)
		}
	})
	switch {
	case err == nil:
		return nil
	case last != nil && err != last && !errors.Is(err, last):
		// backoff reports ctx.Err() when the context ended between attempts: keep the cause.
		return fmt.Errorf("%w (after %d attempts, last error: %v)", err, attempt, last)
	case attempt > 1 && retryable(err):
		return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
	}
	return err
}

var sdkRetryables = retry.IsErrorRetryables(retry.DefaultRetryables)

// permanentCodes are S3 error codes that another attempt cannot fix.
var permanentCodes = map[string]bool{
	"NoSuchKey": true, "NotFound": true, "NoSuchBucket": true, "NoSuchUpload": true,
	"AccessDenied": true, "InvalidAccessKeyId": true, "SignatureDoesNotMatch": true,
	"InvalidArgument": true, "InvalidRequest": true, "InvalidRange": true, "InvalidBucketName": true,
	"InvalidPart": true, "InvalidPartOrder": true, "EntityTooSmall": true, "EntityTooLarge": true,
	"MalformedXML": true, "MethodNotAllowed": true, "PreconditionFailed": true, "NotImplemented": true,
}

// retryable reports whether another attempt of a failed S3 call may succeed: transport errors,
// throttling, 5xx, 408, 429 and S3's transient codes. 4xx answers (404, 403, 400, NoSuchUpload,
// …), a cancelled context and client-side errors (no credentials, bad parameters) are permanent.
func retryable(err error) bool {
	// The caller's context ending is handled by do (ctx.Err()); an error that matches
	// context.DeadlineExceeded while it is alive is the transport's own timeout (net/http's
	// "timeout awaiting response headers" matches it), retried below.
	if errors.Is(err, context.Canceled) {
		return false
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && permanentCodes[ae.ErrorCode()] {
		return false
	}
	if sdkRetryables.IsErrorRetryable(err) == aws.TrueTernary {
		return true
	}
	// A silent server (no response headers within the transport's timeout) may answer the next
	// request; the SDK gives up on it after its two attempts without calling it retryable.
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		s := re.HTTPStatusCode()
		return s >= 500 || s == 429 || s == 408
	}
	// A response cut short while its body was read.
	return errors.Is(err, io.ErrUnexpectedEOF)
}

// httpStatus returns the HTTP status of a failed S3 call, 0 without a response.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// isS3NotFound: the object (not the bucket) does not exist. HEAD answers carry no body, so a
// bare 404 counts too.
func isS3NotFound(err error) bool {
	switch errorCode(err) {
	case "NoSuchKey", "NotFound":
		return true
	case "NoSuchBucket":
		return false
	}
	return httpStatus(err) == 404
}

// mapS3Err wraps ErrNotFound / ErrInvalidRange around the SDK error so callers can branch with
// errors.Is and still see the response details.
func mapS3Err(err error) error {
	switch {
	case isS3NotFound(err):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errorCode(err) == "InvalidRange" || httpStatus(err) == 416:
		return fmt.Errorf("%w: %w", ErrInvalidRange, err)
	}
	return err
}
