package merger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/nats-io/nats.go"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// earlyTestConfig makes groups of a few thousand rows large: 64 KiB row groups, so a group is
// written early once one of them is sealed.
func earlyTestConfig(instance string) Config {
	cfg := testConfig(instance)
	cfg.RowGroupBytes = 64 << 10
	return cfg
}

// bigBatch is one member of n rows "id,name,v", v = i unless v says otherwise; chunks of 500 rows.
func bigBatch(archive, tbl string, n int, v func(i int) string) (tbatch, []string) {
	recs := csvRows(n, func(i int) string { return fmt.Sprintf("%d,name-%d,%s", i, i%97, v(i)) })
	return tbatch{archive: archive, table: tbl, per: 500, members: []tmember{
		{name: tbl + "_20250101_1.csv", date: "2025-01-01", batch: "1", header: "id,name,v", records: recs},
	}}, recs
}

// readRows reads back a committed batch's objects as CSV lines of its first three columns (nulls
// empty), in object order.
func (e *env) readRows(bc *sluicev1.BatchCommitted) []string {
	var got []string
	for _, o := range bc.Objects {
		for _, row := range e.readParquet(o.Key).rows {
			cells := slices.Clone(row[:3])
			for i, c := range cells {
				if c == nullCell {
					cells[i] = ""
				}
			}
			got = append(got, strings.Join(cells, ",")+"\n")
		}
	}
	return got
}

// settled checks that the one group of the test was written when said ("early", or "commit" when
// what was written early was not adopted) in one commit attempt, that the budget and the early writers are back to zero
// and that nothing unfinished is left in the output.
func (e *env) settled(r *running, when string) {
	t := e.t
	t.Helper()
	if n := r.metricLabel(t, "sluice_merger_groups_parsed_total", "when", when); n != 1 {
		t.Fatalf("groups written at %s: %v, want 1", when, n)
	}
	// In one attempt: a failed attempt's retry parses the group again (counted again too).
	if n := r.metric(t, "sluice_merger_commit_retries_total"); n != 0 {
		t.Fatalf("%v commit retries, want none", n)
	}
	e.cleared(r)
}

// cleared checks that the budget and the early writers are back to zero and that nothing
// unfinished is left in the output.
func (e *env) cleared(r *running) {
	t := e.t
	t.Helper()
	eventually(t, 10*time.Second, "memory given back", func() bool {
		return r.metric(t, "sluice_merger_memory_bytes") == 0 && r.metric(t, "sluice_merger_early_groups") == 0
	})
	if n := e.leftoverUploads(); n != 0 {
		t.Fatalf("%d unfinished uploads left in the output", n)
	}
}

// leftoverUploads counts the unfinished uploads (S3 multipart uploads, temporary files) in the
// output, aborting them.
func (e *env) leftoverUploads() int {
	n, err := e.out.AbortStale(context.Background(), "", time.Now().Add(time.Hour))
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// TestWrittenEarly: a group larger than a row group is written as its chunks arrive and
// committed with its batch: the rows read back are the CSV's, in order, with the data-quality
// rules applied on the way (a quarantine rule removes its rows), nothing is left unfinished in
// the output and the memory is given back.
func TestWrittenEarly(t *testing.T) {
	for _, sk := range sinks {
		t.Run(sk.name, func(t *testing.T) {
			e := newEnv(t, sk)
			ev := e.committedEvents()
			partners := &config.File{Partners: []config.Partner{{Name: "default", Tables: map[string]config.TableConfig{
				"big": {Quality: &config.Quality{Columns: map[string]*config.ColumnRules{
					"v": {Range: &config.Range{Max: "19000"}, Action: "quarantine"}}}},
			}}}}
			r := e.start(earlyTestConfig("m1"), nil, partners)
			tb, recs := bigBatch("e1000000000000000001", "big", 20000, func(i int) string { return fmt.Sprint(i) })
			chunks, marker, _ := tb.msgs(e.bus.Subjects)
			e.publish(chunks...)
			eventually(t, 30*time.Second, "a group written early", func() bool {
				return r.metric(t, "sluice_merger_early_groups") == 1
			})
			e.publish(marker)
			bc := ev.nextCommitted(t, 30*time.Second)
			want := recs[:19001] // v <= 19000
			if got := e.readRows(bc); !slices.Equal(got, want) {
				t.Fatalf("read back %d rows, want %d (first %q, want %q)", len(got), len(want), first(got), first(want))
			}
			if bc.RowsOut != 19001 || bc.Quarantined != 999 {
				t.Fatalf("rows out %d, quarantined %d; want 19001 and 999", bc.RowsOut, bc.Quarantined)
			}
			e.settled(r, "early")
		})
	}
}

func first(xs []string) string {
	if len(xs) == 0 {
		return ""
	}
	return xs[0]
}

// TestWrittenEarlyNotAdopted: what was written early is aborted, and the group written from its
// CSV, when the batch does not commit under the schema it was written under: a column widens
// after the start (int64 to float64: written early as int64; to text: no longer collected), or
// another batch changes the table's schema first. The rows are right either way and nothing is
// left unfinished in the output.
func TestWrittenEarlyNotAdopted(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    func(i int) string
	}{
		{"float", func(i int) string {
			if i == 15000 {
				return "1.5"
			}
			return fmt.Sprint(i)
		}},
		{"text", func(i int) string {
			if i == 15000 {
				return "n/a"
			}
			return fmt.Sprint(i)
		}},
		{"registry", func(i int) string { return fmt.Sprint(i) }},
		{"registry-type", func(i int) string { return fmt.Sprint(i) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, sinks[1])
			ev := e.committedEvents()
			r := e.start(earlyTestConfig("m1"), nil, nil)
			tb, recs := bigBatch("e2000000000000000001", "wide", 20000, tc.v)
			chunks, marker, _ := tb.msgs(e.bus.Subjects)
			var rest []*nats.Msg
			if strings.HasPrefix(tc.name, "registry") {
				e.publish(chunks...)
			} else {
				e.publish(chunks[:10]...)
				rest = chunks[10:]
			}
			eventually(t, 30*time.Second, "a group written early", func() bool {
				return r.metric(t, "sluice_merger_early_groups") == 1
			})
			e.publish(rest...)
			if strings.HasPrefix(tc.name, "registry") {
				// Another archive of the table adds a column (or widens v) and commits first.
				other := tbatch{archive: "e2000000000000000002", table: "wide", members: []tmember{
					{name: "wide_20250102_1.csv", date: "2025-01-02", batch: "1", header: "id,name,v,extra", records: []string{"1,a,2,x\n"}},
				}}
				if tc.name == "registry-type" {
					other.members[0].header, other.members[0].records = "id,name,v", []string{"1,a,1.5\n"}
				}
				e.publishBatch(other)
				if bc := ev.nextCommitted(t, 30*time.Second); bc.ArchiveId != other.archive {
					t.Fatalf("committed %s first", bc.ArchiveId)
				}
			}
			e.publish(marker)
			bc := ev.nextCommitted(t, 30*time.Second)
			if bc.ArchiveId != tb.archive {
				t.Fatalf("committed %s", bc.ArchiveId)
			}
			// Integers read back as written under float64 too (FormatFloat 'g' of values < 2^21).
			if got := e.readRows(bc); !slices.Equal(got, recs) {
				t.Fatalf("read back %d rows, want %d (first %q, want %q)", len(got), len(recs), first(got), first(recs))
			}
			// Every object has v as the batch's schema has it, the row groups written early too.
			want := arrow.PrimitiveTypes.Int64
			if tc.name == "float" || tc.name == "registry-type" {
				want = arrow.PrimitiveTypes.Float64
			} else if tc.name == "text" {
				want = arrow.BinaryTypes.String
			}
			for _, o := range bc.Objects {
				if _, typ, _ := e.readParquet(o.Key).column("v"); !arrow.TypeEqual(typ, want) {
					t.Fatalf("%s: v is %s, want %s", o.Key, typ, want)
				}
			}
			e.settled(r, "commit")
		})
	}
}

// TestWrittenEarlyMemberJoins: a second member of the group (the same process date and batch
// id, at another path in the archive) brings a column the first one lacks, after the group began
// to be written early with that column all null (absent: its rules are reported as a missing
// column). What was written early is not adopted: the group is written at commit, the second
// member's values of the column are kept and the column's rule is checked on them.
func TestWrittenEarlyMemberJoins(t *testing.T) {
	e := newEnv(t, sinks[0])
	ev := e.committedEvents()
	partners := &config.File{Partners: []config.Partner{{Name: "default", Tables: map[string]config.TableConfig{
		"join": {Quality: &config.Quality{Columns: map[string]*config.ColumnRules{"extra": {Regex: "^x[0-9]+$"}}}},
	}}}}
	r := e.start(earlyTestConfig("m1"), nil, partners)
	// The registry has "extra" already: another archive of the table brought it.
	other := tbatch{archive: "e3000000000000000002", table: "join", members: []tmember{
		{name: "join_20250102_1.csv", date: "2025-01-02", batch: "1", header: "id,name,v,extra", records: []string{"1,a,2,x\n"}},
	}}
	e.publishBatch(other)
	if bc := ev.nextCommitted(t, 30*time.Second); bc.ArchiveId != other.archive {
		t.Fatalf("committed %s first", bc.ArchiveId)
	}
	tb, recs := bigBatch("e3000000000000000001", "join", 20000, func(i int) string { return fmt.Sprint(i) })
	const late = 600
	tb.members = append(tb.members, tmember{name: "more/join_20250101_1.csv", date: "2025-01-01", batch: "1",
		header: "id,name,v,extra", records: csvRows(late, func(i int) string { return fmt.Sprintf("%d,late,%d,x%d", 20000+i, i, i) })})
	chunks, marker, _ := tb.msgs(e.bus.Subjects)
	firstMember := 20000 / tb.per
	e.publish(chunks[:firstMember]...)
	eventually(t, 30*time.Second, "a group written early", func() bool {
		return r.metric(t, "sluice_merger_early_groups") == 1
	})
	e.publish(chunks[firstMember:]...)
	e.publish(marker)
	bc := ev.nextCommitted(t, 30*time.Second)
	if bc.ArchiveId != tb.archive || bc.RowsOut != 20000+late {
		t.Fatalf("committed %v", bc)
	}
	if q := bc.GetQuality(); len(q) != 1 || q[0].GetColumn() != "extra" || q[0].GetStatus() != "pass" || q[0].GetCheckedRows() != late {
		t.Fatalf("quality %v; want extra's rule passed on the second member's %d values", q, late)
	}
	var extra []string
	for _, o := range bc.Objects {
		x, _, ok := e.readParquet(o.Key).column("extra")
		if !ok {
			t.Fatalf("%s has no column extra", o.Key)
		}
		extra = append(extra, x...)
	}
	if got := e.readRows(bc); len(got) != 20000+late || !slices.Equal(got[:20000], recs) {
		t.Fatalf("read back %d rows, want %d", len(got), 20000+late)
	}
	for i, x := range extra {
		want := nullCell
		if i >= 20000 {
			want = fmt.Sprintf("x%d", i-20000)
		}
		if x != want {
			t.Fatalf("row %d: extra %q, want %q", i, x, want)
		}
	}
	e.settled(r, "commit")
}

// TestWrittenEarlyHandedBack: a merger that stops while writing a group early aborts what it
// wrote (nothing left in the output) and frees its memory; the next merger commits the batch.
func TestWrittenEarlyHandedBack(t *testing.T) {
	e := newEnv(t, sinks[1])
	ev := e.committedEvents()
	r := e.start(earlyTestConfig("m1"), nil, nil)
	tb, recs := bigBatch("e3000000000000000001", "back", 20000, func(i int) string { return fmt.Sprint(i) })
	chunks, marker, _ := tb.msgs(e.bus.Subjects)
	e.publish(chunks...)
	eventually(t, 30*time.Second, "a group written early", func() bool {
		return r.metric(t, "sluice_merger_early_groups") == 1
	})
	r.stop()
	if g := r.metric(t, "sluice_merger_early_groups"); g != 0 {
		t.Fatalf("groups written early after stop: %v", g)
	}
	if n := e.leftoverUploads(); n != 0 {
		t.Fatalf("%d unfinished uploads left in the output", n)
	}
	// The chunks come back in any order (those in m1's last pull only after AckWait), so the
	// second merger may write the group early or at commit: the rows are what counts.
	e.start(earlyTestConfig("m2"), nil, nil)
	e.publish(marker)
	bc := ev.nextCommitted(t, 60*time.Second)
	if got := e.readRows(bc); !slices.Equal(got, recs) {
		t.Fatalf("read back %d rows, want %d", len(got), len(recs))
	}
}

// TestWrittenEarlySwept: the stale-upload sweep may abort a group's early upload while the group
// waits for its marker (an S3 upload's age counts from its creation; a temporary file's from its
// last write). The batch still commits every row exactly once, from its CSV at commit, and
// nothing unfinished is left.
func TestWrittenEarlySwept(t *testing.T) {
	for _, sk := range sinks {
		t.Run(sk.name, func(t *testing.T) {
			e := newEnv(t, sk)
			ev := e.committedEvents()
			cfg := earlyTestConfig("m1")
			rows := 20000
			if sk.name == "s3" {
				// More than a 5 MiB part of Parquet written early, so that S3 holds a multipart
				// upload to abort: a column of random hex does not compress.
				cfg.RowGroupBytes, rows = 1<<20, 600000
			}
			r := e.start(cfg, nil, nil)
			rng := rand.New(rand.NewPCG(3, 4))
			tb, recs := bigBatch("e4000000000000000001", "swept", rows, func(int) string { return fmt.Sprintf("%016x", rng.Uint64()) })
			chunks, marker, _ := tb.msgs(e.bus.Subjects)
			e.publish(chunks...)
			eventually(t, 60*time.Second, "the group's chunks all taken and written early", func() bool {
				return r.metric(t, "sluice_merger_early_groups") == 1 && r.metric(t, "sluice_merger_held_messages") == float64(len(chunks))
			})
			// What the hourly sweep does, an hour on, until it has aborted the early upload (on S3 the
			// multipart upload starts with the first full part, which the writer may still be
			// encoding).
			eventually(t, 60*time.Second, "the sweep aborting the early upload", func() bool {
				r.m.abortStale(t.Context(), 0)
				return r.metric(t, "sluice_merger_stale_uploads_aborted_total") == 1
			})
			e.publish(marker)
			bc := ev.nextCommitted(t, 60*time.Second)
			if got := e.readRows(bc); !slices.Equal(got, recs) {
				t.Fatalf("read back %d rows, want %d (first %q, want %q)", len(got), len(recs), first(got), first(recs))
			}
			// Parsed from its CSV at commit; once more if the commit was retried (an abort that raced a
			// part upload in flight surfaces only when the upload is completed).
			if n := r.metricLabel(t, "sluice_merger_groups_parsed_total", "when", "commit"); n < 1 {
				t.Fatalf("groups written at commit: %v", n)
			}
			e.cleared(r)
		})
	}
}
