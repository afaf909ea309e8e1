package merger

import (
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Per-object dictionary choice. arrow-go dictionary-encodes every column by default: every value of
// every column chunk goes through a hash table. For a column of (nearly) unique values that table
// grows until the dictionary page limit (1 MiB) makes the writer fall back to PLAIN, or it is kept
// as a dictionary as large as the values plus indices zstd cannot shrink. On the generated corpus
// such columns (amounts, coordinates, timestamps, ids) came out 30% or more larger with a dictionary
// than PLAIN+zstd, and hashing them (lookups, table growth, zeroing) was the largest part of the
// encoder's CPU; low-cardinality columns (codes, statuses, dates) were 1.3–2× smaller with one.
// So each Parquet object decides per column, from its first record batch (a whole row group, or the
// whole object when smaller), whether to use a dictionary; later row groups follow that choice.
const (
	// dictSample is how many values of a column, spread evenly over the batch, are looked at.
	dictSample = 4096
	// dictMaxRatio: a dictionary when the column's distinct values are estimated at most this share
	// of its (non-null) values. Dictionary and PLAIN+zstd broke even at about 0.4–0.6 on the corpus.
	dictMaxRatio = 0.4
)

// writerProps are the Parquet writer properties: zstd, statistics on, the Arrow schema stored in
// the footer. Dictionary encoding is chosen per object and column (objectProps). Nothing in them
// depends on time or host, so the same rows under the same schema always encode to the same bytes.
func writerProps(alloc memory.Allocator, zstdLevel int) ([]parquet.WriterProperty, pqarrow.ArrowWriterProperties) {
	return []parquet.WriterProperty{
			parquet.WithCompression(compress.Codecs.Zstd),
			parquet.WithCompressionLevel(zstdLevel),
			parquet.WithStats(true),
			parquet.WithAllocator(alloc),
		},
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(alloc))
}

// objectProps returns the writer properties of a Parquet object whose first record batch is rec
// (nil for an object without rows): base, plus dictionary encoding turned off for the columns where
// useDictionary says it does not pay. The choice depends only on the batch's values, so the same
// rows still encode to the same bytes.
func objectProps(base []parquet.WriterProperty, rec arrow.RecordBatch) *parquet.WriterProperties {
	if rec == nil || rec.NumRows() == 0 {
		return parquet.NewWriterProperties(base...)
	}
	limit := parquet.NewWriterProperties(base...).DictionaryPageSizeLimit()
	opts := append([]parquet.WriterProperty(nil), base...)
	var set distinctSet
	sc := rec.Schema()
	for i, col := range rec.Columns() {
		if dict, ok := useDictionary(col, limit, &set); ok && !dict {
			opts = append(opts, parquet.WithDictionaryPath(parquet.ColumnPath{sc.Field(i).Name}, false))
		}
	}
	return parquet.NewWriterProperties(opts...)
}

// useDictionary estimates whether dictionary encoding pays off for column a: the number of distinct
// values among up to dictSample values spread evenly over a is compared with what a column with
// maxD distinct values (of equal frequency) would show in such a sample, where maxD is the lesser
// of dictMaxRatio of a's non-null values and the number of values that fit the dictionary page
// limit. All values are looked at when there are at most dictSample. Skewed columns look like
// fewer distinct values and keep the dictionary (arrow-go's default). ok is false when there is
// nothing to decide: no non-null value, or a type arrow-go never dictionary-encodes (bool).
// set is scratch space, reused across calls.
func useDictionary(a arrow.Array, limit int64, set *distinctSet) (dict, ok bool) {
	n := a.Len() - a.NullN()
	if n == 0 {
		return false, false
	}
	var key func(i int) uint64
	width := 0.0 // bytes per dictionary entry; for strings the sampled mean plus the 4-byte length
	var str *array.String
	switch a := a.(type) {
	case *array.Int64:
		v := a.Int64Values()
		key, width = func(i int) uint64 { return uint64(v[i]) }, 8
	case *array.Float64:
		v := a.Float64Values()
		key, width = func(i int) uint64 { return math.Float64bits(v[i]) }, 8
	case *array.Timestamp:
		v := a.TimestampValues()
		key, width = func(i int) uint64 { return uint64(v[i]) }, 8
	case *array.Date32:
		v := a.Date32Values()
		key, width = func(i int) uint64 { return uint64(uint32(v[i])) }, 4
	case *array.String:
		str = a
		key = func(i int) uint64 { return hashString(a.Value(i)) }
	default:
		return false, false
	}

	set.reset()
	size := a.Len()
	sampled, strBytes := 0, 0
	for k := range min(size, dictSample) {
		i := k
		if size > dictSample {
			i = int(int64(k) * int64(size) / dictSample)
		}
		if a.IsNull(i) {
			continue
		}
		set.add(key(i))
		sampled++
		if str != nil {
			strBytes += str.ValueLen(i)
		}
	}
	if sampled == 0 { // every sampled position was null
		return false, false
	}
	if str != nil {
		width = float64(strBytes)/float64(sampled) + 4
	}
	maxD := min(dictMaxRatio*float64(n), float64(limit)/width)
	return float64(set.n) <= expectedDistinct(maxD, float64(n), float64(sampled)), true
}

// expectedDistinct is the expected number of distinct values in a sample of s of the n values of a
// column holding d distinct values, each n/d times: d·(1 − (1 − s/n)^(n/d)). It is d when s = n.
func expectedDistinct(d, n, s float64) float64 {
	if d <= 0 {
		return 0
	}
	if s >= n {
		return d
	}
	return d * (1 - math.Pow(1-s/n, n/d))
}

// distinctSet counts distinct uint64 keys, at most dictSample of them: open addressing over a
// table at most half full, 0 marking an empty slot (the key 0 is counted on the side).
type distinctSet struct {
	slots   [1 << distinctBits]uint64
	zero    bool
	n       int
	started bool
}

const distinctBits = 13

var _ [1<<distinctBits - 2*dictSample]struct{} // the table must stay at most half full

func (s *distinctSet) reset() {
	if s.started {
		clear(s.slots[:])
	}
	s.zero, s.n, s.started = false, 0, true
}

func (s *distinctSet) add(k uint64) {
	if k == 0 {
		if !s.zero {
			s.zero = true
			s.n++
		}
		return
	}
	const mask = 1<<distinctBits - 1
	i := (k * 0x9E3779B97F4A7C15) >> (64 - distinctBits) // Fibonacci hashing: the top bits
	for {
		switch s.slots[i] {
		case 0:
			s.slots[i] = k
			s.n++
			return
		case k:
			return
		}
		i = (i + 1) & mask
	}
}

// hashString is 64-bit FNV-1a: deterministic (the choice must not vary between runs) and cheap on
// the short strings of CSV columns. A collision only makes a column look less distinct.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
