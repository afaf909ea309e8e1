package merger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/crashpoint"
	"github.com/sluice-dev/sluice/internal/table"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// batchKey names one batch: the chunks of one table from one extraction attempt of one archive.
type batchKey struct {
	archive string
	attempt uint32
	table   string
}

func (k batchKey) String() string {
	return fmt.Sprintf("%s.%d.%s", k.archive, k.attempt, bus.TableToken(k.table))
}

// member is one CSV member of a batch, as its chunks describe it.
type member struct {
	name  string
	raw   []byte   // header record as received
	names []string // ParseHeader(raw)
}

// chunk is one received Chunk. Its data is kept as received (compressed when codec is S2) until
// the memory budget releases it; a released chunk is fetched back from the rows stream, where its
// message stays until the stream's limits remove it, by its stream sequence. payload decodes it.
type chunk struct {
	index       uint32
	member      uint32 // member_index
	memberName  string
	processDate string
	batchID     string
	firstLine   int64
	rows        int64
	size        int64 // decoded data bytes (CSV): what the marker's bytes count
	stored      int64 // len(data) as received: what the memory budget counts
	codec       sluicev1.Chunk_Codec
	memberChunk uint32
	last        bool   // last_in_member
	data        []byte // as received; nil once released
	seq         uint64 // stream sequence of the message data came from
	released    bool
}

// rowsStream is where a released chunk is fetched back from: the rows stream (a jetstream.Stream).
type rowsStream interface {
	GetMsg(ctx context.Context, seq uint64, opts ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error)
	Info(ctx context.Context, opts ...jetstream.StreamInfoOpt) (*jetstream.StreamInfo, error)
}

// chunkSource is a batch's rows stream and what counts the bytes fetched back from it (the
// merger's metric, a replay's result); fetched may be nil.
type chunkSource struct {
	rows    rowsStream
	fetched func(bytes int64)
}

// batch is the state of one open batch.
//
// Fields above mu belong to the partition that owns the batch (guarded by partition.mu); fields
// below mu may also be touched by relieve and the InProgress ticker of other goroutines.
// src.rows is nil only in tests that never release.
type batch struct {
	key     batchKey
	part    *partition
	order   uint64 // creation order on its partition (the deadlock breaker hands back the youngest)
	created time.Time
	opts    table.Options
	delim   byte
	partner string

	inferer    *table.Inferer
	collect    collectConfig
	members    map[uint32]*member
	poison     string // why the batch can never commit (dead-lettered when its marker arrives)
	committing bool
	src        chunkSource

	mu       sync.Mutex
	chunks   map[uint32]*chunk
	handles  map[uint64]handle // by stream sequence
	memBytes atomic.Int64      // stored payload bytes in memory (read without mu by relieve, to choose)
	inCommit atomic.Bool       // being committed: released only when nothing else can be
	closed   bool

	// The rows parsed on arrival, per group (process date, batch id): guarded by collectMu (taken
	// by addChunk, the commit, and relieve, which drops them under memory pressure).
	collectMu    sync.Mutex
	collected    map[[2]string]*collected
	collectDone  bool         // closed: nothing is collected any more
	collectBytes atomic.Int64 // their table.Collector.ApproxBytes, accounted in the memory budget
}

// collectConfig says how a batch parses its rows on arrival (Config.ParseLimit).
type collectConfig struct {
	alloc   memory.Allocator
	segment int64        // bytes of rows per sealed segment: one row group (Config.RowGroupBytes)
	limit   int64        // bytes of parsed rows a batch may hold; <= 0: none
	early   *earlyConfig // large groups are written early (early.go); nil: never (a replay)
}

// collected is a group's rows parsed on arrival, in chunk order.
type collected struct {
	c    *table.Collector // nil once given up (the group is parsed from its CSV at commit)
	next uint32           // the next chunk index it may take (chunks must arrive in order)
	why  string           // why it was given up

	// early writes the group's sealed segments as they fill (early.go); nil when it does not.
	early     *earlyGroup
	startWith []table.ColumnType // set by observe: writeEarly starts writing early with these columns
	noEarly   bool               // the start failed (the schema registry did not answer): not again
}

func newBatch(key batchKey, p *partition, order uint64, partner string, opts table.Options, collect collectConfig, src chunkSource, now time.Time) *batch {
	return &batch{
		src:     src,
		collect: collect,
		key:     key,
		partner: partner,
		part:    p,
		order:   order,
		created: now,
		opts:    opts,
		delim:   opts.Delimiter,
		inferer: table.NewInferer(opts),
		members: map[uint32]*member{},
		chunks:  map[uint32]*chunk{},
		handles: map[uint64]handle{},
	}
}

// addHandle holds h; it reports whether h is a message not held before (a redelivery of the same
// stream sequence replaces the old handle).
func (b *batch) addHandle(h handle) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, had := b.handles[h.seq]
	b.handles[h.seq] = h
	return !had
}

// removeHandle forgets h (a marker handed back with a delay).
func (b *batch) removeHandle(h handle) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, had := b.handles[h.seq]
	delete(b.handles, h.seq)
	return had
}

// addChunk buffers c's data as received (compressed bytes stay compressed, so the memory budget
// holds several times more batch) and infers types from its records, decoded into *scratch (the
// caller's reusable buffer; the decoded bytes are not kept). It returns the payload bytes now
// held in memory (0 for a chunk index already received: redeliveries are de-duplicated by
// chunk_index). Data that cannot be decoded (a corrupt S2 block, data_bytes not matching)
// poisons the batch: it is dead-lettered with the reason when its marker arrives. seq is the
// stream sequence of c's message (where a released chunk is fetched back from). Called by the
// owning partition with partition.mu held (which also guards its scratch), or by a replay.
func (b *batch) addChunk(c *sluicev1.Chunk, seq uint64, scratch *[]byte) (int64, error) {
	b.mu.Lock()
	if _, dup := b.chunks[c.ChunkIndex]; dup || b.closed {
		b.mu.Unlock()
		return 0, nil
	}
	ch := &chunk{
		index:       c.ChunkIndex,
		member:      c.MemberIndex,
		memberName:  c.Member,
		processDate: c.ProcessDate,
		batchID:     c.BatchId,
		firstLine:   c.FirstLine,
		rows:        int64(c.Rows),
		size:        bus.ChunkDataSize(c),
		stored:      int64(len(c.Data)),
		codec:       c.Codec,
		memberChunk: c.MemberChunk,
		last:        c.LastInMember,
		data:        c.Data,
		seq:         seq,
	}
	b.chunks[c.ChunkIndex] = ch
	b.memBytes.Add(ch.stored)
	b.mu.Unlock()
	crashpoint.Hit("merger.chunk") // fault tests only (SLUICE_CRASH_AT); no-op otherwise

	m, ok := b.members[c.MemberIndex]
	if !ok {
		m = &member{name: c.Member, raw: slices.Clone(c.Header)}
		names, _, err := table.ParseHeader(c.Header, b.delim)
		if err != nil {
			b.poison = fmt.Sprintf("member %s: %v", c.Member, err)
		}
		m.names = names
		b.members[c.MemberIndex] = m
	}
	if b.poison != "" {
		return ch.stored, nil
	}
	records, err := bus.ChunkData(c, *scratch)
	if err != nil {
		b.poison = fmt.Sprintf("member %s chunk %d: %v", c.Member, c.ChunkIndex, err)
		return ch.stored, nil
	}
	if c.Codec != sluicev1.Chunk_CODEC_NONE && cap(records) > cap(*scratch) {
		*scratch = records[:0] // grown: keep the larger buffer for the next chunk
	}
	delta, err := b.observe(ch, m.names, records)
	if err != nil {
		b.poison = fmt.Sprintf("member %s: %v", c.Member, err)
	}
	return ch.stored + delta, nil
}

// writeEarly starts writing the group (processDate, batchID) early when its last chunk asked
// for it, and hands its sealed segments to its writer. Called by the owning partition after
// addChunk, without partition.mu (starting reads the schema registry; writing waits while the
// previous row group is encoded). The bytes the segments hold stay in the budget until they are
// written; it returns the change in what the budget holds (rows given up).
func (b *batch) writeEarly(processDate, batchID string) int64 {
	b.collectMu.Lock()
	defer b.collectMu.Unlock()
	g := b.collected[[2]string{processDate, batchID}]
	if g == nil {
		return 0
	}
	var delta int64
	if cols := g.startWith; cols != nil {
		g.startWith = nil
		b.collectMu.Unlock()
		e := b.startEarly(cols, processDate, batchID)
		b.collectMu.Lock()
		switch {
		case e != nil && (g.c == nil || b.collectDone): // given up meanwhile
			b.collect.early.aborting.Go(func() { e.abort("rows parsed on arrival given up") })
		case e != nil:
			g.early = e
		case g.c != nil && b.collectBytes.Load() > b.collect.limit:
			n := g.giveUp(fmt.Sprintf("more than %d bytes of parsed rows", b.collect.limit))
			b.collectBytes.Add(-n)
			delta -= n
		}
	}
	e := g.early
	if e == nil || g.c == nil || g.c.Sealed() == 0 {
		return delta
	}
	before := g.c.ApproxBytes()
	recs, freed, err := g.c.TakeSealed(e.s)
	if err != nil {
		g.giveUp(err.Error())
		b.collectBytes.Add(-before)
		return delta - before
	}
	b.collectBytes.Add(-freed)
	b.collectMu.Unlock()
	e.write(recs, freed)
	b.collectMu.Lock()
	return delta
}

// observe infers types from a chunk's records and, while its group collects, parses them into the
// group's typed columns. It returns the change in the bytes the batch's collected rows hold.
func (b *batch) observe(ch *chunk, names []string, records []byte) (int64, error) {
	b.collectMu.Lock()
	defer b.collectMu.Unlock()
	g := b.collectorLocked(ch)
	var delta int64
	defer func() { b.collectBytes.Add(delta) }()
	if g != nil && g.c != nil && ch.index < g.next {
		// A chunk that arrives after a later one of its group (a redelivery out of order): the
		// group's rows must be in chunk order.
		delta -= g.giveUp("chunks arrived out of order")
	}
	if g == nil || g.c == nil {
		_, err := b.inferer.Observe(names, records, ch.firstLine)
		return delta, err
	}
	before := g.c.ApproxBytes()
	over := func(g *collected) bool { return b.collectBytes.Load()+g.c.ApproxBytes()-before > b.collect.limit }
	st, err := b.inferer.ObserveInto(names, records, ch.firstLine, g.c)
	g.next = ch.index + 1
	why := g.c.Dead() // a column that cannot be converted exactly
	switch {
	case why != "":
	case err != nil:
		why = err.Error()
	case st.Rejected() > 0:
		why = "rows rejected: parsed from the CSV at commit, which quarantines them"
	case g.early != nil: // its sealed segments are written next (writeEarly)
	case b.collect.early != nil && !g.noEarly && (g.c.Sealed() >= earlyStartSegments || over(g)):
		g.startWith = b.columns() // writeEarly starts it, after the partition's lock
	case over(g):
		why = fmt.Sprintf("more than %d bytes of parsed rows", b.collect.limit)
	}
	if why != "" {
		g.giveUp(why)
		delta -= before // what the budget counts for it
	} else {
		delta += g.c.ApproxBytes() - before
	}
	return delta, err
}

// giveUp releases the group's collected rows (the group is parsed from its CSV at commit) and
// returns the bytes they held.
func (g *collected) giveUp(why string) int64 {
	if g.c == nil {
		return 0
	}
	n := g.c.ApproxBytes()
	g.c.Release()
	g.c, g.why = nil, why
	if e := g.early; e != nil {
		g.early = nil
		e.cfg.aborting.Go(func() { e.abort(why) }) // waits for a write in progress: not under collectMu
	}
	return n
}

// takeEarly hands the group's early writer to its commit (nil when it has none).
func (b *batch) takeEarly(processDate, batchID string) *earlyGroup {
	b.collectMu.Lock()
	defer b.collectMu.Unlock()
	g := b.collected[[2]string{processDate, batchID}]
	if g == nil {
		return nil
	}
	e := g.early
	g.early = nil
	return e
}

// collectorLocked returns the collected rows of ch's group, starting them with the group's first
// chunk; nil when the batch does not collect.
func (b *batch) collectorLocked(ch *chunk) *collected {
	if b.collect.limit <= 0 || b.collectDone {
		return nil
	}
	k := [2]string{ch.processDate, ch.batchID}
	g := b.collected[k]
	if g == nil {
		if b.collected == nil {
			b.collected = map[[2]string]*collected{}
		}
		g = &collected{c: table.NewCollector(b.collect.alloc, b.opts, b.collect.segment)}
		b.collected[k] = g
	}
	return g
}

// takeCollected hands the group's collected rows to its commit (nil when it has none) with the
// bytes they hold in the budget, which the commit gives back once written.
func (b *batch) takeCollected(processDate, batchID string) (*table.Collector, int64, string) {
	b.collectMu.Lock()
	defer b.collectMu.Unlock()
	g := b.collected[[2]string{processDate, batchID}]
	if g == nil {
		return nil, 0, "not collected"
	}
	c := g.c
	if c == nil {
		return nil, 0, g.why
	}
	g.c, g.why = nil, "taken by a commit"
	n := c.ApproxBytes()
	b.collectBytes.Add(-n)
	return c, n, ""
}

// dropCollected gives up the groups' collected rows (relieve, under memory pressure: those of
// groups written early only when early is true; or close: every group's) and returns the bytes
// freed. Their groups are parsed from the CSV at commit.
func (b *batch) dropCollected(why string, closing, early bool) int64 {
	b.collectMu.Lock()
	defer b.collectMu.Unlock()
	b.collectDone = b.collectDone || closing
	var freed int64
	for _, g := range b.collected {
		if g.early != nil && !closing && !early {
			continue
		}
		freed += g.giveUp(why)
	}
	b.collectBytes.Add(-freed)
	return freed
}

// heldCount is the number of messages held.
func (b *batch) heldCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.handles)
}

// snapshotHandles returns the held handles in stream order.
func (b *batch) snapshotHandles() []handle {
	b.mu.Lock()
	defer b.mu.Unlock()
	return sortedHandles(b.handles)
}

func sortedHandles(m map[uint64]handle) []handle {
	hs := make([]handle, 0, len(m))
	for _, h := range m {
		hs = append(hs, h)
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].seq < hs[j].seq })
	return hs
}

// check compares what was received with the marker's counts; "" when they agree.
func (b *batch) check(mk *sluicev1.BatchComplete) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var problems []string
	var missing []uint32
	for i := uint32(0); i < mk.Chunks; i++ {
		if _, ok := b.chunks[i]; !ok {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("missing %d of %d chunks (%s)", len(missing), mk.Chunks, indexList(missing)))
	}
	var extra []uint32
	var rows, size int64
	for i, c := range b.chunks {
		if i >= mk.Chunks {
			extra = append(extra, i)
		}
		rows += c.rows
		size += c.size
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		problems = append(problems, fmt.Sprintf("chunk indexes beyond the marker's %d: %s", mk.Chunks, indexList(extra)))
	}
	if len(missing) == 0 && len(extra) == 0 {
		if rows != mk.Rows {
			problems = append(problems, fmt.Sprintf("rows %d, marker says %d", rows, mk.Rows))
		}
		if size != mk.Bytes {
			problems = append(problems, fmt.Sprintf("data bytes %d, marker says %d", size, mk.Bytes))
		}
		problems = append(problems, b.checkMembersLocked(mk)...)
	}
	return strings.Join(problems, "; ")
}

// checkMembersLocked checks that each member of the marker owns exactly its chunk range with
// its rows, date and batch id. b.mu is held and every chunk 0..chunks-1 is present.
func (b *batch) checkMembersLocked(mk *sluicev1.BatchComplete) []string {
	var problems []string
	var total uint64
	for _, mi := range mk.Members {
		total += uint64(mi.Chunks)
		var rows int64
		for i := uint64(mi.FirstChunk); i < uint64(mi.FirstChunk)+uint64(mi.Chunks); i++ {
			c, ok := b.chunks[uint32(i)]
			if !ok {
				problems = append(problems, fmt.Sprintf("member %s: chunk %d beyond the batch", mi.Name, i))
				break
			}
			if c.memberName != mi.Name || c.processDate != mi.ProcessDate || c.batchID != mi.BatchId {
				problems = append(problems, fmt.Sprintf("member %s: chunk %d belongs to %s (%s/%s)", mi.Name, i, c.memberName, c.processDate, c.batchID))
				break
			}
			rows += c.rows
		}
		if rows != mi.Rows {
			problems = append(problems, fmt.Sprintf("member %s: rows %d, marker says %d", mi.Name, rows, mi.Rows))
		}
	}
	if len(mk.Members) > 0 && total != uint64(mk.Chunks) {
		problems = append(problems, fmt.Sprintf("members hold %d chunks, marker says %d", total, mk.Chunks))
	}
	return problems
}

func indexList(xs []uint32) string {
	const show = 8
	parts := make([]string, 0, show+1)
	for i, x := range xs {
		if i == show {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, fmt.Sprint(x))
	}
	return strings.Join(parts, ",")
}

// release drops every in-memory chunk payload (the memory budget's relief): each stays in the rows
// stream, where stored fetches it back if the commit needs it (a group parsed from its CSV at
// commit, a batch moved to the tail). A group whose rows were parsed on arrival, or written early,
// never reads its chunks again, so releasing them costs nothing. It returns the bytes freed. Safe
// from any goroutine.
func (b *batch) release() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.memBytes.Load() == 0 {
		return 0
	}
	var freed int64
	for _, c := range b.chunks {
		if !c.released && c.stored > 0 { // an empty chunk holds nothing to free
			c.released, c.data = true, nil
			freed += c.stored
		}
	}
	b.memBytes.Add(-freed)
	return freed
}

// payload returns c's records, decoded. Raw data comes from memory as is, or is fetched back
// from the rows stream; compressed data is decoded into buf. It returns the records and the
// buffer to pass to the next call, which may reuse the records' memory.
func (b *batch) payload(ctx context.Context, c *chunk, buf []byte) ([]byte, []byte, error) {
	if c.codec == sluicev1.Chunk_CODEC_NONE {
		data, err := b.stored(ctx, c)
		return data, buf, err
	}
	if c.size > bus.MaxChunkData { // checked before allocating for it
		return nil, buf, fmt.Errorf("chunk %d of member %s: data_bytes %d above the %d-byte limit", c.index, c.memberName, c.size, bus.MaxChunkData)
	}
	if int64(cap(buf)) < c.size {
		buf = make([]byte, c.size)
	}
	data, err := b.stored(ctx, c)
	if err != nil {
		return nil, buf, err
	}
	records, err := bus.DecodeChunkData(c.codec, data, c.size, buf[:0:c.size])
	if err != nil {
		return nil, buf, fmt.Errorf("chunk %d of member %s: %w", c.index, c.memberName, err)
	}
	return records, buf, nil
}

// stored returns c's data as received (compressed when c.codec is S2): from memory, or fetched
// back from the rows stream by its sequence when released. A message the stream no longer holds
// (its limits removed it: the stream's first sequence is past c's; it was deleted: the stream
// lists it as deleted; the stream was re-created: its last sequence is below c's), or one that is
// not this chunk, is a permanent error: the batch is dead-lettered with the reason. Any other
// error is for the caller to retry: the stream has no leader for a moment, or a message not found
// that the stream neither dropped nor deleted (a replica behind, were direct gets allowed: they
// are served by any replica).
func (b *batch) stored(ctx context.Context, c *chunk) ([]byte, error) {
	b.mu.Lock()
	data, released := c.data, c.released
	b.mu.Unlock()
	if !released {
		return data, nil
	}
	what := fmt.Sprintf("chunk %d of member %s (stream sequence %d)", c.index, c.memberName, c.seq)
	if b.src.rows == nil {
		return nil, permanent(fmt.Errorf("%s: released with no stream to fetch it from", what))
	}
	msg, err := b.src.rows.GetMsg(ctx, c.seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, b.missing(ctx, what, c.seq, err)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", what, err)
	}
	var pc sluicev1.Chunk
	if err := bus.DecodeChunk(msg.Data, &pc); err != nil {
		return nil, permanent(fmt.Errorf("%s: fetched message does not decode: %w", what, err))
	}
	if pc.ArchiveId != b.key.archive || pc.Attempt != b.key.attempt || pc.Table != b.key.table || pc.ChunkIndex != c.index || int64(len(pc.Data)) != c.stored {
		return nil, permanent(fmt.Errorf("%s: the stream holds another message there (archive %s attempt %d table %s chunk %d, %d bytes)",
			what, pc.ArchiveId, pc.Attempt, pc.Table, pc.ChunkIndex, len(pc.Data)))
	}
	if b.src.fetched != nil {
		b.src.fetched(int64(len(pc.Data)))
	}
	return pc.Data, nil
}

// missing says why the rows stream did not find a released chunk's message at seq (notFound):
// permanent when the stream dropped or deleted it, or no longer reaches that far, retryable
// otherwise.
func (b *batch) missing(ctx context.Context, what string, seq uint64, notFound error) error {
	info, err := b.src.rows.Info(ctx, jetstream.WithDeletedDetails(true))
	if err != nil {
		return fmt.Errorf("fetch %s: %w (stream info: %w)", what, notFound, err)
	}
	st := info.State
	switch {
	case st.FirstSeq > seq:
		return permanent(fmt.Errorf("%s: no longer in the rows stream, which now starts at sequence %d (its limits removed it before the batch committed): %w", what, st.FirstSeq, notFound))
	case st.LastSeq < seq:
		return permanent(fmt.Errorf("%s: the rows stream ends at sequence %d (it was re-created): %w", what, st.LastSeq, notFound))
	case slices.Contains(st.Deleted, seq):
		return permanent(fmt.Errorf("%s: deleted from the rows stream: %w", what, notFound))
	}
	return fmt.Errorf("fetch %s: %w, though the stream holds sequences %d to %d", what, notFound, st.FirstSeq, st.LastSeq)
}

// close drops the batch's payload and returns what it held: the handles and the bytes that were
// in memory.
func (b *batch) close() (hs []handle, mem int64) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, 0
	}
	b.closed = true
	hs = sortedHandles(b.handles)
	mem = b.memBytes.Swap(0)
	b.chunks, b.handles = nil, nil
	b.mu.Unlock()
	mem += b.dropCollected("batch closed", true, true) // after batch.mu: both are leaf locks
	return hs, mem
}

// csvBytes is the decoded (CSV) size of the chunks received.
func (b *batch) csvBytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	var n int64
	for _, c := range b.chunks {
		n += c.size
	}
	return n
}

// orderedChunks returns the chunks sorted by chunk index.
func (b *batch) orderedChunks() []*chunk {
	b.mu.Lock()
	defer b.mu.Unlock()
	cs := make([]*chunk, 0, len(b.chunks))
	for _, c := range b.chunks {
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].index < cs[j].index })
	return cs
}

// columns returns the inferred columns in a deterministic order: by member index, then header
// position. (The Inferer lists them in first-seen order, which depends on the order chunks
// arrived in, e.g. after a redelivery.)
func (b *batch) columns() []table.ColumnType {
	cols := b.inferer.Columns()
	rank := map[string]int{}
	mis := make([]uint32, 0, len(b.members))
	for mi := range b.members {
		mis = append(mis, mi)
	}
	slices.Sort(mis)
	for _, mi := range mis {
		for _, n := range b.members[mi].names {
			if _, ok := rank[n]; !ok {
				rank[n] = len(rank)
			}
		}
	}
	sort.SliceStable(cols, func(i, j int) bool { return rank[cols[i].Name] < rank[cols[j].Name] })
	return cols
}
