package quality

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Result is the outcome of one rule on one batch (Kind row or table) or one process date (Kind date).
type Result struct {
	Table       string
	ArchiveID   string // "" for date results
	ProcessDate string // YYYY-MM-DD
	BatchID     string // "" for date results
	Rule        string // not_null, unique, allowed, range, regex, max_length, key, row_count, freshness,
	// schema.added, schema.removed, schema.widened, quarantine, volume
	Column      string // the rule's column; key: its columns joined by commas; schema.*: the columns concerned
	Kind        string // row, table, date
	Action      string // warn, quarantine, fail
	Status      string // pass, warn, fail, missing_column
	CheckedRows int64  // row rules: rows (not_null, key) or non-null values (the others) checked
	FailedRows  int64  // row rules: rows that failed; schema.*: columns concerned; quarantine: rows quarantined
	Observed    string // what was found, e.g. "12 of 1000 values fail (1.2%); e.g. \"-1\""
	Expected    string // what the rule asks, e.g. "in [0, 100000]"
}

// resultSchema is the Parquet (Arrow) schema of results, in Result's field order; every column is required.
var resultSchema = arrow.NewSchema([]arrow.Field{
	{Name: "table_name", Type: arrow.BinaryTypes.String},
	{Name: "archive_id", Type: arrow.BinaryTypes.String},
	{Name: "process_date", Type: arrow.BinaryTypes.String},
	{Name: "batch_id", Type: arrow.BinaryTypes.String},
	{Name: "rule", Type: arrow.BinaryTypes.String},
	{Name: "column_name", Type: arrow.BinaryTypes.String},
	{Name: "kind", Type: arrow.BinaryTypes.String},
	{Name: "action", Type: arrow.BinaryTypes.String},
	{Name: "status", Type: arrow.BinaryTypes.String},
	{Name: "checked_rows", Type: arrow.PrimitiveTypes.Int64},
	{Name: "failed_rows", Type: arrow.PrimitiveTypes.Int64},
	{Name: "observed", Type: arrow.BinaryTypes.String},
	{Name: "expected", Type: arrow.BinaryTypes.String},
}, nil)

// profileSchema is the Parquet (Arrow) schema of profiles, in Profile's field order. Columns that do not apply to
// a column's type (mean of a string, lengths of a number, min of an all-null column) are null.
var profileSchema = arrow.NewSchema([]arrow.Field{
	{Name: "table_name", Type: arrow.BinaryTypes.String},
	{Name: "archive_id", Type: arrow.BinaryTypes.String},
	{Name: "process_date", Type: arrow.BinaryTypes.String},
	{Name: "batch_id", Type: arrow.BinaryTypes.String},
	{Name: "column_name", Type: arrow.BinaryTypes.String},
	{Name: "type", Type: arrow.BinaryTypes.String},
	{Name: "rows", Type: arrow.PrimitiveTypes.Int64},
	{Name: "nulls", Type: arrow.PrimitiveTypes.Int64},
	{Name: "distinct_count", Type: arrow.PrimitiveTypes.Int64},
	{Name: "min", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "max", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "mean", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "stddev", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "min_length", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "max_length", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "values_seen", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	{Name: "values_overflow", Type: arrow.FixedWidthTypes.Boolean},
	{Name: "sketch", Type: arrow.BinaryTypes.Binary},
}, nil)

// writerOnly hides Close from the Parquet writer, which would close the caller's writer.
type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(p []byte) (int, error) { return w.w.Write(p) }

// writeParquet writes rec as one zstd Parquet file (one row group) to w.
func writeParquet(w io.Writer, mem memory.Allocator, rec arrow.RecordBatch) error {
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithCompressionLevel(1), parquet.WithAllocator(mem),
		parquet.WithStats(true))
	fw, err := pqarrow.NewFileWriter(rec.Schema(), writerOnly{w}, props, pqarrow.NewArrowWriterProperties(pqarrow.WithAllocator(mem)))
	if err != nil {
		return fmt.Errorf("start parquet: %w", err)
	}
	if err := fw.Write(rec); err != nil {
		_ = fw.Close()
		return fmt.Errorf("write parquet: %w", err)
	}
	if err := fw.Close(); err != nil {
		return fmt.Errorf("finish parquet: %w", err)
	}
	return nil
}

// WriteResults writes results as one zstd Parquet file to w (columns: resultSchema, snake_case of Result's
// fields, table_name and column_name for Table and Column: "table" and "column" are SQL keywords). w is not
// closed.
func WriteResults(w io.Writer, mem memory.Allocator, results []Result) error {
	b := array.NewRecordBuilder(mem, resultSchema)
	defer b.Release()
	str := func(i int) *array.StringBuilder { return b.Field(i).(*array.StringBuilder) }
	i64 := func(i int) *array.Int64Builder { return b.Field(i).(*array.Int64Builder) }
	for _, r := range results {
		for i, s := range []string{r.Table, r.ArchiveID, r.ProcessDate, r.BatchID, r.Rule, r.Column, r.Kind, r.Action, r.Status} {
			str(i).Append(s)
		}
		i64(9).Append(r.CheckedRows)
		i64(10).Append(r.FailedRows)
		str(11).Append(r.Observed)
		str(12).Append(r.Expected)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	return writeParquet(w, mem, rec)
}

// WriteProfiles writes profiles as one zstd Parquet file to w (columns: profileSchema, snake_case of Profile's
// fields, with table_name, column_name, distinct_count and values_seen for Table, Column, Distinct and Values:
// SQL keywords avoided). w is not closed.
func WriteProfiles(w io.Writer, mem memory.Allocator, profiles []Profile) error {
	b := array.NewRecordBuilder(mem, profileSchema)
	defer b.Release()
	str := func(i int) *array.StringBuilder { return b.Field(i).(*array.StringBuilder) }
	i64 := func(i int) *array.Int64Builder { return b.Field(i).(*array.Int64Builder) }
	f64 := func(i int) *array.Float64Builder { return b.Field(i).(*array.Float64Builder) }
	optStr := func(i int, ok bool, s string) {
		if ok {
			str(i).Append(s)
		} else {
			str(i).AppendNull()
		}
	}
	for _, p := range profiles {
		for i, s := range []string{p.Table, p.ArchiveID, p.ProcessDate, p.BatchID, p.Column, p.Type} {
			str(i).Append(s)
		}
		i64(6).Append(p.Rows)
		i64(7).Append(p.Nulls)
		i64(8).Append(p.Distinct)
		has := p.Rows > p.Nulls
		optStr(9, has, p.Min)
		optStr(10, has, p.Max)
		if has && p.numeric() {
			f64(11).Append(p.Mean)
			f64(12).Append(p.Stddev)
		} else {
			f64(11).AppendNull()
			f64(12).AppendNull()
		}
		if has && p.text() {
			i64(13).Append(p.MinLength)
			i64(14).Append(p.MaxLength)
		} else {
			i64(13).AppendNull()
			i64(14).AppendNull()
		}
		lb := b.Field(15).(*array.ListBuilder)
		if p.text() && !p.ValuesOverflow {
			lb.Append(true)
			vb := lb.ValueBuilder().(*array.StringBuilder)
			for _, v := range p.Values {
				vb.Append(v)
			}
		} else {
			lb.AppendNull()
		}
		b.Field(16).(*array.BooleanBuilder).Append(p.ValuesOverflow)
		b.Field(17).(*array.BinaryBuilder).Append(p.Sketch)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	return writeParquet(w, mem, rec)
}

// readParquet reads a whole Parquet file and calls row for each record batch, its columns looked up by name in
// want (a column the file lacks is nil).
func readParquet(r parquet.ReaderAtSeeker, mem memory.Allocator, want *arrow.Schema, each func(cols []arrow.Array, n int) error) error {
	tbl, err := pqarrow.ReadTable(context.Background(), r, parquet.NewReaderProperties(mem), pqarrow.ArrowReadProperties{}, mem)
	if err != nil {
		return fmt.Errorf("read parquet: %w", err)
	}
	defer tbl.Release()
	tr := array.NewTableReader(tbl, 0)
	defer tr.Release()
	idx := make([]int, want.NumFields())
	for i, f := range want.Fields() {
		idx[i] = -1
		if j := tbl.Schema().FieldIndices(f.Name); len(j) > 0 {
			idx[i] = j[0]
		}
	}
	for tr.Next() {
		rec := tr.RecordBatch()
		cols := make([]arrow.Array, len(idx))
		for i, j := range idx {
			if j >= 0 {
				cols[i] = rec.Column(j)
			}
		}
		if err := each(cols, int(rec.NumRows())); err != nil {
			return err
		}
	}
	return tr.Err()
}

func strAt(a arrow.Array, i int) string {
	if s, ok := a.(*array.String); ok && s.IsValid(i) {
		return strings.Clone(s.Value(i)) // the table's memory is released after reading
	}
	return ""
}

func i64At(a arrow.Array, i int) int64 {
	if v, ok := a.(*array.Int64); ok && v.IsValid(i) {
		return v.Value(i)
	}
	return 0
}

func f64At(a arrow.Array, i int) float64 {
	if v, ok := a.(*array.Float64); ok && v.IsValid(i) {
		return v.Value(i)
	}
	return 0
}

// ReadResults reads a file written by WriteResults.
func ReadResults(r parquet.ReaderAtSeeker, mem memory.Allocator) ([]Result, error) {
	var out []Result
	err := readParquet(r, mem, resultSchema, func(c []arrow.Array, n int) error {
		for i := range n {
			out = append(out, Result{
				Table: strAt(c[0], i), ArchiveID: strAt(c[1], i), ProcessDate: strAt(c[2], i), BatchID: strAt(c[3], i),
				Rule: strAt(c[4], i), Column: strAt(c[5], i), Kind: strAt(c[6], i), Action: strAt(c[7], i),
				Status: strAt(c[8], i), CheckedRows: i64At(c[9], i), FailedRows: i64At(c[10], i),
				Observed: strAt(c[11], i), Expected: strAt(c[12], i),
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	return out, nil
}

// ReadProfiles reads a file written by WriteProfiles.
func ReadProfiles(r parquet.ReaderAtSeeker, mem memory.Allocator) ([]Profile, error) {
	var out []Profile
	err := readParquet(r, mem, profileSchema, func(c []arrow.Array, n int) error {
		for i := range n {
			p := Profile{
				Table: strAt(c[0], i), ArchiveID: strAt(c[1], i), ProcessDate: strAt(c[2], i), BatchID: strAt(c[3], i),
				Column: strAt(c[4], i), Type: strAt(c[5], i), Rows: i64At(c[6], i), Nulls: i64At(c[7], i),
				Distinct: i64At(c[8], i), Min: strAt(c[9], i), Max: strAt(c[10], i), Mean: f64At(c[11], i),
				Stddev: f64At(c[12], i), MinLength: i64At(c[13], i), MaxLength: i64At(c[14], i),
			}
			if l, ok := c[15].(*array.List); ok && l.IsValid(i) {
				vals := l.ListValues().(*array.String)
				start, end := l.ValueOffsets(i)
				for j := start; j < end; j++ {
					p.Values = append(p.Values, strings.Clone(vals.Value(int(j))))
				}
			}
			if v, ok := c[16].(*array.Boolean); ok && v.IsValid(i) {
				p.ValuesOverflow = v.Value(i)
			}
			if v, ok := c[17].(*array.Binary); ok && v.IsValid(i) {
				p.Sketch = append([]byte(nil), v.Value(i)...)
			}
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read profiles: %w", err)
	}
	return out, nil
}
