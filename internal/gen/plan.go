package gen

import (
	"math"
	"slices"
	"strconv"
	"time"
)

// archivePlan is one archive to write.
type archivePlan struct {
	name    string
	date    time.Time
	n       int  // archive number within its day, from 1
	first   bool // first archive of its day: carries the data/ folder and notes.csv
	huge    bool // the HugeMemberBytes archive: one member, no extras
	members []*memberPlan
}

// memberPlan is one table member to write.
type memberPlan struct {
	t      *table
	day    int // 0-based process date index
	date   time.Time
	batch  string
	weight float64 // row-count factor in [0.5, 1.5)
	rows   int     // records; 0 when target is set
	target int64   // generate until this many bytes (the huge member)
	est    int64   // estimated bytes
	style  memberStyle
	defect bool // plant data-quality defects (Config.Defects, last day)
}

func (m *memberPlan) name() string {
	return m.t.name + "_" + m.date.Format("20060102") + "_" + m.batch + ".csv"
}

func batchID(n int) string {
	s := strconv.Itoa(n)
	for len(s) < 3 {
		s = "0" + s
	}
	return s
}

// plan decides which tables go into which archive with which batch id, and each member's style and weight.
func plan(cfg Config, start time.Time, tables []*table) []*archivePlan {
	pr := newRNG(cfg.Seed, "plan")
	var out []*archivePlan
	k := 0 // members planned so far
	for d := range cfg.Days {
		date := start.AddDate(0, 0, d)
		ymd := date.Format("20060102")
		aps := make([]*archivePlan, cfg.Archives)
		for a := range aps {
			aps[a] = &archivePlan{name: "partner_" + ymd + "_" + strconv.Itoa(a+1) + ".tar.gz", date: date, n: a + 1, first: a == 0}
		}
		next := make([]int, len(tables)) // batch ids used per table on this date
		add := func(t *table, a int) {
			next[t.idx]++
			aps[a].members = append(aps[a].members, &memberPlan{t: t, day: d, date: date, batch: batchID(next[t.idx])})
		}
		for _, t := range tables {
			n := 1
			if u := pr.float(); u < 0.1 {
				n = 3
			} else if u < 0.4 {
				n = 2
			}
			if t.idx == d%len(tables) {
				n = max(n, 2) // at least one table arrives in several archives each day
			}
			n = min(n, cfg.Archives)
			chosen := pr.perm(cfg.Archives)[:n]
			slices.Sort(chosen) // lower archive numbers carry lower batch ids
			for _, a := range chosen {
				add(t, a)
			}
		}
		for a, ap := range aps {
			if len(ap.members) == 0 {
				add(tables[pr.intn(len(tables))], a)
			}
		}
		for _, ap := range aps {
			p := pr.perm(len(ap.members))
			ms := make([]*memberPlan, len(p))
			for i, j := range p {
				ms[i] = ap.members[j]
			}
			ap.members = ms
			for _, m := range ms {
				m.weight = 0.5 + pr.float()
				m.style = memberStyle{bom: pr.chance(150), crlf: pr.chance(256), noEOL: pr.chance(100)}
				switch k {
				case 0:
					m.style.bom = true
				case 1:
					m.style.crlf = true
				}
				k++
			}
		}
		if cfg.Defects && d == cfg.Days-1 {
			for _, ap := range aps {
				for _, m := range ap.members {
					m.defect = true
				}
			}
		}
		out = append(out, aps...)
		if d == 0 && cfg.HugeMemberBytes > 0 {
			t := tables[0]
			next[t.idx]++
			out = append(out, &archivePlan{
				name: "partner_" + ymd + "_" + strconv.Itoa(cfg.Archives+1) + ".tar.gz", date: date, n: cfg.Archives + 1, huge: true,
				members: []*memberPlan{{t: t, day: d, date: date, batch: batchID(next[t.idx]), weight: 1,
					target: cfg.HugeMemberBytes, est: cfg.HugeMemberBytes}},
			})
		}
	}
	return out
}

// largeTable is the table LargeTable makes big.
func largeTable(tables []*table) *table {
	for _, name := range []string{flightRecords, "store_traffic_hourly"} {
		for _, t := range tables {
			if t.name == name {
				return t
			}
		}
	}
	return tables[0]
}

// sizeMembers sets the row count of every regular member. Bytes per row are measured on a sample of each table,
// so TargetBytes is met to within a few percent.
func sizeMembers(cfg Config, tables []*table, archives []*archivePlan) {
	avg := make([]float64, len(tables))
	hdr := make([]float64, len(tables))
	for _, t := range tables {
		avg[t.idx], hdr[t.idx] = sampleRowBytes(cfg.Seed, t)
	}
	var regular []*memberPlan
	for _, ap := range archives {
		if !ap.huge {
			regular = append(regular, ap.members...)
		}
	}
	byTable := make([]float64, len(tables)) // Σ weight × bytes per row
	var all, headers float64
	for _, m := range regular {
		byTable[m.t.idx] += m.weight * avg[m.t.idx]
		all += m.weight * avg[m.t.idx]
		headers += hdr[m.t.idx]
	}
	mult := make([]float64, len(tables))
	for i := range mult {
		mult[i] = 1
	}
	if lt := largeTable(tables); cfg.LargeTable && len(tables) > 1 && byTable[lt.idx] > 0 {
		// The large table gets 40% of the bytes, or twice an average table's share when there are few tables.
		share := max(0.4, 2/float64(len(tables)+1))
		if cfg.LargeShare > 0 {
			share = cfg.LargeShare
		}
		mult[lt.idx] = share / (1 - share) * (all - byTable[lt.idx]) / byTable[lt.idx]
	}
	var units float64 // bytes per unit of r
	for _, m := range regular {
		units += m.weight * mult[m.t.idx] * avg[m.t.idx]
	}
	// r is the row count of a member of weight 1 and multiplier 1. Without a target, LargeTable only moves bytes
	// between tables: the corpus keeps the size RowsPerMember gives.
	r := float64(cfg.RowsPerMember) * all / units
	if cfg.TargetBytes > 0 {
		r = max(1, (float64(cfg.TargetBytes)-headers)/units)
	}
	short := shortTable(tables)
	for _, m := range regular {
		m.rows = max(1, int(math.Round(m.weight*mult[m.t.idx]*r)))
		if m.defect && m.t == short {
			m.rows = max(1, m.rows/3) // the day a partner sent a third of the rows
		}
		m.est = int64(float64(m.rows)*avg[m.t.idx] + hdr[m.t.idx])
	}
}

// sampleRowBytes measures a table's average record size (terminator included) and header size.
func sampleRowBytes(seed int64, t *table) (row, header float64) {
	const n = 512
	cols, ti := t.schema(0, false)
	g := newMemberGen(seed, cols, ti, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), "sample/"+t.name, memberStyle{}, n)
	var cw countWriter
	_, size, _, _ := g.write(&cw, nil, n, 0)
	header = float64(len(g.header) + 1)
	return (float64(size) - header) / n, header
}
