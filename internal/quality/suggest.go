package quality

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-dev/sluice/internal/config"
)

// Thresholds of Suggest.
const (
	// suggestMaxAllowed: a text column with at most this many distinct values over the history gets allowed.
	suggestMaxAllowed = 20
	// suggestUniqueShare: a column whose distinct estimate is at least this share of its rows in every batch is
	// key-like (the HyperLogLog estimate is within about 1% at this precision).
	suggestUniqueShare = 0.97
	// suggestRangeMargin: a number range is widened by this share of the span seen on each side.
	suggestRangeMargin = 0.1
)

// Suggest proposes a table's quality block from the profiles of its past batches (as read back from
// _dq/profiles, any number of batches and dates). Every suggested rule holds on the batches it was drawn from
// (their action is the default, warn):
//   - key: the first column (in profile order) that is int64 or string, never null, and key-like in every batch
//     (no duplicate where the batch's count is exact, up to 1024 values; distinct ≥ 97% of the values beyond);
//     unique: the other key-like columns;
//   - not_null: every other column with rows and no null;
//   - allowed: string columns with at most 20 distinct values over the whole history, each seen twice on average;
//   - range: int64 and float64 columns, [min, max] widened by 10% of the span on each side (not below 0 when no
//     negative value was seen), rounded outwards;
//   - row_count: [half the smallest batch (at least 1; no minimum when a batch was empty), twice the largest];
//   - volume: with 3 or more dates, trailing_days 7, min_history 3 (fewer with a shorter history) and max_change
//     twice the largest relative deviation of a date's total from the median total, between 0.2 and 0.5.
//
// A column is judged on the profiles of its latest type (a column widened since is judged as it is now).
func Suggest(profiles []Profile) *config.Quality {
	q := &config.Quality{Columns: map[string]*config.ColumnRules{}}
	if len(profiles) == 0 {
		return q
	}
	// columns in first-seen order; the type of the latest date wins
	var order []string
	latest := map[string]Profile{}
	for _, p := range profiles {
		l, seen := latest[p.Column]
		if !seen {
			order = append(order, p.Column)
		}
		if !seen || p.ProcessDate >= l.ProcessDate {
			latest[p.Column] = p
		}
	}
	type batchKey struct{ date, archive, batch string }
	batchRows := map[batchKey]int64{}
	merged := map[string]Profile{}
	keyLike := map[string]bool{}
	for _, c := range order {
		keyLike[c] = true
	}
	for _, p := range profiles {
		batchRows[batchKey{p.ProcessDate, p.ArchiveID, p.BatchID}] = p.Rows
		if p.Type != latest[p.Column].Type {
			continue
		}
		if m, ok := merged[p.Column]; ok {
			if mm, err := Merge(m, p); err == nil {
				merged[p.Column] = mm
			}
		} else {
			merged[p.Column] = p
		}
		// a batch's count is exact up to exactMax distinct values: then key-like means no duplicate at all
		values := p.Rows - p.Nulls
		if values > 0 && (p.Distinct < values && p.Distinct <= exactMax || float64(p.Distinct) < suggestUniqueShare*float64(values)) {
			keyLike[p.Column] = false
		}
	}

	for _, c := range order {
		m := merged[c]
		values := m.Rows - m.Nulls
		rules := &config.ColumnRules{}
		isKey := keyLike[c] && m.Nulls == 0 && values > 0 && (m.Type == "int64" || m.Type == "string")
		switch {
		case isKey && q.Key == nil:
			q.Key = &config.KeyRule{Columns: []string{c}}
		case isKey:
			rules.Unique = true
			rules.NotNull = true
		case m.Nulls == 0 && m.Rows > 0:
			rules.NotNull = true
		}
		if m.text() && !m.ValuesOverflow && len(m.Values) > 0 && len(m.Values) <= suggestMaxAllowed &&
			values >= 2*int64(len(m.Values)) && !isKey {
			rules.Allowed = slices.Clone(m.Values)
		}
		if m.numeric() && values > 0 {
			rules.Range = suggestRange(m)
		}
		if rules.NotNull || rules.Unique || rules.Allowed != nil || rules.Range != nil {
			q.Columns[c] = rules
		}
	}
	if len(q.Columns) == 0 {
		q.Columns = nil
	}

	// row_count and volume
	var smallest, largest int64 = math.MaxInt64, 0
	perDate := map[string]int64{}
	for k, n := range batchRows {
		smallest, largest = min(smallest, n), max(largest, n)
		perDate[k.date] += n
	}
	tr := &config.TableRules{}
	if len(batchRows) > 0 && largest > 0 {
		hi := 2 * largest
		tr.RowCount = &config.RowCountRule{Max: &hi}
		if smallest > 0 {
			lo := max(1, smallest/2)
			tr.RowCount.Min = &lo
		}
	}
	if len(perDate) >= 3 {
		totals := make([]float64, 0, len(perDate))
		for _, n := range perDate {
			totals = append(totals, float64(n))
		}
		sort.Float64s(totals)
		med := totals[len(totals)/2]
		if len(totals)%2 == 0 {
			med = (totals[len(totals)/2-1] + med) / 2
		}
		dev := 0.0
		for _, t := range totals {
			if med > 0 {
				dev = max(dev, math.Abs(t/med-1))
			}
		}
		change := math.Ceil(min(0.5, max(0.2, 2*dev))*20) / 20 // a multiple of 0.05
		tr.Volume = &config.VolumeRule{TrailingDays: config.DefaultVolumeTrailingDays, MaxChange: &change,
			MinHistory: min(config.DefaultVolumeMinHistory, len(perDate))}
	}
	if tr.RowCount != nil || tr.Volume != nil {
		q.Table = tr
	}
	return q
}

// suggestRange widens the [min, max] of a number column by suggestRangeMargin of the span on each side (of the
// magnitude for a constant column), rounded outwards to the margin's order of magnitude; not below 0 when the
// column was never negative.
func suggestRange(m Profile) *config.Range {
	lo, err1 := strconv.ParseFloat(m.Min, 64)
	hi, err2 := strconv.ParseFloat(m.Max, 64)
	if err1 != nil || err2 != nil {
		return nil
	}
	margin := (hi - lo) * suggestRangeMargin
	if margin == 0 {
		margin = math.Max(math.Abs(hi)*suggestRangeMargin, 1)
	}
	step := math.Pow(10, math.Floor(math.Log10(margin)))
	if m.Type == "int64" {
		step = math.Max(step, 1)
	}
	rlo := math.Floor((lo-margin)/step) * step
	rhi := math.Ceil((hi+margin)/step) * step
	if lo >= 0 && rlo < 0 {
		rlo = 0
	}
	text := func(f float64) string {
		if m.Type == "int64" || (f == math.Trunc(f) && math.Abs(f) < 1<<53) {
			return strconv.FormatFloat(f, 'f', -1, 64)
		}
		// strip float noise from the rounding: as many digits as the step needs
		digits := max(0, int(-math.Floor(math.Log10(step))))
		return strconv.FormatFloat(f, 'f', digits, 64)
	}
	return &config.Range{Min: text(rlo), Max: text(rhi)}
}

// RenderYAML writes q as a `quality:` block, ready to paste under a table of the partner configuration.
func RenderYAML(q *config.Quality) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(map[string]*config.Quality{"quality": q}); err != nil {
		return nil, fmt.Errorf("render quality block: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("render quality block: %w", err)
	}
	return buf.Bytes(), nil
}
