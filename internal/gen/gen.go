// Package gen writes realistic synthetic partner archives: .tar.gz files of CSV members named
// {table}_{YYYYMMDD}_{batch}.csv, plus the ground truth (Manifest) that tests, the demo and benchmarks compare
// sluice's output against.
//
// What the data holds, on purpose:
//   - per-table schemas of 5–15 columns: ids and counts, fixed-point floats with 1–4 decimals (negative ones too),
//     dates, timestamps ("2025-03-01 14:05:09", and "2025-03-01T14:05:09Z" in some tables), zip-like codes with
//     leading zeros, strings with commas, doubled quotes and (rarely) newlines inside quoted fields;
//   - nulls only as empty fields, never NULL/NA tokens; no true/false columns (see kind);
//   - from the second process date on (Config.Drift): an added column, a dropped column, a reordered pair, and a
//     numeric column that holds words ("unknown", "pending"…) on some rows;
//   - members with a UTF-8 BOM, members with CRLF line endings, members whose last record has no terminator;
//   - a table in several archives of a day with batch ids 001, 002…; (table, date, batch) is unique in the corpus;
//   - non-table members (Config.Extras): README.txt, manifest.json, notes.csv, a data/reference/ folder.
//
// Output is a pure function of the Config: the same seed gives byte-identical archives.
package gen

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Defaults applied to zero fields of Config.
const (
	DefaultDays          = 2
	DefaultStartDate     = "20250301"
	DefaultArchives      = 2
	DefaultTables        = 6
	DefaultRowsPerMember = 2000
)

// Config says what to generate. Zero numeric fields take the defaults above. Drift and Extras are plain bools, so
// their zero value is false: start from DefaultConfig (which sets both) to get the documented defaults.
type Config struct {
	Out           string // directory to write archives into (created)
	Seed          int64  // deterministic output for a seed
	Days          int    // process dates, default 2, starting StartDate
	StartDate     string // YYYYMMDD, default 20250301
	Archives      int    // archives per day, default 2
	Tables        int    // tables in the catalogue, default 6
	RowsPerMember int    // default 2,000 (rows vary ±50% per member)
	TargetBytes   int64  // if > 0: total CSV bytes to aim for across the corpus, HugeMemberBytes not included
	LargeTable    bool   // one table (flight_records or store_traffic_hourly if present, else the first) holds ~40% of the bytes
	// LargeShare, when > 0, is the large table's share of the bytes instead of ~40% (LargeTable only).
	LargeShare float64
	// FlightRecords makes the first table of the catalogue a narrow, numeric-heavy one shaped like
	// public on-time flight data: a timestamp, two small integers and two 3-letter airport codes
	// (the shape DuckDB converts fastest; make bench's flights preset).
	FlightRecords   bool
	HugeMemberBytes int64 // if > 0: one more archive holding a single member of about this size, streamed
	Drift           bool  // day-by-day schema drift (DefaultConfig: true)
	// Defects plants data-quality defects into the last process date (for rules to find, see
	// defects.go): empty ids, negative numbers, an unexpected category, and one table with a
	// third of its usual rows. Row counts in the Manifest are what was written.
	Defects bool
	Extras  bool // non-table members (DefaultConfig: true)
}

// DefaultConfig is the documented default corpus: 2 days × 2 archives, 6 tables, ~2,000 rows per member, with
// drift and extras. Set Out (and usually Seed) before calling Generate.
func DefaultConfig() Config {
	return Config{Days: DefaultDays, StartDate: DefaultStartDate, Archives: DefaultArchives, Tables: DefaultTables,
		RowsPerMember: DefaultRowsPerMember, Drift: true, Extras: true}
}

// Limits that keep a mistyped flag from filling a disk or producing names the partner pattern cannot parse.
const (
	maxDays     = 3660
	maxArchives = 999
	maxTables   = 10000
)

func (c Config) withDefaults() Config {
	if c.Days == 0 {
		c.Days = DefaultDays
	}
	if c.StartDate == "" {
		c.StartDate = DefaultStartDate
	}
	if c.Archives == 0 {
		c.Archives = DefaultArchives
	}
	if c.Tables == 0 {
		c.Tables = DefaultTables
	}
	if c.RowsPerMember == 0 {
		c.RowsPerMember = DefaultRowsPerMember
	}
	return c
}

// Validate reports what is wrong with c; zero fields are valid (they take defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Out == "" {
		errs = append(errs, errors.New("out: directory required"))
	}
	if c.Days < 1 || c.Days > maxDays {
		errs = append(errs, fmt.Errorf("days: %d not in [1, %d]", c.Days, maxDays))
	}
	if _, err := time.Parse("20060102", c.StartDate); err != nil || len(c.StartDate) != 8 {
		errs = append(errs, fmt.Errorf("start date: %q is not YYYYMMDD", c.StartDate))
	}
	if c.Archives < 1 || c.Archives > maxArchives {
		errs = append(errs, fmt.Errorf("archives: %d not in [1, %d]", c.Archives, maxArchives))
	}
	if c.Tables < 1 || c.Tables > maxTables {
		errs = append(errs, fmt.Errorf("tables: %d not in [1, %d]", c.Tables, maxTables))
	}
	if c.RowsPerMember < 1 {
		errs = append(errs, fmt.Errorf("rows per member: %d < 1", c.RowsPerMember))
	}
	if c.TargetBytes < 0 {
		errs = append(errs, fmt.Errorf("target bytes: %d < 0", c.TargetBytes))
	}
	if c.LargeShare < 0 || c.LargeShare >= 1 {
		errs = append(errs, fmt.Errorf("large share: %g not in [0, 1)", c.LargeShare))
	}
	if c.HugeMemberBytes < 0 {
		errs = append(errs, fmt.Errorf("huge member bytes: %d < 0", c.HugeMemberBytes))
	}
	return errors.Join(errs...)
}

// Manifest is what was generated: the ground truth tests compare against.
type Manifest struct {
	Archives []ArchiveInfo          `json:"archives"` // in the order written (by date, then archive number)
	Tables   map[string]*TableTruth `json:"tables"`
}

// ArchiveInfo describes one written archive.
type ArchiveInfo struct {
	Name    string       `json:"name"`    // base name, partner_<YYYYMMDD>_<n>.tar.gz
	Path    string       `json:"path"`    // Config.Out joined with Name
	Members []MemberInfo `json:"members"` // every tar entry in archive order; Table is "" for non-table entries
	Bytes   int64        `json:"bytes"`   // size of the .tar.gz file
}

// MemberInfo describes one tar entry.
type MemberInfo struct {
	Name        string   `json:"name"`                   // path inside the archive
	Table       string   `json:"table,omitempty"`        // "" for extras (README.txt, data/…, directories)
	ProcessDate string   `json:"process_date,omitempty"` // YYYY-MM-DD
	Batch       string   `json:"batch,omitempty"`
	Rows        int      `json:"rows"`  // CSV records after the header
	Bytes       int64    `json:"bytes"` // uncompressed size, BOM and line endings included
	Columns     []string `json:"columns,omitempty"`
}

// TableTruth is what a table received over the whole corpus.
type TableTruth struct {
	Rows            int            `json:"rows"`
	RowsByPartition map[string]int `json:"rows_by_partition"` // "YYYY-MM-DD/batch"
	Columns         []string       `json:"columns"`           // union, first-seen order
}

// Generate writes the corpus described by cfg into cfg.Out and returns its Manifest. Each archive is written under
// a temporary name (.tmp-…) and renamed when complete, so a watcher never sees a partial archive.
func Generate(cfg Config) (*Manifest, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gen config: %w", err)
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("create out dir: %w", err)
	}
	start, _ := time.Parse("20060102", cfg.StartDate)
	tables := catalogue(cfg.Seed, cfg.Tables, cfg.FlightRecords)
	archives := plan(cfg, start, tables)
	sizeMembers(cfg, tables, archives)

	m := &Manifest{Tables: make(map[string]*TableTruth, len(tables))}
	for _, t := range tables {
		m.Tables[t.name] = &TableTruth{RowsByPartition: map[string]int{}, Columns: []string{}}
	}
	w := newCorpusWriter(cfg, archives)
	for _, ap := range archives {
		info, err := w.writeArchive(filepath.Join(cfg.Out, ap.name), ap)
		if err != nil {
			return nil, err
		}
		m.Archives = append(m.Archives, info)
		for _, mi := range info.Members {
			if mi.Table == "" {
				continue
			}
			tt := m.Tables[mi.Table]
			tt.Rows += mi.Rows
			tt.RowsByPartition[mi.ProcessDate+"/"+mi.Batch] += mi.Rows
			for _, c := range mi.Columns {
				if !slices.Contains(tt.Columns, c) {
					tt.Columns = append(tt.Columns, c)
				}
			}
		}
	}
	return m, nil
}
