// Package statedir guards a state directory (the embedded JetStream store, scratch files) so that
// one process at a time owns it, and lets the other commands of the same directory find the
// owner's server.
//
// The owner holds an exclusive flock(2) on <dir>/LOCK for its whole life and writes who it is into
// that file; the kernel releases the lock when the process ends, however it ends (kill -9 too), so
// a stale LOCK file never blocks a restart. Once its embedded server is ready the owner writes
// <dir>/server.json (mode 0600: it holds the server's client URL and auth token); commands such as
// `sluice status` read it to reach the live server instead of opening the store a second time.
package statedir

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

const (
	lockName   = "LOCK"
	serverName = "server.json"
	storeName  = "jetstream"
)

// Holder describes the process that owns a state directory.
type Holder struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host,omitempty"`
	Command string    `json:"command"`
	Started time.Time `json:"started"`
}

func (h Holder) String() string {
	s := fmt.Sprintf("sluice %s (pid %d", h.Command, h.PID)
	if h.Host != "" {
		s += " on " + h.Host
	}
	if !h.Started.IsZero() {
		s += ", since " + h.Started.UTC().Format(time.RFC3339)
	}
	return s + ")"
}

// Server is what an owner publishes about its embedded server.
type Server struct {
	URL   string `json:"url"`
	Token string `json:"token,omitempty"`
	PID   int    `json:"pid"`
}

// ErrHeld is wrapped by *HeldError.
var ErrHeld = errors.New("state directory in use")

// HeldError says who holds a state directory.
type HeldError struct {
	Dir    string
	Holder Holder // zero when the holder has not written its name yet
}

func (e *HeldError) Error() string {
	who := "another process"
	if e.Holder.PID != 0 {
		who = e.Holder.String()
	}
	return fmt.Sprintf("state directory %s is in use by %s", e.Dir, who)
}

func (e *HeldError) Unwrap() error { return ErrHeld }

// Lock is a held state directory.
type Lock struct {
	dir string
	f   *os.File
}

// Acquire takes dir (created if missing) for command, or returns a *HeldError naming the owner.
// It tries for up to wait: a process killed a moment ago holds its lock until the kernel has
// finished tearing it down.
func Acquire(dir, command string, wait time.Duration) (*Lock, error) {
	deadline := time.Now().Add(wait)
	for {
		l, err := tryAcquire(dir, command)
		if !errors.Is(err, ErrHeld) || !time.Now().Before(deadline) {
			return l, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tryAcquire(dir, command string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open state lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			h, _ := ReadHolder(dir)
			return nil, &HeldError{Dir: dir, Holder: h}
		}
		return nil, fmt.Errorf("lock state directory %s: %w", dir, err)
	}
	host, _ := os.Hostname()
	b, _ := json.Marshal(Holder{PID: os.Getpid(), Host: host, Command: command, Started: time.Now().UTC()})
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt(append(b, '\n'), 0)
	}
	// A server.json left by a process that died is stale: the new owner publishes its own.
	_ = os.Remove(filepath.Join(dir, serverName))
	return &Lock{dir: dir, f: f}, nil
}

// Publish records the owner's server so other commands can reach it.
func (l *Lock) Publish(s Server) error {
	s.PID = os.Getpid()
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := filepath.Join(l.dir, serverName+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", serverName, err)
	}
	return os.Rename(tmp, filepath.Join(l.dir, serverName))
}

// Release removes server.json and drops the lock.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	_ = os.Remove(filepath.Join(l.dir, serverName))
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
	l.f = nil
}

// ReadHolder reads the owner recorded in dir's LOCK file (it may be stale when nobody holds it).
func ReadHolder(dir string) (Holder, error) {
	var h Holder
	b, err := os.ReadFile(filepath.Join(dir, lockName))
	if err != nil {
		return h, err
	}
	err = json.Unmarshal(b, &h)
	return h, err
}

// ReadServer reads the server a live owner published; an error when none is published.
func ReadServer(dir string) (Server, error) {
	var s Server
	b, err := os.ReadFile(filepath.Join(dir, serverName))
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("decode %s: %w", serverName, err)
	}
	return s, nil
}

// HasStore reports whether dir holds an embedded JetStream store.
func HasStore(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, storeName))
	return err == nil && fi.IsDir()
}

// ClusteredStore reports whether dir's embedded store belongs to a node of a JetStream cluster:
// nats-server keeps the cluster's meta group (its Raft log) in $SYS/_js_/_meta_ of the store,
// which a standalone server never creates.
func ClusteredStore(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, storeName, "jetstream", "$SYS", "_js_", "_meta_"))
	return err == nil && fi.IsDir()
}
