package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func TestCheckKey(t *testing.T) {
	for _, tc := range []struct {
		key string
		why string // "" when the key is valid
	}{
		{"a", ""},
		{"t/process_date=2024-01-02/batch_id=x/part-0123.parquet", ""},
		{"a/.hidden", ""},
		{"a/..b", ""},
		{strings.Repeat("a", 1024), ""},
		{"", "invalid object key: empty"},
		{"/a", "absolute"},
		{"a/", "empty path segment"},
		{"a//b", "empty path segment"},
		{".", `"." segment`},
		{"..", `".." segment`},
		{"a/../b", `".." segment`},
		{"a/./b", `"." segment`},
		{"a\x00b", "NUL byte"},
		{"\xff", "not UTF-8"},
		{strings.Repeat("a", 1025), "longer than 1024 bytes"},
	} {
		err := checkKey(tc.key)
		if (err == nil) != (tc.why == "") || err != nil && (!errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), tc.why)) {
			t.Errorf("checkKey(%q) = %v, want %q", tc.key, err, tc.why)
		}
	}
	if err := checkDirKey("a/.tmp-x"); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("checkDirKey of a temp name = %v", err)
	}
	for _, tc := range []struct {
		prefix string
		ok     bool
	}{
		{"", true}, {"a", true}, {"a/", true}, {"a/b", true}, {"a/..", true}, {"a/.", true},
		{"/", false}, {"/a", false}, {"../", false}, {"a/../", false}, {"a//", false},
	} {
		if err := checkPrefix(tc.prefix); (err == nil) != tc.ok {
			t.Errorf("checkPrefix(%q) = %v, want ok=%v", tc.prefix, err, tc.ok)
		}
	}
}

// apiErr builds the error the SDK returns for an HTTP answer with an S3 error code.
func apiErr(status int, code string) error {
	var inner error = &smithy.GenericAPIError{Code: code, Message: "test"}
	if code == "" {
		inner = errors.New("http error")
	}
	return &smithy.OperationError{ServiceID: "S3", OperationName: "Op", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      inner,
		},
	}}
}

func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"503 SlowDown", apiErr(503, "SlowDown"), true},
		{"500 InternalError", apiErr(500, "InternalError"), true},
		{"502 bare", apiErr(502, ""), true},
		{"429", apiErr(429, "TooManyRequests"), true},
		{"400 RequestTimeout", apiErr(400, "RequestTimeout"), true},
		{"404 NoSuchKey", apiErr(404, "NoSuchKey"), false},
		{"404 bare (HEAD)", apiErr(404, ""), false},
		{"404 NoSuchBucket", apiErr(404, "NoSuchBucket"), false},
		{"404 NoSuchUpload", apiErr(404, "NoSuchUpload"), false},
		{"403 AccessDenied", apiErr(403, "AccessDenied"), false},
		{"400 InvalidArgument", apiErr(400, "InvalidArgument"), false},
		{"400 InvalidPart", apiErr(400, "InvalidPart"), false},
		{"412", apiErr(412, "PreconditionFailed"), false},
		{"send failed", &smithyhttp.RequestSendError{Err: io.EOF}, true},
		{"dial refused", &smithyhttp.RequestSendError{Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}, true},
		{"unexpected EOF reading body", fmt.Errorf("deserialize: %w", io.ErrUnexpectedEOF), true},
		{"canceled", fmt.Errorf("op: %w", context.Canceled), false},
		// net/http's own timeouts match context.DeadlineExceeded: retried; a caller's context that
		// ended stops retrier.do before it asks (TestS3SilentEndpoint, TestDoStopsWithItsContext)
		{"deadline", &smithyhttp.RequestSendError{Err: context.DeadlineExceeded}, true},
		{"no credentials", errors.New("failed to retrieve credentials"), false},
	} {
		if got := retryable(tc.err); got != tc.want {
			t.Errorf("%s: retryable = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !errors.Is(mapS3Err(apiErr(404, "")), ErrNotFound) || errors.Is(mapS3Err(apiErr(404, "NoSuchBucket")), ErrNotFound) {
		t.Error("mapS3Err: a bare 404 is ErrNotFound, NoSuchBucket is not")
	}
	if !errors.Is(mapS3Err(apiErr(416, "InvalidRange")), ErrInvalidRange) {
		t.Error("mapS3Err: 416 is ErrInvalidRange")
	}
}

func TestOptionsFromEnv(t *testing.T) {
	t.Setenv(EnvS3Endpoint, "http://127.0.0.1:7070")
	t.Setenv(EnvS3PathStyle, "1")
	o, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Endpoint != "http://127.0.0.1:7070" || !o.PathStyle || o.PartSize != DefaultPartSize ||
		o.RetryMaxElapsed != DefaultRetryMaxElapsed || o.Logger == nil {
		t.Fatalf("defaults = %+v", o)
	}
	o, _ = Options{Endpoint: "https://s3.example"}.withDefaults()
	if o.Endpoint != "https://s3.example" {
		t.Errorf("explicit endpoint overridden by env: %q", o.Endpoint)
	}
	if got := cleanPrefix("/a/b/"); got != "a/b/" {
		t.Errorf("cleanPrefix = %q", got)
	}
}

// TestPartitionValue: a hive partition value is escaped as Hive escapes it, so a reader that decodes %XX (DuckDB,
// Spark, Trino) shows the value itself; plain values are unchanged.
func TestPartitionValue(t *testing.T) {
	for in, want := range map[string]string{
		"001": "001", "2025-03-01": "2025-03-01", "": "_", "a=b": "a%3Db", "x%2F": "x%252F", "a/b": "a%2Fb",
		"q?#": "q%3F%23", "tab\tnl\n": "tab%09nl%0A", `back\slash`: "back%5Cslash", "ünï code": "ünï code", "a:b*c": "a%3Ab%2Ac",
	} {
		got := PartitionValue(in)
		if got != want {
			t.Errorf("PartitionValue(%q) = %q, want %q", in, got, want)
		}
		if dec, err := url.PathUnescape(got); in != "" && (err != nil || dec != in) {
			t.Errorf("PartitionValue(%q) = %q decodes to %q, %v", in, got, dec, err)
		}
		if strings.ContainsAny(got, "/=") {
			t.Errorf("PartitionValue(%q) = %q holds a / or =", in, got)
		}
	}
}

// TestDoStopsWithItsContext: once the caller's context has ended, a failed call is not retried,
// although its error (a deadline) would be on a live context.
func TestDoStopsWithItsContext(t *testing.T) {
	r := &retrier{initial: time.Millisecond, maxElapsed: time.Minute, log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	calls := 0
	err := r.do(ctx, "PutObject", "s3://b/k", func(ctx context.Context, attempt int) error {
		calls++
		<-ctx.Done()
		return &smithyhttp.RequestSendError{Err: ctx.Err()}
	})
	if calls != 1 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%d calls, %v", calls, err)
	}
}
