package extractor

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"

	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/transform"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/crashpoint"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

const (
	// sourceBufferSize is the read buffer between the archive source and gzip.
	sourceBufferSize = 64 << 10
	// cleanupTimeout bounds publishing aborts and the failure event once an archive failed
	// (done with a context detached from the caller's, which may be cancelled).
	cleanupTimeout = 30 * time.Second
)

// Deps are the extractor's collaborators.
type Deps struct {
	Bus      *bus.Bus
	Partners *config.File   // nil: the default partner only
	Ledger   *ledger.Ledger // nil: no ledger bookkeeping
	Log      *slog.Logger
	Metrics  prometheus.Registerer // may be nil
	// Open opens an archive URI for streaming. nil: file:// URIs and plain paths only.
	Open func(ctx context.Context, uri string) (io.ReadCloser, error)
}

// Extractor turns landed archives into chunks on the rows stream. See the package doc.
type Extractor struct {
	cfg      Config
	bus      *bus.Bus
	js       jetstream.JetStream
	subj     bus.Subjects
	partners *config.File
	ledger   *ledger.Ledger
	log      *slog.Logger
	m        *metrics
	open     func(context.Context, string) (io.ReadCloser, error)
	pool     *bufPool
	maxMsg   int // largest message the server accepts (payload + headers)
	now      func() time.Time
	active   atomic.Int32
}

// New checks cfg, sizes chunks from the server's max payload and returns an Extractor.
func New(cfg Config, deps Deps) (*Extractor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Bus == nil || deps.Bus.NC == nil {
		return nil, errors.New("extractor: deps.Bus is required")
	}
	partners := deps.Partners
	if partners == nil {
		partners = &config.File{}
		if err := partners.Validate(); err != nil {
			return nil, err
		}
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("stage", "extractor")
	maxPayload := deps.Bus.MaxPayload()
	if maxPayload < 2*minChunkBytes {
		return nil, fmt.Errorf("extractor: server max payload %d is too small", maxPayload)
	}
	if cfg.ChunkBytes == 0 {
		cfg.ChunkBytes = defaultChunkBytes(maxPayload)
	}
	if int64(cfg.ChunkBytes) > maxPayload {
		log.Warn("chunk bytes above the server's max payload, lowered", "chunk_bytes", cfg.ChunkBytes, "max_payload", maxPayload)
		cfg.ChunkBytes = int(maxPayload)
	}
	// A JetStream context of our own: async publishes must time out instead of waiting forever.
	js, err := jetstream.New(deps.Bus.NC, jetstream.WithPublishAsyncTimeout(publishAckTimeout))
	if err != nil {
		return nil, fmt.Errorf("extractor: jetstream context: %w", err)
	}
	open := deps.Open
	if open == nil {
		open = openLocal
	}
	return &Extractor{
		cfg: cfg, bus: deps.Bus, js: js, subj: deps.Bus.Subjects, partners: partners, ledger: deps.Ledger,
		log: log, m: newMetrics(deps.Metrics), open: open, pool: newBufPool(cfg.PublishWindow, cfg.ChunkBytes),
		maxMsg: int(maxPayload), now: time.Now,
	}, nil
}

// Config returns the configuration in effect (defaults filled, ChunkBytes resolved).
func (e *Extractor) Config() Config { return e.cfg }

// Extract extracts one archive. It is what Run does for each landed event, and what `sluice
// reextract` calls directly; a direct call is treated as the last delivery: any failure is made
// final (aborts for the tables started, ArchiveFailed, ledger failed). The error, if any, is an
// *ArchiveError.
func (e *Extractor) Extract(ctx context.Context, ev *sluicev1.ArchiveLanded) (*sluicev1.ArchiveExtracted, error) {
	return e.extract(ctx, ev, true, false)
}

// extract runs one archive. final says whether a transient failure must be made final (last
// delivery, direct call) or left for a retry: then nothing is published about the failure and
// the batches stay open, to be completed by the retry under the same Nats-Msg-Ids. handBack
// says that a cancelled ctx (shutdown) is always left for a retry, even when final.
func (e *Extractor) extract(ctx context.Context, ev *sluicev1.ArchiveLanded, final, handBack bool) (*sluicev1.ArchiveExtracted, error) {
	if ev == nil || ev.ArchiveId == "" || ev.Uri == "" {
		return nil, &ArchiveError{Reason: "landed event lacks archive_id or uri"}
	}
	e.active.Add(1)
	defer func() {
		if e.active.Add(-1) == 0 {
			e.pool.trim()
		}
	}()
	j := &job{e: e, ev: ev, handBack: handBack, partner: e.partners.Partner(ev.Partner), start: e.now(), tables: map[string]*tableBatch{},
		log: e.log.With("archive", ev.ArchiveId, "attempt", ev.Attempt)}
	j.log.Info("extracting", "uri", ev.Uri, "partner", j.partner.Name)
	if err := j.ledgerStart(ctx); err != nil {
		return nil, j.fail(ctx, err, final)
	}
	if err := j.run(ctx); err != nil {
		return nil, j.fail(ctx, err, final)
	}
	out := j.result()
	if err := j.publishEvent(ctx, e.subj.Extracted(), "extracted", bus.ExtractedID(j.ev.ArchiveId, j.ev.Attempt), out); err != nil {
		return nil, j.fail(ctx, err, final)
	}
	crashpoint.Hit("extractor.extracted") // fault tests only (SLUICE_CRASH_AT); no-op otherwise
	if err := j.ledgerDone(ctx, out); err != nil {
		return nil, j.fail(ctx, err, final)
	}
	d := e.now().Sub(j.start)
	e.m.archives.WithLabelValues(outcomeExtracted).Inc()
	e.m.duration.WithLabelValues(outcomeExtracted).Observe(d.Seconds())
	j.log.Info("extracted", "tables", len(out.Tables), "rejected", len(out.Rejected), "bytes_in", out.CompressedBytes,
		"bytes_out", out.UncompressedBytes, "duration", d)
	return out, nil
}

// job is the state of one archive's extraction.
type job struct {
	e       *Extractor
	ev      *sluicev1.ArchiveLanded
	partner *config.Partner
	log     *slog.Logger
	start   time.Time
	pub     *publisher
	// handBack: a cancelled ctx leaves the failure open for a retry (Run), even when final.
	handBack bool

	tables   map[string]*tableBatch
	order    []*tableBatch // first-seen order
	rejected []*sluicev1.RejectedMember

	compressed, uncompressed int64
	ck                       chunker
	enc                      chunkEncoder
}

// tableBatch is one (archive, attempt, table) batch.
type tableBatch struct {
	name      string
	partition uint32
	subject   string
	chunks    uint32
	rows      int64
	bytes     int64
	members   []*sluicev1.MemberInfo
	started   bool   // at least one chunk published
	done      bool   // marker stored
	aborted   string // reason, once BatchAborted is stored
	hdrBound  int    // NATS header bytes of its chunks, at most
}

func (j *job) table(name string) *tableBatch {
	if t := j.tables[name]; t != nil {
		return t
	}
	s := j.e.subj
	t := &tableBatch{name: name, partition: bus.Partition(j.ev.ArchiveId, name, s.Partitions)}
	t.subject = s.Rows(t.partition, name)
	t.hdrBound = headerSize(j.rowsHeader(t, bus.TypeChunk, bus.ChunkID(j.ev.ArchiveId, j.ev.Attempt, name, math.MaxUint32)))
	j.tables[name] = t
	j.order = append(j.order, t)
	return t
}

func (j *job) rowsHeader(t *tableBatch, typ string, id bus.MessageID) nats.Header {
	return bus.RowsHeader(typ, j.ev.ArchiveId, t.name, id)
}

// run streams the archive, publishes every chunk, waits for their acks and publishes the
// markers.
func (j *job) run(ctx context.Context) error {
	e := j.e
	rc, err := openArchive(ctx, e.open, j.ev.Uri)
	if pe := (*permanentError)(nil); errors.As(err, &pe) && pe.missing {
		crc, cerr := j.openCopy(ctx)
		switch {
		case cerr != nil:
			err = cerr // the ledger could not be read: try again, rather than fail the archive "not found"
		case crc != nil:
			rc, err = crc, nil
		}
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	// A source blocked in Read (a stalled network body) is unblocked by closing it on cancel.
	defer context.AfterFunc(ctx, func() { rc.Close() })()
	// Counted as read (through a 1 MiB-class buffer, so a few adds per MiB): a progress display
	// and MB/s follow a large archive while it is extracted, not only when it ends.
	src := &source{r: rc, ctx: ctx, count: func(n int) { e.m.bytesIn.Add(float64(n)) }}
	if j.ev.Sha256 != "" {
		src.h = sha256.New()
	}
	br := bufio.NewReaderSize(src, sourceBufferSize)
	gz, err := gzip.NewReader(br)
	if err != nil {
		return asFormatError("corrupt gzip stream", err)
	}
	defer gz.Close()
	lim := &limitReader{r: gz, src: src, max: e.cfg.MaxUncompressed, maxRatio: e.cfg.MaxRatio}
	tr := tar.NewReader(lim)

	j.pub = newPublisher(e.js, e.pool, func() { e.m.chunks.Inc() })
	defer func() {
		j.compressed, j.uncompressed = src.n, lim.n
		e.m.bytesOut.Add(float64(lim.n))
	}()
	j.initChunker(ctx)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) { // we judge paths ourselves
			return asFormatError("corrupt tar stream", err)
		}
		if err := j.member(ctx, tr, hdr); err != nil {
			return err
		}
	}
	// Read to the end: the gzip trailer's checksum, then the source for the content hash.
	if _, err := io.Copy(io.Discard, lim); err != nil {
		if !errors.Is(err, gzip.ErrHeader) {
			return asFormatError("corrupt gzip stream", err)
		}
		j.log.Warn("ignoring trailing garbage after the archive")
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return err
	}
	if src.h != nil {
		if sum := hex.EncodeToString(src.h.Sum(nil)); !strings.EqualFold(sum, j.ev.Sha256) {
			return &permanentError{reason: fmt.Sprintf("content changed since landing: sha256 %s, landed as %s", sum, j.ev.Sha256)}
		}
	}
	if err := j.pub.flush(ctx); err != nil {
		return err
	}
	for _, t := range j.order {
		if t.started && t.aborted == "" {
			if err := j.publishMarker(ctx, t); err != nil {
				return err
			}
		}
	}
	j.pub.close(false)
	j.pub = nil
	return nil
}

// openCopy opens another location where the producer saw the archive's bytes (the ledger
// record's duplicates, the latest first) when the landed location has none: a file moved within
// the landing area after it was landed is extracted from where it is now. The bytes are checked
// against the landed SHA-256 at the end as always. Nil when there is no such copy; an error (transient)
// when the ledger cannot be read.
func (j *job) openCopy(ctx context.Context) (io.ReadCloser, error) {
	if j.e.ledger == nil {
		return nil, nil
	}
	rec, _, err := j.e.ledger.Get(ctx, j.ev.ArchiveId)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, &transientError{what: "ledger", err: err}
	}
	for i := len(rec.Duplicates) - 1; i >= 0; i-- {
		uri := rec.Duplicates[i]
		if uri == j.ev.Uri {
			continue
		}
		if rc, err := openArchive(ctx, j.e.open, uri); err == nil {
			j.log.Warn("archive not at its landed location: extracting the copy seen at another", "landed_uri", j.ev.Uri, "uri", uri)
			return rc, nil
		}
	}
	return nil, nil
}

// member handles one tar entry. A directory entry is structure, not a member: it is neither
// taken nor reported (its files are, by their paths).
func (j *job) member(ctx context.Context, tr *tar.Reader, h *tar.Header) error {
	if h.Typeflag == tar.TypeDir {
		return nil
	}
	name, reason := memberPath(h.Name)
	display := strings.ToValidUTF8(name, "\uFFFD")
	if reason != "" {
		j.reject(display, kindRejected, reason, reason, h.Size)
		return nil
	}
	if kind, reason := entryReason(h); reason != "" {
		class := reason
		if strings.HasPrefix(reason, reasonUnsupported) {
			class = reasonUnsupported
		}
		j.reject(display, kind, reason, class, h.Size)
		return nil
	}
	mn, err := j.partner.ParseMemberName(j.partner.MatchTarget(name))
	switch {
	case errors.Is(err, config.ErrNotTableFile):
		j.reject(display, kindSkipped, reasonNotTable, reasonNotTable, h.Size)
		return nil
	case err != nil: // named as a table file, but not a valid one: its rows would go nowhere unseen
		j.reject(display, kindRejected, err.Error(), reasonBadDate, h.Size)
		return nil
	case !utf8.ValidString(name):
		j.reject(display, kindRejected, reasonBadName, reasonBadName, h.Size)
		return nil
	case !validTable(mn.Table):
		j.reject(display, kindRejected, reasonBadTable, reasonBadTable, h.Size)
		return nil
	}
	t := j.table(mn.Table)
	if t.aborted != "" {
		j.reject(display, kindRejected, reasonTableAborted+": "+t.aborted, reasonTableAborted, h.Size)
		return nil
	}
	return j.chunkMember(ctx, t, name, mn, tr, h.Size)
}

// initChunker sets up what is shared by every member of the archive.
func (j *job) initChunker(ctx context.Context) {
	e := j.e
	j.ck = chunker{
		delim:     j.partner.Delimiter[0],
		checkUTF8: j.partner.Encoding == "utf-8",
		maxHeader: e.cfg.ChunkBytes / 2,
		acquire:   func() ([]byte, error) { return e.pool.get(ctx) },
		release:   e.pool.put,
		hbuf:      j.ck.hbuf,
	}
	j.enc.compress = e.cfg.ChunkCodec == "s2"
}

// chunkMember chunks and publishes one table member. A member that cannot be chunked is
// recorded as rejected; when some of its chunks were already published, the whole table batch
// is aborted (see abortTable). Only archive-level failures are returned.
func (j *job) chunkMember(ctx context.Context, t *tableBatch, name string, mn config.MemberName, tr io.Reader, size int64) error {
	e := j.e
	info := &sluicev1.MemberInfo{Name: name, ProcessDate: mn.ProcessDate, BatchId: mn.Batch, FirstChunk: t.chunks}
	j.enc.meta = sluicev1.Chunk{
		ArchiveId: j.ev.ArchiveId, Attempt: j.ev.Attempt, Table: t.name, Member: name,
		MemberIndex: uint32(len(t.members)), ProcessDate: mn.ProcessDate, BatchId: mn.Batch,
		Delimiter: j.partner.Delimiter, Partner: j.partner.Name,
	}
	raw := &countingReader{r: formatErrors{tr}}
	var r io.Reader = raw
	switch j.partner.Encoding {
	case "latin1", "iso-8859-1":
		r = transform.NewReader(&bomSkipper{r: r}, charmap.ISO8859_1.NewDecoder())
	case "windows-1252", "cp1252":
		r = transform.NewReader(&bomSkipper{r: r}, charmap.Windows1252.NewDecoder())
	}
	var memberChunk uint32
	ck := &j.ck
	ck.layout = func(header []byte) (int, int, error) {
		j.enc.meta.Header = header
		reserve := j.enc.reserve()
		return reserve, e.cfg.ChunkBytes - t.hdrBound - reserve, nil
	}
	ck.emit = func(c *chunkOut) error {
		msg, err := j.enc.encode(c, t.chunks, memberChunk)
		if err != nil {
			e.pool.put(c.buf)
			return &permanentError{reason: fmt.Sprintf("encode chunk of %s: %v", name, err)}
		}
		m := &nats.Msg{Subject: t.subject, Data: msg,
			Header: j.rowsHeader(t, bus.TypeChunk, bus.ChunkID(j.ev.ArchiveId, j.ev.Attempt, t.name, t.chunks))}
		if err := j.pub.publish(m, c.buf); err != nil {
			return err
		}
		t.started = true
		t.chunks++
		t.rows += int64(c.rows)
		t.bytes += int64(c.n) // raw CSV bytes, also when the data went out compressed
		memberChunk++
		e.m.rows.Add(float64(c.rows))
		e.m.csvBytes.Add(float64(c.n))
		return nil
	}
	st, err := ck.run(r)
	if err != nil {
		var re *recordError
		switch {
		case errors.Is(err, errEmptyMember):
			j.reject(name, kindSkipped, reasonEmpty, reasonEmpty, size)
			return nil
		case errors.As(err, &re):
			class := map[string]string{"record": classRecordTooLarge, "header": classHeaderTooLarge,
				"unterminated": classUnterminated}[re.What]
			if memberChunk == 0 {
				j.reject(name, kindRejected, re.Error(), class, size)
				return nil
			}
			return j.abortTable(ctx, t, name, re.Error(), class, size)
		}
		return err
	}
	info.Rows, info.Bytes, info.Chunks, info.InvalidUtf8Rows = st.rows, raw.n, memberChunk, st.invalidUTF8
	info.HeaderOnly = st.rows == 0
	t.members = append(t.members, info)
	return nil
}

func (j *job) reject(member, kind, reason, class string, size int64) {
	j.rejected = append(j.rejected, &sluicev1.RejectedMember{Member: member, Reason: reason, Kind: kind, Size: size})
	j.e.m.members.WithLabelValues(kind, class).Inc()
	lvl := slog.LevelDebug
	if kind == kindRejected {
		lvl = slog.LevelWarn
	}
	j.log.Log(context.Background(), lvl, "member not used", "member", member, "kind", kind, "reason", reason)
}

// abortTable drops a table's batch after one of its members failed part-way: the member's
// chunks already published cannot be taken back, so the batch is aborted as a whole and every
// member of the table in this archive is recorded as rejected. The abort is published after
// every chunk in flight is stored, so it is the batch's last message.
func (j *job) abortTable(ctx context.Context, t *tableBatch, member, reason, class string, size int64) error {
	j.reject(member, kindRejected, reason, class, size)
	full := fmt.Sprintf("%s in member %s", reason, member)
	for _, m := range t.members {
		j.reject(m.Name, kindRejected, reasonTableAborted+": "+full, reasonTableAborted, m.Bytes)
	}
	t.members = nil
	if err := j.pub.flush(ctx); err != nil {
		return err
	}
	if err := j.publishAbort(ctx, t, full); err != nil {
		return err
	}
	t.aborted = full
	return nil
}

func (j *job) publishAbort(ctx context.Context, t *tableBatch, reason string) error {
	ab := &sluicev1.BatchAborted{ArchiveId: j.ev.ArchiveId, Attempt: j.ev.Attempt, Table: t.name, Reason: reason}
	data, err := proto.Marshal(ab)
	if err != nil {
		return &permanentError{reason: "encode abort: " + err.Error()}
	}
	msg := &nats.Msg{Subject: t.subject, Data: data,
		Header: j.rowsHeader(t, bus.TypeAbort, bus.AbortID(j.ev.ArchiveId, j.ev.Attempt, t.name))}
	if err := publishSync(ctx, j.e.js, msg); err != nil {
		return &transientError{what: "publish abort of table " + t.name, err: err}
	}
	j.log.Warn("table batch aborted", "table", t.name, "reason", reason)
	return nil
}

func (j *job) marker(t *tableBatch) *sluicev1.BatchComplete {
	return &sluicev1.BatchComplete{
		ArchiveId: j.ev.ArchiveId, Attempt: j.ev.Attempt, Table: t.name, Partition: t.partition,
		Chunks: t.chunks, Rows: t.rows, Bytes: t.bytes, Members: t.members, Partner: j.partner.Name, Uri: j.ev.Uri,
	}
}

// publishMarker publishes a table's BatchComplete. It is only called once every chunk of the
// archive is acknowledged.
func (j *job) publishMarker(ctx context.Context, t *tableBatch) error {
	data, err := proto.Marshal(j.marker(t))
	if err != nil {
		return &permanentError{reason: "encode marker: " + err.Error()}
	}
	hdr := j.rowsHeader(t, bus.TypeComplete, bus.MarkerID(j.ev.ArchiveId, j.ev.Attempt, t.name))
	if len(data)+headerSize(hdr) > j.e.maxMsg {
		// Thousands of members in one table: the marker cannot be stored, so neither can the batch.
		return j.abortTable(ctx, t, "(all)", reasonMarkerTooBig, reasonMarkerTooBig, 0)
	}
	if err := publishSync(ctx, j.e.js, &nats.Msg{Subject: t.subject, Data: data, Header: hdr}); err != nil {
		return &transientError{what: "publish marker of table " + t.name, err: err}
	}
	t.done = true
	crashpoint.Hit("extractor.marker") // fault tests only (SLUICE_CRASH_AT); no-op otherwise
	return nil
}

// result builds ArchiveExtracted.
func (j *job) result() *sluicev1.ArchiveExtracted {
	out := &sluicev1.ArchiveExtracted{
		ArchiveId: j.ev.ArchiveId, Attempt: j.ev.Attempt, Uri: j.ev.Uri, Name: j.ev.Name, Rejected: j.rejected,
		CompressedBytes: j.compressed, UncompressedBytes: j.uncompressed, Partner: j.partner.Name,
		DurationMs: j.e.now().Sub(j.start).Milliseconds(), ExtractedUnixMs: j.e.now().UnixMilli(),
	}
	for _, t := range j.order {
		if t.done {
			out.Tables = append(out.Tables, &sluicev1.TableCount{Table: t.name, Partition: t.partition, Chunks: t.chunks,
				Rows: t.rows, Bytes: t.bytes, Members: t.members})
		}
	}
	return out
}

// publishEvent publishes an archive event with a Nats-Msg-Id, so a redelivered landed event
// does not double it.
func (j *job) publishEvent(ctx context.Context, subject, kind string, id bus.MessageID, m proto.Message) error {
	msg, err := bus.EventMsg(subject, id, j.ev.ArchiveId, m)
	if err != nil {
		return &permanentError{reason: err.Error()}
	}
	if ex, ok := m.(*sluicev1.ArchiveExtracted); ok && len(msg.Data) > j.e.maxMsg-256 {
		msg.Data = trimRejected(ex, j.e.maxMsg-256)
	}
	if err := publishSync(ctx, j.e.js, msg); err != nil {
		return &transientError{what: "publish " + kind + " event", err: err}
	}
	return nil
}

// trimRejected shortens the rejected list of an event too large for one message (an archive of
// many thousands of non-table files), keeping a count of what was left out.
func trimRejected(ex *sluicev1.ArchiveExtracted, limit int) []byte {
	c := proto.CloneOf(ex)
	all := c.Rejected
	for keep := len(all) / 2; ; keep /= 2 {
		c.Rejected = append(slices.Clone(all[:keep]), &sluicev1.RejectedMember{
			Member: "…", Kind: kindSkipped, Reason: fmt.Sprintf("%d more members not listed", len(all)-keep)})
		data, _ := proto.Marshal(c)
		if len(data) <= limit || keep == 0 {
			return data
		}
	}
}

// fail makes a failure visible when it is final, or leaves everything open for a retry.
func (j *job) fail(ctx context.Context, err error, final bool) error {
	e := j.e
	reason, transient := classify(err)
	if ctx.Err() != nil && transient {
		reason = "interrupted: " + ctx.Err().Error()
	}
	ae := &ArchiveError{ArchiveID: j.ev.ArchiveId, Reason: reason, Transient: transient, Err: err}
	if transient && (!final || (j.handBack && ctx.Err() != nil)) {
		if j.pub != nil {
			j.pub.close(true)
		}
		e.m.archives.WithLabelValues(outcomeRetried).Inc()
		j.log.Warn("extraction interrupted, will retry", "reason", reason)
		return ae
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	var errs []error
	if j.pub != nil {
		if err := j.pub.flush(cctx); err != nil {
			j.log.Warn("chunks in flight not all stored before aborting", "err", err)
		}
		j.pub.close(false)
	}
	var aborted []string
	for _, t := range j.order {
		switch {
		case t.aborted != "":
			aborted = append(aborted, t.name)
		case t.started && !t.done:
			if err := j.publishAbort(cctx, t, reason); err != nil {
				errs = append(errs, err)
			}
			aborted = append(aborted, t.name)
		}
	}
	ev := &sluicev1.ArchiveFailed{ArchiveId: j.ev.ArchiveId, Attempt: j.ev.Attempt, Uri: j.ev.Uri, Name: j.ev.Name,
		Reason: reason, TablesAborted: aborted, FailedUnixMs: e.now().UnixMilli(), Origin: sluicev1.Stage_STAGE_EXTRACTOR}
	if err := j.publishEvent(cctx, e.subj.Failed(), "failed", bus.ExtractFailedID(j.ev.ArchiveId, j.ev.Attempt), ev); err != nil {
		errs = append(errs, err)
	}
	if e.ledger != nil {
		if _, err := e.ledger.Transition(cctx, j.ev.ArchiveId, ledger.Failed, reason); err != nil {
			errs = append(errs, err)
		}
	}
	ae.Final = len(errs) == 0
	if !ae.Final {
		j.log.Error("could not record the failure", "err", errors.Join(errs...))
	}
	e.m.archives.WithLabelValues(outcomeFailed).Inc()
	e.m.duration.WithLabelValues(outcomeFailed).Observe(e.now().Sub(j.start).Seconds())
	j.log.Error("extraction failed", "reason", reason, "transient", transient, "tables_aborted", aborted)
	return ae
}

// ledgerStart moves the archive to extracting, creating its record when the producer did not.
func (j *job) ledgerStart(ctx context.Context) error {
	l := j.e.ledger
	if l == nil {
		return nil
	}
	_, err := l.Transition(ctx, j.ev.ArchiveId, ledger.Extracting, "")
	if errors.Is(err, ledger.ErrNotFound) {
		ev := j.ev
		if _, _, err = l.Create(ctx, ledger.Record{ArchiveID: ev.ArchiveId, SHA256: ev.Sha256, URI: ev.Uri, Name: ev.Name,
			Size: ev.Size, Partner: j.partner.Name, Attempt: ev.Attempt}); err == nil {
			_, err = l.Transition(ctx, ev.ArchiveId, ledger.Extracting, "")
		}
	}
	if err != nil {
		return &transientError{what: "ledger", err: err}
	}
	return nil
}

// ledgerDone records the extraction: state extracted (a committed archive that was replayed
// stays committed), or failed when a merger dead-lettered a batch of this attempt meanwhile;
// table count and rows in.
func (j *job) ledgerDone(ctx context.Context, out *sluicev1.ArchiveExtracted) error {
	l := j.e.ledger
	if l == nil {
		return nil
	}
	var rows int64
	for _, t := range out.Tables {
		rows += t.Rows
	}
	_, err := l.Update(ctx, j.ev.ArchiveId, func(r *ledger.Record) error {
		r.Tables, r.RowsIn = len(out.Tables), rows
		// A merger may have dead-lettered a batch of this attempt already (ledger.BatchDeadLettered):
		// the attempt is failed, with its reason, now that its extraction is complete.
		failedHere := r.State == ledger.Failed && r.Attempt == j.ev.Attempt
		deadLettered := r.Attempt == j.ev.Attempt && len(r.TablesDeadLettered) > 0
		if j.ev.Attempt > r.Attempt {
			r.Attempt = j.ev.Attempt
		}
		switch {
		case r.State == ledger.Committed, failedHere:
		case deadLettered:
			r.SetState(ledger.Failed, r.DeadLetterReason, j.e.now())
		default:
			r.SetState(ledger.Extracted, "", j.e.now())
		}
		return nil
	})
	if err != nil {
		return &transientError{what: "ledger", err: err}
	}
	return nil
}
