package bustest

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
)

// Logs is a log sink (an io.Writer for a slog handler) that tests read while the code under
// test writes to it, and wait on without polling: Seen(s) is closed once a write holds s.
type Logs struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	waiters map[string]chan struct{}
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.buf.Write(p)
	for s, ch := range l.waiters {
		if bytes.Contains(p, []byte(s)) {
			close(ch)
			delete(l.waiters, s)
		}
	}
	return n, err
}

// Logger is a text logger at info level writing to l.
func (l *Logs) Logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// String is everything written so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Seen returns a channel closed once something written holds s (at once if it already has).
// A log line is one write, so s should lie within one line.
func (l *Logs) Seen(s string) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch := make(chan struct{})
	if strings.Contains(l.buf.String(), s) {
		close(ch)
		return ch
	}
	if old, ok := l.waiters[s]; ok {
		return old
	}
	if l.waiters == nil {
		l.waiters = map[string]chan struct{}{}
	}
	l.waiters[s] = ch
	return ch
}
