package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
)

type ioReadCloser = io.ReadCloser

// openURI opens an archive location named in an ArchiveLanded event.
func openURI(ctx context.Context, c *common, e *env, uri string) (io.ReadCloser, error) {
	switch {
	case strings.HasPrefix(uri, "s3://"):
		u, err := url.Parse(uri)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", uri, err)
		}
		b, err := openBucket(ctx, c, e, "s3://"+u.Host)
		if err != nil {
			return nil, err
		}
		rc, err := b.Get(ctx, strings.TrimPrefix(u.Path, "/"))
		if err != nil {
			b.Close()
			return nil, err
		}
		return rc, nil
	case strings.HasPrefix(uri, "file://"):
		u, err := url.Parse(uri)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", uri, err)
		}
		return os.Open(u.Path)
	default:
		return os.Open(uri)
	}
}
