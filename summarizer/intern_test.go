package summarizer

import (
	"testing"
	"unsafe"

	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluice-dev/sluice/proto/sluicev1"
)

// TestIntern: two events decoded apart share their short strings after intern, in fields, lists
// and nested messages; long strings keep their own copy; the values do not change.
func TestIntern(t *testing.T) {
	key := "t/process_date=2025-03-01/batch_id=001/part-0123456789abcdef0123.parquet"
	ev := &sluicev1.BatchCommitted{ArchiveId: "0123456789abcdef0123", Table: "seattle_weather", SchemaChanges: []string{"added v"},
		Objects: []*sluicev1.CommittedObject{{Key: key, ProcessDate: "2025-03-01", BatchId: "001"}},
		Quality: []*sluicev1.QualityResult{{Rule: "not_null", Status: "pass", Observed: "0 rows"}}}
	data, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var a, b sluicev1.BatchCommitted
	for _, m := range []*sluicev1.BatchCommitted{&a, &b} {
		if err := proto.Unmarshal(data, m); err != nil {
			t.Fatal(err)
		}
		intern(m.ProtoReflect())
	}
	if !proto.Equal(&a, ev) || !proto.Equal(&b, ev) {
		t.Fatal("intern changed the values")
	}
	same := func(x, y string) bool { return unsafe.StringData(x) == unsafe.StringData(y) }
	for _, p := range [][2]string{{a.ArchiveId, b.ArchiveId}, {a.Table, b.Table}, {a.SchemaChanges[0], b.SchemaChanges[0]},
		{a.Objects[0].ProcessDate, b.Objects[0].ProcessDate}, {a.Quality[0].Rule, b.Quality[0].Rule}, {a.Quality[0].Observed, b.Quality[0].Observed}} {
		if !same(p[0], p[1]) {
			t.Errorf("%q not shared", p[0])
		}
	}
	if same(a.Objects[0].Key, b.Objects[0].Key) {
		t.Error("a long key was interned")
	}
}
