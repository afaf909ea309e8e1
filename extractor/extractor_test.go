package extractor

import (
	"archive/tar"
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// ordersCSV is a member with quoted newlines, CRLF, an escaped quote and a delimiter in quotes.
func ordersCSV(rows int) (header, body string) {
	var b strings.Builder
	for i := range rows {
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "%d,\"note with\nnewline, and \"\"quotes\"\"\",%d.50\r\n", i, i)
		case 1:
			fmt.Fprintf(&b, "%d,\"crlf\r\ninside\",%d\n", i, i)
		default:
			fmt.Fprintf(&b, "%d,plain %d,%d\n", i, i, i*7)
		}
	}
	return "id,note,amount", b.String()
}

func TestExtractMultiTableArchive(t *testing.T) {
	v := newEnv(t, Config{ChunkBytes: 2048})
	oh, ob := ordersCSV(1500)
	ch := "cid,name"
	cb := "1,Ann\n2,\"Bob \"\"B\"\"\"\n3,Cy" // last record without newline
	members := map[string][2]string{
		"export/orders_20250101_b1.csv":                {oh, ob},
		"export/deep/er/customers_20250101_b1.csv":     {ch, cb},
		"orders_20250102_b2.csv":                       {oh, "900,late,1\n"},
		"export/deep/er/customers_20250103_b7.csv.bak": {ch, "x\n"},
	}
	data := tarGz(t,
		entry{name: "export/", typeflag: tar.TypeDir},
		file("export/orders_20250101_b1.csv", oh+"\r\n"+ob),
		file("export/README.txt", "hello"),
		file("export/deep/er/customers_20250101_b1.csv", "\xEF\xBB\xBF"+ch+"\n"+cb),
		file("orders_20250102_b2.csv", oh+"\n900,late,1\n"),
		file("export/deep/er/customers_20250103_b7.csv.bak", ch+"\nx\n"),
	)
	ev := landArchive(t, "partner_20250101.tar.gz", data)
	v.createRecord(t, ev)

	out, err := v.e.Extract(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	msgs := v.rows(t)
	tables := byTable(msgs)
	if len(tables) != 2 {
		t.Fatalf("tables %v", keys(tables))
	}
	// Every member's rows reassemble exactly, on its table's subject.
	got := memberData(msgs)
	for name, hb := range members {
		if strings.HasSuffix(name, ".bak") {
			continue
		}
		if got[name] != hb[1] {
			t.Errorf("member %s: reassembled data differs\n got %q\nwant %q", name, got[name], hb[1])
		}
	}
	wantRows := map[string]int64{"orders": 1501, "customers": 3}
	for table, ms := range tables {
		subject := v.b.Subjects.Rows(bus.Partition(ev.ArchiveId, table, v.b.Subjects.Partitions), table)
		var chunks uint32
		var rows, nbytes int64
		for i, m := range ms {
			if m.subject != subject {
				t.Fatalf("%s message on %s, want %s", table, m.subject, subject)
			}
			if i == len(ms)-1 {
				if m.done == nil {
					t.Fatalf("%s: last message is %q, want the marker", table, m.typ)
				}
				continue
			}
			c := m.chunk
			if c == nil {
				t.Fatalf("%s: %q before the marker", table, m.typ)
			}
			if c.ChunkIndex != chunks {
				t.Fatalf("%s: chunk_index %d at position %d", table, c.ChunkIndex, chunks)
			}
			if want := bus.MsgID(ev.ArchiveId, 0, table, "c", chunks); m.msgID != want {
				t.Fatalf("msg id %q want %q", m.msgID, want)
			}
			if c.ProcessDate == "" || c.BatchId == "" || c.Delimiter != "," || c.Partner != "default" || c.ArchiveId != ev.ArchiveId {
				t.Fatalf("chunk metadata %+v", c)
			}
			if string(c.Header) != map[string]string{"orders": oh, "customers": ch}[table] {
				t.Fatalf("header %q", c.Header)
			}
			chunks++
			rows += int64(c.Rows)
			nbytes += int64(len(m.records))
		}
		done := ms[len(ms)-1].done
		if done.Chunks != chunks || done.Rows != rows || done.Bytes != nbytes || rows != wantRows[table] {
			t.Fatalf("%s marker %d chunks %d rows %d bytes; stream has %d/%d/%d", table, done.Chunks, done.Rows, done.Bytes, chunks, rows, nbytes)
		}
		var memberRows int64
		for i, mi := range done.Members {
			memberRows += mi.Rows
			first := ms[mi.FirstChunk].chunk
			if first.Member != mi.Name || first.MemberChunk != 0 || first.MemberIndex != uint32(i) {
				t.Fatalf("member %s: first chunk %+v", mi.Name, first)
			}
			last := ms[mi.FirstChunk+mi.Chunks-1].chunk
			if !last.LastInMember || last.Member != mi.Name {
				t.Fatalf("member %s: last chunk not flagged", mi.Name)
			}
		}
		if memberRows != rows {
			t.Fatalf("%s: members sum to %d rows, marker says %d", table, memberRows, rows)
		}
	}
	// first_line is physical: the orders header is line 1 and its first record starts on line 2.
	first := tables["orders"][0].chunk
	if first.FirstLine != 2 || first.ProcessDate != "2025-01-01" || first.BatchId != "b1" {
		t.Fatalf("first chunk %d %s %s", first.FirstLine, first.ProcessDate, first.BatchId)
	}
	if len(tables["orders"]) < 10 {
		t.Fatalf("expected many chunks with ChunkBytes 2048, got %d", len(tables["orders"]))
	}
	rej := rejectedReasons(out)
	if _, listed := rej["export"]; listed || len(rej) != 2 {
		t.Errorf("directory entries must not be listed as members: %v", rej)
	}
	for name, want := range map[string]string{
		"export/README.txt":                            "skipped: not a table file",
		"export/deep/er/customers_20250103_b7.csv.bak": "skipped: not a table file",
	} {
		if rej[name] != want {
			t.Errorf("rejected[%s] = %q, want %q (all: %v)", name, rej[name], want, rej)
		}
	}
	if len(out.Tables) != 2 || out.CompressedBytes != int64(len(data)) || out.UncompressedBytes < int64(len(ob)) {
		t.Fatalf("event %+v", out)
	}
	if evs := eventsOf(t, v, v.b.Subjects.Extracted(), func() *sluicev1.ArchiveExtracted { return &sluicev1.ArchiveExtracted{} }); len(evs) != 1 {
		t.Fatalf("%d extracted events", len(evs))
	}
	rec, _, err := v.ledger.Get(context.Background(), ev.ArchiveId)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != ledger.Extracted || rec.Tables != 2 || rec.RowsIn != 1504 {
		t.Fatalf("ledger %+v", rec)
	}

	// Re-running the same attempt stores nothing new anywhere.
	before, beforeEvents := len(msgs), len(v.streamMsgs(t, v.b.Subjects.EventsStream()))
	if _, err := v.e.Extract(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if after := len(v.rows(t)); after != before {
		t.Fatalf("re-run stored %d new rows messages", after-before)
	}
	if after := len(v.streamMsgs(t, v.b.Subjects.EventsStream())); after != beforeEvents {
		t.Fatalf("re-run stored %d new events", after-beforeEvents)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestExtractHostileAndOddMembers(t *testing.T) {
	v := newEnv(t, Config{ChunkBytes: 2048})
	big := strings.Repeat("y", 5000)
	var many strings.Builder
	for i := range 200 {
		fmt.Fprintf(&many, "%d,ok\n", i)
	}
	data := tarGz(t,
		file("/etc/abs_20250101_b1.csv", "a\n1\n"),
		file("../escape_20250101_b1.csv", "a\n1\n"),
		file("x/../../escape2_20250101_b1.csv", "a\n1\n"),
		file(`..\win_20250101_b1.csv`, "a\n1\n"),
		file("C:/drive_20250101_b1.csv", "a\n1\n"),
		// A GNU sparse file (PAX format 1.0): its stored bytes are a map of data and holes, then
		// the data; what it reads as is not what it stores.
		paxRecords("GNU.sparse.major", "1", "GNU.sparse.minor", "0", "GNU.sparse.name", "sparse_20250101_b1.csv", "GNU.sparse.realsize", "4"),
		file("GNUSparseFile.0/sparse_20250101_b1.csv", "1\n0\n4\n"+strings.Repeat("\x00", 512-6)+"a\n1\n"),
		file("ctl\x01name_20250101_b1.csv", "a\n1\n"),
		entry{name: "link_20250101_b1.csv", typeflag: tar.TypeSymlink, link: "/etc/passwd"},
		entry{name: "hard_20250101_b1.csv", typeflag: tar.TypeLink, link: "good_20250101_b1.csv"},
		entry{name: "dev_20250101_b1.csv", typeflag: tar.TypeChar},
		entry{name: "blk_20250101_b1.csv", typeflag: tar.TypeBlock},
		entry{name: "fifo_20250101_b1.csv", typeflag: tar.TypeFifo},
		file("empty_20250101_b1.csv", ""),
		file("bomonly_20250101_b1.csv", "\xEF\xBB\xBF"),
		file("headeronly_20250101_b1.csv", "c1,c2\r\n"),
		file("utf_20250101_b1.csv", "a,b\nok,é\nbad,\xff\xfe\n\"multi\nline\xc0\",x\n"),
		file("good_20250101_b1.csv", "a,b\n1,2\n"),
		// The first record is too large: nothing published yet, only this member is rejected.
		file("good_20250101_b2.csv", "a,b\n"+big+"\n"),
		// A too-large record after chunks were published: the table's batch is aborted.
		file("wide_20250101_b1.csv", "a,b\n"+many.String()+big+",x\n"),
		file("wide_20250101_b2.csv", "a,b\n1,2\n"),
		file("open_20250101_b1.csv", "a,b\n1,\"never closed\n2,3\n"),
		// Named as a table file, but its date is no calendar date: rejected (a finding), not
		// skipped as a file that is not a table's.
		file("month13_20251301_b1.csv", "a\n1\n"),
		file("day32_20250132_b1.csv", "a\n1\n"),
	)
	ev := landArchive(t, "hostile.tar.gz", data)
	v.createRecord(t, ev)
	out, err := v.e.Extract(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	rej := rejectedReasons(out)
	want := map[string]string{
		"/etc/abs_20250101_b1.csv":        "rejected: absolute path",
		"../escape_20250101_b1.csv":       "rejected: path escapes archive root",
		"x/../../escape2_20250101_b1.csv": "rejected: path escapes archive root",
		"../win_20250101_b1.csv":          "rejected: path escapes archive root",
		"C:/drive_20250101_b1.csv":        "rejected: absolute path",
		"sparse_20250101_b1.csv":          "rejected: sparse file",
		"ctl\x01name_20250101_b1.csv":     "rejected: table name contains control characters",
		"link_20250101_b1.csv":            "rejected: symlink",
		"hard_20250101_b1.csv":            "rejected: hard link",
		"dev_20250101_b1.csv":             "rejected: device",
		"blk_20250101_b1.csv":             "rejected: device",
		"fifo_20250101_b1.csv":            "rejected: fifo",
		"empty_20250101_b1.csv":           "skipped: empty file",
		"bomonly_20250101_b1.csv":         "skipped: empty file",
		"good_20250101_b2.csv":            "rejected: record at line 2 exceeds max message size",
		"wide_20250101_b1.csv":            "rejected: record at line 202 exceeds max message size",
		"wide_20250101_b2.csv":            "rejected: table batch aborted: record at line 202 exceeds max message size in member wide_20250101_b1.csv",
		"open_20250101_b1.csv":            "rejected: unterminated quoted field at line 2",
		"month13_20251301_b1.csv":         `rejected: date "20251301" is not a calendar date`,
		"day32_20250132_b1.csv":           `rejected: date "20250132" is not a calendar date`,
	}
	for name, w := range want {
		if rej[name] != w {
			t.Errorf("%s: got %q, want %q", name, rej[name], w)
		}
	}
	if len(rej) != len(want) {
		t.Errorf("rejected %d members, want %d: %v", len(rej), len(want), rej)
	}

	tables := byTable(v.rows(t))
	// The aborted table: chunks, then the abort as its last message, and no marker.
	wide := tables["wide"]
	if len(wide) < 2 || wide[len(wide)-1].abort == nil {
		t.Fatalf("wide: want chunks then an abort, got %d messages", len(wide))
	}
	for _, m := range wide {
		if m.done != nil {
			t.Fatal("wide: marker published for an aborted batch")
		}
	}
	if !strings.Contains(wide[len(wide)-1].abort.Reason, "record at line 202") {
		t.Fatalf("abort reason %q", wide[len(wide)-1].abort.Reason)
	}
	// Header-only: one zero-row chunk carrying the header, announced as header_only.
	ho := tables["headeronly"]
	if len(ho) != 2 || ho[0].chunk.Rows != 0 || string(ho[0].chunk.Header) != "c1,c2" || len(ho[0].records) != 0 ||
		ho[0].chunk.Codec != sluicev1.Chunk_CODEC_NONE ||
		!ho[0].chunk.LastInMember {
		t.Fatalf("header-only: %+v", ho)
	}
	if m := ho[1].done; m == nil || len(m.Members) != 1 || !m.Members[0].HeaderOnly || m.Rows != 0 || m.Chunks != 1 {
		t.Fatalf("header-only marker: %+v", ho[1].done)
	}
	// Invalid UTF-8 is passed through as bytes and counted per member.
	utf := tables["utf"]
	if m := utf[len(utf)-1].done; m == nil || m.Members[0].InvalidUtf8Rows != 2 || m.Rows != 3 {
		t.Fatalf("utf marker: %+v", utf[len(utf)-1].done)
	}
	if d := memberData(utf)["utf_20250101_b1.csv"]; d != "ok,é\nbad,\xff\xfe\n\"multi\nline\xc0\",x\n" {
		t.Fatalf("utf data %q", d)
	}
	// good: b1 made it, b2 was rejected alone.
	good := tables["good"]
	if m := good[len(good)-1].done; m == nil || len(m.Members) != 1 || m.Members[0].Name != "good_20250101_b1.csv" || m.Rows != 1 {
		t.Fatalf("good marker: %+v", good[len(good)-1].done)
	}
	for _, name := range []string{"abs", "escape", "link", "dev", "empty", "open"} {
		if len(tables[name]) != 0 {
			t.Errorf("table %s has %d messages", name, len(tables[name]))
		}
	}
	var tnames []string
	for _, tc := range out.Tables {
		tnames = append(tnames, tc.Table)
	}
	if strings.Join(tnames, ",") != "headeronly,utf,good" {
		t.Fatalf("tables in event: %v", tnames)
	}
}

func TestExtractMultiMemberGzipAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	v := newEnv(t, Config{}, func(d *Deps) { d.Metrics = reg })
	// The tar stream split in two, each half its own gzip member, concatenated (like `cat a.gz b.gz`).
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	for i, body := range []string{"a\n1\n2\n", "a\n3\n"} {
		_ = tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("t_2025010%d_b1.csv", i+1), Size: int64(len(body)), Mode: 0o644, Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte(body))
	}
	_ = tw.Close()
	raw := tarBuf.Bytes()
	var data []byte
	for _, part := range [][]byte{raw[:700], raw[700:]} {
		var gzBuf bytes.Buffer
		gz := stdgzip.NewWriter(&gzBuf)
		_, _ = gz.Write(part)
		_ = gz.Close()
		data = append(data, gzBuf.Bytes()...)
	}
	ev := landArchive(t, "multi.tar.gz", data)
	out, err := v.e.Extract(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Tables) != 1 || out.Tables[0].Rows != 3 || len(out.Tables[0].Members) != 2 {
		t.Fatalf("%+v", out.Tables)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "," + l.GetValue()
			}
			got[name] = m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	for name, want := range map[string]float64{
		"sluice_extractor_archives_total,extracted":   1,
		"sluice_extractor_rows_total":                 3,
		"sluice_extractor_chunks_published_total":     2,
		"sluice_extractor_duration_seconds,extracted": 1,
		"sluice_extractor_bytes_in_total":             float64(len(data)),
		"sluice_extractor_csv_bytes_total":            float64(out.Tables[0].GetBytes()),
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
}

func TestExtractLatin1Partner(t *testing.T) {
	v := newEnv(t, Config{})
	data := tarGz(t, file("names_20250101_b1.csv", "\xEF\xBB\xBFname,city\nJos\xe9,K\xf6ln\n\"Fran\xe7ois\nII\",S\xe3o Paulo\n"))
	ev := landArchive(t, "latin.tar.gz", data)
	ev.Partner = "latin"
	out, err := v.e.Extract(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	got := memberData(v.rows(t))["names_20250101_b1.csv"]
	if got != "José,Köln\n\"François\nII\",São Paulo\n" {
		t.Fatalf("transcoded data %q", got)
	}
	if out.Tables[0].Rows != 2 || out.Tables[0].Members[0].InvalidUtf8Rows != 0 {
		t.Fatalf("%+v", out.Tables[0])
	}
}

func TestExtractPartnerDelimiterAndPattern(t *testing.T) {
	v := newEnv(t, Config{})
	data := tarGz(t, file("in/sales-20250105-x9.txt", "a|b\n1|\"x|y\"\n"), file("sales_20250105_b1.csv", "a\n1\n"))
	ev := landArchive(t, "pipes.tar.gz", data)
	ev.Partner = "pipes"
	out, err := v.e.Extract(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	c := v.rows(t)[0].chunk
	if c.Delimiter != "|" || c.Table != "sales" || c.ProcessDate != "2025-01-05" || c.BatchId != "x9" || c.Rows != 1 {
		t.Fatalf("chunk %+v", c)
	}
	if rejectedReasons(out)["sales_20250105_b1.csv"] != "skipped: not a table file" {
		t.Fatalf("rejected %v", rejectedReasons(out))
	}
}

// randomCSV returns a member big enough to span many chunks and compress poorly.
func randomCSV(seed int64, rows int) string {
	r := rand.New(rand.NewSource(seed))
	var b strings.Builder
	b.WriteString("id,v,w\n")
	for i := range rows {
		fmt.Fprintf(&b, "%d,%x,\"%x\n%x\"\n", i, r.Int63(), r.Int63(), r.Int63())
	}
	return b.String()
}

func TestExtractFailuresAbortStartedTables(t *testing.T) {
	good := tarGz(t, file("first_20250101_b1.csv", randomCSV(1, 3000)), file("second_20250101_b1.csv", randomCSV(2, 3000)))
	cases := []struct {
		name   string
		data   []byte
		cfg    Config
		reason string
	}{
		{"truncated", good[:len(good)*3/4], Config{ChunkBytes: 4096}, "truncated archive"},
		{"corrupt gzip", corrupt(good), Config{ChunkBytes: 4096}, "corrupt "},
		{"size bomb", good, Config{ChunkBytes: 4096, MaxUncompressed: 200 << 10}, "decompression bomb: uncompressed size exceeds limit of 204800 bytes"},
		{"not gzip", []byte("this is not a gzip file at all"), Config{}, "corrupt gzip stream"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newEnv(t, tc.cfg)
			ev := landArchive(t, "bad.tar.gz", tc.data)
			v.createRecord(t, ev)
			out, err := v.e.Extract(context.Background(), ev)
			var ae *ArchiveError
			if !errors.As(err, &ae) || out != nil {
				t.Fatalf("err = %v, want an ArchiveError", err)
			}
			if !strings.HasPrefix(ae.Reason, tc.reason) || ae.Transient || !ae.Final {
				t.Fatalf("reason %q transient %v final %v, want %q", ae.Reason, ae.Transient, ae.Final, tc.reason)
			}
			msgs := v.rows(t)
			started := map[string]bool{}
			for table, ms := range byTable(msgs) {
				started[table] = true
				// The abort carries the archive's reason, or an earlier table-level one (garbage
				// decoded from a corrupt stream can look like an oversized record).
				if last := ms[len(ms)-1]; last.abort == nil {
					t.Fatalf("%s: last message %q, want an abort", table, last.typ)
				}
				for _, m := range ms {
					if m.done != nil {
						t.Fatalf("%s: marker published for a failed archive", table)
					}
				}
			}
			if tc.name != "not gzip" && !started["first"] {
				t.Fatalf("expected chunks of table first before the failure (%d messages)", len(msgs))
			}
			failed := eventsOf(t, v, v.b.Subjects.Failed(), func() *sluicev1.ArchiveFailed { return &sluicev1.ArchiveFailed{} })
			if len(failed) != 1 || failed[0].Reason != ae.Reason || len(failed[0].TablesAborted) != len(started) {
				t.Fatalf("failed events %+v (started %v)", failed, started)
			}
			if failed[0].Origin != sluicev1.Stage_STAGE_EXTRACTOR {
				t.Fatalf("failed event origin %v", failed[0].Origin)
			}
			if n := len(eventsOf(t, v, v.b.Subjects.Extracted(), func() *sluicev1.ArchiveExtracted { return &sluicev1.ArchiveExtracted{} })); n != 0 {
				t.Fatalf("%d extracted events", n)
			}
			rec, _, err := v.ledger.Get(context.Background(), ev.ArchiveId)
			if err != nil || rec.State != ledger.Failed || rec.Reason != ae.Reason {
				t.Fatalf("ledger %+v %v", rec, err)
			}
		})
	}
}

// corrupt flips bytes in the middle of the deflate data.
func corrupt(data []byte) []byte {
	c := append([]byte(nil), data...)
	for i := len(c) / 2; i < len(c)/2+64; i++ {
		c[i] ^= 0x5A
	}
	return c
}

func TestExtractContentChangedSinceLanding(t *testing.T) {
	v := newEnv(t, Config{})
	ev := landArchive(t, "a.tar.gz", tarGz(t, file("t_20250101_b1.csv", "a\n1\n")))
	ev.Sha256 = strings.Repeat("0", 64)
	_, err := v.e.Extract(context.Background(), ev)
	var ae *ArchiveError
	if !errors.As(err, &ae) || !strings.HasPrefix(ae.Reason, "content changed since landing") {
		t.Fatalf("err %v", err)
	}
	ms := v.rows(t)
	if len(ms) != 2 || ms[1].abort == nil {
		t.Fatalf("want the chunk then an abort, got %d messages", len(ms))
	}
}

func TestLimitReaderRatio(t *testing.T) {
	src := &source{n: 1 << 20}
	l := &limitReader{r: zeroReader{}, src: src, max: 1 << 40, maxRatio: 100}
	buf := make([]byte, 1<<20)
	var err error
	for n := 0; err == nil && n < 1000; n++ {
		_, err = l.Read(buf)
	}
	var le *limitError
	if !errors.As(err, &le) || le.reason != "decompression bomb: compression ratio exceeds 100" {
		t.Fatalf("err %v", err)
	}
	if l.n <= 100<<20 || l.n > 102<<20 {
		t.Fatalf("stopped after %d bytes", l.n)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestMemberPath(t *testing.T) {
	for in, want := range map[string][2]string{
		"a/b.csv":     {"a/b.csv", ""},
		"./a/./b.csv": {"a/b.csv", ""},
		"a/../b.csv":  {"b.csv", ""},
		"/b.csv":      {"/b.csv", reasonAbsolute},
		"C:/b.csv":    {"C:/b.csv", reasonAbsolute},
		`c:\b.csv`:    {"c:/b.csv", reasonAbsolute},
		"../b.csv":    {"../b.csv", reasonEscapes},
		"a/../../b":   {"a/../../b", reasonEscapes},
		"..":          {"..", reasonEscapes},
	} {
		c, r := memberPath(in)
		if c != want[0] || r != want[1] {
			t.Errorf("memberPath(%q) = %q, %q; want %q, %q", in, c, r, want[0], want[1])
		}
	}
}

func TestConfigValidate(t *testing.T) {
	var c Config
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Concurrency != 2 || c.PublishWindow != 64 || c.MaxDeliver != 5 || c.Consumer != "extractor" || c.MaxRatio != 200 ||
		c.ChunkCodec != "s2" {
		t.Fatalf("defaults %+v", c)
	}
	bad := Config{Concurrency: 4, PublishWindow: 4, ChunkBytes: 10, AckWait: 1, ChunkCodec: "zstd"}
	err := bad.Validate()
	for _, want := range []string{"publish window", "chunk bytes", "ack wait", `chunk codec must be s2 or none, got "zstd"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
}

func TestNewChunkBytesFromServer(t *testing.T) {
	v := newEnv(t, Config{})
	if got := v.e.Config().ChunkBytes; got != 1<<20-128<<10 {
		t.Fatalf("default chunk bytes %d", got)
	}
	v2 := newEnv(t, Config{ChunkBytes: 8 << 20})
	if got := v2.e.Config().ChunkBytes; got != 1<<20 {
		t.Fatalf("chunk bytes not capped: %d", got)
	}
}

// With ChunkBytes equal to the server's max payload, chunks are filled to the last byte the
// server accepts, and never beyond (a wide header is repeated in every chunk). Chunks are sized
// by their raw data: compressed, the same chunks are only smaller.
func TestChunksFillServerMaxPayloadExactly(t *testing.T) {
	header := strings.Repeat("column_with_a_long_name,", 400) + "last"
	var body strings.Builder
	for i := 0; body.Len() < 2<<20; i++ {
		fmt.Fprintf(&body, "%d,\"%s\"\n", i, strings.Repeat("v", i%3000))
	}
	archive := tarGz(t, file("wide_20250101_b1.csv", header+"\n"+body.String()))
	chunks := map[string]uint32{}
	for _, codec := range []string{"none", "s2"} {
		t.Run(codec, func(t *testing.T) {
			b := bustest.New(t, func(c *bus.Config) { c.MaxPayload = 64 << 10 })
			e, err := New(Config{ChunkBytes: 64 << 10, ChunkCodec: codec}, Deps{Bus: b})
			if err != nil {
				t.Fatal(err)
			}
			out, err := e.Extract(context.Background(), landArchive(t, "wide.tar.gz", archive))
			if err != nil {
				t.Fatal(err)
			}
			v := &env{b: b}
			var data strings.Builder
			largest, compressed := 0, 0
			for _, m := range v.rows(t) {
				if m.chunk != nil {
					data.Write(m.records)
					if m.chunk.Codec == sluicev1.Chunk_CODEC_S2 {
						compressed++
					}
				}
				largest = max(largest, len(m.data))
			}
			if data.String() != body.String() {
				t.Fatal("data differs")
			}
			chunks[codec] = out.Tables[0].Chunks
			switch {
			case largest > 64<<10 || out.Tables[0].Chunks < 30:
				t.Fatalf("largest message %d bytes, %d chunks", largest, out.Tables[0].Chunks)
			case codec == "none" && (largest < 60<<10 || compressed > 0):
				t.Fatalf("largest message %d bytes, %d compressed chunks", largest, compressed)
			case codec == "s2" && (largest > 32<<10 || compressed != int(out.Tables[0].Chunks)):
				t.Fatalf("largest message %d bytes, %d of %d chunks compressed", largest, compressed, out.Tables[0].Chunks)
			}
		})
	}
	if chunks["none"] != chunks["s2"] {
		t.Fatalf("%d chunks raw, %d compressed: the cuts must not depend on the codec", chunks["none"], chunks["s2"])
	}
}

// TestExtractMovedArchive: an archive moved within the landing area after it was landed (the
// producer then saw its bytes at the new place: a duplicate location in the ledger record) is
// extracted from there; without such a copy it fails as not found.
func TestExtractMovedArchive(t *testing.T) {
	v := newEnv(t, Config{})
	data := tarGz(t, file("orders_20250101_1.csv", "id,amount\n1,2\n3,4\n"))
	ev := landArchive(t, "p_20250101_1.tar.gz", data)
	v.createRecord(t, ev)
	landed := strings.TrimPrefix(ev.Uri, "file://")
	moved := filepath.Join(t.TempDir(), "later", "p_20250101_1.tar.gz")
	if err := os.MkdirAll(filepath.Dir(moved), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(landed, moved); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	gone := proto.Clone(ev).(*sluicev1.ArchiveLanded)
	gone.ArchiveId, gone.Sha256 = "00000000000000000000", strings.Repeat("0", 64) // no record, no copy
	if _, err := v.e.Extract(ctx, gone); err == nil || !strings.Contains(err.Error(), "archive not found") {
		t.Fatalf("no copy: %v, want not found", err)
	}
	if _, err := v.ledger.Update(ctx, ev.ArchiveId, func(r *ledger.Record) error {
		r.Duplicates = append(r.Duplicates, "file:///nowhere/else.tar.gz", "file://"+moved)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	out, err := v.e.Extract(ctx, ev)
	if err != nil {
		t.Fatalf("extract moved archive: %v", err)
	}
	if len(out.Tables) != 1 || out.Tables[0].Rows != 2 {
		t.Fatalf("extracted %+v", out)
	}
	if rec, _, err := v.ledger.Get(ctx, ev.ArchiveId); err != nil || rec.State != ledger.Extracted || rec.RowsIn != 2 {
		t.Fatalf("ledger %+v %v", rec, err)
	}
}
