package producer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// scanDir walks the landing directory tree in lexical order. Every file is looked at on every
// poll (a readdir and a stat each: cheap locally); only new or changed versions are hashed.
func (p *Producer) scanDir(ctx context.Context, st *scanState) error {
	present := map[string]bool{}
	var waiting []string
	walkErr := filepath.WalkDir(p.dir, func(abs string, d fs.DirEntry, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rel := p.rel(abs)
		if err != nil {
			if abs == p.dir {
				return fmt.Errorf("walk landing %s: %w", p.dir, err)
			}
			if !errors.Is(err, fs.ErrNotExist) {
				st.itemErrs = append(st.itemErrs, &itemError{uri: fileURI(abs), err: err})
			}
			return nil // an unreadable folder is skipped, the others are walked
		}
		if d.IsDir() {
			if abs != p.dir && ignoredBase(d.Name()) == skipHidden {
				st.res.Ignored = append(st.res.Ignored, rel+"/")
				return fs.SkipDir
			}
			return nil
		}
		partner, skip := p.classify(rel)
		if skip != "" {
			p.skip(st, rel, skip)
			return nil
		}
		c, err := p.localCandidate(abs, rel, partner)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			st.itemErrs = append(st.itemErrs, &itemError{uri: fileURI(abs), err: err})
			return nil
		}
		if c == nil { // not a regular file (a device, a socket, a link to a folder)
			st.res.Ignored = append(st.res.Ignored, rel)
			return nil
		}
		present[c.uri] = true
		w, err := p.handle(ctx, *c, st)
		var ie *itemError
		switch {
		case errors.As(err, &ie):
			p.log.Debug("skip file", "uri", c.uri, "err", err) // Run logs the scan error once
			st.itemErrs = append(st.itemErrs, err)
		case err != nil:
			return err
		case w:
			waiting = append(waiting, abs)
		}
		return nil
	})
	if walkErr != nil {
		return walkErr
	}
	for uri := range p.paths { // forget files that are gone; the ledger keeps their index entry
		if !present[uri] {
			delete(p.paths, uri)
		}
	}
	for uri := range p.obs {
		if !present[uri] {
			delete(p.obs, uri)
		}
	}
	if p.cfg.Once {
		waiting = p.waitStable(ctx, st, waiting)
	}
	for _, abs := range waiting {
		st.res.Waiting = append(st.res.Waiting, p.rel(abs))
	}
	return nil
}

// waitStable is Once mode's patience: files that were still changing are looked at again every
// little while until each is taken or gone, or ctx ends. It returns those still waiting.
func (p *Producer) waitStable(ctx context.Context, st *scanState, waiting []string) []string {
	pause := min(p.cfg.PollInterval, p.cfg.StableFor)
	for len(waiting) > 0 {
		if p.sleep(ctx, pause) != nil {
			return waiting
		}
		var still []string
		for _, abs := range waiting {
			c, err := p.localCandidate(abs, p.rel(abs), "")
			if err != nil || c == nil {
				continue // gone, or not a file any more
			}
			c.partner, _ = p.classify(c.rel)
			w, err := p.handle(ctx, *c, st)
			if err != nil {
				if ctx.Err() != nil {
					return append(still, abs)
				}
				st.itemErrs = append(st.itemErrs, err)
				continue
			}
			if w {
				still = append(still, abs)
			}
		}
		waiting = still
	}
	return nil
}

// localCandidate stats abs (following a symlink to a file). It returns nil for anything that is
// not a regular file.
func (p *Producer) localCandidate(abs, rel, partner string) (*candidate, error) {
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil
	}
	return &candidate{
		uri:     fileURI(abs),
		rel:     rel,
		name:    filepath.Base(abs),
		partner: partner,
		size:    fi.Size(),
		mtime:   fi.ModTime(),
		local:   true,
		open: func(context.Context) (io.ReadCloser, error) {
			return os.Open(abs)
		},
		restat: func() (int64, time.Time, error) {
			fi, err := os.Stat(abs)
			if err != nil {
				return 0, time.Time{}, err
			}
			return fi.Size(), fi.ModTime(), nil
		},
	}, nil
}

func (p *Producer) rel(abs string) string {
	r, err := filepath.Rel(p.dir, abs)
	if err != nil {
		return abs
	}
	return filepath.ToSlash(r)
}

// fileURI renders an absolute path as file:///abs/path, escaped as a URL path the way
// objstore's directory bucket renders its URIs (a space becomes %20), so url.Parse reads it back.
func fileURI(abs string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
}
