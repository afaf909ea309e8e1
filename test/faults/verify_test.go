//go:build faults

package faults

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/objstore"
)

// group is one (table, process_date, batch_id) of the input: one member of one archive.
type group struct {
	table, date, batch, archiveID string
	header                        []string
	rows                          [][]string
}

func (g *group) prefix() string {
	return fmt.Sprintf("%s/process_date=%s/batch_id=%s/", g.table, g.date, g.batch)
}

// readInput parses every table member of the generated archives with encoding/csv, independently
// of sluice.
func (s *scenario) readInput() map[string]*group {
	groups := map[string]*group{}
	for _, a := range s.manifest.Archives {
		want := map[string]int{}
		for i, mi := range a.Members {
			if mi.Table != "" {
				want[mi.Name] = i
			}
		}
		f, err := os.Open(a.Path)
		if err != nil {
			s.t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			s.t.Fatal(err)
		}
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				s.t.Fatalf("%s: %v", a.Name, err)
			}
			i, ok := want[h.Name]
			if !ok {
				continue
			}
			mi := a.Members[i]
			body, err := io.ReadAll(tr)
			if err != nil {
				s.t.Fatal(err)
			}
			body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
			r := csv.NewReader(bytes.NewReader(body))
			r.FieldsPerRecord = -1
			recs, err := r.ReadAll()
			if err != nil {
				s.t.Fatalf("%s/%s: %v", a.Name, h.Name, err)
			}
			if bytes.Contains(body, []byte("\r\n")) {
				restoreQuotedCRLF(recs)
			}
			g := &group{table: mi.Table, date: mi.ProcessDate, batch: mi.Batch, archiveID: s.archiveIDs[a.Name],
				header: recs[0], rows: recs[1:]}
			if len(g.rows) != mi.Rows {
				s.t.Fatalf("%s/%s: parsed %d rows, manifest says %d", a.Name, h.Name, len(g.rows), mi.Rows)
			}
			if _, dup := groups[g.prefix()]; dup {
				s.t.Fatalf("two members for %s", g.prefix())
			}
			groups[g.prefix()] = g
		}
		zr.Close()
		f.Close()
	}
	return groups
}

// restoreQuotedCRLF undoes encoding/csv's one normalization, which sluice does not make: it reads a
// quoted "\r\n" as "\n". The generator writes a CRLF member's line breaks inside quoted values as
// "\r\n" too, so in such a member every '\n' of a value stands for "\r\n".
func restoreQuotedCRLF(recs [][]string) {
	for _, rec := range recs {
		for i, f := range rec {
			rec[i] = strings.ReplaceAll(f, "\n", "\r\n")
		}
	}
}

var partKey = regexp.MustCompile(`^(.+)/process_date=([^/]+)/batch_id=([^/]+)/part-([0-9a-f]{20})(-[0-9]{4})?\.parquet$`)

// verify reads every object of the output back and compares it with the input, row by row: a
// row's identity is the multiset of its (column, value) pairs, the CSV cell read under the type
// the column has in the object. It records rows checked, lost, duplicated and foreign (matching
// no input row), and fails the test on any of them, on an unreadable object, on a temporary or
// unexpected key, on quarantined rows and (S3) on an unfinished multipart upload.
func (s *scenario) verify() {
	t := s.t
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	groups := s.readInput()

	var keys []objstore.Attrs
	if err := s.readBucket.List(ctx, "", "", func(a objstore.Attrs) error {
		keys = append(keys, a)
		return nil
	}); err != nil {
		t.Fatalf("list output: %v", err)
	}
	objects := map[string][]string{} // group prefix -> parquet keys
	for _, a := range keys {
		k := a.Key
		switch {
		case strings.Contains(k, ".tmp-"):
			s.errorf("temporary object listed: %s", k)
		case strings.HasPrefix(k, "_summaries/"):
			if strings.HasSuffix(k, ".json") {
				s.checkJSON(ctx, k)
			}
		case strings.HasPrefix(k, "_schemas/"):
			s.checkJSON(ctx, k)
		case strings.HasPrefix(k, "_quarantine/"):
			s.errorf("quarantine object %s: the generated input has no row to quarantine", k)
		case strings.HasPrefix(k, "_dq/"):
			// Column profiles (no rules are configured here): complete Parquet, like every object.
			s.readObject(ctx, k, nil, maphash.MakeSeed(), nil, nil)
		default:
			m := partKey.FindStringSubmatch(k)
			if m == nil {
				s.errorf("unexpected object %s", k)
				continue
			}
			prefix := fmt.Sprintf("%s/process_date=%s/batch_id=%s/", m[1], m[2], m[3])
			objects[prefix] = append(objects[prefix], k)
			s.fig.Objects++
		}
	}

	seed := maphash.MakeSeed()
	var lost, dup, foreign, read int64
	for prefix, ks := range objects {
		if groups[prefix] == nil {
			// An object where no input row belongs: every row in it is foreign.
			for _, k := range ks {
				n := s.readObject(ctx, k, nil, seed, nil, nil)
				foreign += n
				read += n
				s.errorf("object %s holds %d rows for a (table, date, batch) that is not in the input", k, n)
			}
		}
	}
	for prefix, g := range groups {
		want := map[uint64]int64{}
		got := map[uint64]int64{}
		ks := objects[prefix]
		for _, k := range ks {
			if m := partKey.FindStringSubmatch(k); m[4] != g.archiveID {
				s.errorf("object %s: archive id %s, the member came from archive %s", k, m[4], g.archiveID)
			}
			read += s.readObject(ctx, k, g, seed, got, want)
		}
		if len(ks) == 0 || len(want) == 0 && len(g.rows) > 0 {
			lost += int64(len(g.rows))
			s.errorf("%s: no readable object, %d rows lost", prefix, len(g.rows))
			continue
		}
		var gl, gd, gf int64
		for fp, n := range want {
			if d := n - got[fp]; d > 0 {
				gl += d
			}
		}
		for fp, n := range got {
			w, ok := want[fp]
			switch {
			case !ok:
				gf += n
			case n > w:
				gd += n - w
			}
		}
		if gl+gd+gf > 0 {
			s.errorf("%s (%d objects): %d rows in, %d lost, %d duplicated, %d foreign", prefix, len(ks), len(g.rows), gl, gd, gf)
		}
		lost, dup, foreign = lost+gl, dup+gd, foreign+gf
	}
	s.fig.RowsRead, s.fig.Lost, s.fig.Duplicated, s.fig.Foreign = read, lost, dup, foreign

	if s.outDir != "" {
		// Temporary files of writers killed mid-write stay on disk (never listed) until a merger
		// starting an hour later collects them (StaleUploadAge): informational.
		n := 0
		_ = filepath.WalkDir(s.outDir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
				n++
			}
			return nil
		})
		if n > 0 {
			s.fig.Note = strings.TrimSpace(s.fig.Note + fmt.Sprintf(" temp files left on disk (never listed): %d", n))
		}
	}
	if s.s3Bucket != "" {
		s.checkUploads(ctx)
	}
	t.Logf("read back %d objects, %d rows (want %d): lost %d, duplicated %d, foreign %d; faults %s",
		s.fig.Objects, read, s.fig.RowsWant, lost, dup, foreign, faultString(s.fig.Faults))
	if read != s.fig.RowsWant && lost+dup+foreign == 0 {
		s.errorf("read %d rows, want %d", read, s.fig.RowsWant)
	}
}

func (s *scenario) checkJSON(ctx context.Context, key string) {
	rc, err := s.readBucket.Get(ctx, key)
	if err != nil {
		s.errorf("read %s: %v", key, err)
		return
	}
	defer rc.Close()
	var v any
	if err := json.NewDecoder(rc).Decode(&v); err != nil {
		s.errorf("%s is not complete JSON: %v", key, err)
	}
}

// openTable reads a whole Parquet object (footer first, then every row group).
func (s *scenario) openTable(ctx context.Context, key string) (arrow.Table, error) {
	ra, err := objstore.ReaderAt(ctx, s.readBucket, key)
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	pf, err := file.NewParquetReader(ra)
	if err != nil {
		return nil, fmt.Errorf("parquet footer: %w", err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
	if err != nil {
		return nil, err
	}
	tbl, err := fr.ReadTable(ctx)
	if err != nil {
		return nil, fmt.Errorf("read row groups: %w", err)
	}
	if tbl.NumRows() != pf.NumRows() {
		tbl.Release()
		return nil, fmt.Errorf("footer says %d rows, read %d", pf.NumRows(), tbl.NumRows())
	}
	return tbl, nil
}

// readObject adds the fingerprint of every row of key to got and returns the rows read. When
// want is empty it also fills it with the fingerprints of g's CSV rows, each cell read under the
// type its column has in this object.
func (s *scenario) readObject(ctx context.Context, key string, g *group, seed maphash.Seed, got, want map[uint64]int64) int64 {
	tbl, err := s.openTable(ctx, key)
	if err != nil {
		s.errorf("object %s is not complete Parquet: %v", key, err)
		return 0
	}
	defer tbl.Release()
	if got == nil || g == nil {
		return tbl.NumRows()
	}
	sc := tbl.Schema()
	var names []string
	for _, f := range sc.Fields() {
		names = append(names, f.Name)
	}
	// An object carries every column of its schema version (docs/DESIGN.md): the member's header
	// columns, plus registry columns the member lacks, which must be null in every row (the
	// fingerprints below read an absent column as null).
	for _, c := range g.header {
		if !slices.Contains(names, c) {
			s.errorf("object %s: columns %v lack the member's column %q", key, names, c)
		}
	}
	order := sortedFields(sc)
	if len(want) == 0 {
		fingerprintInput(sc, order, g, seed, want)
	}
	tr := array.NewTableReader(tbl, 64<<10)
	defer tr.Release()
	vals := make([]string, len(order))
	for tr.Next() {
		rec := tr.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			for j, fi := range order {
				vals[j] = arrowCell(rec.Column(fi), i)
			}
			got[fingerprint(seed, sc, order, vals)]++
		}
	}
	return tbl.NumRows()
}

// fingerprintInput adds the fingerprint of every CSV row of g, each cell read under the type of
// its column in sc, to want.
func fingerprintInput(sc *arrow.Schema, order []int, g *group, seed maphash.Seed, want map[uint64]int64) {
	pos := make([]int, len(order))
	for j, fi := range order {
		pos[j] = slices.Index(g.header, sc.Field(fi).Name)
	}
	nulls := map[string]bool{}
	for _, n := range config.DefaultNullTokens {
		nulls[n] = true
	}
	vals := make([]string, len(order))
	for _, row := range g.rows {
		for j, fi := range order {
			cell := ""
			if pos[j] >= 0 && pos[j] < len(row) {
				cell = row[pos[j]]
			}
			if nulls[cell] && (cell == "" || sc.Field(fi).Type.ID() != arrow.STRING) { // the null rule (docs/DESIGN.md)
				vals[j] = nullCell
			} else {
				vals[j] = csvCell(sc.Field(fi).Type, cell)
			}
		}
		want[fingerprint(seed, sc, order, vals)]++
	}
}

const nullCell = "\x00null"

func sortedFields(sc *arrow.Schema) []int {
	order := make([]int, sc.NumFields())
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(sc.Field(a).Name, sc.Field(b).Name) })
	return order
}

func fingerprint(seed maphash.Seed, sc *arrow.Schema, order []int, vals []string) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	for j, fi := range order {
		h.WriteString(sc.Field(fi).Name)
		h.WriteByte(0)
		h.WriteString(vals[j])
		h.WriteByte(0x1f)
	}
	return h.Sum64()
}

// arrowCell renders one value canonically (numbers by value, temporal values as integers).
func arrowCell(col arrow.Array, i int) string {
	if col.IsNull(i) {
		return nullCell
	}
	switch a := col.(type) {
	case *array.String:
		return a.Value(i)
	case *array.LargeString:
		return a.Value(i)
	case *array.Int64:
		return strconv.FormatInt(a.Value(i), 10)
	case *array.Float64:
		return strconv.FormatFloat(a.Value(i), 'g', -1, 64)
	case *array.Boolean:
		return strconv.FormatBool(a.Value(i))
	case *array.Date32:
		return strconv.FormatInt(int64(a.Value(i)), 10)
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		return strconv.FormatInt(a.Value(i).ToTime(unit).UnixMicro(), 10)
	}
	return fmt.Sprintf("unsupported %s: %s", col.DataType(), col.ValueStr(i))
}

var tsLayouts = []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", time.RFC3339Nano, "2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02"}

// csvCell renders a CSV cell the way arrowCell renders the value it should have become under t;
// a cell that does not parse as t is marked so that it matches nothing.
func csvCell(t arrow.DataType, cell string) string {
	bad := "\x00bad:" + cell
	switch t.ID() {
	case arrow.STRING, arrow.LARGE_STRING:
		return cell
	case arrow.INT64:
		v, err := strconv.ParseInt(cell, 10, 64)
		if err != nil {
			return bad
		}
		return strconv.FormatInt(v, 10)
	case arrow.FLOAT64:
		v, err := strconv.ParseFloat(cell, 64)
		if err != nil {
			return bad
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	case arrow.BOOL:
		v, err := strconv.ParseBool(strings.ToLower(cell))
		if err != nil {
			return bad
		}
		return strconv.FormatBool(v)
	case arrow.DATE32:
		d, err := time.Parse("2006-01-02", cell)
		if err != nil {
			return bad
		}
		return strconv.FormatInt(int64(arrow.Date32FromTime(d)), 10)
	case arrow.TIMESTAMP:
		for _, l := range tsLayouts {
			if v, err := time.Parse(l, cell); err == nil {
				return strconv.FormatInt(v.UnixMicro(), 10)
			}
		}
		return bad
	case arrow.NULL:
		return bad // a non-null cell in an all-null column
	}
	return bad
}

// errorf reports a verification failure (collected instead in quiet mode, for the self-test).
func (s *scenario) errorf(format string, args ...any) {
	s.t.Helper()
	if s.quiet {
		s.problems = append(s.problems, fmt.Sprintf(format, args...))
		return
	}
	s.t.Errorf(format, args...)
}
