package gen

// Data-quality defects planted by Config.Defects into the members of the last process date, at
// fixed row strides so that a test can count them exactly:
//   - the table's id column (kID) is empty on every 97th row (a key with blanks);
//   - its first non-negative decimal column (a price, an amount) reads -1 on every 101st row;
//   - its first category column (kEnum) reads "XXX" on every 131st row (a new, unexpected value);
//   - shortTable sends a third of its usual rows that day.
//
// Rows 0, 97, 194, … are the id defects; a row can carry several defects.
const (
	DefectEmptyIDEvery    = 97
	DefectNegativeEvery   = 101
	DefectUnexpectedEvery = 131
	DefectUnexpected      = "XXX"
)

// defect replaces one field's value on every every-th row.
type defect struct {
	field int
	every int
	value []byte
}

// plantDefects sets the defects of a member with columns cols.
func (g *memberGen) plantDefects(cols []*column) {
	id, num, enum := -1, -1, -1
	for i, c := range cols {
		switch {
		case c.kind == kID && id < 0:
			id = i
		case c.kind == kFloat && c.lo >= 0 && num < 0 && c.follows == "" && i != g.textIdx:
			num = i
		case c.kind == kEnum && enum < 0:
			enum = i
		}
	}
	if id >= 0 {
		g.defects = append(g.defects, defect{field: id, every: DefectEmptyIDEvery, value: nil})
	}
	if num >= 0 {
		g.defects = append(g.defects, defect{field: num, every: DefectNegativeEvery, value: []byte("-1")})
	}
	if enum >= 0 {
		g.defects = append(g.defects, defect{field: enum, every: DefectUnexpectedEvery, value: []byte(DefectUnexpected)})
	}
}

// defectAt returns the planted value of field i on row (an empty, non-nil slice for an empty
// field), or nil.
func (g *memberGen) defectAt(i, row int) []byte {
	for _, d := range g.defects {
		if d.field == i && row%d.every == 0 {
			if d.value == nil {
				return []byte{}
			}
			return d.value
		}
	}
	return nil
}

// shortTable is the table that sends a third of its rows on the defect day: competitor_prices
// when the catalogue has it, else the last table.
func shortTable(tables []*table) *table {
	for _, t := range tables {
		if t.name == "competitor_prices" {
			return t
		}
	}
	return tables[len(tables)-1]
}
