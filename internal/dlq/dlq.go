// Package dlq lists, shows and retries dead letters (`sluice dlq list | show SEQ | retry
// SEQ|--all`). A dead letter is a sluicev1.DeadLetter on <prefix>.dlq.<stage> in the DLQ stream:
// the stage, the original subject and stream sequence, the deliveries, the reason, and the
// original payload and headers (when they fit).
//
// Retrying depends on what died:
//   - an extractor dead letter is an archive: retry re-extracts it (a new attempt, see
//     producer.Reextract), which re-runs every table of the archive;
//   - a merger dead letter of a batch (its marker, header Sluice-Type: complete) is re-merged from
//     the rows stream (merger.Replay of that archive and table): the merger terminated the batch's
//     messages on its durable consumer, so republishing the marker could never complete it, while
//     the stream still holds every chunk, including one published late;
//   - anything else (a poison message) is republished as it was to its original subject, with a
//     Nats-Msg-Id of the original id plus ".retry-<dlq seq>" so that de-duplication does not drop
//     it (and a retry repeated after a crash is stored once).
//
// A dead letter is deleted from the DLQ stream only once its retry succeeded.
package dlq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/proto/sluicev1"
)

// ErrNotFound means the DLQ stream holds no dead letter at that sequence.
var ErrNotFound = errors.New("dlq: no such dead letter")

// Kind says what a dead letter is, and so how it is retried.
type Kind string

const (
	KindArchive Kind = "archive" // extractor: a landed archive; retry = re-extract
	KindBatch   Kind = "batch"   // merger: a batch's marker; retry = re-merge from the rows stream
	KindMessage Kind = "message" // any other message; retry = republish to its subject
)

// Letter is one dead letter as stored.
type Letter struct {
	Seq        uint64 // sequence in the DLQ stream
	DLQSubject string // the DLQ subject it is stored on (DeadLetter.Subject is the original one)
	Stored     time.Time
	*sluicev1.DeadLetter
}

// Kind classifies the letter.
func (l Letter) Kind() Kind {
	switch {
	case l.Stage == "extractor":
		return KindArchive
	case l.Stage == "merger" && l.Headers[bus.HdrType] == bus.TypeComplete && l.ArchiveId != "" && l.Table != "":
		return KindBatch
	}
	return KindMessage
}

// Age is how long ago the message died.
func (l Letter) Age(now time.Time) time.Duration {
	at := l.Stored
	if l.DeadUnixMs > 0 {
		at = time.UnixMilli(l.DeadUnixMs)
	}
	return now.Sub(at).Round(time.Second)
}

// Archive is the archive id of the letter, from the letter or its payload.
func (l Letter) Archive() string {
	if l.ArchiveId != "" {
		return l.ArchiveId
	}
	if l.Stage == "extractor" {
		var ev sluicev1.ArchiveLanded
		if proto.Unmarshal(l.Payload, &ev) == nil {
			return ev.ArchiveId
		}
	}
	return ""
}

// Deps are what the queue needs. Reextract and Remerge are the retries of archives and batches
// (cmd/sluice wires producer.Reextract and merger.Replay, so that dlq depends on no stage); a
// nil one makes such a retry fail.
type Deps struct {
	Bus       *bus.Bus
	Reextract func(ctx context.Context, archiveID string) error
	// Remerge re-merges one batch (archive, table) from the rows stream; it returns a short
	// description of what it committed, or an error when the batch did not commit.
	Remerge func(ctx context.Context, archiveID, table string) (string, error)
	Log     *slog.Logger     // nil: discarded
	Now     func() time.Time // nil: time.Now
}

// Queue is the DLQ stream of a bus.
type Queue struct {
	deps   Deps
	log    *slog.Logger
	now    func() time.Time
	stream jetstream.Stream
}

// New opens the DLQ stream.
func New(ctx context.Context, deps Deps) (*Queue, error) {
	if deps.Bus == nil || deps.Bus.JS == nil {
		return nil, errors.New("dlq: a connected bus is required")
	}
	q := &Queue{deps: deps, log: deps.Log, now: deps.Now}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	if q.now == nil {
		q.now = time.Now
	}
	name := deps.Bus.Subjects.DLQStream()
	s, err := deps.Bus.JS.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("dlq: open stream %s: %w", name, err)
	}
	q.stream = s
	return q, nil
}

// List returns every dead letter, oldest first.
func (q *Queue) List(ctx context.Context) ([]Letter, error) {
	var out []Letter
	b := q.deps.Bus
	err := b.ReadOrdered(ctx, b.Subjects.DLQStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{b.Subjects.DLQAll()}, NamePrefix: "sluice-dlq-list", InactiveThreshold: time.Minute,
	}, 0, nil, func(msg jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
		out = append(out, decode(md.Sequence.Stream, msg.Subject(), md.Timestamp, msg.Data()))
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("dlq: list: %w", err)
	}
	return out, nil
}

// Get returns the dead letter at seq; an error wrapping ErrNotFound when there is none.
func (q *Queue) Get(ctx context.Context, seq uint64) (Letter, error) {
	raw, err := q.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Letter{}, fmt.Errorf("dead letter %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return Letter{}, fmt.Errorf("dlq: get %d: %w", seq, err)
	}
	if !strings.HasPrefix(raw.Subject, q.deps.Bus.Subjects.DLQ("")) {
		return Letter{}, fmt.Errorf("dead letter %d: %w", seq, ErrNotFound)
	}
	return decode(seq, raw.Subject, raw.Time, raw.Data), nil
}

func decode(seq uint64, subject string, stored time.Time, data []byte) Letter {
	l := Letter{Seq: seq, DLQSubject: subject, Stored: stored, DeadLetter: &sluicev1.DeadLetter{}}
	if err := proto.Unmarshal(data, l.DeadLetter); err != nil {
		l.DeadLetter = &sluicev1.DeadLetter{Reason: "undecodable dead letter: " + err.Error()}
	}
	if l.Stage == "" {
		l.Stage = strings.TrimPrefix(subject, subjectPrefix(subject))
	}
	if l.Headers == nil {
		l.Headers = map[string]string{}
	}
	return l
}

// subjectPrefix is "<prefix>.dlq." of a DLQ subject.
func subjectPrefix(subject string) string {
	if i := strings.LastIndex(subject, ".dlq."); i >= 0 {
		return subject[:i+len(".dlq.")]
	}
	return ""
}

// Outcome is the result of retrying one dead letter.
type Outcome struct {
	Seq    uint64
	Kind   Kind
	Action string // "re-extraction requested" (a running extractor or the next `run --once` does it), "re-merged", "republished"
	Detail string
	Err    error // nil: retried and deleted from the DLQ
}

// Retry retries the dead letter at seq (see the package documentation) and deletes it from the
// DLQ once the retry succeeded.
func (q *Queue) Retry(ctx context.Context, seq uint64) (Outcome, error) {
	l, err := q.Get(ctx, seq)
	if err != nil {
		return Outcome{Seq: seq, Err: err}, err
	}
	o := q.retry(ctx, l)
	return o, o.Err
}

// RetryAll retries every dead letter, oldest first, each batch or archive once (several dead
// letters of one batch or archive are all deleted by its one successful retry). It returns every
// outcome and the failures joined.
func (q *Queue) RetryAll(ctx context.Context) ([]Outcome, error) {
	ls, err := q.List(ctx)
	if err != nil {
		return nil, err
	}
	var outs []Outcome
	var errs []error
	seen := map[string]Outcome{} // first outcome of each archive or batch
	for _, l := range ls {
		key := ""
		switch l.Kind() {
		case KindArchive:
			key = "a\x00" + l.Archive()
		case KindBatch:
			key = "b\x00" + l.ArchiveId + "\x00" + l.Table
		}
		if prev, ok := seen[key]; key != "" && ok {
			o := Outcome{Seq: l.Seq, Kind: l.Kind(), Action: prev.Action, Detail: fmt.Sprintf("same %s as dead letter %d", l.Kind(), prev.Seq), Err: prev.Err}
			if o.Err == nil {
				o.Err = q.delete(ctx, l.Seq)
			}
			if o.Err != nil {
				errs = append(errs, fmt.Errorf("dead letter %d: %w", l.Seq, o.Err))
			}
			outs = append(outs, o)
			continue
		}
		o := q.retry(ctx, l)
		if o.Err != nil {
			errs = append(errs, fmt.Errorf("dead letter %d: %w", l.Seq, o.Err))
		}
		outs = append(outs, o)
		if key != "" {
			seen[key] = o
		}
		if ctx.Err() != nil {
			break
		}
	}
	return outs, errors.Join(errs...)
}

func (q *Queue) retry(ctx context.Context, l Letter) Outcome {
	o := Outcome{Seq: l.Seq, Kind: l.Kind()}
	switch o.Kind {
	case KindArchive:
		o.Action = "re-extraction requested"
		id := l.Archive()
		switch {
		case id == "":
			o.Err = errors.New("the dead letter names no archive (undecodable landed event): nothing to re-extract")
		case q.deps.Reextract == nil:
			o.Err = errors.New("re-extraction is not available here")
		default:
			o.Err = q.deps.Reextract(ctx, id)
			o.Detail = "archive " + id
		}
	case KindBatch:
		o.Action = "re-merged"
		if q.deps.Remerge == nil {
			o.Err = errors.New("re-merging is not available here (is --out set?)")
			break
		}
		o.Detail, o.Err = q.deps.Remerge(ctx, l.ArchiveId, l.Table)
	default:
		o.Action = "republished"
		o.Detail, o.Err = q.republish(ctx, l)
	}
	if o.Err == nil {
		o.Err = q.delete(ctx, l.Seq)
	}
	if o.Err != nil {
		q.log.Warn("dead letter retry failed", "seq", l.Seq, "kind", o.Kind, "archive", l.Archive(), "table", l.Table, "err", o.Err)
	} else {
		q.log.Info("dead letter retried", "seq", l.Seq, "kind", o.Kind, "action", o.Action, "detail", o.Detail)
	}
	return o
}

// republish stores the original message again on its original subject.
func (q *Queue) republish(ctx context.Context, l Letter) (string, error) {
	if l.DeadLetter.Subject == "" || len(l.Payload) == 0 {
		return "", errors.New("the dead letter kept no payload (too large, or none): nothing to republish")
	}
	msg := nats.NewMsg(l.DeadLetter.Subject)
	msg.Data = l.Payload
	keys := make([]string, 0, len(l.Headers))
	for k := range l.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.HasPrefix(strings.ToLower(k), "nats-") { // server-set or expectation headers
			continue
		}
		msg.Header.Set(k, l.Headers[k])
	}
	msg.Header.Set(nats.MsgIdHdr, bus.RetryID(l.Headers[nats.MsgIdHdr], l.Stream, l.StreamSeq, l.Seq).String())
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ack, err := q.deps.Bus.JS.PublishMsg(pctx, msg)
	if err != nil {
		return "", fmt.Errorf("republish to %s: %w", l.DeadLetter.Subject, err)
	}
	return fmt.Sprintf("%s seq %d", ack.Stream, ack.Sequence), nil
}

func (q *Queue) delete(ctx context.Context, seq uint64) error {
	if err := q.stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("delete dead letter %d: %w", seq, err)
	}
	return nil
}
