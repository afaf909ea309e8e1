package pipeline_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/sluice-dev/sluice/internal/gen"
	"github.com/sluice-dev/sluice/internal/objstore"
)

// csvMember is one table member of a generated archive, parsed independently of sluice.
type csvMember struct {
	table, date, batch string
	header             []string
	rows               [][]string
}

// readMembers parses every table member of the generated archives with encoding/csv.
func readMembers(t *testing.T, m *gen.Manifest) []csvMember {
	t.Helper()
	var out []csvMember
	for _, a := range m.Archives {
		want := map[string]gen.MemberInfo{}
		for _, mi := range a.Members {
			if mi.Table != "" {
				want[mi.Name] = mi
			}
		}
		err := gen.WalkArchive(a.Path, func(h *tar.Header, r io.Reader) error {
			mi, ok := want[h.Name]
			if !ok {
				return nil
			}
			body, _ := io.ReadAll(r)
			body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
			recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
			if err != nil {
				t.Fatalf("%s: %v", h.Name, err)
			}
			if bytes.Contains(body, []byte("\r\n")) {
				// encoding/csv reads a quoted "\r\n" as "\n"; sluice keeps the bytes, and gen writes the
				// line breaks inside values of a CRLF member as "\r\n".
				for _, rec := range recs {
					for i, f := range rec {
						rec[i] = strings.ReplaceAll(f, "\n", "\r\n")
					}
				}
			}
			out = append(out, csvMember{table: mi.Table, date: mi.ProcessDate, batch: mi.Batch, header: recs[0], rows: recs[1:]})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// readParquet reads one object back through the bucket.
func readParquet(t *testing.T, b objstore.Bucket, key string) arrow.Table {
	t.Helper()
	ctx := context.Background()
	ra, err := objstore.ReaderAt(ctx, b, key)
	if err != nil {
		t.Fatalf("open %s: %v", key, err)
	}
	defer ra.Close()
	pf, err := file.NewParquetReader(ra)
	if err != nil {
		t.Fatalf("parquet %s: %v", key, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(ctx)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return tbl
}

// cellString renders an Arrow value the way a CSV writer of the same data would, for comparison.
func cellEqual(col arrow.Array, i int, csvCell string) (bool, string) {
	if col.IsNull(i) {
		return csvCell == "", "null"
	}
	switch a := col.(type) {
	case *array.String:
		return a.Value(i) == csvCell, a.Value(i)
	case *array.Int64:
		v, err := strconv.ParseInt(csvCell, 10, 64)
		return err == nil && v == a.Value(i), strconv.FormatInt(a.Value(i), 10)
	case *array.Float64:
		v, err := strconv.ParseFloat(csvCell, 64)
		return err == nil && (v == a.Value(i) || math.Abs(v-a.Value(i)) < 1e-9), strconv.FormatFloat(a.Value(i), 'g', -1, 64)
	case *array.Boolean:
		return strings.EqualFold(csvCell, strconv.FormatBool(a.Value(i))), strconv.FormatBool(a.Value(i))
	case *array.Date32:
		s := a.Value(i).ToTime().Format("2006-01-02")
		return s == csvCell, s
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		got := a.Value(i).ToTime(unit).UTC()
		for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", time.RFC3339Nano, "2006-01-02 15:04:05Z07:00"} {
			if w, err := time.Parse(layout, csvCell); err == nil && w.UTC().Equal(got) {
				return true, got.String()
			}
		}
		return false, got.String()
	}
	return false, fmt.Sprintf("unsupported %s", col.DataType())
}

// checkTablesEqualInput asserts that for every generated member, the object at its deterministic
// key holds exactly its rows, column by column (matched by name), in order.
func checkTablesEqualInput(t *testing.T, m *gen.Manifest, out objstore.Bucket) (rows int) {
	t.Helper()
	ctx := context.Background()
	members := readMembers(t, m)
	byPartition := map[string][]csvMember{}
	for _, mb := range members {
		k := mb.table + "/process_date=" + mb.date + "/batch_id=" + mb.batch
		byPartition[k] = append(byPartition[k], mb)
	}
	for prefix, mbs := range byPartition {
		var keys []string
		if err := out.List(ctx, prefix+"/", "", func(a objstore.Attrs) error {
			if strings.HasSuffix(a.Key, ".parquet") {
				keys = append(keys, a.Key)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(keys) != len(mbs) {
			t.Errorf("%s: %d objects for %d members", prefix, len(keys), len(mbs))
			continue
		}
		if len(mbs) != 1 {
			continue // counts only; the generator writes one member per (table, date, batch)
		}
		mb := mbs[0]
		tbl := readParquet(t, out, keys[0])
		if int(tbl.NumRows()) != len(mb.rows) {
			t.Errorf("%s: %d rows, want %d", keys[0], tbl.NumRows(), len(mb.rows))
			tbl.Release()
			continue
		}
		for ci, name := range mb.header {
			idx := tbl.Schema().FieldIndices(name)
			if len(idx) != 1 {
				t.Errorf("%s: column %q missing", keys[0], name)
				continue
			}
			chunks := tbl.Column(idx[0]).Data().Chunks()
			r := 0
			bad := 0
			for _, ch := range chunks {
				for i := 0; i < ch.Len(); i++ {
					if ok, got := cellEqual(ch, i, mb.rows[r][ci]); !ok && bad < 3 {
						bad++
						t.Errorf("%s row %d column %s: got %s want %q", keys[0], r, name, got, mb.rows[r][ci])
					}
					r++
				}
			}
		}
		rows += int(tbl.NumRows())
		tbl.Release()
	}
	_ = path.Join
	return rows
}
