package objstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// ProbeTimeout bounds Probe: an endpoint that does not answer is retried this long, then given up.
const ProbeTimeout = 30 * time.Second

var errProbeStop = errors.New("probe: stop listing")

// Probe checks at start-up that b can be used, so that a wrong credential, a missing bucket or an
// unreachable endpoint fails within seconds with its reason instead of surfacing as retries deep
// inside a commit. With write it puts a small object under _sluice/, reads it back and deletes
// it; without, it lists one key. Permanent answers (403, missing bucket) fail at once; transport
// errors, and a 409 Conflict on the probe's fresh key (a race inside the store), are retried for
// at most ProbeTimeout.
func Probe(ctx context.Context, b Bucket, write bool) error {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	if !write {
		err := b.List(ctx, "", "", func(Attrs) error { return errProbeStop })
		if err != nil && !errors.Is(err, errProbeStop) {
			return probeError(b, "", "list", err)
		}
		return nil
	}
	// A 409 Conflict on a fresh key is a race inside the store, not an answer about the bucket:
	// versitygw's POSIX backend removes a directory left empty by a delete, so processes starting
	// together, each probing under _sluice/, can catch one another's parent directory half made
	// ("ExistingObjectIsDirectory"). The probe is then tried again with another key.
	var last error
	bo := backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithInitialInterval(50*time.Millisecond)), ctx)
	err := backoff.Retry(func() error {
		last = probeWrite(ctx, b)
		if last != nil && httpStatus(last) != http.StatusConflict {
			return backoff.Permanent(last)
		}
		return last
	}, bo)
	if err != nil && last != nil {
		return last
	}
	return err
}

// probeWrite puts a small object under a fresh key, reads it back and deletes it.
func probeWrite(ctx context.Context, b Bucket) error {
	key := "_sluice/probe-" + rand.Text()[:12]
	payload := []byte("sluice start-up probe " + time.Now().UTC().Format(time.RFC3339Nano))
	if err := b.Put(ctx, key, bytes.NewReader(payload)); err != nil {
		return probeError(b, key, "write", err)
	}
	defer func() { _ = b.Delete(context.WithoutCancel(ctx), key) }()
	rc, err := b.Get(ctx, key)
	if err != nil {
		return probeError(b, key, "read back", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return probeError(b, key, "read back", err)
	}
	if !bytes.Equal(got, payload) {
		return fmt.Errorf("probe %s: read back %d bytes that differ from the %d written", b.URI(key), len(got), len(payload))
	}
	if err := b.Delete(ctx, key); err != nil {
		return probeError(b, key, "delete", err)
	}
	return nil
}

// AccessProblem names an S3 answer that no retry can fix until an operator acts: "access denied"
// (403, a wrong key or signature) or "no such bucket"; "" for anything else.
func AccessProblem(err error) string {
	switch code := errorCode(err); {
	case code == "AccessDenied" || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || httpStatus(err) == 403:
		return "access denied"
	case code == "NoSuchBucket":
		return "no such bucket"
	}
	return ""
}

// probeError names what failed and, for the answers a user can act on, what to check.
func probeError(b Bucket, key, op string, err error) error {
	where := b.URI(key)
	var hint string
	switch AccessProblem(err) {
	case "access denied":
		hint = "access denied: check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE) and the bucket policy"
	case "no such bucket":
		hint = "the bucket does not exist: create it or fix the location"
	default:
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			hint = fmt.Sprintf("no answer within %s: check the endpoint (--s3-endpoint) and the network", ProbeTimeout)
		default:
			hint = err.Error()
		}
	}
	return fmt.Errorf("%s %s: %s (%w)", op, where, hint, err)
}
