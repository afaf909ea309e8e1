package table

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		delim   byte
		want    []string
		renamed []Rename
	}{
		{"plain", "id,name,price", ',', []string{"id", "name", "price"}, nil},
		{"kept as written", " Id ,NAME,a b", ',', []string{" Id ", "NAME", "a b"}, nil},
		{"bom", "\xEF\xBB\xBFid,name", ',', []string{"id", "name"}, nil},
		{"terminator", "id,name\r\n", ',', []string{"id", "name"}, nil},
		{"semicolon", "id;name", ';', []string{"id", "name"}, nil},
		{"quoted", `"id","a,b","x""y"`, ',', []string{"id", "a,b", `x"y`}, nil},
		{"empty", "a,,b,", ',', []string{"a", "column_2", "b", "column_4"},
			[]Rename{{2, "", "column_2"}, {4, "", "column_4"}}},
		{"partition keys", "id,batch_id,Process_Date,batch_id_2,batch_id", ',', []string{"id", "batch_id_3", "Process_Date_2", "batch_id_2", "batch_id_4"},
			[]Rename{{2, "batch_id", "batch_id_3"}, {3, "Process_Date", "Process_Date_2"}, {5, "batch_id", "batch_id_4"}}},
		{"duplicates", "a,b,a,a", ',', []string{"a", "b", "a_2", "a_3"},
			[]Rename{{3, "a", "a_2"}, {4, "a", "a_3"}}},
		{"duplicate avoids real name", "a,a,a_2", ',', []string{"a", "a_3", "a_2"},
			[]Rename{{2, "a", "a_3"}}},
		{"empty avoids real name", ",column_1", ',', []string{"column_1_2", "column_1"},
			[]Rename{{1, "", "column_1_2"}}},
		{"duplicate of generated", "column_1,,column_2,", ',', []string{"column_1", "column_2_2", "column_2", "column_4"},
			[]Rename{{2, "", "column_2_2"}, {4, "", "column_4"}}},
		{"invalid utf-8", "a\xffb,c", ',', []string{"a\uFFFDb", "c"}, []Rename{{1, "a\xffb", "a\uFFFDb"}}},
		{"single", "x", ',', []string{"x"}, nil},
		{"bare quote", `a"b,c`, ',', []string{`a"b`, "c"}, nil},
		{"single empty quoted", `""`, ',', []string{"column_1"}, []Rename{{1, "", "column_1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			names, renamed, err := ParseHeader([]byte(tt.raw), tt.delim)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(names, tt.want) || !reflect.DeepEqual(renamed, tt.renamed) {
				t.Errorf("got %q %+v, want %q %+v", names, renamed, tt.want, tt.renamed)
			}
			// stable
			again, _, _ := ParseHeader([]byte(tt.raw), tt.delim)
			if !reflect.DeepEqual(names, again) {
				t.Error("not stable")
			}
		})
	}
}

func TestParseHeaderErrors(t *testing.T) {
	for _, raw := range []string{"", "\xEF\xBB\xBF", "\r\n", `a,"b`, `"a"b,c`, "a,b\nc,d"} {
		if _, _, err := ParseHeader([]byte(raw), ','); !errors.Is(err, ErrBadHeader) {
			t.Errorf("ParseHeader(%q) = %v, want ErrBadHeader", raw, err)
		}
	}
	if _, _, err := ParseHeader([]byte("a"), '"'); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("bad delimiter: %v", err)
	}
}
