package table

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Rename reports a column name ParseHeader generated in place of the one written in the header.
type Rename struct {
	Position int    // 1-based position in the header
	From, To string // From is "" for an empty name
}

// PartitionKeys are the keys of the output's hive layout (<table>/process_date=…/batch_id=…/): no column takes
// their names (ParseHeader).
var PartitionKeys = []string{"process_date", "batch_id"}

func isPartitionKey(name string) bool {
	for _, k := range PartitionKeys {
		if strings.EqualFold(name, k) {
			return true
		}
	}
	return false
}

// ErrBadHeader is wrapped by ParseHeader's errors.
var ErrBadHeader = errors.New("table: bad header")

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// ParseHeader splits a header record into column names, kept as the partner wrote them (no trimming, letter case
// kept). A UTF-8 BOM and a trailing line terminator are stripped defensively. Fields may be quoted like data
// fields. Generated names are reported in renamed:
//   - an empty name becomes "column_<1-based position>";
//   - a repeated name keeps its first occurrence; later ones become "<name>_2", "<name>_3", …;
//   - a name that is, in any letter case, one of the output's partition keys (PartitionKeys: process_date,
//     batch_id) becomes "<name>_2" (…): a reader of the hive layout would otherwise show the key's value from the
//     object's path in place of the column's own values;
//   - a generated name never equals a name written in the header nor another generated name: the suffix (or an
//     extra "_<k>" after "column_<position>") counts up until it is free;
//   - invalid UTF-8 in a name is replaced by U+FFFD (then the rules above apply).
//
// The result depends only on raw and delim. It fails on an empty header, a malformed one (bad quoting), or one
// that holds more than one record.
func ParseHeader(raw []byte, delim byte) (names []string, renamed []Rename, err error) {
	if delim == 0 {
		delim = ','
	}
	if err := (Options{Delimiter: delim}).Validate(); err != nil {
		return nil, nil, err
	}
	raw = bytes.TrimPrefix(raw, utf8BOM)
	raw = bytes.TrimSuffix(raw, nlByte)
	raw = bytes.TrimSuffix(raw, []byte{'\r'})
	if len(raw) == 0 {
		return nil, nil, fmt.Errorf("%w: empty", ErrBadHeader)
	}
	s := newScanner(delim)
	s.reset(raw, 1)
	if !s.next() || s.kind == recBlank {
		return nil, nil, fmt.Errorf("%w: empty", ErrBadHeader)
	}
	if s.kind == recMalformed {
		return nil, nil, fmt.Errorf("%w: %s", ErrBadHeader, s.reason)
	}
	if s.pos < len(raw) {
		return nil, nil, fmt.Errorf("%w: line break outside quotes", ErrBadHeader)
	}

	written := make([]string, len(s.fields))
	taken := make(map[string]bool, len(s.fields)) // every name written in the header, then generated ones
	for i, f := range s.fields {
		name := string(f)
		if !utf8.ValidString(name) {
			name = strings.ToValidUTF8(name, "\uFFFD")
		}
		written[i] = name
		if name != "" {
			taken[name] = true
		}
	}

	names = make([]string, len(written))
	seen := make(map[string]bool, len(written)) // names already given to an earlier position
	for i, name := range written {
		orig := string(s.fields[i])
		switch {
		case isPartitionKey(name):
			base := name
			for k := 2; taken[name] || isPartitionKey(name); k++ {
				name = base + "_" + strconv.Itoa(k)
			}
			taken[name] = true
		case name == "":
			base := "column_" + strconv.Itoa(i+1)
			name = base
			for k := 2; taken[name]; k++ {
				name = base + "_" + strconv.Itoa(k)
			}
			taken[name] = true
		case seen[name]:
			base := name
			for k := 2; taken[name]; k++ {
				name = base + "_" + strconv.Itoa(k)
			}
			taken[name] = true
		}
		seen[name] = true
		names[i] = name
		if name != orig {
			renamed = append(renamed, Rename{Position: i + 1, From: orig, To: name})
		}
	}
	return names, renamed, nil
}
