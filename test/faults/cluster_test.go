//go:build faults

package faults

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The cluster cases (issue #14): three nats-server nodes in this process on loopback
// (bustest.Cluster: cluster routes, a meta leader and every peer current before the run), every
// stream and bucket with three replicas, the stages as processes connected to all three nodes
// (--nats with the three URLs, --replicas 3), two mergers, FAULT_CLUSTER_MB of CSV. Once the
// first batch is committed, a node is stopped; each case then completes with nothing lost,
// nothing duplicated, no partial object and every summary check OK (run), and reports the time
// from the fault to the next commit. Knobs: FAULT_CLUSTER_SEEDS (default 1), FAULT_CLUSTER_MB
// (default 24).

// TestClusterRowsLeaderRestart: the node leading SLUICE_ROWS stops mid-run and starts again a
// few seconds later (same store and ports): the stream and the consumers it led elect new
// leaders; the restarted node catches up.
func TestClusterRowsLeaderRestart(t *testing.T) {
	t.Parallel()
	clusterCase(t, "cluster-rows-leader", true, func(s *scenario) (int, string) {
		stream := s.bus.Subjects.RowsStream()
		return s.cluster.StreamLeader(stream), "leader of " + stream
	})
}

// TestClusterMetaLeaderRestart: the JetStream meta leader stops mid-run and starts again.
func TestClusterMetaLeaderRestart(t *testing.T) {
	t.Parallel()
	clusterCase(t, "cluster-meta-leader", true, func(s *scenario) (int, string) {
		return s.cluster.MetaLeader(), "meta leader"
	})
}

// TestClusterNodeLost: the node leading the most merger consumers stops for good; the run
// completes on the two others (quorum 2 of 3).
func TestClusterNodeLost(t *testing.T) {
	t.Parallel()
	clusterCase(t, "cluster-node-lost", false, func(s *scenario) (int, string) {
		led := make([]int, s.cluster.Size())
		for p := 0; p < partitions; p++ {
			if l := s.cluster.ConsumerLeader(s.bus.Subjects.RowsStream(), fmt.Sprintf("merger-p%d", p)); l >= 0 {
				led[l]++
			}
		}
		best := 0
		for i, n := range led {
			if n > led[best] {
				best = i
			}
		}
		return best, fmt.Sprintf("leader of %d of the %d merger consumers", led[best], partitions)
	})
}

// clusterCase runs one cluster case per FAULT_CLUSTER_SEEDS seed: pick (the node to stop) is
// called at the first commit; restart starts it again after 3–8 s (seeded).
func clusterCase(t *testing.T, name string, restart bool, pick func(s *scenario) (int, string)) {
	forSeeds(t, knobs.clusterSeeds, func(t *testing.T, seed int64) {
		var faultAt time.Time
		var what string
		s := run(t, spec{caseName: name, seed: seed, nodes: 3, mergers: 2, s3: seed%2 == 0,
			csvBytes: knobs.clusterBytes, timeout: 8 * time.Minute,
			inject: func(s *scenario) {
				for s.commits(time.Time{}).n == 0 { // mid-run: once the first batch is committed
					if s.ctx.Err() != nil {
						return
					}
					s.sleep(10 * time.Millisecond)
				}
				victim, role := pick(s)
				if victim < 0 {
					s.t.Errorf("no node to stop (%s)", role)
					return
				}
				what = fmt.Sprintf("node %s (%s)", s.cluster.Name(victim), role)
				faultAt = time.Now()
				s.cluster.Stop(victim)
				s.addFault("node stopped", 1)
				rows := s.bus.Subjects.RowsStream()
				if _, err := s.cluster.WaitStreamLeader(rows, time.Minute); err != nil {
					s.t.Errorf("after stopping %s: %v", what, err)
				}
				s.t.Logf("stopped %s; %s has a leader again after %s", what, rows, time.Since(faultAt).Round(time.Millisecond))
				if !restart {
					return
				}
				down := s.between(3*time.Second, 8*time.Second)
				s.sleep(time.Until(faultAt.Add(down)))
				if s.ctx.Err() != nil {
					return
				}
				if err := s.cluster.Start(victim); err != nil {
					s.t.Errorf("restart %s: %v", what, err)
					return
				}
				s.addFault("node restarted", 1)
				back := time.Now()
				if err := s.cluster.WaitReady(s.cluster.Size(), 2*time.Minute); err != nil {
					s.t.Errorf("after restarting %s: %v", what, err)
					return
				}
				s.t.Logf("restarted %s after %s down; cluster current again %s later", what, down.Round(time.Millisecond),
					time.Since(back).Round(time.Millisecond))
			}})
		if faultAt.IsZero() {
			t.Fatalf("no node was stopped: the run completed before its first commit was seen")
		}
		after := s.commits(faultAt)
		if after.n == 0 {
			t.Errorf("no batch committed after %s stopped: the fault was not mid-run", what)
		}
		all := s.commits(time.Time{})
		recovery := after.first.Sub(faultAt)
		complete := s.doneAt.Sub(faultAt)
		s.fig.Note = strings.TrimSpace(fmt.Sprintf("%s %s stopped: fault→next commit %.2fs, →run complete %.1fs; %d of %d commits after the fault; %d batches, %d commits (%d repeated)",
			s.fig.Note, what, recovery.Seconds(), complete.Seconds(), after.n, all.n, len(all.batches), all.n, all.n-len(all.batches)))
		s.fig.RecoverySeconds = recovery.Seconds()
		t.Logf("%s stopped at %s; next commit %s later, run complete %s later; %d batches committed in %d commits",
			what, faultAt.Format("15:04:05.000"), recovery.Round(time.Millisecond), complete.Round(time.Millisecond), len(all.batches), all.n)
		s.expectDeadLetters(nil)
	})
}

// commitLog is what the mergers' logs say about commits at or after a moment.
type commitLog struct {
	n       int                 // "batch committed" lines
	first   time.Time           // the earliest of them
	batches map[string]struct{} // distinct archive/attempt/table
}

// commits reads "batch committed" from every merger's log, keeping those at or after since.
func (s *scenario) commits(since time.Time) commitLog {
	out := commitLog{batches: map[string]struct{}{}}
	names, _ := filepath.Glob(filepath.Join(s.dir, "merger*.log"))
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if !strings.Contains(string(line), `"msg":"batch committed"`) {
				continue
			}
			var e struct {
				Time    time.Time `json:"time"`
				Archive string    `json:"archive"`
				Attempt uint32    `json:"attempt"`
				Table   string    `json:"table"`
			}
			if json.Unmarshal(line, &e) != nil || e.Time.Before(since) {
				continue
			}
			out.n++
			if out.first.IsZero() || e.Time.Before(out.first) {
				out.first = e.Time
			}
			out.batches[fmt.Sprintf("%s/%d/%s", e.Archive, e.Attempt, e.Table)] = struct{}{}
		}
		f.Close()
	}
	return out
}
