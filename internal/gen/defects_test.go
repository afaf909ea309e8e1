package gen

import (
	"archive/tar"
	"encoding/csv"
	"io"
	"strings"
	"testing"
)

// TestDefects: the planted defects are where defects.go says, only on the last day, and the short
// table sends about a third of its rows.
func TestDefects(t *testing.T) {
	plain, planted := DefaultConfig(), DefaultConfig()
	plain.Out, plain.Seed, plain.Days, plain.Drift = t.TempDir(), 4, 2, false
	planted = plain
	planted.Out, planted.Defects = t.TempDir(), true
	mp, err := Generate(plain)
	if err != nil {
		t.Fatal(err)
	}
	md, err := Generate(planted)
	if err != nil {
		t.Fatal(err)
	}
	rowsOn := func(m *Manifest, table, date string) (n int) {
		for k, v := range m.Tables[table].RowsByPartition {
			if strings.HasPrefix(k, date) {
				n += v
			}
		}
		return n
	}
	if p, d := rowsOn(mp, "competitor_prices", "2025-03-02"), rowsOn(md, "competitor_prices", "2025-03-02"); d > p/2 || d < p/4 {
		t.Errorf("short table on the defect day: %d rows, plain %d", d, p)
	}
	if p, d := rowsOn(mp, "hotel_rates", "2025-03-01"), rowsOn(md, "hotel_rates", "2025-03-01"); p != d {
		t.Errorf("first day changed: %d vs %d rows", d, p)
	}
	// hotel_rates on the last day: count each defect in the CSV.
	var emptyID, negative, unexpected, rows int
	for _, a := range md.Archives {
		err := WalkArchive(a.Path, func(h *tar.Header, body io.Reader) error {
			if !strings.HasPrefix(h.Name, "hotel_rates_") {
				return nil
			}
			recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(readAll(t, body), "\xef\xbb\xbf"))).ReadAll()
			if err != nil {
				return err
			}
			col := map[string]int{}
			for i, c := range recs[0] {
				col[c] = i
			}
			last := strings.Contains(h.Name, "_20250302_")
			for i, r := range recs[1:] {
				rows++
				planted := last && i%DefectEmptyIDEvery == 0
				if (r[col["rate_id"]] == "") != planted {
					t.Fatalf("%s row %d: rate_id %q", h.Name, i, r[col["rate_id"]])
				}
				if r[col["rate_id"]] == "" {
					emptyID++
				}
				if r[col["rate_usd"]] == "-1" {
					negative++
					if !last || i%DefectNegativeEvery != 0 {
						t.Fatalf("%s row %d: unplanned -1", h.Name, i)
					}
				}
				if r[col["hotel_name"]] == DefectUnexpected {
					unexpected++
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if emptyID == 0 || negative == 0 || unexpected == 0 {
		t.Errorf("defects in hotel_rates: %d empty ids, %d negative rates, %d unexpected values (of %d rows)", emptyID, negative, unexpected, rows)
	}
}

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
