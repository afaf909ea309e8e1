package producer

import (
	"errors"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/ledger"
)

// TestSameVersion: a path's indexed version is its ETag and size when both sides have an ETag
// (S3: LastModified has one-second resolution, an overwrite within it keeps it), else its size
// and mtime (a copy that keeps the mtime, cp -p or rsync -t, can still change the size).
func TestSameVersion(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	e := ledger.PathEntry{URI: "u", Size: 10, MtimeMs: t0.UnixMilli(), ArchiveID: "a"}
	s3 := e
	s3.ETag = `"e1"`
	for _, tc := range []struct {
		name string
		e    ledger.PathEntry
		c    candidate
		want bool
	}{
		{"local same", e, candidate{size: 10, mtime: t0}, true},
		{"local size changed, mtime kept", e, candidate{size: 11, mtime: t0}, false},
		{"local touched", e, candidate{size: 10, mtime: t0.Add(time.Second)}, false},
		{"not indexed", ledger.PathEntry{Size: 10, MtimeMs: t0.UnixMilli()}, candidate{size: 10, mtime: t0}, false},
		{"s3 same", s3, candidate{size: 10, mtime: t0, etag: `"e1"`}, true},
		{"s3 overwritten in the same second", s3, candidate{size: 10, mtime: t0, etag: `"e2"`}, false},
		{"s3 same etag, newer LastModified", s3, candidate{size: 10, mtime: t0.Add(time.Hour), etag: `"e1"`}, true},
	} {
		if got := sameVersion(tc.e, tc.c); got != tc.want {
			t.Errorf("%s: sameVersion = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestChangedWhileHashed: the bytes hashed must be the version listed. An S3 object that is not
// the size listed is an item error (listed again next scan); a local file whose size or mtime
// moved while it was read is observed afresh and waits.
func TestChangedWhileHashed(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	p := &Producer{obs: map[string]observation{}, now: func() time.Time { return t0.Add(time.Minute) }}
	var ie *itemError
	if changed, err := p.changedWhileHashed(candidate{uri: "s3://b/k", size: 10}, 9); !changed || !errors.As(err, &ie) {
		t.Errorf("s3 object read short: changed %v, err %v; want an item error", changed, err)
	}
	if changed, err := p.changedWhileHashed(candidate{uri: "s3://b/k", size: 10}, 10); changed || err != nil {
		t.Errorf("s3 object read whole: changed %v, err %v", changed, err)
	}
	for _, tc := range []struct {
		name        string
		size        int64
		mtime       time.Time
		read        int64
		wantChanged bool
	}{
		{"unchanged", 10, t0, 10, false},
		{"read short", 10, t0, 9, true},
		{"grew after the read", 12, t0, 10, true},
		{"rewritten in place, same size", 10, t0.Add(time.Second), 10, true},
	} {
		c := candidate{uri: "file:///l/" + tc.name, size: 10, mtime: t0, local: true,
			restat: func() (int64, time.Time, error) { return tc.size, tc.mtime, nil }}
		changed, err := p.changedWhileHashed(c, tc.read)
		if err != nil || changed != tc.wantChanged {
			t.Errorf("%s: changed %v, err %v; want %v", tc.name, changed, err, tc.wantChanged)
		}
		if o, ok := p.obs[c.uri]; ok != tc.wantChanged || (ok && (o.size != tc.size || !o.mtime.Equal(tc.mtime) || !o.since.Equal(p.now()))) {
			t.Errorf("%s: observation %+v (%v)", tc.name, o, ok)
		}
	}
}
