package merger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/quality"
	"github.com/sluice-dev/sluice/internal/table"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// Data quality in the commit path (docs/DATA-QUALITY.md, internal/quality): every group of a batch
// (one process date and batch id) gets a quality.Batch; each row group the Builder makes is checked
// before it is written (rows a quarantine rule rejects are removed and go to the quarantine object
// with the rule), the batch's results and column profiles are written under _dq/ with its objects,
// and a failed `fail` rule stops the commit: the batch is dead-lettered with the rule, observed
// and expected values (qualityFailure), unless the commit is forced (`sluice dlq retry --force`).

// qualityRules compiles and caches each (partner, table)'s rules.
type qualityRules struct {
	partners *config.File
	mu       sync.Mutex
	rules    map[[2]string]*quality.Rules
}

func (q *qualityRules) get(partner, tbl string) (*quality.Rules, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := [2]string{partner, tbl}
	if r, ok := q.rules[k]; ok {
		return r, nil
	}
	var tq, defaults *config.Quality
	if q.partners != nil && len(q.partners.Partners) > 0 {
		p := q.partners.Partner(partner)
		defaults = p.QualityDefaults
		if tc, ok := p.Tables[tbl]; ok {
			tq = tc.Quality
		}
	}
	r, err := quality.Compile(tbl, tq, defaults)
	if err != nil {
		return nil, fmt.Errorf("data-quality rules of %s/%s: %w", partner, tbl, err)
	}
	if q.rules == nil {
		q.rules = map[[2]string]*quality.Rules{}
	}
	q.rules[k] = r
	return r, nil
}

// ErrRulesDoNotFit is why a merger refused to start: its data-quality rules do not fit the schema
// registry (a configuration to correct: `sluice run` and `sluice merger` exit 78).
var ErrRulesDoNotFit = errors.New("data-quality rules do not fit the tables' schemas")

// checkRules refuses, at start, data-quality rules that do not fit the schema registry: a rule
// on a column of another type (a regex on numbers), or on a column the table has never had
// (quality.CheckSchema). A table the registry does not know yet is checked when its first batch
// commits (its rules on absent columns then record missing_column); it is logged here.
func (c *committer) checkRules(ctx context.Context) error {
	p := c.quality.partners
	if p == nil {
		return nil
	}
	var errs []error
	for _, partner := range p.Partners {
		for tbl, tc := range partner.Tables {
			if tc.Quality == nil {
				continue
			}
			s, _, err := c.loadSchema(ctx, schemaRegistryKey(tbl))
			if err != nil {
				return err
			}
			if s == nil {
				c.log.Warn("data-quality rules for a table not seen yet: checked against its first batch", "partner", partner.Name, "table", tbl)
				continue
			}
			if err := quality.CheckSchema(partner.Name, tbl, tc.Quality, s); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrRulesDoNotFit, err)
	}
	return nil
}

// qualityFailure is a batch a fail rule rejected: permanent (a retry of the same rows under the
// same rules fails the same way), dead-lettered with the rules' outcomes.
type qualityFailure struct{ failed []quality.Result }

func (e *qualityFailure) Error() string {
	parts := make([]string, 0, len(e.failed))
	for _, r := range e.failed {
		what := r.Rule
		if r.Column != "" {
			what += "(" + r.Column + ")"
		}
		parts = append(parts, fmt.Sprintf("%s failed: observed %s, expected %s", what, r.Observed, r.Expected))
	}
	return "data quality: " + strings.Join(parts, "; ") + " (relax the rule and `sluice dlq retry`, or commit anyway with `sluice dlq retry --force`)"
}

// absentColumns are the columns of s that no member of the chunks (a group's) has.
func absentColumns(b *batch, chunks []*chunk, s *table.Schema) []string {
	have := map[string]bool{}
	seen := map[uint32]bool{}
	for _, ch := range chunks {
		if seen[ch.member] {
			continue
		}
		seen[ch.member] = true
		for _, n := range b.members[ch.member].names {
			have[n] = true
		}
	}
	var out []string
	for _, c := range s.Columns {
		if !have[c.Name] {
			out = append(out, c.Name)
		}
	}
	return out
}

var (
	reAdded   = regexp.MustCompile(`^added column "(.*)" \(`)
	reWidened = regexp.MustCompile(`^widened column "(.*)":`)
)

// schemaChanges reads the columns added and widened by the schema change this batch made (the
// Changes table.Evolve writes), none when it changed nothing.
func schemaChanges(s *table.Schema, changed bool) (added, widened []string) {
	if !changed || s == nil {
		return nil, nil
	}
	for _, c := range s.Changes {
		if m := reAdded.FindStringSubmatch(c); m != nil {
			added = append(added, m[1])
		} else if m := reWidened.FindStringSubmatch(c); m != nil {
			widened = append(widened, m[1])
		}
	}
	return added, widened
}

// rowOf renders row i of rec as column → value (nulls left out), for a quarantine line.
func rowOf(rec arrow.RecordBatch, i int) map[string]string {
	out := make(map[string]string, rec.NumCols())
	for j, col := range rec.Columns() {
		if col.IsValid(i) {
			out[rec.ColumnName(j)] = col.ValueStr(i)
		}
	}
	return out
}

// protoResults turns results into the event's form.
func protoResults(rs []quality.Result) []*sluicev1.QualityResult {
	out := make([]*sluicev1.QualityResult, 0, len(rs))
	for _, r := range rs {
		out = append(out, &sluicev1.QualityResult{Rule: r.Rule, Column: r.Column, Kind: r.Kind, Action: r.Action,
			Status: r.Status, CheckedRows: r.CheckedRows, FailedRows: r.FailedRows, Observed: r.Observed,
			Expected: r.Expected, ProcessDate: r.ProcessDate, BatchId: r.BatchID})
	}
	return out
}

// qualityObjects renders a group's results and profiles as Parquet, for Put with the batch.
func (c *committer) qualityObjects(results []quality.Result, profiles []quality.Profile) (res, prof []byte, err error) {
	var rb, pb bytes.Buffer
	if len(results) > 0 {
		if err := quality.WriteResults(&rb, c.alloc, results); err != nil {
			return nil, nil, fmt.Errorf("encode data-quality results: %w", err)
		}
	}
	if len(profiles) > 0 {
		if err := quality.WriteProfiles(&pb, c.alloc, profiles); err != nil {
			return nil, nil, fmt.Errorf("encode column profiles: %w", err)
		}
	}
	return rb.Bytes(), pb.Bytes(), nil
}
