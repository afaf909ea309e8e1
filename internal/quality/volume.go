package quality

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/sluice-dev/sluice/internal/config"
)

// DayTotal is a table's row total of one process date (rows written, over every batch of the date).
type DayTotal struct {
	ProcessDate string // YYYY-MM-DD
	Rows        int64
}

// Volume checks the table's volume rule for a process date whose row total is rows, given the totals of earlier
// dates; ok is false when the table has no volume rule. See CheckVolume.
func (r *Rules) Volume(processDate string, rows int64, history []DayTotal) (res Result, ok bool, err error) {
	if r.tbl.volume == nil {
		return Result{}, false, nil
	}
	res, err = CheckVolume(r.table, *r.tbl.volume, processDate, rows, history)
	return res, err == nil, err
}

// VolumeTrailingDays is the number of calendar days before a process date that the table's volume rule looks at
// (its trailing_days or the default); ok is false when the table has no volume rule. A caller gathering the
// history for Volume needs no older totals.
func (r *Rules) VolumeTrailingDays() (days int, ok bool) {
	if r.tbl.volume == nil {
		return 0, false
	}
	return r.tbl.volume.Days(), true
}

// CheckVolume is the volume rule as a pure function. The trailing days are the rule's trailing_days calendar days
// before processDate; history entries of other dates are ignored, and several entries of one date add up. Only
// days with rows count ("days with data"). With fewer than min_history of them the status is pass and Observed
// says "insufficient history". Else the baseline is their median total (the mean of the two middle ones for an
// even count), the band baseline·(1 ± max_change) (its lower end at least 0), and a total outside the band (ends
// included in it) has the rule's action as status. Expected holds the baseline and the band.
func CheckVolume(tableName string, rule config.VolumeRule, processDate string, rows int64, history []DayTotal) (Result, error) {
	day, err := time.Parse(time.DateOnly, processDate)
	if err != nil {
		return Result{}, fmt.Errorf("volume of %s: process date %q: %w", tableName, processDate, err)
	}
	days, need, change := rule.Days(), rule.History(), rule.Change()
	res := Result{Table: tableName, ProcessDate: processDate, Rule: RuleVolume, Kind: KindDate,
		Action: orWarn(rule.Action), CheckedRows: rows, Status: StatusPass}
	window := map[string]int64{}
	from := day.AddDate(0, 0, -days).Format(time.DateOnly)
	for _, h := range history {
		if h.ProcessDate >= from && h.ProcessDate < processDate {
			window[h.ProcessDate] += h.Rows
		}
	}
	var totals []int64
	for _, n := range window {
		if n > 0 {
			totals = append(totals, n)
		}
	}
	if len(totals) < need {
		res.Observed = fmt.Sprintf("insufficient history: %d of %d days with data; %d rows", len(totals), need, rows)
		res.Expected = fmt.Sprintf("rows within %s of the median of the %d days before (needs %d days with data)", percent(change), days, need)
		return res, nil
	}
	slices.Sort(totals)
	baseline := float64(totals[len(totals)/2])
	if len(totals)%2 == 0 {
		baseline = (float64(totals[len(totals)/2-1]) + baseline) / 2
	}
	lo, hi := math.Max(0, baseline*(1-change)), baseline*(1+change)
	res.Expected = fmt.Sprintf("baseline %s (median of %d days with data in the %d before), band [%s, %s] (±%s)",
		round2(baseline), len(totals), days, round2(lo), round2(hi), percent(change))
	rel := 0.0
	if baseline > 0 {
		rel = float64(rows)/baseline - 1
	}
	sign := "+"
	if rel < 0 {
		sign = ""
	}
	res.Observed = fmt.Sprintf("%d rows (%s%s from the baseline)", rows, sign, percent(rel))
	if float64(rows) < lo || float64(rows) > hi {
		res.Status = statusOf(res.Action)
	}
	return res, nil
}

func round2(f float64) string { return formatFloat(math.Round(f*100) / 100) }
