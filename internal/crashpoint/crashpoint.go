// Package crashpoint lets the fault tests (test/faults) kill a stage process at a named point of
// its protocol — between an upload and its event, between an event and its ack — which a timer
// would rarely hit. It does nothing unless the environment variable SLUICE_CRASH_AT is set:
//
//	SLUICE_CRASH_AT=<point>[:<n>]
//
// kills the process with SIGKILL (like kill -9: no deferred cleanup, no flush) the n-th time
// (default the first) Hit(point) runs. The points are listed in docs/RELIABILITY.md.
package crashpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Env is the variable that arms a crash point.
const Env = "SLUICE_CRASH_AT"

var (
	armed string // the point that kills; "" when disarmed (always, outside fault tests)
	nth   int64
	hits  atomic.Int64
)

func init() { armed, nth = parse(os.Getenv(Env)) }

func parse(spec string) (string, int64) {
	point, n, found := strings.Cut(strings.TrimSpace(spec), ":")
	if point == "" {
		return "", 0
	}
	k, err := strconv.ParseInt(n, 10, 64)
	if !found || err != nil || k < 1 {
		k = 1
	}
	return point, k
}

// Hit kills the process if point is the armed crash point and this is its n-th hit.
func Hit(point string) {
	if armed == "" || point != armed || hits.Add(1) != nth {
		return
	}
	fmt.Fprintf(os.Stderr, "crashpoint: %s reached (hit %d): SIGKILL\n", point, nth)
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		_ = p.Kill()
	}
	time.Sleep(5 * time.Second) // the signal arrives first
	os.Exit(137)
}
