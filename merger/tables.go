package merger

import (
	"fmt"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/table"
)

// tableSettings are the partners' parsing options of each table: delimiter, null tokens, hints
// and overrides.
type tableSettings struct {
	partners *config.File
	hints    map[string]map[string]map[string]table.Hint // partner -> table -> column -> hint
}

func newTableSettings(f *config.File) (*tableSettings, error) {
	hints, err := parseHints(f)
	if err != nil {
		return nil, err
	}
	return &tableSettings{partners: f, hints: hints}, nil
}

// parseHints reads every partner's per-table hints (may widen) and overrides (strict).
func parseHints(f *config.File) (map[string]map[string]map[string]table.Hint, error) {
	out := map[string]map[string]map[string]table.Hint{}
	for _, p := range f.Partners {
		tables := map[string]map[string]table.Hint{}
		for tname, tc := range p.Tables {
			h := map[string]table.Hint{}
			for col, ts := range tc.Hints {
				t, err := table.ParseType(ts)
				if err != nil {
					return nil, fmt.Errorf("partner %s table %s hint %s: %w", p.Name, tname, col, err)
				}
				h[col] = table.Hint{Type: t}
			}
			for col, ts := range tc.Overrides {
				t, err := table.ParseType(ts)
				if err != nil {
					return nil, fmt.Errorf("partner %s table %s override %s: %w", p.Name, tname, col, err)
				}
				h[col] = table.Hint{Type: t, Strict: true}
			}
			tables[tname] = h
		}
		out[p.Name] = tables
	}
	return out, nil
}

// options are the parsing options of a table for a partner; delim (one byte, from the chunks)
// wins over the partner's delimiter.
func (t *tableSettings) options(partner, tbl, delim string) table.Options {
	p := t.partners.Partner(partner)
	o := table.Options{NullTokens: p.NullTokens, StringsCanBeNull: p.StringsCanBeNull}
	d := p.Delimiter
	if len(delim) == 1 {
		d = delim
	}
	if len(d) == 1 {
		o.Delimiter = d[0]
	}
	if h := t.hints[p.Name][tbl]; len(h) > 0 {
		o.Hints = h
	}
	return o
}
