package table

import (
	"errors"
	"fmt"
)

// DefaultNullTokens are the values read as null when Options.NullTokens is nil.
var DefaultNullTokens = []string{"", "NULL", "null", "NA", "N/A"}

// Options are the parsing settings of a table (usually of a partner). The zero value is valid: ',' as delimiter,
// DefaultNullTokens, tokens kept as text in string columns, no hints.
type Options struct {
	Delimiter  byte     // field delimiter, one ASCII byte other than '"', '\r', '\n', NUL; 0 means ','
	NullTokens []string // values read as null, compared exactly; nil means DefaultNullTokens, empty means none
	// StringsCanBeNull: the null tokens other than "" are null in string columns too. false (the default, as
	// Arrow C++'s ConvertOptions.strings_can_be_null): a string column keeps them as the text the partner sent;
	// they are null only in columns of another type. The empty token is null in every column either way.
	StringsCanBeNull bool
	Hints            map[string]Hint // by column name as returned by ParseHeader
}

// Hint sets a column's type instead of (Strict) or as the start of (not Strict) inference.
type Hint struct {
	Type Type
	// Strict true: the column IS this type; a non-null value that does not read as it (its own type does not
	// widen to Type) rejects the row. Strict false: the column starts at this type and may only widen from it
	// (e.g. String keeps zip codes as text).
	Strict bool
}

// ErrInvalidOptions is wrapped by the errors of Options.Validate.
var ErrInvalidOptions = errors.New("table: invalid options")

// Validate reports options that cannot be used. NewInferer and NewBuilder do not fail on them; their Observe and
// Append return this error instead.
func (o Options) Validate() error {
	switch d := o.Delimiter; {
	case d == '"' || d == '\r' || d == '\n':
		return fmt.Errorf("%w: delimiter %q", ErrInvalidOptions, rune(d))
	case d >= 0x80:
		return fmt.Errorf("%w: delimiter byte 0x%02x is not ASCII", ErrInvalidOptions, d)
	}
	for name, h := range o.Hints {
		if !h.Type.valid() {
			return fmt.Errorf("%w: hint for column %q: invalid type %d", ErrInvalidOptions, name, uint8(h.Type))
		}
		if h.Strict && h.Type == Null {
			return fmt.Errorf("%w: hint for column %q: a strict hint cannot be null", ErrInvalidOptions, name)
		}
	}
	return nil
}

func (o Options) delimiter() byte {
	if o.Delimiter == 0 {
		return ','
	}
	return o.Delimiter
}

// nullSet matches null tokens without allocating: tokens are grouped by length and a bit mask rejects most
// values on their length alone.
type nullSet struct {
	lens   uint64 // bit n set: some token has length n (n < 64)
	tokens []string
	empty  bool
}

func newNullSet(tokens []string) nullSet {
	if tokens == nil {
		tokens = DefaultNullTokens
	}
	var s nullSet
	for _, t := range tokens {
		if t == "" {
			s.empty = true
			continue
		}
		if len(t) < 64 {
			s.lens |= 1 << len(t)
		} else {
			s.lens |= 1 << 63 // long tokens: always compare
		}
		s.tokens = append(s.tokens, t)
	}
	return s
}

func (s *nullSet) match(b []byte) bool {
	n := len(b)
	if n == 0 {
		return s.empty
	}
	if n < 63 && s.lens&(1<<n) == 0 {
		return false
	}
	for _, t := range s.tokens {
		if string(b) == t {
			return true
		}
	}
	return false
}
