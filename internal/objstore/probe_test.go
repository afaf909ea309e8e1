package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/aws/smithy-go"
)

func TestAccessProblem(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("put x: %w", &smithy.GenericAPIError{Code: "AccessDenied"}), "access denied"},
		{&smithy.GenericAPIError{Code: "SignatureDoesNotMatch"}, "access denied"},
		{&smithy.GenericAPIError{Code: "InvalidAccessKeyId"}, "access denied"},
		{&smithy.GenericAPIError{Code: "NoSuchBucket"}, "no such bucket"},
		{&smithy.GenericAPIError{Code: "SlowDown"}, ""},
		{errors.New("connection reset"), ""},
	} {
		if got := AccessProblem(c.err); got != c.want {
			t.Errorf("AccessProblem(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

// conflictBucket answers the first conflicts puts with 409 ExistingObjectIsDirectory (versitygw's
// answer when a concurrent delete removed the parent directory it had just made), or with err
// when set; it keeps what it is given otherwise.
type conflictBucket struct {
	Bucket    // the rest is not used by Probe
	conflicts int
	err       error
	puts      []string
	objects   map[string][]byte
}

func (b *conflictBucket) Put(_ context.Context, key string, r io.Reader) error {
	b.puts = append(b.puts, key)
	if b.err != nil {
		return b.err
	}
	if len(b.puts) <= b.conflicts {
		return apiErr(http.StatusConflict, "ExistingObjectIsDirectory")
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	b.objects[key] = data
	return nil
}

func (b *conflictBucket) Get(_ context.Context, key string) (io.ReadCloser, error) {
	data, ok := b.objects[key]
	if !ok {
		return nil, ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (b *conflictBucket) Delete(_ context.Context, key string) error {
	delete(b.objects, key)
	return nil
}

func (b *conflictBucket) URI(key string) string { return "s3://bucket/" + key }

// TestProbeRetriesConflict: a 409 on the probe's fresh key is retried with another key (the
// fault suite saw versitygw answer one to a merger starting beside another: it exited); an
// access problem still fails at the first answer.
func TestProbeRetriesConflict(t *testing.T) {
	b := &conflictBucket{conflicts: 2, objects: map[string][]byte{}}
	if err := Probe(context.Background(), b, true); err != nil {
		t.Fatalf("probe after two conflicts: %v", err)
	}
	if len(b.puts) != 3 || b.puts[0] == b.puts[1] || b.puts[1] == b.puts[2] {
		t.Fatalf("puts %q: want three, each with a fresh key", b.puts)
	}
	if len(b.objects) != 0 {
		t.Fatalf("probe objects left behind: %v", b.objects)
	}

	denied := &conflictBucket{err: apiErr(http.StatusForbidden, "AccessDenied"), objects: map[string][]byte{}}
	err := Probe(context.Background(), denied, true)
	if err == nil || AccessProblem(err) != "access denied" || len(denied.puts) != 1 {
		t.Fatalf("access denied: err %v after %d puts, want it at once", err, len(denied.puts))
	}
}
