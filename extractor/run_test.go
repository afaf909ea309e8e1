package extractor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// startRun runs the extractor until the test ends, and checks that Run returns nil on shutdown.
func startRun(t *testing.T, v *env) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

func publishLanded(t *testing.T, v *env, ev *sluicev1.ArchiveLanded) {
	t.Helper()
	data, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	// No responders are retried for a minute (a cluster's stream may still be electing its
	// leader; a landed event published twice is extracted once).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := v.b.JS.Publish(ctx, v.b.Subjects.Landed(), data, jetstream.WithRetryAttempts(600), jetstream.WithRetryWait(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (v *env) settled(t *testing.T) bool {
	c, err := v.e.js.Consumer(context.Background(), v.b.Subjects.EventsStream(), "extractor")
	if err != nil {
		return false
	}
	info, err := c.Info(context.Background())
	if err != nil || info.NumAckPending != 0 || info.NumPending != 0 || info.NumRedelivered != 0 {
		return false
	}
	// Right after a publish the server may not count the new event as pending yet: settled
	// means acked up to the last landed event published.
	stream, err := v.b.JS.Stream(context.Background(), v.b.Subjects.EventsStream())
	if err != nil {
		return false
	}
	last, err := stream.GetLastMsgForSubject(context.Background(), v.b.Subjects.Landed())
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return true
	}
	return err == nil && info.AckFloor.Stream >= last.Sequence
}

// consumerInfo returns the state of the extractor's durable consumer.
func (v *env) consumerInfo(t *testing.T) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := v.e.js.Consumer(context.Background(), v.b.Subjects.EventsStream(), "extractor")
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func extractedEvents(t *testing.T, v *env) []*sluicev1.ArchiveExtracted {
	return eventsOf(t, v, v.b.Subjects.Extracted(), func() *sluicev1.ArchiveExtracted { return &sluicev1.ArchiveExtracted{} })
}

func TestRunConsumesLandedEvents(t *testing.T) {
	v := newEnv(t, Config{})
	startRun(t, v)
	ev := landArchive(t, "a.tar.gz", tarGz(t, file("t_20250101_b1.csv", "a,b\n1,2\n3,4\n")))
	v.createRecord(t, ev)
	publishLanded(t, v, ev)
	waitFor(t, "ArchiveExtracted", func() bool { return len(extractedEvents(t, v)) == 1 })
	got := extractedEvents(t, v)[0]
	if got.ArchiveId != ev.ArchiveId || len(got.Tables) != 1 || got.Tables[0].Rows != 2 {
		t.Fatalf("event %+v", got)
	}
	waitFor(t, "the landed event acked", func() bool { return v.settled(t) })
	rec, _, err := v.ledger.Get(context.Background(), ev.ArchiveId)
	if err != nil || rec.State != ledger.Extracted {
		t.Fatalf("ledger %+v %v", rec, err)
	}
	// A redelivered landed event (ack lost) is recognised from the ledger and not redone.
	publishLanded(t, v, ev)
	waitFor(t, "the duplicate acked", func() bool { return v.settled(t) })
	if n := len(extractedEvents(t, v)); n != 1 {
		t.Fatalf("%d extracted events", n)
	}
}

func TestRunDeadLettersBadArchivesAndEvents(t *testing.T) {
	v := newEnv(t, Config{})
	startRun(t, v)
	ev := landArchive(t, "bad.tar.gz", []byte("this is not a gzip file at all"))
	publishLanded(t, v, ev)
	if _, err := v.b.JS.Publish(context.Background(), v.b.Subjects.Landed(), []byte{0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	dlq := func() []*sluicev1.DeadLetter {
		var out []*sluicev1.DeadLetter
		for _, m := range v.streamMsgs(t, v.b.Subjects.DLQStream()) {
			d := &sluicev1.DeadLetter{}
			if err := proto.Unmarshal(m.data, d); err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
		}
		return out
	}
	waitFor(t, "two dead letters", func() bool { return len(dlq()) == 2 })
	waitFor(t, "both settled", func() bool { return v.settled(t) })
	reasons := map[string]string{}
	for _, d := range dlq() {
		reasons[d.ArchiveId] = d.Reason
		if d.Stage != "extractor" || d.Subject != v.b.Subjects.Landed() || len(d.Payload) == 0 {
			t.Fatalf("dead letter %+v", d)
		}
	}
	if !strings.HasPrefix(reasons[ev.ArchiveId], "corrupt gzip stream") || !strings.HasPrefix(reasons[""], "undecodable landed event") {
		t.Fatalf("reasons %v", reasons)
	}
	failed := eventsOf(t, v, v.b.Subjects.Failed(), func() *sluicev1.ArchiveFailed { return &sluicev1.ArchiveFailed{} })
	if len(failed) != 1 || failed[0].ArchiveId != ev.ArchiveId {
		t.Fatalf("failed events %+v", failed)
	}
	// The failed archive's landed event delivered again (an ack lost) is recognised as finished
	// from the ledger: not extracted, failed and dead-lettered a second time.
	publishLanded(t, v, ev)
	waitFor(t, "the redelivery settled", func() bool { return v.settled(t) })
	if n := len(dlq()); n != 2 {
		t.Fatalf("%d dead letters after the redelivery, want 2", n)
	}
}

func TestRunRetriesTransientFailures(t *testing.T) {
	var calls atomic.Int32
	v := newEnv(t, Config{}, func(d *Deps) {
		d.Open = func(ctx context.Context, uri string) (io.ReadCloser, error) {
			if calls.Add(1) == 1 {
				return nil, errors.New("connection reset by peer")
			}
			return os.Open(strings.TrimPrefix(uri, "file://"))
		}
	})
	startRun(t, v)
	ev := landArchive(t, "a.tar.gz", tarGz(t, file("t_20250101_b1.csv", "a\n1\n")))
	publishLanded(t, v, ev)
	waitFor(t, "ArchiveExtracted after a retry", func() bool { return len(extractedEvents(t, v)) == 1 })
	if calls.Load() != 2 {
		t.Fatalf("opened %d times", calls.Load())
	}
	if n := len(eventsOf(t, v, v.b.Subjects.Failed(), func() *sluicev1.ArchiveFailed { return &sluicev1.ArchiveFailed{} })); n != 0 {
		t.Fatalf("%d failed events for a transient failure", n)
	}
}

func TestRunLastDeliveryDeadLetters(t *testing.T) {
	v := newEnv(t, Config{MaxDeliver: 2}, func(d *Deps) {
		d.Open = func(context.Context, string) (io.ReadCloser, error) { return nil, errors.New("bucket unreachable") }
	})
	startRun(t, v)
	ev := landArchive(t, "a.tar.gz", tarGz(t, file("t_20250101_b1.csv", "a\n1\n")))
	publishLanded(t, v, ev)
	waitFor(t, "ArchiveFailed", func() bool {
		return len(eventsOf(t, v, v.b.Subjects.Failed(), func() *sluicev1.ArchiveFailed { return &sluicev1.ArchiveFailed{} })) == 1
	})
	waitFor(t, "a dead letter", func() bool { return len(v.streamMsgs(t, v.b.Subjects.DLQStream())) == 1 })
	d := &sluicev1.DeadLetter{}
	if err := proto.Unmarshal(v.streamMsgs(t, v.b.Subjects.DLQStream())[0].data, d); err != nil {
		t.Fatal(err)
	}
	if d.Deliveries != 2 || !strings.Contains(d.Reason, "bucket unreachable") {
		t.Fatalf("dead letter %+v", d)
	}
}

func TestRunShutdownHandsBackAndResumes(t *testing.T) {
	data := tarGz(t, file("first_20250101_b1.csv", randomCSV(1, 3000)), file("second_20250101_b1.csv", randomCSV(2, 3000)))
	var calls atomic.Int32
	fed := make(chan struct{})
	v := newEnv(t, Config{ChunkBytes: 4096}, func(d *Deps) {
		d.Open = func(ctx context.Context, uri string) (io.ReadCloser, error) {
			if calls.Add(1) > 1 {
				return os.Open(strings.TrimPrefix(uri, "file://"))
			}
			pr, pw := io.Pipe()
			go func() { // feed 60% of the archive, then stall like a hung connection
				_, _ = pw.Write(data[:len(data)*6/10])
				close(fed)
			}()
			return pr, nil
		}
	})
	ev := landArchive(t, "a.tar.gz", data)
	v.createRecord(t, ev)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.e.Run(ctx) }()
	publishLanded(t, v, ev)
	<-fed
	waitFor(t, "chunks of the first attempt", func() bool { return len(v.rows(t)) > 10 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return on shutdown")
	}
	// Handed back: nothing about the failure is visible, the batches stay open.
	before := v.rows(t)
	for _, m := range before {
		if m.chunk == nil {
			t.Fatalf("%s message published on shutdown", m.typ)
		}
	}
	if n := len(eventsOf(t, v, v.b.Subjects.Failed(), func() *sluicev1.ArchiveFailed { return &sluicev1.ArchiveFailed{} })); n != 0 {
		t.Fatal("ArchiveFailed on shutdown")
	}
	// The next process completes the same batches; the chunks already stored are not doubled.
	// The landed event comes back to it on delivery 2: the hand-back was not swallowed by the
	// pull request the first Run abandoned (which would bring it back only after AckWait, 60 s,
	// on delivery 3).
	startRun(t, v)
	waitFor(t, "ArchiveExtracted", func() bool { return len(extractedEvents(t, v)) == 1 })
	waitFor(t, "the landed event acked", func() bool { return v.settled(t) })
	if n := v.consumerInfo(t).Delivered.Consumer; n != 2 {
		t.Fatalf("landed event delivered %d times, want 2", n)
	}
	for table, ms := range byTable(v.rows(t)) {
		last := ms[len(ms)-1].done
		if last == nil || int(last.Chunks) != len(ms)-1 || last.Rows != 3000 {
			t.Fatalf("%s: %d messages, marker %+v", table, len(ms), last)
		}
	}
	if calls.Load() != 2 {
		t.Fatalf("opened %d times", calls.Load())
	}
}

// TestRunStaleAttemptIsSkipped: the landed event of an older attempt delivered after the archive
// was extracted again (its ack lost before `sluice reextract` bumped the attempt) is acked as
// finished: nothing is extracted or published for the old attempt, and the ledger keeps the newer
// attempt.
func TestRunStaleAttemptIsSkipped(t *testing.T) {
	v := newEnv(t, Config{})
	startRun(t, v)
	old := landArchive(t, "a.tar.gz", tarGz(t, file("t_20250101_b1.csv", "a,b\n1,2\n3,4\n")))
	v.createRecord(t, old)
	cur := proto.Clone(old).(*sluicev1.ArchiveLanded)
	cur.Attempt = 1
	publishLanded(t, v, cur)
	waitFor(t, "ArchiveExtracted of attempt 1", func() bool { return len(extractedEvents(t, v)) == 1 })
	waitFor(t, "the landed event acked", func() bool { return v.settled(t) })
	rowsBefore := len(v.streamMsgs(t, v.b.Subjects.RowsStream()))

	publishLanded(t, v, old)
	waitFor(t, "the stale event acked", func() bool { return v.settled(t) })
	if evs := extractedEvents(t, v); len(evs) != 1 || evs[0].Attempt != 1 {
		t.Fatalf("extracted events %v, want attempt 1's alone", evs)
	}
	if n := len(v.streamMsgs(t, v.b.Subjects.RowsStream())); n != rowsBefore {
		t.Fatalf("%d rows messages after the stale event, %d before", n, rowsBefore)
	}
	if rec, _, err := v.ledger.Get(context.Background(), old.ArchiveId); err != nil || rec.Attempt != 1 || rec.State != ledger.Extracted {
		t.Fatalf("ledger %+v %v, want attempt 1 extracted", rec, err)
	}
}

// TestRunKeepsTheLandedEventAlive: an archive that takes longer than AckWait to extract (its
// source stalls here until the test has seen enough) is not redelivered meanwhile: the
// extractor sends InProgress every AckWait/3. Counted on the wire (+WPI) and on the consumer.
func TestRunKeepsTheLandedEventAlive(t *testing.T) {
	gate := make(chan struct{})
	v := newEnv(t, Config{AckWait: 3 * time.Second}, func(d *Deps) {
		d.Open = func(ctx context.Context, uri string) (io.ReadCloser, error) {
			select {
			case <-gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return os.Open(strings.TrimPrefix(uri, "file://"))
		}
	})
	wpi := bustest.CountAcks(t, v.b.NC, "+WPI")
	startRun(t, v)
	ev := landArchive(t, "a.tar.gz", tarGz(t, file("t_20250101_b1.csv", "a\n1\n")))
	publishLanded(t, v, ev)
	// Five rounds of InProgress span more than AckWait.
	waitFor(t, "the landed event kept alive", func() bool { return wpi.Load() >= 5 })
	if ci := v.consumerInfo(t); ci.NumRedelivered != 0 || ci.NumAckPending != 1 {
		t.Fatalf("consumer while extracting: %d redelivered, %d pending", ci.NumRedelivered, ci.NumAckPending)
	}
	close(gate)
	waitFor(t, "ArchiveExtracted", func() bool { return len(extractedEvents(t, v)) == 1 })
	waitFor(t, "the landed event acked", func() bool { return v.settled(t) })
}

// TestRunUnrecordedFailureIsRetried: a permanent failure (a corrupt archive) is dead-lettered
// only once it is recorded (ArchiveFailed published, the ledger moved to failed): when the ledger
// cannot take it (its record vanished here), the landed event is handed back, and the next
// delivery records the failure and dead-letters it. A dead letter without the record would
// leave the archive pending forever for the summarizer and `run --once`.
func TestRunUnrecordedFailureIsRetried(t *testing.T) {
	var opens atomic.Int32
	var v *env
	v = newEnv(t, Config{}, func(d *Deps) {
		d.Open = func(ctx context.Context, uri string) (io.ReadCloser, error) {
			if opens.Add(1) == 1 { // after the record was moved to extracting: take it away
				kv, err := v.b.Ledger(ctx)
				if err != nil {
					return nil, err
				}
				id := strings.TrimSuffix(filepath.Base(uri), ".tar.gz")
				if err := kv.Delete(ctx, "archive."+id); err != nil {
					return nil, err
				}
			}
			return os.Open(strings.TrimPrefix(uri, "file://"))
		}
	})
	startRun(t, v)
	data := []byte("this is not a gzip file at all")
	sum := sha256.Sum256(data)
	id := hex.EncodeToString(sum[:])[:20]
	ev := landArchive(t, id+".tar.gz", data)
	v.createRecord(t, ev)
	publishLanded(t, v, ev)
	waitFor(t, "a dead letter", func() bool { return len(v.streamMsgs(t, v.b.Subjects.DLQStream())) == 1 })
	d := &sluicev1.DeadLetter{}
	if err := proto.Unmarshal(v.streamMsgs(t, v.b.Subjects.DLQStream())[0].data, d); err != nil {
		t.Fatal(err)
	}
	if opens.Load() != 2 || d.Deliveries != 2 || !strings.HasPrefix(d.Reason, "corrupt gzip stream") {
		t.Fatalf("dead letter %+v after %d opens; want it on the second delivery", d, opens.Load())
	}
	if rec, _, err := v.ledger.Get(context.Background(), ev.ArchiveId); err != nil || rec.State != ledger.Failed {
		t.Fatalf("ledger %+v %v, want failed", rec, err)
	}
}

// TestRunKeepsACommittedArchiveCommitted: an extraction that ends after the archive was
// committed (a redelivery re-extracting an archive whose first extraction published its event
// but died before its ledger update, while the summarizer committed the first one's output)
// leaves the ledger at committed, with the extraction's counts: moving it back to extracted
// would show a committed archive as not yet merged (to `sluice status`, the producer's scan).
func TestRunKeepsACommittedArchiveCommitted(t *testing.T) {
	var v *env
	v = newEnv(t, Config{}, func(d *Deps) {
		d.Open = func(ctx context.Context, uri string) (io.ReadCloser, error) {
			id := strings.TrimSuffix(filepath.Base(uri), ".tar.gz")
			if _, err := v.ledger.Update(ctx, id, func(r *ledger.Record) error {
				r.SetState(ledger.Committed, "", time.Now())
				return nil
			}); err != nil {
				return nil, err
			}
			return os.Open(strings.TrimPrefix(uri, "file://"))
		}
	})
	startRun(t, v)
	data := tarGz(t, file("t_20250101_b1.csv", "a\n1\n"))
	sum := sha256.Sum256(data)
	ev := landArchive(t, hex.EncodeToString(sum[:])[:20]+".tar.gz", data)
	v.createRecord(t, ev)
	publishLanded(t, v, ev)
	waitFor(t, "ArchiveExtracted", func() bool { return len(extractedEvents(t, v)) == 1 })
	waitFor(t, "the landed event acked", func() bool { return v.settled(t) })
	if rec, _, err := v.ledger.Get(context.Background(), ev.ArchiveId); err != nil || rec.State != ledger.Committed || rec.Tables != 1 || rec.RowsIn != 1 {
		t.Fatalf("ledger %+v %v, want committed with the extraction's counts", rec, err)
	}
}

// TestRedeliveryAfterAMergerDeadLetter (a review): a merger dead-letters a batch of the attempt
// before the extraction is recorded complete (the extractor crashed, or its publish failed, before
// ArchiveExtracted). The redelivery is not taken for a finished extraction — its ArchiveExtracted
// is what lets the archive settle — and, once done, the record says the attempt failed, and why.
func TestRedeliveryAfterAMergerDeadLetter(t *testing.T) {
	v := newEnv(t, Config{})
	ev := landArchive(t, "p_20250101_1.tar.gz", tarGz(t, file("orders_20250101_1.csv", "id,amount\n1,2\n")))
	v.createRecord(t, ev)
	ctx := context.Background()
	if _, err := v.ledger.Transition(ctx, ev.ArchiveId, ledger.Extracting, ""); err != nil { // the first delivery started
		t.Fatal(err)
	}
	if err := v.ledger.BatchDeadLettered(ctx, ev.ArchiveId, 0, "orders", "table orders dead-lettered by the merger: x"); err != nil {
		t.Fatal(err)
	}
	if v.e.alreadyExtracted(ctx, ev) {
		t.Fatal("the redelivery of an unfinished extraction is skipped as extracted")
	}
	if _, err := v.e.Extract(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if evs := eventsOf(t, v, v.b.Subjects.Extracted(), func() *sluicev1.ArchiveExtracted { return &sluicev1.ArchiveExtracted{} }); len(evs) != 1 {
		t.Fatalf("%d extracted events", len(evs))
	}
	rec, _, err := v.ledger.Get(ctx, ev.ArchiveId)
	if err != nil || rec.State != ledger.Failed || rec.Reason != "table orders dead-lettered by the merger: x" || rec.RowsIn != 1 {
		t.Fatalf("ledger %+v %v", rec, err)
	}
}
