package summarizer

import (
	"testing"

	sluicev1 "github.com/sluice-dev/sluice/proto/sluicev1"
)

// TestCommitQuality: a commit's results are split by process date (a result without one counts
// on the archive's first date, as an object does); a forced commit is FAIL even when no result
// says what failed; a status this version does not know counts as a warning.
func TestCommitQuality(t *testing.T) {
	const d1, d2 = "2025-01-01", "2025-01-02"
	res := func(date, status string) *sluicev1.QualityResult {
		return &sluicev1.QualityResult{Rule: "not_null", Column: "id", Kind: "row", Action: "warn", Status: status, ProcessDate: date, BatchId: "b1"}
	}
	c := &sluicev1.BatchCommitted{Quality: []*sluicev1.QualityResult{res(d1, "pass"), res(d1, "warn"), res(d2, "pass"), res("", "pass"), res(d2, "weird")}}
	q1 := resultsQuality(c.GetQuality(), c.GetQualityForced(), d1, true)
	if q1 == nil || q1.RulesPassed != 2 || q1.RulesWarned != 1 || len(q1.Results) != 1 || q1.Status != QualityWarn {
		t.Fatalf("d1 %+v", q1)
	}
	q2 := resultsQuality(c.GetQuality(), c.GetQualityForced(), d2, false)
	if q2 == nil || q2.RulesPassed != 1 || q2.RulesWarned != 1 || q2.Results[0].Status != "weird" || q2.Status != QualityWarn {
		t.Fatalf("d2 %+v", q2)
	}
	if q := resultsQuality(c.GetQuality(), c.GetQualityForced(), "2025-01-03", false); q != nil {
		t.Fatalf("a date without results %+v", q)
	}
	if q := resultsQuality(nil, false, d1, true); q != nil {
		t.Fatalf("no results %+v", q)
	}
	c.QualityForced = true
	if q := resultsQuality(c.GetQuality(), c.GetQualityForced(), d1, true); !q.Forced || q.Status != QualityFail || q.Results[0].Forced {
		t.Fatalf("forced without a failed result %+v", q)
	}
	c.Quality = append(c.Quality, res(d2, "fail"))
	if q := resultsQuality(c.GetQuality(), c.GetQualityForced(), d1, true); q.Forced || q.Status != QualityWarn {
		t.Fatalf("forced past a failure of another date %+v", q)
	}
	if q := resultsQuality(c.GetQuality(), c.GetQualityForced(), d2, false); !q.Forced || q.Status != QualityFail || !q.Results[1].Forced || q.Results[0].Forced {
		t.Fatalf("forced %+v", q)
	}
	if worseQuality("", QualityOK) != QualityOK || worseQuality(QualityFail, QualityWarn) != QualityFail || worseQuality(QualityOK, QualityWarn) != QualityWarn {
		t.Fatal("worseQuality")
	}
}
