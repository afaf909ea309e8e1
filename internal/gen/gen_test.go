package gen

import (
	"archive/tar"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// memberRE is the partner pattern of docs/DESIGN.md: the table is greedy, so names with underscores parse from
// the right.
var memberRE = regexp.MustCompile(`^(.+)_(\d{8})_([^_]+)\.csv$`)

type entry struct {
	hdr  *tar.Header
	body []byte
}

func readArchive(t *testing.T, p string) []entry {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	tr := tar.NewReader(zr)
	var out []entry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("%s/%s: %v", p, h.Name, err)
		}
		out = append(out, entry{h, b})
	}
}

func parseCSV(t *testing.T, name string, body []byte) (header []string, recs [][]string) {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(body, []byte("\xEF\xBB\xBF"))))
	all, err := r.ReadAll() // FieldsPerRecord 0: every record must have the header's field count
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(all) == 0 {
		t.Fatalf("%s: no header", name)
	}
	return all[0], all[1:]
}

func isNumber(s string) bool { _, err := strconv.ParseFloat(s, 64); return err == nil }

func TestGenerateMatchesManifest(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Out = t.TempDir()
	cfg.Seed = 1
	cfg.RowsPerMember = 300
	m, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}

	var wantFiles []string
	for _, a := range m.Archives {
		wantFiles = append(wantFiles, a.Name)
	}
	if want := []string{"partner_20250301_1.tar.gz", "partner_20250301_2.tar.gz", "partner_20250302_1.tar.gz", "partner_20250302_2.tar.gz"}; !slices.Equal(wantFiles, want) {
		t.Fatalf("archives %v, want %v", wantFiles, want)
	}
	des, _ := os.ReadDir(cfg.Out)
	var gotFiles []string
	for _, de := range des {
		gotFiles = append(gotFiles, de.Name()) // no .tmp-… left behind
	}
	if slices.Sort(wantFiles); !slices.Equal(gotFiles, wantFiles) {
		t.Fatalf("out dir holds %v, want %v", gotFiles, wantFiles)
	}

	type key struct{ table, date, batch string }
	seen := map[key]bool{}
	rows := map[string]int{}
	parts := map[string]map[string]int{}
	cols := map[string][]string{}
	batchesPerDay := map[[2]string]int{}
	colsByDay := map[[2]string][]string{}           // seattle_weather header per date
	valuesByDay := map[string]map[string][]string{} // date → column → values, seattle_weather
	var bom, crlf, noEOL, multiline, quotes, leadingZero, negative, tsSpace, tsZ int
	tsSpaceRE := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`)
	tsZRE := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
	zipRE := regexp.MustCompile(`^0\d{4}$`)

	for ai, a := range m.Archives {
		st, err := os.Stat(a.Path)
		if err != nil || st.Size() != a.Bytes {
			t.Fatalf("%s: stat %v, size %v, manifest %d", a.Name, err, st, a.Bytes)
		}
		entries := readArchive(t, a.Path)
		if len(entries) != len(a.Members) {
			t.Fatalf("%s: %d entries, manifest %d", a.Name, len(entries), len(a.Members))
		}
		names := map[string]bool{}
		for i, e := range entries {
			mi := a.Members[i]
			names[e.hdr.Name] = true
			if e.hdr.Name != mi.Name || int64(len(e.body)) != mi.Bytes {
				t.Fatalf("%s entry %d: %s (%d bytes), manifest %s (%d)", a.Name, i, e.hdr.Name, len(e.body), mi.Name, mi.Bytes)
			}
			sm := memberRE.FindStringSubmatch(path.Base(e.hdr.Name))
			if mi.Table == "" {
				if sm != nil && e.hdr.Typeflag == tar.TypeReg {
					t.Errorf("%s: extra %s matches the member pattern", a.Name, e.hdr.Name)
				}
				continue
			}
			if sm == nil || sm[1] != mi.Table || sm[2] != strings.ReplaceAll(mi.ProcessDate, "-", "") || sm[3] != mi.Batch {
				t.Fatalf("%s: member %s does not parse to %s/%s/%s", a.Name, e.hdr.Name, mi.Table, mi.ProcessDate, mi.Batch)
			}
			k := key{mi.Table, mi.ProcessDate, mi.Batch}
			if seen[k] {
				t.Fatalf("duplicate (table, date, batch) %v", k)
			}
			seen[k] = true
			batchesPerDay[[2]string{mi.Table, mi.ProcessDate}]++

			header, recs := parseCSV(t, e.hdr.Name, e.body)
			if !slices.Equal(header, mi.Columns) {
				t.Fatalf("%s: header %v, manifest %v", mi.Name, header, mi.Columns)
			}
			if len(header) < 5 || len(header) > 15 {
				t.Errorf("%s: %d columns", mi.Name, len(header))
			}
			if len(recs) != mi.Rows {
				t.Fatalf("%s: %d records, manifest %d", mi.Name, len(recs), mi.Rows)
			}
			if lo, hi := cfg.RowsPerMember/2, cfg.RowsPerMember*3/2; mi.Rows < lo || mi.Rows > hi {
				t.Errorf("%s: %d rows, want within ±50%% of %d", mi.Name, mi.Rows, cfg.RowsPerMember)
			}
			rows[mi.Table] += mi.Rows
			if parts[mi.Table] == nil {
				parts[mi.Table] = map[string]int{}
			}
			parts[mi.Table][mi.ProcessDate+"/"+mi.Batch] += mi.Rows
			for _, c := range header {
				if !slices.Contains(cols[mi.Table], c) {
					cols[mi.Table] = append(cols[mi.Table], c)
				}
			}

			if bytes.HasPrefix(e.body, []byte("\xEF\xBB\xBF")) {
				bom++
			}
			if i := bytes.IndexByte(e.body, '\n'); i > 0 && e.body[i-1] == '\r' {
				crlf++
			}
			if !bytes.HasSuffix(e.body, []byte("\n")) {
				noEOL++
			}
			quotes += bytes.Count(e.body, []byte(`""`))
			for _, rec := range recs {
				for j, v := range rec {
					switch v {
					case "NULL", "null", "NA", "N/A", "true", "false", "TRUE", "FALSE", "NaN", "nan", "inf":
						t.Fatalf("%s: column %s holds the token %q", mi.Name, header[j], v)
					}
					switch {
					case strings.Contains(v, "\n"):
						multiline++
					case zipRE.MatchString(v):
						leadingZero++
					case strings.HasPrefix(v, "-") && isNumber(v):
						negative++
					case tsSpaceRE.MatchString(v):
						tsSpace++
					case tsZRE.MatchString(v):
						tsZ++
					}
				}
			}
			if mi.Table == "seattle_weather" {
				colsByDay[[2]string{mi.Table, mi.ProcessDate}] = header
				vals := valuesByDay[mi.ProcessDate]
				if vals == nil {
					vals = map[string][]string{}
					valuesByDay[mi.ProcessDate] = vals
				}
				for _, rec := range recs {
					for j, v := range rec {
						vals[header[j]] = append(vals[header[j]], v)
					}
				}
			}
		}

		// Extras: README.txt and manifest.json everywhere, the data/ folder and notes.csv in each day's first archive.
		if !names["README.txt"] || !names["manifest.json"] {
			t.Errorf("%s: README.txt or manifest.json missing", a.Name)
		}
		if ai%2 == 0 {
			for _, n := range []string{"notes.csv", "data/", "data/reference/", "data/reference/stations.csv"} {
				if !names[n] {
					t.Errorf("%s: extra %s missing", a.Name, n)
				}
			}
		}
		var pm struct {
			Files []struct {
				Name string
				Rows int
			}
		}
		if err := json.Unmarshal(entries[len(entries)-1].body, &pm); err != nil || len(pm.Files) == 0 {
			t.Errorf("%s: partner manifest: %v %+v", a.Name, err, pm)
		}
	}

	// Ground truth per table and partition.
	if len(m.Tables) != cfg.Tables {
		t.Fatalf("%d tables in manifest", len(m.Tables))
	}
	for name, tt := range m.Tables {
		if tt.Rows != rows[name] || !reflect.DeepEqual(tt.RowsByPartition, parts[name]) || !slices.Equal(tt.Columns, cols[name]) {
			t.Errorf("%s: manifest %d rows %v %v, read %d %v %v", name, tt.Rows, tt.RowsByPartition, tt.Columns, rows[name], parts[name], cols[name])
		}
	}
	multi := 0
	for _, n := range batchesPerDay {
		if n > 1 {
			multi++
		}
	}
	for what, n := range map[string]int{"BOM members": bom, "CRLF members": crlf, "members without a final newline": noEOL,
		"multi-batch (table, day)": multi, "embedded newlines": multiline, `escaped quotes ""`: quotes,
		"zip codes with a leading zero": leadingZero, "negative numbers": negative, "space timestamps": tsSpace, "Z timestamps": tsZ} {
		if n == 0 {
			t.Errorf("no %s in the corpus", what)
		} else {
			t.Logf("%s: %d", what, n)
		}
	}

	// Drift on day 2: the first table gets every kind.
	d1, d2 := colsByDay[[2]string{"seattle_weather", "2025-03-01"}], colsByDay[[2]string{"seattle_weather", "2025-03-02"}]
	var added, dropped, common1, common2 []string
	for _, c := range d2 {
		if !slices.Contains(d1, c) {
			added = append(added, c)
		} else {
			common2 = append(common2, c)
		}
	}
	for _, c := range d1 {
		if !slices.Contains(d2, c) {
			dropped = append(dropped, c)
		} else {
			common1 = append(common1, c)
		}
	}
	if len(added) == 0 || len(dropped) == 0 || slices.Equal(common1, common2) {
		t.Errorf("seattle_weather drift: day1 %v, day2 %v (added %v, dropped %v)", d1, d2, added, dropped)
	}
	var textish []string
	for c, v1 := range valuesByDay["2025-03-01"] {
		if !slices.ContainsFunc(v1, func(v string) bool { return v != "" && !isNumber(v) }) &&
			slices.ContainsFunc(valuesByDay["2025-03-02"][c], func(v string) bool { return v != "" && !isNumber(v) }) {
			textish = append(textish, c)
		}
	}
	if len(textish) != 1 {
		t.Errorf("seattle_weather: numeric columns holding text on day 2: %v, want one", textish)
	}
	t.Logf("seattle_weather drift: added %v, dropped %v, text in %v; day 2 header %v", added, dropped, textish, d2)
}

func TestGenerateDeterministic(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 42
	cfg.Tables = 8 // two tables with generated schemas
	cfg.RowsPerMember = 100
	run := func(seed int64) (*Manifest, map[string][]byte) {
		c := cfg
		c.Seed = seed
		c.Out = t.TempDir()
		m, err := Generate(c)
		if err != nil {
			t.Fatal(err)
		}
		files := map[string][]byte{}
		for i := range m.Archives {
			b, err := os.ReadFile(m.Archives[i].Path)
			if err != nil {
				t.Fatal(err)
			}
			files[m.Archives[i].Name] = b
			m.Archives[i].Path = ""
		}
		return m, files
	}
	m1, f1 := run(42)
	m2, f2 := run(42)
	if !reflect.DeepEqual(m1, m2) {
		t.Error("same seed, different manifests")
	}
	if !reflect.DeepEqual(f1, f2) {
		t.Error("same seed, different archive bytes")
	}
	_, f3 := run(43)
	if bytes.Equal(f1["partner_20250301_1.tar.gz"], f3["partner_20250301_1.tar.gz"]) {
		t.Error("different seeds, same bytes")
	}
}

func TestHugeMemberStreams(t *testing.T) {
	const huge = 20 << 20
	cfg := DefaultConfig()
	cfg.Out = t.TempDir()
	cfg.Tables, cfg.Days, cfg.Archives, cfg.RowsPerMember = 1, 1, 1, 100
	cfg.Extras = false
	cfg.HugeMemberBytes = huge

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// Everything Generate allocated, not just what was live at the end: holding the member would take > 20 MiB.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 12<<20 {
		t.Errorf("generating a %d MiB member allocated %d MiB", huge>>20, alloc>>20)
	} else {
		t.Logf("allocated %.1f MiB for a %d MiB member", float64(alloc)/(1<<20), huge>>20)
	}

	if len(m.Archives) != 2 {
		t.Fatalf("%d archives, want 2", len(m.Archives))
	}
	a := m.Archives[1]
	if a.Name != "partner_20250301_2.tar.gz" || len(a.Members) != 1 {
		t.Fatalf("huge archive %s with %d members", a.Name, len(a.Members))
	}
	mi := a.Members[0]
	if mi.Bytes < huge || mi.Bytes > huge+4096 || mi.Table != "seattle_weather" || mi.Batch != "002" {
		t.Fatalf("huge member %+v", mi)
	}
	// Read it back streaming, as the extractor would.
	f, err := os.Open(a.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	h, err := tr.Next()
	if err != nil || h.Name != mi.Name || h.Size != mi.Bytes {
		t.Fatalf("entry %+v, %v", h, err)
	}
	body, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	// Count records by quote parity (fast under -race; encoding/csv checks the small members above): a newline
	// ends a record when the quotes before it are balanced.
	n, quotes := -1, 0 // -1: the header
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i+1], body[i+1:]
		} else {
			body = nil
		}
		if quotes += bytes.Count(line, []byte{'"'}); quotes%2 == 0 {
			n++
		}
	}
	if n != mi.Rows || m.Tables["seattle_weather"].RowsByPartition["2025-03-01/002"] != n {
		t.Fatalf("read %d records, manifest %d", n, mi.Rows)
	}
}

func TestTargetBytesLargeTable(t *testing.T) {
	const target = 6 << 20
	cfg := DefaultConfig()
	cfg.Out = t.TempDir()
	cfg.Extras = false
	cfg.TargetBytes = target
	cfg.LargeTable = true
	m, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	byTable := map[string]int64{}
	for _, a := range m.Archives {
		for _, mi := range a.Members {
			total += mi.Bytes
			byTable[mi.Table] += mi.Bytes
		}
	}
	if d := float64(total)/target - 1; d < -0.05 || d > 0.05 {
		t.Errorf("corpus holds %d CSV bytes, target %d", total, target)
	}
	share := float64(byTable["store_traffic_hourly"]) / float64(total)
	for name, b := range byTable {
		if name != "store_traffic_hourly" && float64(b)/float64(total) > share/2 {
			t.Errorf("%s holds %.0f%%, large table %.0f%%", name, 100*float64(b)/float64(total), 100*share)
		}
	}
	if share < 0.35 || share > 0.45 {
		t.Errorf("large table holds %.0f%% of the bytes, want ~40%%", 100*share)
	}
}

// TestFlightRecordsShare: the flights shape puts a narrow numeric table first and, with
// LargeShare, gives it that share of the bytes.
func TestFlightRecordsShare(t *testing.T) {
	const target = 4 << 20
	cfg := DefaultConfig()
	cfg.Out, cfg.Extras, cfg.Drift = t.TempDir(), false, false
	cfg.Tables, cfg.TargetBytes, cfg.LargeTable, cfg.LargeShare, cfg.FlightRecords = 24, target, true, 0.7, true
	m, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var total, flights int64
	for _, a := range m.Archives {
		for _, mi := range a.Members {
			total += mi.Bytes
			if mi.Table == flightRecords {
				flights += mi.Bytes
			}
		}
	}
	if share := float64(flights) / float64(total); share < 0.65 || share > 0.75 {
		t.Errorf("flight_records holds %.0f%% of the bytes, want ~70%%", 100*share)
	}
	if got := m.Tables[flightRecords].Columns; !slices.Equal(got, []string{"dep_time", "dep_delay", "arr_delay", "origin", "dest"}) {
		t.Errorf("flight_records columns %v", got)
	}
	if len(m.Tables) != 24 {
		t.Errorf("%d tables, want 24", len(m.Tables))
	}
}

func TestCatalogue(t *testing.T) {
	tables := catalogue(7, 300, false)
	want := []string{"seattle_weather", "hotel_rates", "flight_fares_intl", "competitor_prices", "event_calendar", "store_traffic_hourly"}
	nameRE := regexp.MustCompile(`^[a-z][a-z0-9_]*[a-z0-9]$`)
	seen := map[string]bool{}
	for i, tb := range tables {
		if i < len(want) && tb.name != want[i] {
			t.Errorf("table %d is %s, want %s", i, tb.name, want[i])
		}
		if seen[tb.name] || !nameRE.MatchString(tb.name) {
			t.Errorf("table name %q duplicate or malformed", tb.name)
		}
		seen[tb.name] = true
		if sm := memberRE.FindStringSubmatch(tb.name + "_20250301_001.csv"); sm == nil || sm[1] != tb.name {
			t.Errorf("%s: member name does not parse back", tb.name)
		}
		for _, cols := range [][]*column{tb.base, tb.drifted} {
			if len(cols) < 5 || len(cols) > 15 {
				t.Errorf("%s: %d columns", tb.name, len(cols))
			}
			names := map[string]bool{}
			for _, c := range cols {
				if names[c.name] {
					t.Errorf("%s: column %s twice", tb.name, c.name)
				}
				names[c.name] = true
			}
		}
		if tb.textIdx >= 0 && !tb.drifted[tb.textIdx].numeric() {
			t.Errorf("%s: text drift on non-numeric %s", tb.name, tb.drifted[tb.textIdx].name)
		}
	}
	if t0 := tables[0]; t0.added == nil || t0.drop == "" || t0.swap[0] == "" || t0.textIdx < 0 {
		t.Errorf("first table lacks a drift kind: %+v", t0)
	}
}

func TestWriteArchive(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "fixtures", "hostile.tar.gz")
	members := []Member{
		{Name: "ok_20250301_001.csv", Body: []byte("a,b\n1,2\n")},
		{Name: "sub/", Typeflag: tar.TypeDir},
		{Name: "../escape_20250301_001.csv", Body: []byte("a\n1\n")},
		{Name: "/abs_20250301_001.csv", Body: []byte("a\n1\n")},
		{Name: "link_20250301_001.csv", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
		{Name: "hard_20250301_001.csv", Typeflag: tar.TypeLink, Linkname: "ok_20250301_001.csv"},
		{Name: "dev", Typeflag: tar.TypeChar},
		{Name: "x.sh", Body: []byte("#!/bin/sh\n"), Mode: 0o755},
	}
	if err := WriteArchive(p, members); err != nil {
		t.Fatal(err)
	}
	got := readArchive(t, p)
	if len(got) != len(members) {
		t.Fatalf("%d entries, want %d", len(got), len(members))
	}
	for i, e := range got {
		m := members[i]
		wantType := m.Typeflag
		if wantType == 0 {
			wantType = tar.TypeReg
		}
		if e.hdr.Name != m.Name || e.hdr.Typeflag != wantType || e.hdr.Linkname != m.Linkname || !bytes.Equal(e.body, m.Body) {
			t.Errorf("entry %d: %+v %q, want %+v", i, e.hdr, e.body, m)
		}
	}
	if got[0].hdr.Mode != 0o644 || got[1].hdr.Mode != 0o755 || got[7].hdr.Mode != 0o755 {
		t.Errorf("modes %o %o %o", got[0].hdr.Mode, got[1].hdr.Mode, got[7].hdr.Mode)
	}

	// Same members, same bytes; a failed write leaves nothing behind.
	p2 := filepath.Join(dir, "fixtures", "again.tar.gz")
	if err := WriteArchive(p2, members); err != nil {
		t.Fatal(err)
	}
	b1, _ := os.ReadFile(p)
	b2, _ := os.ReadFile(p2)
	if !bytes.Equal(b1, b2) {
		t.Error("WriteArchive is not deterministic")
	}
	err := WriteArchive(filepath.Join(dir, "fixtures", "bad.tar.gz"), []Member{{Name: "l", Typeflag: tar.TypeSymlink, Body: []byte("x")}})
	if err == nil {
		t.Error("a symlink with a body was accepted")
	}
	des, _ := os.ReadDir(filepath.Join(dir, "fixtures"))
	if len(des) != 2 {
		t.Errorf("fixtures dir holds %d files, want 2", len(des))
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Out: "x"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("zero config with Out: %v", err)
	}
	for name, c := range map[string]Config{
		"no out":       {},
		"bad date":     {Out: "x", StartDate: "2025-03-01"},
		"bad day":      {Out: "x", StartDate: "20250230"},
		"neg days":     {Out: "x", Days: -1},
		"neg tables":   {Out: "x", Tables: -2},
		"neg archives": {Out: "x", Archives: -1},
		"neg rows":     {Out: "x", RowsPerMember: -1},
		"neg target":   {Out: "x", TargetBytes: -1},
		"neg huge":     {Out: "x", HugeMemberBytes: -1},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := Generate(c); err == nil {
			t.Errorf("%s: Generate accepted", name)
		}
	}
	var zero Config
	if _, err := Generate(zero); !strings.Contains(err.Error(), "out") {
		t.Errorf("error %v does not name the field", err)
	}
}

func TestAppendFixed(t *testing.T) {
	for _, tc := range []struct {
		v    int64
		dec  int
		want string
	}{{0, 1, "0.0"}, {-5, 1, "-0.5"}, {12345, 2, "123.45"}, {-1, 3, "-0.001"}, {7, 0, "7"}, {-120, 2, "-1.20"}} {
		if got := string(appendFixed(nil, tc.v, tc.dec)); got != tc.want {
			t.Errorf("appendFixed(%d, %d) = %q, want %q", tc.v, tc.dec, got, tc.want)
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  func(*Config)
	}{
		{"default", func(*Config) {}},
		{"target32MiB-large", func(c *Config) { c.TargetBytes = 32 << 20; c.LargeTable = true }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Out = b.TempDir()
			bc.cfg(&cfg)
			var csvBytes, gzBytes int64
			cpu0 := cpuTime()
			for b.Loop() {
				m, err := Generate(cfg)
				if err != nil {
					b.Fatal(err)
				}
				csvBytes, gzBytes = 0, 0
				for _, a := range m.Archives {
					gzBytes += a.Bytes
					for _, mi := range a.Members {
						csvBytes += mi.Bytes
					}
				}
			}
			b.SetBytes(csvBytes) // MB/s of CSV
			b.ReportMetric(float64(csvBytes)/float64(gzBytes), "ratio")
			if cpu := cpuTime() - cpu0; cpu > 0 {
				b.ReportMetric(float64(csvBytes)*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
			}
		})
	}
}

// BenchmarkRows is the CSV generator alone, without tar, gzip or disk.
func BenchmarkRows(b *testing.B) {
	tables := catalogue(1, 6, false)
	var cw countWriter
	var buf []byte
	for b.Loop() {
		for _, tb := range tables {
			cols, ti := tb.schema(1, true)
			g := newMemberGen(1, cols, ti, fixtureTime, tb.name, memberStyle{}, 10000)
			_, _, buf, _ = g.write(&cw, buf, 10000, 0)
		}
	}
	b.SetBytes(cw.n / int64(b.N))
}
