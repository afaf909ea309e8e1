package objstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"
)

// ProbeTimeout bounds Probe: an endpoint that does not answer is retried this long, then given up.
const ProbeTimeout = 30 * time.Second

var errProbeStop = errors.New("probe: stop listing")

// Probe checks at start-up that b can be used, so that a wrong credential, a missing bucket or an
// unreachable endpoint fails within seconds with its reason instead of surfacing as retries deep
// inside a commit. With write it puts a small object under _sluice/, reads it back and deletes
// it; without, it lists one key. Permanent answers (403, missing bucket) fail at once; transport
// errors are retried for at most ProbeTimeout.
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
