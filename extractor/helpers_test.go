package extractor

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// entry is one tar entry of a test archive.
type entry struct {
	name     string
	body     string
	typeflag byte // default tar.TypeReg
	link     string
}

// paxRecords is a raw PAX extended header entry (typeflag 'x') holding records, which a tar
// reader applies to the entry that follows. archive/tar's writer drops GNU.sparse records and
// refuses to write such an entry itself, so tarGz writes its blocks (rawPAX).
func paxRecords(kv ...string) entry {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		rec := " " + kv[i] + "=" + kv[i+1] + "\n"
		n := len(rec) + 1
		for len(strconv.Itoa(n))+len(rec) != n {
			n++
		}
		b.WriteString(strconv.Itoa(n) + rec)
	}
	return entry{name: "PaxHeaders/x", typeflag: tar.TypeXHeader, body: b.String()}
}

func file(name, body string) entry { return entry{name: name, body: body} }

// tarGz builds a .tar.gz in memory.
func tarGz(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typeflag, Linkname: e.link, Mode: 0o644, ModTime: time.Unix(1700000000, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeXHeader {
			if err := tw.Flush(); err != nil {
				t.Fatal(err)
			}
			if _, err := gz.Write(rawPAX(e.name, e.body)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawPAX returns the blocks of a ustar entry of type 'x' (a PAX extended header) named name with
// body as its records: a 512-byte header, then the body padded to a multiple of 512 bytes.
func rawPAX(name, body string) []byte {
	h := make([]byte, 512)
	copy(h[0:100], name)
	copy(h[100:108], "0000644\x00")
	copy(h[108:116], "0000000\x00")
	copy(h[116:124], "0000000\x00")
	copy(h[124:136], fmt.Sprintf("%011o\x00", len(body)))
	copy(h[136:148], fmt.Sprintf("%011o\x00", 1700000000))
	h[156] = tar.TypeXHeader
	copy(h[257:263], "ustar\x00")
	copy(h[263:265], "00")
	copy(h[148:156], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	pad := (512 - len(body)%512) % 512
	return append(append(h, body...), make([]byte, pad)...)
}

// landArchive writes archive bytes to a file and returns the landed event the producer would
// publish for it.
func landArchive(t testing.TB, name string, data []byte) *sluicev1.ArchiveLanded {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	return &sluicev1.ArchiveLanded{ArchiveId: hexSum[:20], Sha256: hexSum, Uri: "file://" + p, Name: name,
		Size: int64(len(data)), Partner: "default", LandedUnixMs: time.Now().UnixMilli()}
}

// env is an embedded NATS server, a ledger and an extractor.
type env struct {
	b      *bus.Bus
	ledger *ledger.Ledger
	e      *Extractor
}

func newEnv(t testing.TB, cfg Config, mutate ...func(*Deps)) *env {
	t.Helper()
	b := bustest.New(t)
	ctx := context.Background()
	kv, err := b.Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(kv, nil)
	partners := &config.File{Partners: []config.Partner{{Name: "default"}, {Name: "latin", Encoding: "latin1"},
		{Name: "pipes", Delimiter: "|", MemberPattern: `^(?P<table>[a-z]+)-(?P<date>\d{8})-(?P<batch>\w+)\.txt$`}}}
	if err := partners.Validate(); err != nil {
		t.Fatal(err)
	}
	deps := Deps{Bus: b, Partners: partners, Ledger: l}
	for _, m := range mutate {
		m(&deps)
	}
	e, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return &env{b: b, ledger: l, e: e}
}

// createRecord registers the archive in the ledger as the producer would.
func (v *env) createRecord(t testing.TB, ev *sluicev1.ArchiveLanded) {
	t.Helper()
	if _, _, err := v.ledger.Create(context.Background(), ledger.Record{ArchiveID: ev.ArchiveId, SHA256: ev.Sha256,
		URI: ev.Uri, Name: ev.Name, Size: ev.Size, Partner: ev.Partner}); err != nil {
		t.Fatal(err)
	}
}

// stored is one message of a stream, decoded.
type stored struct {
	seq     uint64
	subject string
	typ     string
	msgID   string
	chunk   *sluicev1.Chunk
	records []byte // chunk's data decoded (bus.ChunkData)
	done    *sluicev1.BatchComplete
	abort   *sluicev1.BatchAborted
	data    []byte // the message as stored
}

// streamMsgs returns every message of a stream in sequence order.
func (v *env) streamMsgs(t testing.TB, stream string) []stored {
	t.Helper()
	ctx := context.Background()
	s, err := v.b.JS.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []stored
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		st := stored{seq: seq, subject: m.Subject, typ: m.Header.Get(bus.HdrType), msgID: m.Header.Get("Nats-Msg-Id"), data: m.Data}
		switch st.typ {
		case bus.TypeChunk:
			st.chunk = &sluicev1.Chunk{}
			if err = proto.Unmarshal(m.Data, st.chunk); err == nil {
				st.records, err = bus.ChunkData(st.chunk, nil)
			}
		case bus.TypeComplete:
			st.done = &sluicev1.BatchComplete{}
			err = proto.Unmarshal(m.Data, st.done)
		case bus.TypeAbort:
			st.abort = &sluicev1.BatchAborted{}
			err = proto.Unmarshal(m.Data, st.abort)
		}
		if err != nil {
			t.Fatalf("decode %s message %d: %v", st.typ, seq, err)
		}
		out = append(out, st)
	}
	return out
}

func (v *env) rows(t testing.TB) []stored {
	return v.streamMsgs(t, v.b.Subjects.RowsStream())
}

// events returns the events published on one subject, decoded into new(T).
func eventsOf[T proto.Message](t testing.TB, v *env, subject string, newT func() T) []T {
	t.Helper()
	var out []T
	for _, m := range v.streamMsgs(t, v.b.Subjects.EventsStream()) {
		if m.subject != subject {
			continue
		}
		ev := newT()
		if err := proto.Unmarshal(m.data, ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// byTable groups rows messages by table, in stream order.
func byTable(msgs []stored) map[string][]stored {
	out := map[string][]stored{}
	for _, m := range msgs {
		var table string
		switch {
		case m.chunk != nil:
			table = m.chunk.Table
		case m.done != nil:
			table = m.done.Table
		case m.abort != nil:
			table = m.abort.Table
		}
		out[table] = append(out[table], m)
	}
	return out
}

// memberData concatenates the chunk data of each member, in chunk order.
func memberData(msgs []stored) map[string]string {
	out := map[string]string{}
	for _, m := range msgs {
		if m.chunk != nil {
			out[m.chunk.Member] += string(m.records)
		}
	}
	return out
}

func rejectedReasons(ex interface {
	GetRejected() []*sluicev1.RejectedMember
}) map[string]string {
	out := map[string]string{}
	for _, r := range ex.GetRejected() {
		out[r.Member] = r.Kind + ": " + r.Reason
	}
	return out
}
