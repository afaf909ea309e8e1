package table

import (
	"fmt"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// Schema is the versioned schema of a table, stored as JSON by the registry.
type Schema struct {
	Table         string   `json:"table"`
	Version       uint32   `json:"version"`
	Columns       []Column `json:"columns"`
	Changes       []string `json:"changes,omitempty"` // what changed from the previous version, human readable
	UpdatedUnixMs int64    `json:"updated_unix_ms"`
}

// Column is one column of a Schema. Type marshals as its name ("int64").
type Column struct {
	Name    string `json:"name"`
	Type    Type   `json:"type"`
	AddedIn uint32 `json:"added_in"` // schema version that added the column
}

// Arrow metadata keys set by Schema.Arrow.
const (
	MetaSchemaVersion = "sluice.schema_version"
	MetaTable         = "sluice.table"
)

// now is the clock of Evolve (UpdatedUnixMs); tests replace it.
var now = time.Now

// Evolve merges a batch's inferred columns (Inferer.Columns) into the table's current schema prev (nil for the
// table's first batch) and returns the next schema:
//   - a new column is appended (in cols order) with AddedIn = the new version;
//   - a known column widens: Widen(registered, inferred) (a float64 result becomes string if the batch holds an
//     integer float64 cannot hold exactly, see ColumnType.LargeInt); a non-strict hint is the floor of the type;
//   - a strict hint (opts.Hints) fixes the type, even of a column absent from this batch, and even if that
//     narrows the registered type;
//   - a column missing from cols stays (it is null in this batch); a different column order changes nothing.
//
// If anything changed, next is a new Schema with Version = prev.Version+1 (1 for the first), Changes describing
// it and UpdatedUnixMs = now, and changed is true; otherwise next is prev itself and changed is false. prev is
// never modified. The first schema of a table is always a change, even with no column.
func Evolve(table string, prev *Schema, cols []ColumnType, opts Options) (next *Schema, changed bool) {
	next = &Schema{Table: table, Version: 1}
	if prev != nil {
		next.Version = prev.Version + 1
		next.Columns = append(make([]Column, 0, len(prev.Columns)+len(cols)), prev.Columns...)
	}
	index := make(map[string]int, len(next.Columns)+len(cols))
	for i, c := range next.Columns {
		index[c.Name] = i
	}
	var changes []string
	for _, c := range cols {
		h, hinted := opts.Hints[c.Name]
		i, known := index[c.Name]
		t := c.Type
		if known {
			t = Widen(next.Columns[i].Type, t)
		}
		if hinted && !h.Strict {
			t = Widen(h.Type, t)
		}
		if t == Float64 && c.LargeInt {
			t = String
		}
		if hinted && h.Strict {
			t = h.Type
		}
		if !known {
			index[c.Name] = len(next.Columns)
			next.Columns = append(next.Columns, Column{Name: c.Name, Type: t, AddedIn: next.Version})
			changes = append(changes, fmt.Sprintf("added column %q (%s)", c.Name, t))
			continue
		}
		if old := next.Columns[i].Type; t != old {
			next.Columns[i].Type = t
			if hinted && h.Strict {
				changes = append(changes, fmt.Sprintf("column %q: %s -> %s (strict hint)", c.Name, old, t))
			} else {
				changes = append(changes, fmt.Sprintf("widened column %q: %s -> %s", c.Name, old, t))
			}
		}
	}
	for i, c := range next.Columns {
		if h, ok := opts.Hints[c.Name]; ok && h.Strict && c.Type != h.Type {
			next.Columns[i].Type = h.Type
			changes = append(changes, fmt.Sprintf("column %q: %s -> %s (strict hint)", c.Name, c.Type, h.Type))
		}
	}
	if prev == nil {
		changes = []string{fmt.Sprintf("created with %d columns", len(next.Columns))}
		changed = true
	}
	if len(changes) == 0 && !changed { // prev != nil here
		return prev, false
	}
	next.Changes = changes
	next.UpdatedUnixMs = now().UnixMilli()
	return next, true
}

// Arrow returns the Arrow schema of s: one nullable field per column, in s.Columns order, typed by Type.Arrow.
// The schema metadata holds MetaTable and MetaSchemaVersion.
func (s *Schema) Arrow() *arrow.Schema {
	fields := make([]arrow.Field, len(s.Columns))
	for i, c := range s.Columns {
		fields[i] = arrow.Field{Name: c.Name, Type: c.Type.Arrow(), Nullable: true}
	}
	md := arrow.NewMetadata(
		[]string{MetaTable, MetaSchemaVersion},
		[]string{s.Table, strconv.FormatUint(uint64(s.Version), 10)},
	)
	return arrow.NewSchema(fields, &md)
}
