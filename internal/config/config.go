// Package config holds the partner configuration (YAML) that onboards a partner without code:
// where archives land, how members are named, how CSV is written, type hints, expected sources.
// The zero configuration is valid: one "default" partner with the default member pattern.
package config

import (
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-dev/sluice/internal/table"
)

// DefaultMemberPattern matches {table}_{YYYYMMDD}_{batch}.csv; the table is greedy so names with
// underscores parse from the right.
const DefaultMemberPattern = `^(?P<table>.+)_(?P<date>\d{8})_(?P<batch>[^_]+)\.csv$`

// DefaultNullTokens are the values read as null.
var DefaultNullTokens = []string{"", "NULL", "null", "NA", "N/A"}

// File is the whole configuration file.
type File struct {
	Partners []Partner `yaml:"partners"`

	// Source is the YAML the file was read from (nil for the defaults): the mergers record it, so
	// that `replay` and `dlq retry` commit under the same configuration unless given another.
	Source []byte `yaml:"-"`
}

// Partner is one data source.
type Partner struct {
	Name          string `yaml:"name"`
	Landing       string `yaml:"landing,omitempty"`        // dir or s3://bucket/prefix (informational; --landing wins)
	ArchiveGlob   string `yaml:"archive_glob,omitempty"`   // which archive names belong to this partner, default "*.tar.gz"
	MemberPattern string `yaml:"member_pattern,omitempty"` // regexp with named groups table, date, batch
	// MemberMatch says what member_pattern is matched against: "name" (default), the member's
	// base name (data/x_20250301_1.csv → x_20250301_1.csv), or "path", its whole path inside
	// the archive (data/x_20250301_1.csv), for partners that keep the date or batch in a folder.
	MemberMatch string   `yaml:"member_match,omitempty"`
	Delimiter   string   `yaml:"delimiter,omitempty"` // one character, default ","
	Encoding    string   `yaml:"encoding,omitempty"`  // utf-8 (default), latin1, windows-1252
	NullTokens  []string `yaml:"null_tokens,omitempty"`
	// StringsCanBeNull: the null tokens other than "" are null in string columns too. Default false: a
	// column whose type is string keeps them as the text the partner sent (Arrow C++'s
	// strings_can_be_null); they are null in columns of every other type, and "" is null everywhere.
	StringsCanBeNull bool                   `yaml:"strings_can_be_null,omitempty"`
	Tables           map[string]TableConfig `yaml:"tables,omitempty"`
	Expected         *Expected              `yaml:"expected,omitempty"`
	// QualityDefaults are data-quality rules applied to every table of the partner: its table rules, and its
	// column rules and key to the tables that have those columns (docs/DATA-QUALITY.md).
	QualityDefaults *Quality `yaml:"quality_defaults,omitempty"`

	re *regexp.Regexp
	// anyArchive: archive_glob was not given (the default "*.tar.gz"): the partner takes the
	// archives no other partner's glob names, a fallback rather than a competing claim.
	anyArchive bool
}

// Fallback reports whether the partner's archive_glob is the default one, not given in the file.
func (p *Partner) Fallback() bool { return p.anyArchive }

// TableConfig carries per-table type hints. A hint is a starting type that may widen; an override
// (strict) fixes the type and quarantines values that do not parse.
type TableConfig struct {
	Hints     map[string]string `yaml:"hints,omitempty"`     // column -> type (may widen)
	Overrides map[string]string `yaml:"overrides,omitempty"` // column -> type (strict)
	Quality   *Quality          `yaml:"quality,omitempty"`   // data-quality rules (docs/DATA-QUALITY.md)
}

// Expected lists the sources a process date needs (wait_for_all_sources) and when to give up.
type Expected struct {
	// Sources are archive name globs; "{date}" is replaced with the process date as YYYYMMDD.
	Sources []string `yaml:"sources"`
	// Deadline is how long after the process date's midnight (UTC) the sources must be in,
	// e.g. "30h" means by 06:00 the next day.
	Deadline Duration `yaml:"deadline"`
}

// Duration is a time.Duration read from YAML as "30h", "90m".
type Duration struct{ time.Duration }

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("duration %q: %w", n.Value, err)
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the duration as FormatDuration does.
func (d Duration) MarshalYAML() (any, error) { return FormatDuration(d.Duration), nil }

// FormatDuration writes d as time.Duration.String does, without zero trailing units: "36h", "1h30m", not
// "36h0m0s".
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Load reads a configuration file; an empty path yields the defaults.
func Load(file string) (*File, error) {
	if file == "" {
		return Parse(nil, "")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(b, file)
}

// Parse reads a configuration from its YAML (name says where it came from, in errors); empty
// data yields the defaults.
func Parse(data []byte, name string) (*File, error) {
	f := &File{}
	if len(data) > 0 {
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		dec.KnownFields(true)
		if err := dec.Decode(f); err != nil {
			return nil, fmt.Errorf("parse config %s: %w", name, err)
		}
		f.Source = data
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return f, nil
}

// Validate fills defaults and checks every partner.
func (f *File) Validate() error {
	if len(f.Partners) == 0 {
		f.Partners = []Partner{{Name: "default"}}
	}
	seen := map[string]bool{}
	for i := range f.Partners {
		p := &f.Partners[i]
		if p.Name == "" {
			p.Name = fmt.Sprintf("partner%d", i+1)
		}
		if seen[p.Name] {
			return fmt.Errorf("partner %q defined twice", p.Name)
		}
		seen[p.Name] = true
		if p.ArchiveGlob == "" {
			p.ArchiveGlob, p.anyArchive = "*.tar.gz", true
		}
		if _, err := path.Match(p.ArchiveGlob, ""); err != nil {
			return fmt.Errorf("partner %s: archive_glob: %w", p.Name, err)
		}
		if p.MemberPattern == "" {
			p.MemberPattern = DefaultMemberPattern
		}
		re, err := regexp.Compile(p.MemberPattern)
		if err != nil {
			return fmt.Errorf("partner %s: member_pattern: %w", p.Name, err)
		}
		for _, g := range []string{"table", "date", "batch"} {
			if re.SubexpIndex(g) < 0 {
				return fmt.Errorf("partner %s: member_pattern lacks the named group %q", p.Name, g)
			}
		}
		p.re = re
		switch p.MemberMatch {
		case "":
			p.MemberMatch = "name"
		case "name", "path":
		default:
			return fmt.Errorf("partner %s: member_match must be name or path, got %q", p.Name, p.MemberMatch)
		}
		if p.Delimiter == "" {
			p.Delimiter = ","
		}
		if len(p.Delimiter) != 1 || p.Delimiter == "\"" || p.Delimiter == "\n" || p.Delimiter == "\r" {
			return fmt.Errorf("partner %s: delimiter must be one byte other than quote or newline", p.Name)
		}
		switch strings.ToLower(p.Encoding) {
		case "", "utf-8", "utf8":
			p.Encoding = "utf-8"
		case "latin1", "iso-8859-1", "windows-1252", "cp1252":
			p.Encoding = strings.ToLower(p.Encoding)
		default:
			return fmt.Errorf("partner %s: unsupported encoding %q", p.Name, p.Encoding)
		}
		if p.NullTokens == nil {
			p.NullTokens = append([]string(nil), DefaultNullTokens...)
		}
		if p.StringsCanBeNull && !slices.ContainsFunc(p.NullTokens, func(t string) bool { return t != "" }) {
			return fmt.Errorf("partner %s: strings_can_be_null has no effect: null_tokens holds no token but the empty one", p.Name)
		}
		if err := p.QualityDefaults.Validate(); err != nil {
			return fmt.Errorf("partner %s: quality_defaults: %w", p.Name, err)
		}
		tables := make([]string, 0, len(p.Tables))
		for t := range p.Tables {
			tables = append(tables, t)
		}
		slices.Sort(tables)
		for _, t := range tables {
			tc := p.Tables[t]
			if err := tc.Quality.Validate(); err != nil {
				return fmt.Errorf("partner %s: table %s: quality: %w", p.Name, t, err)
			}
			for kind, m := range map[string]map[string]string{"hints": tc.Hints, "overrides": tc.Overrides} {
				for col, typ := range m {
					if _, err := table.ParseType(typ); err != nil {
						return fmt.Errorf("partner %s: table %s: %s: column %s: type %q: want bool, int64, float64, date, timestamp, timestamptz or string",
							p.Name, t, kind, col, typ)
					}
				}
			}
		}
		if p.Expected != nil {
			for _, s := range p.Expected.Sources {
				if _, err := path.Match(strings.ReplaceAll(s, "{date}", "20250101"), ""); err != nil {
					return fmt.Errorf("partner %s: expected source %q: %w", p.Name, s, err)
				}
			}
		}
	}
	return nil
}

// PartnerFor returns the first partner whose written archive_glob matches the archive's base
// name, else the first fallback partner (no archive_glob) that does, else the first partner.
func (f *File) PartnerFor(archiveName string) *Partner {
	base := path.Base(strings.ReplaceAll(archiveName, "\\", "/"))
	var fallback *Partner
	for i := range f.Partners {
		if ok, _ := path.Match(f.Partners[i].ArchiveGlob, base); ok {
			if !f.Partners[i].anyArchive {
				return &f.Partners[i]
			}
			if fallback == nil {
				fallback = &f.Partners[i]
			}
		}
	}
	if fallback != nil {
		return fallback
	}
	return &f.Partners[0]
}

// Partner returns the partner by name, or the first one when the name is unknown or empty.
func (f *File) Partner(name string) *Partner {
	for i := range f.Partners {
		if f.Partners[i].Name == name {
			return &f.Partners[i]
		}
	}
	return &f.Partners[0]
}

// MemberName is what a table member's base name says.
type MemberName struct {
	Table       string
	Date        string // YYYYMMDD as written
	ProcessDate string // YYYY-MM-DD
	Batch       string
}

// MatchTarget is the part of a member's path inside the archive that member_pattern is matched
// against: its base name, or (member_match: path) the whole path without a leading "./".
func (p *Partner) MatchTarget(member string) string {
	if p.MemberMatch == "path" {
		return strings.TrimPrefix(path.Clean(member), "./")
	}
	return path.Base(member)
}

// ParseMember parses a member name (see MatchTarget) with the partner pattern. ok is false for a
// name that is not a table file (it does not match, or the date is not a calendar date). The date
// group may be written YYYYMMDD or YYYY-MM-DD.
func (p *Partner) ParseMember(base string) (MemberName, bool) {
	mn, err := p.ParseMemberName(base)
	return mn, err == nil
}

// ErrNotTableFile: a member name member_pattern does not match.
var ErrNotTableFile = errors.New("not a table file")

// ParseMemberName is ParseMember saying why a name is not a table's: ErrNotTableFile when
// member_pattern does not match (or leaves the table or batch empty); an error naming the date
// when the pattern matches but its date group is no calendar date (20251301): a table file
// misnamed, which the extractor rejects (a finding) rather than skips.
func (p *Partner) ParseMemberName(base string) (MemberName, error) {
	re := p.re
	if re == nil {
		re = regexp.MustCompile(p.MemberPattern)
	}
	m := re.FindStringSubmatch(base)
	if m == nil {
		return MemberName{}, ErrNotTableFile
	}
	mn := MemberName{Table: m[re.SubexpIndex("table")], Date: m[re.SubexpIndex("date")], Batch: m[re.SubexpIndex("batch")]}
	if mn.Table == "" || mn.Batch == "" {
		return MemberName{}, ErrNotTableFile
	}
	d, err := time.Parse("20060102", mn.Date)
	if err != nil {
		if d, err = time.Parse(time.DateOnly, mn.Date); err != nil {
			return MemberName{}, fmt.Errorf("date %q is not a calendar date", mn.Date)
		}
	}
	mn.ProcessDate = d.Format("2006-01-02")
	return mn, nil
}
