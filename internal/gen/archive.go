package gen

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/gzip"
)

// Member is one entry of an archive written by WriteArchive.
type Member struct {
	Name     string
	Body     []byte // regular files only
	Typeflag byte   // 0 = regular file; else a tar type (tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar…)
	Linkname string // for links
	Mode     int64  // 0 = 0644 for files, 0755 for directories, 0777 for symlinks
}

// fixtureTime is the ModTime of WriteArchive entries: fixed, so fixtures are byte-for-byte reproducible.
var fixtureTime = time.Date(2025, 3, 1, 6, 0, 0, 0, time.UTC)

// WriteArchive writes members, in order, as a .tar.gz at path (atomically, creating the directory). Names are
// written as given, so tests can build hostile archives ("../x", "/etc/x", links, devices).
func WriteArchive(path string, members []Member) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create dir for %s: %w", path, err)
	}
	gz, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	_, err := writeAtomic(path, gz, bufio.NewWriterSize(nil, 256<<10), func(tw *tar.Writer) error {
		for i, m := range members {
			h := &tar.Header{Name: m.Name, Typeflag: m.Typeflag, Linkname: m.Linkname, Mode: m.Mode,
				ModTime: fixtureTime.Add(time.Duration(i) * time.Second), Uname: "partner", Gname: "partner"}
			if h.Typeflag == 0 {
				h.Typeflag = tar.TypeReg
			}
			regular := h.Typeflag == tar.TypeReg
			if regular {
				h.Size = int64(len(m.Body))
			} else if len(m.Body) > 0 {
				return fmt.Errorf("member %s: a body needs a regular file, not type %q", m.Name, h.Typeflag)
			}
			if h.Mode == 0 {
				switch h.Typeflag {
				case tar.TypeDir:
					h.Mode = 0o755
				case tar.TypeSymlink:
					h.Mode = 0o777
				default:
					h.Mode = 0o644
				}
			}
			if err := tw.WriteHeader(h); err != nil {
				return fmt.Errorf("member %s: %w", m.Name, err)
			}
			if regular {
				if _, err := tw.Write(m.Body); err != nil {
					return fmt.Errorf("member %s: %w", m.Name, err)
				}
			}
		}
		return nil
	})
	return err
}

// writeAtomic writes a .tar.gz through fill into a temporary file next to path (.tmp-<name>-<random>, which
// neither ends in .tar.gz nor is visible under the final name), syncs it and renames it to path. It returns the
// archive's size. gz and bw are reset onto the file, so callers reuse them across archives.
func writeAtomic(path string, gz *gzip.Writer, bw *bufio.Writer, fill func(*tar.Writer) error) (size int64, err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, ".tmp-"+base+"-*")
	if err != nil {
		return 0, fmt.Errorf("create temp for %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o644); err != nil { // CreateTemp makes 0600; a producer may run as another user
		return 0, fmt.Errorf("chmod %s: %w", tmp, err)
	}
	bw.Reset(f)
	gz.Reset(bw)
	tw := tar.NewWriter(gz)
	if err = fill(tw); err != nil {
		return 0, fmt.Errorf("write archive %s: %w", path, err)
	}
	if err = errors.Join(tw.Close(), gz.Close(), bw.Flush()); err != nil {
		return 0, fmt.Errorf("write archive %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return 0, fmt.Errorf("sync %s: %w", tmp, err)
	}
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return 0, fmt.Errorf("close %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("publish archive %s: %w", path, err)
	}
	return st.Size(), nil
}

// streamAbove: members estimated above this size are generated twice (measure, then write) instead of being
// built in memory, because a tar header needs the size before the body.
const streamAbove = 16 << 20

// corpusWriter writes the archives of one Generate call, reusing its buffers and compressor.
type corpusWriter struct {
	cfg     Config
	gz      *gzip.Writer
	bw      *bufio.Writer
	scratch []byte // a whole member (up to streamAbove), or one chunk of a streamed one
}

func newCorpusWriter(cfg Config, archives []*archivePlan) *corpusWriter {
	// BestSpeed: CSV compresses well even at level 1, and compression is most of the cost of generating.
	gz, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	// Size the scratch buffer for the largest member built in memory, so it is not regrown member after member.
	var largest int64 = flushAt
	for _, ap := range archives {
		for _, m := range ap.members {
			if m.target == 0 && m.est <= streamAbove {
				largest = max(largest, m.est)
			}
		}
	}
	return &corpusWriter{cfg: cfg, gz: gz, bw: bufio.NewWriterSize(nil, 1<<20), scratch: make([]byte, 0, largest+largest/8+4096)}
}

func (w *corpusWriter) writeArchive(path string, ap *archivePlan) (ArchiveInfo, error) {
	info := ArchiveInfo{Name: filepath.Base(path), Path: path}
	extras := w.cfg.Extras && !ap.huge
	mtime := ap.date.Add(6*time.Hour + time.Duration(ap.n)*10*time.Minute)
	entry := 0
	put := func(tw *tar.Writer, name string, typeflag byte, body []byte) error {
		h := &tar.Header{Name: name, Typeflag: typeflag, Mode: 0o644, Size: int64(len(body)),
			ModTime: mtime.Add(time.Duration(entry) * time.Second), Uname: "partner", Gname: "partner"}
		if typeflag == tar.TypeDir {
			h.Mode = 0o755
		}
		entry++
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("member %s: %w", name, err)
		}
		if _, err := tw.Write(body); err != nil {
			return fmt.Errorf("member %s: %w", name, err)
		}
		info.Members = append(info.Members, MemberInfo{Name: name, Bytes: int64(len(body))})
		return nil
	}
	size, err := writeAtomic(path, w.gz, w.bw, func(tw *tar.Writer) error {
		if extras {
			if err := put(tw, "README.txt", tar.TypeReg, readme(ap)); err != nil {
				return err
			}
		}
		for i, mp := range ap.members {
			mi, err := w.writeMember(tw, mp, mtime.Add(time.Duration(entry)*time.Second))
			entry++
			if err != nil {
				return err
			}
			info.Members = append(info.Members, mi)
			if i == 0 && extras && ap.first {
				for _, x := range dataFolder() {
					if err := put(tw, x.Name, x.Typeflag, x.Body); err != nil {
						return err
					}
				}
			}
		}
		if extras && ap.first {
			if err := put(tw, "notes.csv", tar.TypeReg, notesCSV(ap)); err != nil {
				return err
			}
		}
		if extras {
			return put(tw, "manifest.json", tar.TypeReg, partnerManifest(ap, info.Members))
		}
		return nil
	})
	info.Bytes = size
	return info, err
}

// writeMember generates one table member into tw.
func (w *corpusWriter) writeMember(tw *tar.Writer, mp *memberPlan, mtime time.Time) (MemberInfo, error) {
	cols, textIdx := mp.t.schema(mp.day, w.cfg.Drift)
	name := mp.name()
	newGen := func() *memberGen {
		g := newMemberGen(w.cfg.Seed, cols, textIdx, mp.date, name, mp.style, mp.rows)
		if mp.defect {
			g.plantDefects(cols)
		}
		return g
	}
	h := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, ModTime: mtime, Uname: "partner", Gname: "partner"}
	mi := MemberInfo{Name: name, Table: mp.t.name, ProcessDate: mp.date.Format("2006-01-02"), Batch: mp.batch}
	for _, c := range cols {
		mi.Columns = append(mi.Columns, c.name)
	}
	if mp.target == 0 && mp.est <= streamAbove {
		var body []byte
		mi.Rows, mi.Bytes, body, _ = newGen().write(nil, w.scratch, mp.rows, 0)
		w.scratch = body[:0]
		h.Size = mi.Bytes
		if err := tw.WriteHeader(h); err != nil {
			return mi, fmt.Errorf("member %s: %w", name, err)
		}
		if _, err := tw.Write(body); err != nil {
			return mi, fmt.Errorf("member %s: %w", name, err)
		}
		return mi, nil
	}
	// Too big to hold: measure, then generate again straight into tar → gzip → file.
	var cw countWriter
	mi.Rows, mi.Bytes, w.scratch, _ = newGen().write(&cw, w.scratch, mp.rows, mp.target)
	h.Size = mi.Bytes
	if err := tw.WriteHeader(h); err != nil {
		return mi, fmt.Errorf("member %s: %w", name, err)
	}
	rows, size, scratch, err := newGen().write(tw, w.scratch, mp.rows, mp.target)
	w.scratch = scratch
	if err != nil {
		return mi, fmt.Errorf("member %s: %w", name, err)
	}
	if rows != mi.Rows || size != mi.Bytes {
		return mi, fmt.Errorf("member %s: second pass wrote %d rows/%d bytes, first %d/%d", name, rows, size, mi.Rows, mi.Bytes)
	}
	return mi, nil
}

// WalkArchive calls fn with the header and the contents of every entry of the .tar.gz at path, in
// order (tests read generated archives back with it). fn's error stops the walk.
func WalkArchive(path string, fn func(h *tar.Header, r io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("gunzip %s: %w", path, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if err := fn(h, tr); err != nil {
			return err
		}
	}
}
