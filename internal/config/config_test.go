package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseMember(t *testing.T) {
	f, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	p := f.PartnerFor("x.tar.gz")
	cases := []struct {
		in   string
		ok   bool
		want MemberName
	}{
		{"seattle_weather_20250301_001.csv", true, MemberName{"seattle_weather", "20250301", "2025-03-01", "001"}},
		{"a_b_c_20241231_7.csv", true, MemberName{"a_b_c", "20241231", "2024-12-31", "7"}},
		{"t_20250230_001.csv", false, MemberName{}}, // not a calendar date
		{"notes.csv", false, MemberName{}},
		{"README.txt", false, MemberName{}},
		{"_20250101_1.csv", false, MemberName{}},
		{"t_20250101_.csv", false, MemberName{}},
		{"t_20250101_1.csv.bak", false, MemberName{}},
	}
	for _, c := range cases {
		got, ok := p.ParseMember(c.in)
		if ok != c.ok || got != c.want {
			t.Errorf("ParseMember(%q) = %+v,%v want %+v,%v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func FuzzParseMember(f *testing.F) {
	for _, s := range []string{"seattle_weather_20250301_001.csv", "a__20250101_x.csv", "_1_2.csv", "x_99999999_1.csv"} {
		f.Add(s)
	}
	cfg, _ := Load("")
	p := cfg.PartnerFor("")
	f.Fuzz(func(t *testing.T, s string) {
		m, ok := p.ParseMember(s)
		if !ok {
			return
		}
		if m.Table == "" || m.Batch == "" || len(m.Date) != 8 || len(m.ProcessDate) != 10 {
			t.Fatalf("bad parse %q -> %+v", s, m)
		}
		if s != m.Table+"_"+m.Date+"_"+m.Batch+".csv" {
			t.Fatalf("parse does not round-trip: %q -> %+v", s, m)
		}
	})
}

func TestLoadYAML(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	os.WriteFile(file, []byte(`
partners:
  - name: acme
    archive_glob: "acme_*.tar.gz"
    delimiter: ";"
    tables:
      prices:
        overrides: {price: float64}
    expected:
      sources: ["acme_{date}_*.tar.gz"]
      deadline: 30h
`), 0o644)
	f, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	p := f.PartnerFor("acme_20250101_1.tar.gz")
	if p.Name != "acme" || p.Delimiter != ";" || p.Expected.Deadline.Hours() != 30 || p.Tables["prices"].Overrides["price"] != "float64" {
		t.Fatalf("%+v", p)
	}
	os.WriteFile(file, []byte("partners:\n  - name: x\n    bogus: 1\n"), 0o644)
	if _, err := Load(file); err == nil {
		t.Fatal("unknown field accepted")
	}
}

func TestStringsCanBeNull(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	load := func(yaml string) (*File, error) {
		t.Helper()
		if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		return Load(file)
	}
	f, err := load("partners:\n  - name: a\n  - name: b\n    strings_can_be_null: true\n")
	if err != nil {
		t.Fatal(err)
	}
	if f.Partner("a").StringsCanBeNull || !f.Partner("b").StringsCanBeNull {
		t.Fatalf("a %v, b %v", f.Partner("a").StringsCanBeNull, f.Partner("b").StringsCanBeNull)
	}
	if f, err := Load(""); err != nil || f.Partners[0].StringsCanBeNull {
		t.Fatalf("default: %v %+v", err, f)
	}
	for _, bad := range []string{
		"partners:\n  - name: a\n    strings_can_be_null: maybe\n",
		"partners:\n  - name: a\n    strings_can_be_null: [true]\n",
		"partners:\n  - name: a\n    strings_can_be_null: true\n    null_tokens: [\"\"]\n", // nothing to make null
		"partners:\n  - name: a\n    strings_can_be_null: true\n    null_tokens: []\n",
	} {
		if _, err := load(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if _, err := load("partners:\n  - name: a\n    strings_can_be_null: true\n    null_tokens: [\"\", \"-\"]\n"); err != nil {
		t.Error(err)
	}
}

// TestReadmeExample: the partner YAML example of the README loads, and documents every partner option.
func TestReadmeExample(t *testing.T) {
	example := partnerExample(t, "../../README.md")
	file := filepath.Join(t.TempDir(), "partners.yaml")
	if err := os.WriteFile(file, []byte(example), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(file); err != nil {
		t.Fatalf("README example: %v", err)
	}
	for _, key := range []string{"name", "archive_glob", "member_pattern", "delimiter", "encoding", "null_tokens",
		"strings_can_be_null", "tables", "hints", "overrides", "expected", "sources", "deadline"} {
		if !strings.Contains(example, " "+key+":") {
			t.Errorf("README example lacks %s", key)
		}
	}
}

// TestUnknownColumnType: a hint or override naming a type that does not exist is a configuration
// error at load (exit 78), not a failure of the merger at start.
func TestUnknownColumnType(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	load := func(yaml string) (*File, error) {
		t.Helper()
		if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		return Load(file)
	}
	for _, bad := range []string{
		"partners:\n  - name: a\n    tables:\n      t:\n        overrides: {amount: float65}\n",
		"partners:\n  - name: a\n    tables:\n      t:\n        hints: {zip: text}\n",
	} {
		if _, err := load(bad); err == nil || !strings.Contains(err.Error(), "want bool, int64") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := load("partners:\n  - name: a\n    tables:\n      t:\n        hints: {zip: string}\n        overrides: {amount: FLOAT64}\n"); err != nil {
		t.Error(err)
	}
}
