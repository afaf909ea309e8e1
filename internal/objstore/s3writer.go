package objstore

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// s3Writer streams an object into S3.
//
// Memory bound: at most two part buffers of PartSize bytes per writer — the part being filled
// and the part being uploaded (a background goroutine, at most one at a time). A part's bytes
// are kept until S3 acknowledges it so that every retry re-sends the same bytes. The buffer
// grows with the data, so a small object costs about its own size.
//
// The multipart upload is created lazily when a part fills and more data follows: an object of
// at most PartSize bytes is stored by Commit with one PutObject, never as a multipart upload.
//
// The ctx given to Create bounds the uploads started by Write; Commit's ctx bounds the last
// part and the completion. A Writer is not safe for concurrent use.
type s3Writer struct {
	b   *s3Bucket
	ctx context.Context
	key string // relative to the bucket prefix

	buf   []byte // the part being filled, len <= partSize
	spare []byte // a drained part buffer, reused for the next part

	uploadID string
	parts    []types.CompletedPart // acknowledged parts, in order
	pending  chan partResult       // the part upload in flight, nil when none
	size     int64                 // bytes accepted by Write

	err    error // first upload failure, returned by every later call
	closed bool  // Commit or Abort was called
}

// partChecksum is declared when the multipart upload is created and computed by the SDK for
// every part; CompleteMultipartUpload then lists each part's checksum. Declaring it up front
// matters: S3-compatible servers (versitygw) reject, as InvalidPart, part checksums in the
// completion of an upload created without an algorithm — and the SDK adds a CRC32 to every
// part by default.
const partChecksum = types.ChecksumAlgorithmCrc32

type partResult struct {
	part types.CompletedPart
	buf  []byte
	err  error
}

func (w *s3Writer) uri() string { return w.b.URI(w.key) }

func (w *s3Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, fmt.Errorf("write %s: %w", w.uri(), errWriterClosed)
	}
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		if len(w.buf) == w.b.partSize {
			// A full part and more data: it cannot be the last part, upload it.
			if err := w.startPart(w.ctx); err != nil {
				w.err = fmt.Errorf("write %s: %w", w.uri(), err)
				return n, w.err
			}
		}
		k := min(w.b.partSize-len(w.buf), len(p))
		w.grow(k)
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		n += k
		w.size += int64(k)
	}
	return n, nil
}

// grow makes room for k more bytes without letting the buffer's capacity pass partSize.
func (w *s3Writer) grow(k int) {
	need := len(w.buf) + k
	if need <= cap(w.buf) {
		return
	}
	if w.spare != nil && cap(w.spare) >= need {
		w.spare = append(w.spare[:0], w.buf...)
		w.buf, w.spare = w.spare, nil
		return
	}
	c := min(max(2*cap(w.buf), need, 64<<10), w.b.partSize)
	nb := make([]byte, len(w.buf), c)
	copy(nb, w.buf)
	w.buf = nb
}

// startPart hands w.buf to a background upload, after waiting for the previous one (so at most
// one part is in flight and two buffers exist).
func (w *s3Writer) startPart(ctx context.Context) error {
	if err := w.wait(); err != nil {
		return err
	}
	if w.uploadID == "" {
		if err := w.createUpload(ctx); err != nil {
			return err
		}
	}
	if len(w.parts) >= maxParts {
		return fmt.Errorf("object exceeds %d parts of %d bytes", maxParts, w.b.partSize)
	}
	num := int32(len(w.parts) + 1)
	body := w.buf
	w.buf, w.spare = w.spare[:0:cap(w.spare)], nil
	if cap(w.buf) == 0 {
		w.buf = nil
	}
	ch := make(chan partResult, 1) // buffered: the goroutine never blocks, even if abandoned
	w.pending = ch
	go func() {
		part, err := w.uploadPart(ctx, num, body)
		ch <- partResult{part: part, buf: body, err: err}
	}()
	return nil
}

// wait collects the part upload in flight, if any.
func (w *s3Writer) wait() error {
	if w.pending == nil {
		return nil
	}
	res := <-w.pending
	w.pending = nil
	w.spare = res.buf
	if res.err != nil {
		return res.err
	}
	w.parts = append(w.parts, res.part)
	return nil
}

func (w *s3Writer) createUpload(ctx context.Context) error {
	return w.b.r.do(ctx, "CreateMultipartUpload", w.uri(), func(ctx context.Context, _ int) error {
		out, err := w.b.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
			Bucket: &w.b.bucket, Key: w.b.full(w.key), ChecksumAlgorithm: partChecksum,
		})
		if err != nil {
			return err
		}
		w.uploadID = aws.ToString(out.UploadId)
		return nil
	})
}

func (w *s3Writer) uploadPart(ctx context.Context, num int32, body []byte) (types.CompletedPart, error) {
	var part types.CompletedPart
	err := w.b.r.do(ctx, "UploadPart", w.uri(), func(ctx context.Context, _ int) error {
		out, err := w.b.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:            &w.b.bucket,
			Key:               w.b.full(w.key),
			UploadId:          &w.uploadID,
			PartNumber:        aws.Int32(num),
			Body:              bytes.NewReader(body),
			ContentLength:     aws.Int64(int64(len(body))),
			ChecksumAlgorithm: partChecksum,
		})
		if err != nil {
			return err
		}
		part = types.CompletedPart{
			PartNumber:        aws.Int32(num),
			ETag:              out.ETag,
			ChecksumCRC32:     out.ChecksumCRC32,
			ChecksumCRC32C:    out.ChecksumCRC32C,
			ChecksumCRC64NVME: out.ChecksumCRC64NVME,
			ChecksumSHA1:      out.ChecksumSHA1,
			ChecksumSHA256:    out.ChecksumSHA256,
		}
		return nil
	})
	if err != nil {
		return part, fmt.Errorf("upload part %d: %w", num, err)
	}
	return part, nil
}

func (w *s3Writer) Commit(ctx context.Context) error {
	if w.closed {
		return fmt.Errorf("commit %s: %w", w.uri(), errWriterClosed)
	}
	w.closed = true
	defer w.release()
	if w.err != nil {
		w.abortQuietly(ctx)
		return fmt.Errorf("commit %s: %w", w.uri(), w.err)
	}
	if w.uploadID == "" && w.pending == nil {
		if err := w.b.putObject(ctx, w.key, w.buf); err != nil {
			return fmt.Errorf("commit %s: %w", w.uri(), err)
		}
		return nil
	}
	err := w.startPart(ctx) // the last part: never empty, Write only uploads a full part when more follows
	if err == nil {
		err = w.wait()
	}
	if err == nil {
		err = w.complete(ctx)
	}
	if err != nil {
		w.abortQuietly(ctx)
		return fmt.Errorf("commit %s: %w", w.uri(), err)
	}
	return nil
}

// complete finishes the multipart upload. If an attempt failed without an answer and the next
// one finds the upload gone (NoSuchUpload), the first attempt may have completed it: the
// object is checked for the expected size before reporting failure. Also on the first attempt of
// do: the SDK makes a second attempt of its own (after a response-header timeout, say).
func (w *s3Writer) complete(ctx context.Context) error {
	return w.b.r.do(ctx, "CompleteMultipartUpload", w.uri(), func(ctx context.Context, _ int) error {
		_, err := w.b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket:          &w.b.bucket,
			Key:             w.b.full(w.key),
			UploadId:        &w.uploadID,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: w.parts},
		})
		if err != nil && errorCode(err) == "NoSuchUpload" {
			out, herr := w.b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &w.b.bucket, Key: w.b.full(w.key)})
			if herr == nil && aws.ToInt64(out.ContentLength) == w.size && out.LastModified != nil &&
				time.Since(*out.LastModified) < w.b.r.maxElapsed+time.Minute {
				w.b.log.Info("multipart upload completed by an earlier attempt", "object", w.uri())
				return nil
			}
		}
		return err
	})
}

// Abort drops the buffered data and aborts the multipart upload, if one was started. After
// Commit it does nothing, so `defer w.Abort(ctx)` is safe.
func (w *s3Writer) Abort(ctx context.Context) error {
	if w.closed {
		return nil
	}
	w.closed = true
	defer w.release()
	_ = w.wait()
	if w.uploadID == "" {
		return nil
	}
	if err := w.b.abortUpload(ctx, w.b.prefix+w.key, w.uploadID); err != nil {
		return fmt.Errorf("abort %s: %w", w.uri(), err)
	}
	return nil
}

// abortQuietly cleans up after a failed Commit, even when ctx is already cancelled; a leftover
// upload is logged (AbortStale collects it later).
func (w *s3Writer) abortQuietly(ctx context.Context) {
	_ = w.wait()
	if w.uploadID == "" {
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := w.b.abortUpload(actx, w.b.prefix+w.key, w.uploadID); err != nil {
		w.b.log.Warn("abort multipart upload after failed commit", "object", w.uri(), "err", err)
	}
}

func (w *s3Writer) release() { w.buf, w.spare, w.parts = nil, nil, nil }
