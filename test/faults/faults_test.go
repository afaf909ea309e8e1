//go:build faults

package faults

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// The tests are declared roughly slowest first: runs queue for the FAULT_PARALLEL slots.

// TestS3Outage: S3 unreachable for longer than the S3 retry budget (objstore
// DefaultRetryMaxElapsed, 2 min) while batches are committing: they stay un-acked (nothing is
// dead-lettered, nothing half-visible) and complete once S3 is back.
func TestS3Outage(t *testing.T) {
	t.Parallel()
	forSeeds(t, knobs.slowSeeds, func(t *testing.T, seed int64) {
		var sawPending bool
		var pendingAcks int
		s := run(t, spec{caseName: "s3-outage", seed: seed, s3: true, proxy: true, idle: true, timeout: knobs.outage + 5*time.Minute,
			inject: func(s *scenario) {
				s.waitLanded()
				s.sleep(s.between(0, 500*time.Millisecond))
				s.proxy.setDown(true)
				s.t.Logf("S3 down for %s", knobs.outage)
				s.sleep(knobs.outage)
				sawPending = s.incomplete(s.dateTruth()) != ""
				pendingAcks = s.mergerAckPending()
				s.proxy.setDown(false)
				s.t.Logf("S3 back; at the end of the outage: run incomplete %v, merger messages un-acked %d", sawPending, pendingAcks)
			}})
		if !sawPending {
			t.Errorf("the run completed during the S3 outage: the outage did not hit a commit")
		}
		if pendingAcks == 0 {
			t.Errorf("no merger message was un-acked at the end of the outage")
		}
		s.expectDeadLetters(nil)
	})
}

// TestPoisonMessages: a rows message that can never be decoded and a batch whose marker counts
// can never match, published ahead of real batches on the same partition: bounded deliveries,
// then a dead letter with the reason; everything behind them flows and completes exact.
func TestPoisonMessages(t *testing.T) {
	t.Parallel()
	forSeeds(t, knobs.slowSeeds, func(t *testing.T, seed int64) {
		var published time.Time
		var dls []*sluicev1.DeadLetter
		s := run(t, spec{caseName: "poison", seed: seed, idle: true, timeout: 6 * time.Minute,
			beforeProduce: func(s *scenario) {
				s.publishPoison()
				published = time.Now()
			},
			settle: func(s *scenario) {
				// Everything real completed; the count mismatch is dead-lettered only after
				// MaxDeliver deliveries, RetryDelay (AckWait/2 = 30s) apart.
				s.t.Logf("real data complete %s after the poison was published", s.doneAt.Sub(published).Round(time.Second))
				dls = s.waitDeadLetters(2, 4*time.Minute)
			}})
		s.expectDeadLetters([]deadLetterWant{
			{reason: "decode chunk", deliveries: 1},
			{reason: "rows 3, marker says 5", deliveries: 5},
		})
		// The real data's last commit, not doneAt: doneAt is when the watcher saw every summary
		// checked, which on a loaded machine can come well after the commits.
		lastCommit := s.lastCommit()
		for _, dl := range dls {
			if at := time.UnixMilli(int64(dl.DeadUnixMs)); strings.Contains(dl.Reason, "marker says") && at.Before(lastCommit) {
				t.Errorf("the poison batch was dead-lettered (%s) before the real data was committed (%s): nothing shows the partition kept flowing",
					at.Format(time.TimeOnly), lastCommit.Format(time.TimeOnly))
			}
		}
		s.addFault("poison message", 3)
	})
}

// TestTwoMergersOneKilled: two mergers share the partitions; one is killed mid-batch and stays
// down; the other takes its partitions over (pinned priority group, after the pin TTL of 30s; the
// dead merger's messages come back after AckWait, 60s) and the run completes exact.
func TestTwoMergersOneKilled(t *testing.T) {
	t.Parallel()
	forSeeds(t, knobs.seeds, func(t *testing.T, seed int64) {
		// merger1 is up before merger2 starts and, alone for a moment, pulls on every partition: it
		// dies on the first or second chunk it receives, holding an open batch (and its pins).
		n := 1 + int(seed%2)
		s := run(t, spec{caseName: "two-mergers-kill-one", seed: seed, s3: seed%2 == 0, mergers: 2, timeout: 6 * time.Minute,
			crash:     map[string]string{"merger1": fmt.Sprintf("merger.chunk:%d", n)},
			noRestart: map[string]bool{"merger1": true},
			inject: func(s *scenario) {
				s.waitLanded()
				// Should merger1 not reach its crash point (it owns too little), kill it anyway
				// (and the test fails below): a long bound, as extraction is slow on a loaded
				// machine.
				for deadline := time.Now().Add(90 * time.Second); s.faults("crashpoint merger.chunk:"+fmt.Sprint(n)) == 0 && time.Now().Before(deadline) && s.ctx.Err() == nil; {
					s.sleep(100 * time.Millisecond)
				}
				if s.proc("merger1").incarnations() == 1 && s.faults("crashpoint merger.chunk:"+fmt.Sprint(n)) == 0 {
					s.proc("merger1").kill9(true, nil)
				}
			}})
		if s.logCount("merger2", "batch committed") == 0 {
			t.Errorf("merger2 committed nothing")
		}
		// merger2 took over every partition merger1 had owned.
		for p := 0; p < partitions; p++ {
			part := fmt.Sprintf(`"partition":%d}`, p)
			if s.logCount("merger1", `"msg":"partition owned"`, part) > 0 && s.logCount("merger2", `"msg":"partition owned"`, part) == 0 {
				t.Errorf("partition %d: owned by merger1 before it was killed, never by merger2", p)
			}
		}
		if s.faults(fmt.Sprintf("crashpoint merger.chunk:%d", n)) == 0 {
			t.Errorf("merger1 never reached its crash point (chunk %d); it was killed idle, 90s in", n)
		}
		s.expectDeadLetters(nil)
	})
}

// TestKillMerger: kill -9 of the merger at a crash point (mid-batch, between upload and event,
// between event and ack; seeded) and once more at a random moment; restarted each time. One
// member is large enough to be written early (`run`'s 96 MiB budget), so a kill may land while
// its row groups are being uploaded.
func TestKillMerger(t *testing.T) {
	t.Parallel()
	points := []crashPoint{{"merger.chunk", 8}, {"merger.uploaded", 8}, {"merger.committed", 8}}
	forSeeds(t, knobs.seeds, func(t *testing.T, seed int64) {
		killTest(t, seed, "merger1", "kill-merger", points, 4*time.Second, func(sp *spec) {
			sp.hugeBytes = knobs.hugeBytes
			sp.mergerArgs = []string{"--memory-budget", "96MiB"}
		})
	})
}

// TestKillExtractor: kill -9 of the extractor mid-archive (after the n-th chunk), between
// markers, between ArchiveExtracted and its ack (seeded), and at a random moment; restarted.
func TestKillExtractor(t *testing.T) {
	t.Parallel()
	points := []crashPoint{{"extractor.chunk", 8}, {"extractor.marker", 8}, {"extractor.extracted", 4}}
	forSeeds(t, knobs.seeds, func(t *testing.T, seed int64) {
		killTest(t, seed, "extractor", "kill-extractor", points, 2*time.Second)
	})
}

// TestNATSRestart: nats-server stopped and started again (same store, same port) twice during
// the run; every client reconnects and the run completes exact.
func TestNATSRestart(t *testing.T) {
	t.Parallel()
	forSeeds(t, knobs.seeds, func(t *testing.T, seed int64) {
		s := run(t, spec{caseName: "nats-restart", seed: seed, s3: seed%2 == 1, timeout: 6 * time.Minute,
			inject: func(s *scenario) {
				for i := 0; i < 2; i++ {
					s.sleep(s.between(200*time.Millisecond, 2500*time.Millisecond))
					down := s.between(time.Second, 6*time.Second)
					s.stopNATS()
					s.addFault("nats-server restart", 1)
					s.sleep(down)
					if err := s.restartNATS(); err != nil {
						s.t.Errorf("restart nats-server: %v", err)
						return
					}
					s.t.Logf("nats-server restarted after %s down", down.Round(time.Millisecond))
				}
			}})
		s.expectDeadLetters(nil)
	})
}

// TestS3Faults: every S3 request of the mergers and the summarizer fails with probability
// FAULT_S3_RATE (503 SlowDown, 500, connection reset, slow answer, body cut short, answer lost
// after S3 acted): retries absorb them; no partial object is ever visible (watched during the
// run); no multipart upload is left behind. One member is large enough for multipart uploads,
// and (with `run`'s 96 MiB budget) to be written early: its row groups uploaded as it arrives.
func TestS3Faults(t *testing.T) {
	t.Parallel()
	forSeeds(t, knobs.seeds, func(t *testing.T, seed int64) {
		s := run(t, spec{caseName: "s3-faults", seed: seed, s3: true, proxy: true, hugeBytes: knobs.hugeBytes, timeout: 6 * time.Minute,
			mergerArgs: []string{"--memory-budget", "96MiB"},
			inject:     func(s *scenario) { s.proxy.setRate(knobs.s3Rate) }})
		if s.logCount("merger1", "writing a group early") == 0 {
			t.Errorf("no group was written early: raise FAULT_HUGE_MB")
		}
		ops := s.proxy.opCounts()
		t.Logf("watched %d object versions during the run; %d S3 requests through the proxy: %s", s.watched, s.proxy.reqs.Load(), faultString(ops))
		if ops["CompleteMultipartUpload"] == 0 {
			t.Errorf("no multipart upload was completed: raise FAULT_HUGE_MB")
		}
		if s.proxyFaults() == 0 {
			t.Errorf("no S3 fault was injected")
		}
		s.expectDeadLetters(nil)
	})
}

// TestKillSummarizer: kill -9 of the summarizer between its ledger update and its CheckResult,
// between summary.txt and summary.json (seeded), and at a random moment; restarted.
func TestKillSummarizer(t *testing.T) {
	t.Parallel()
	points := []crashPoint{{"summarizer.ledger", 4}, {"summarizer.summary_text", 2}}
	forSeeds(t, knobs.seeds, func(t *testing.T, seed int64) {
		killTest(t, seed, "summarizer", "kill-summarizer", points, 5*time.Second)
	})
}

// TestBaseline: no fault, folder and S3: the read-back itself must find the output exact.
func TestBaseline(t *testing.T) {
	t.Parallel()
	forSeeds(t, knobs.seeds[:1], func(t *testing.T, seed int64) {
		for _, s3 := range []bool{false, true} {
			s := run(t, spec{caseName: "baseline", seed: seed, s3: s3, proxy: s3})
			s.expectDeadLetters(nil)
			if !s3 && !t.Failed() {
				s.selfTest()
			}
		}
	})
}

// selfTest damages a verified output and checks that the verifier sees exactly the damage: an
// object copied under another archive id (its rows duplicated), one deleted and one truncated
// (their rows lost).
func (s *scenario) selfTest() {
	t := s.t
	ctx := context.Background()
	var keys []string
	_ = s.readBucket.List(ctx, "", "", func(a objstore.Attrs) error {
		if strings.HasSuffix(a.Key, ".parquet") && !strings.HasPrefix(a.Key, "_dq/") { // data objects
			keys = append(keys, a.Key)
		}
		return nil
	})
	if len(keys) < 3 {
		t.Fatalf("self-test needs 3 objects, have %d", len(keys))
	}
	rows := func(k string) int64 {
		tbl, err := s.openTable(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		defer tbl.Release()
		return tbl.NumRows()
	}
	read := func(k string) []byte {
		rc, err := s.readBucket.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return b
	}
	dupRows, lostRows := rows(keys[0]), rows(keys[1])+rows(keys[2])
	dupKey := keys[0][:strings.LastIndex(keys[0], "/")+1] + "part-ffffffffffffffffffff.parquet"
	if err := s.readBucket.Put(ctx, dupKey, bytes.NewReader(read(keys[0]))); err != nil {
		t.Fatal(err)
	}
	if err := s.readBucket.Delete(ctx, keys[1]); err != nil {
		t.Fatal(err)
	}
	b := read(keys[2])
	if err := s.readBucket.Put(ctx, keys[2], bytes.NewReader(b[:len(b)/2])); err != nil {
		t.Fatal(err)
	}
	saved := *s.fig
	s.quiet, s.fig.Objects = true, 0
	s.verify()
	got := *s.fig
	*s.fig = saved
	s.quiet = false
	if got.Lost != lostRows || got.Duplicated != dupRows || got.Foreign != 0 {
		t.Errorf("verifier self-test: lost %d duplicated %d foreign %d, want lost %d duplicated %d foreign 0; problems:\n%s",
			got.Lost, got.Duplicated, got.Foreign, lostRows, dupRows, strings.Join(s.problems, "\n"))
	}
	if len(s.problems) < 3 {
		t.Errorf("verifier self-test: %d problems reported, want at least 3: %v", len(s.problems), s.problems)
	}
	t.Logf("verifier self-test: %d duplicated and %d lost rows found as planted (%d problems reported)", got.Duplicated, got.Lost, len(s.problems))
}

// forSeeds runs fn for each seed as a parallel subtest.
func forSeeds(t *testing.T, seeds []int64, fn func(t *testing.T, seed int64)) {
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			fn(t, seed)
		})
	}
}

// crashPoint is a crashpoint.Hit name and the largest n (its n-th hit) a run surely reaches.
type crashPoint struct {
	name string
	maxN int
}

// killTest arms the seed's crash point of stage (n-th hit, n seeded in [1, maxN]; armed until it
// fires) and also kills the stage at a random moment in [0, window] after the producer starts,
// unless the run has completed by then; the supervisor restarts it each time.
func killTest(t *testing.T, seed int64, procName, caseName string, points []crashPoint, window time.Duration, opts ...func(*spec)) {
	cp := points[int(((seed-1)%int64(len(points))+int64(len(points)))%int64(len(points)))]
	var armed string
	sp := spec{caseName: caseName, seed: seed, s3: seed%2 == 0, timeout: 6 * time.Minute,
		arm: func(s *scenario) map[string]string {
			armed = fmt.Sprintf("%s:%d", cp.name, 1+s.intn(cp.maxN))
			return map[string]string{procName: armed}
		},
		inject: func(s *scenario) {
			d := s.between(0, window)
			s.sleep(d)
			if s.completed.Load() {
				s.t.Logf("random kill of %s at %s: the run was already complete", procName, d.Round(time.Millisecond))
				return
			}
			if s.proc(procName).kill9(false, nil) {
				s.t.Logf("killed %s at a random moment, %s after the producer started", procName, d.Round(time.Millisecond))
			}
		}}
	for _, o := range opts {
		o(&sp)
	}
	s := run(t, sp)
	if s.faults("crashpoint "+armed) == 0 {
		t.Errorf("crash point %s never fired", armed)
	}
	s.expectDeadLetters(nil)
}

// ---- helpers of the cases ----

func (s *scenario) dateTruth() map[string]*struct {
	archives int
	rows     int64
} {
	dates := map[string]*struct {
		archives int
		rows     int64
	}{}
	for _, a := range s.manifest.Archives {
		seen := map[string]bool{}
		for _, mi := range a.Members {
			if mi.Table == "" {
				continue
			}
			d := dates[mi.ProcessDate]
			if d == nil {
				d = &struct {
					archives int
					rows     int64
				}{}
				dates[mi.ProcessDate] = d
			}
			if !seen[mi.ProcessDate] {
				seen[mi.ProcessDate] = true
				d.archives++
			}
			d.rows += int64(mi.Rows)
		}
	}
	return dates
}

// mergerAckPending sums NumAckPending over the merger consumers.
func (s *scenario) mergerAckPending() int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := 0
	for p := 0; p < partitions; p++ {
		c, err := s.bus.JS.Consumer(ctx, s.bus.Subjects.RowsStream(), fmt.Sprintf("merger-p%d", p))
		if err != nil {
			continue
		}
		info, err := c.Info(ctx)
		if err == nil {
			n += info.NumAckPending
		}
	}
	return n
}

func (s *scenario) addProxyFaults() {
	if s.proxy == nil {
		return
	}
	for k, v := range s.proxy.snapshot() {
		s.addFault(k, v)
	}
}

func (s *scenario) proxyFaults() int64 {
	var n int64
	for _, v := range s.proxy.snapshot() {
		n += v
	}
	return n
}

// lastCommit is the time of the run's last BatchCommitted event (the events stream's last on
// that subject).
func (s *scenario) lastCommit() time.Time {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := s.bus.JS.Stream(ctx, s.bus.Subjects.EventsStream())
	if err != nil {
		s.t.Fatalf("events stream: %v", err)
	}
	m, err := st.GetLastMsgForSubject(ctx, s.bus.Subjects.Committed())
	if err != nil {
		s.t.Fatalf("last commit: %v", err)
	}
	bc := &sluicev1.BatchCommitted{}
	if err := proto.Unmarshal(m.Data, bc); err != nil {
		s.t.Fatalf("last commit: %v", err)
	}
	return time.UnixMilli(bc.CommittedUnixMs)
}

// deadLetters reads every dead letter of the run.
func (s *scenario) deadLetters() []*sluicev1.DeadLetter {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := s.bus.JS.Stream(ctx, s.bus.Subjects.DLQStream())
	if err != nil {
		s.t.Errorf("dlq stream: %v", err)
		return nil
	}
	info, err := st.Info(ctx)
	if err != nil {
		s.t.Errorf("dlq stream: %v", err)
		return nil
	}
	var out []*sluicev1.DeadLetter
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		dl := &sluicev1.DeadLetter{}
		if err := proto.Unmarshal(m.Data, dl); err != nil {
			s.t.Errorf("dead letter %d: %v", seq, err)
			continue
		}
		out = append(out, dl)
	}
	return out
}

func (s *scenario) waitDeadLetters(n int, timeout time.Duration) []*sluicev1.DeadLetter {
	deadline := time.Now().Add(timeout)
	for {
		dls := s.deadLetters()
		if len(dls) >= n || time.Now().After(deadline) {
			return dls
		}
		s.sleep(time.Second)
	}
}

type deadLetterWant struct {
	reason     string
	deliveries uint64
}

// expectDeadLetters checks that the DLQ holds exactly one dead letter per want (by reason).
func (s *scenario) expectDeadLetters(want []deadLetterWant) {
	dls := s.deadLetters()
	used := make([]bool, len(dls))
	for _, w := range want {
		found := false
		for i, dl := range dls {
			if !used[i] && strings.Contains(dl.Reason, w.reason) {
				used[i], found = true, true
				if dl.Deliveries != w.deliveries {
					s.t.Errorf("dead letter %q after %d deliveries, want %d", dl.Reason, dl.Deliveries, w.deliveries)
				}
				s.t.Logf("dead letter (%s, %d deliveries): %s", dl.Stage, dl.Deliveries, dl.Reason)
				break
			}
		}
		if !found {
			s.t.Errorf("no dead letter with reason %q", w.reason)
		}
	}
	for i, dl := range dls {
		if !used[i] {
			s.t.Errorf("unexpected dead letter (stage %s, archive %s, table %s, %d deliveries): %s",
				dl.Stage, dl.ArchiveId, dl.Table, dl.Deliveries, dl.Reason)
		}
	}
}

// publishPoison publishes, on the partition and table of a real batch, an undecodable chunk and
// a batch (one chunk and its marker) whose counts can never match: the chunk holds 3 rows, the
// marker says 5.
func (s *scenario) publishPoison() {
	var tbl string
	for name := range s.manifest.Tables {
		if tbl == "" || name < tbl {
			tbl = name
		}
	}
	var archiveID string
	var header []string
	for _, a := range s.manifest.Archives {
		for _, mi := range a.Members {
			if mi.Table == tbl && archiveID == "" {
				archiveID, header = s.archiveIDs[a.Name], mi.Columns
			}
		}
	}
	part := bus.Partition(archiveID, tbl, partitions)
	subj := s.bus.Subjects.Rows(part, tbl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub := func(typ, id string, data []byte) {
		m := nats.NewMsg(subj)
		m.Data = data
		m.Header.Set(bus.HdrType, typ)
		m.Header.Set(bus.HdrArchive, "00000000000000000bad")
		m.Header.Set(bus.HdrTable, tbl)
		m.Header.Set(nats.MsgIdHdr, id)
		if _, err := s.bus.JS.PublishMsg(ctx, m, jetstream.WithExpectStream(s.bus.Subjects.RowsStream())); err != nil {
			s.t.Errorf("publish poison: %v", err)
		}
	}
	pub(bus.TypeChunk, "poison.undecodable", []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x01})

	const fake = "00000000000000000bad"
	row := strings.Repeat("x,", len(header)-1) + "x\n"
	data := []byte(strings.Repeat(row, 3))
	mi := &sluicev1.MemberInfo{Name: tbl + "_20250301_999.csv", ProcessDate: "2025-03-01", BatchId: "999", Rows: 5,
		Bytes: int64(len(data)), Chunks: 1, FirstChunk: 0}
	chunk := &sluicev1.Chunk{ArchiveId: fake, Table: tbl, Member: mi.Name, ProcessDate: mi.ProcessDate, BatchId: mi.BatchId,
		ChunkIndex: 0, FirstLine: 2, Rows: 5, Header: []byte(strings.Join(header, ",")), Data: data, Delimiter: ",",
		LastInMember: true}
	chunk.Rows = 3 // what the data holds; the marker says 5
	cb, _ := proto.Marshal(chunk)
	pub(bus.TypeChunk, bus.ChunkID(fake, 0, tbl, 0).String(), cb)
	mk := &sluicev1.BatchComplete{ArchiveId: fake, Table: tbl, Partition: part, Chunks: 1, Rows: 5, Bytes: int64(len(data)),
		Members: []*sluicev1.MemberInfo{mi}}
	mb, _ := proto.Marshal(mk)
	pub(bus.TypeComplete, bus.MarkerID(fake, 0, tbl).String(), mb)
	s.t.Logf("poison published on %s (partition %d shared with archive %s)", subj, part, archiveID)
}

// watcher lists the output during every run (directly, not through the proxy) and reads the
// footer of every Parquet object version it sees: a partial object must never be visible.
type watcher struct {
	s       *scenario
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	checked int
}

func (s *scenario) watchObjects() *watcher {
	w := &watcher{s: s, done: make(chan struct{})}
	seen := map[string]string{}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			select {
			case <-w.done:
				return
			case <-time.After(300 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = s.readBucket.List(ctx, "", "", func(a objstore.Attrs) error {
				if strings.Contains(a.Key, ".tmp-") {
					s.t.Errorf("temporary object listed during the run: %s", a.Key)
				}
				if !strings.HasSuffix(a.Key, ".parquet") || seen[a.Key] == a.ETag {
					return nil
				}
				seen[a.Key] = a.ETag
				w.checked++
				ra, err := objstore.ReaderAt(ctx, s.readBucket, a.Key)
				if err != nil {
					return nil // replaced or removed meanwhile
				}
				defer ra.Close()
				pf, err := file.NewParquetReader(ra)
				if err != nil {
					if now, serr := s.readBucket.Stat(ctx, a.Key); serr != nil || now.Size != a.Size || now.ETag != a.ETag || !now.ModTime.Equal(a.ModTime) {
						return nil // replaced meanwhile: the new version is read on the next listing
					}
					s.t.Errorf("partial object visible during the run: %s (%d bytes): %v", a.Key, a.Size, err)
					return nil
				}
				pf.Close()
				return nil
			})
			cancel()
		}
	}()
	return w
}

func (w *watcher) stop() {
	w.once.Do(func() { close(w.done) })
	w.wg.Wait()
}

// checkUploads lists unfinished multipart uploads; those the proxy orphaned (their creation's
// answer was lost) are a known limit, reported, not failed.
func (s *scenario) checkUploads(ctx context.Context) {
	out, err := s3Client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(s.s3Bucket)})
	if err != nil {
		s.errorf("list multipart uploads: %v", err)
		return
	}
	orphans := 0
	for _, u := range out.Uploads {
		if s.proxy != nil && isOrphan(s.proxy, aws.ToString(u.UploadId)) {
			orphans++
			continue
		}
		s.errorf("unfinished multipart upload left: %s (initiated %v)", aws.ToString(u.Key), aws.ToTime(u.Initiated))
	}
	if orphans > 0 {
		s.fig.Note = strings.TrimSpace(s.fig.Note + fmt.Sprintf(" multipart uploads orphaned by a lost CreateMultipartUpload answer (left for AbortStale): %d", orphans))
	}
}
