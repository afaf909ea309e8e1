package config

import "testing"

func TestMemberMatch(t *testing.T) {
	f := &File{Partners: []Partner{
		{Name: "byname"},
		{Name: "bypath", ArchiveGlob: "p_*.tar.gz", MemberMatch: "path",
			MemberPattern: `^(?P<date>\d{4}-\d{2}-\d{2})/(?P<batch>\d+)/(?P<table>[a-z_]+)\.csv$`},
	}}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	byName, byPath := &f.Partners[0], &f.Partners[1]
	for _, c := range []struct {
		p      *Partner
		member string
		ok     bool
		want   MemberName
	}{
		{byName, "data/hotel_rates_20250301_001.csv", true, MemberName{Table: "hotel_rates", Date: "20250301", ProcessDate: "2025-03-01", Batch: "001"}},
		{byName, "2025-03-01/7/hotel_rates.csv", false, MemberName{}},
		{byPath, "./2025-03-01/7/hotel_rates.csv", true, MemberName{Table: "hotel_rates", Date: "2025-03-01", ProcessDate: "2025-03-01", Batch: "7"}},
		{byPath, "2025-02-30/7/hotel_rates.csv", false, MemberName{}}, // not a calendar date
		{byPath, "hotel_rates.csv", false, MemberName{}},
	} {
		got, ok := c.p.ParseMember(c.p.MatchTarget(c.member))
		if ok != c.ok || got != c.want {
			t.Errorf("%s %q: %+v %v, want %+v %v", c.p.Name, c.member, got, ok, c.want, c.ok)
		}
	}
	bad := &File{Partners: []Partner{{Name: "x", MemberMatch: "basename"}}}
	if err := bad.Validate(); err == nil {
		t.Error("member_match basename accepted")
	}
}
