package bustest

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sluice-dev/sluice/internal/bus"
)

// Cluster is a NATS cluster of nodes in this process, on loopback, each an embedded sluice
// server (bus.StartEmbedded with cluster routes) with its store in a directory of its own. A
// node keeps its ports and store across Stop and Start, as a restarted machine would.
// (nats-server's own tests form clusters the same way: server/jetstream_helpers_test.go.)
type Cluster struct {
	t     testing.TB
	mu    sync.Mutex
	nodes []*node
}

type node struct {
	cfg bus.Config
	url string
	srv *server.Server // nil while stopped
}

// NewCluster starts n nodes (n ≥ 3 for R3) under dir and waits until they have elected a meta
// leader and every node is a current JetStream peer. They are shut down when the test ends.
// Under -short the test is skipped: a cluster takes seconds to form.
//
// A node whose port another process took between FreeAddr and its start never becomes ready
// (a stress run hung 15 minutes in such a start, retried with the same ports): a cluster that
// does not start is shut down and formed again with other ports, under a fresh directory, up to
// three times.
func NewCluster(t testing.TB, n int, dir string) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skipf("starts a %d-node cluster", n)
	}
	var err error
	for attempt := range 3 {
		stateDir := dir
		if attempt > 0 {
			stateDir = filepath.Join(dir, fmt.Sprintf("retry%d", attempt))
		}
		var c *Cluster
		if c, err = newCluster(t, n, stateDir); err != nil {
			t.Fatal(err)
		}
		if err = c.startAll(); err == nil {
			t.Cleanup(c.Shutdown)
			if err := c.WaitReady(n, 60*time.Second); err != nil {
				t.Fatal(err)
			}
			return c
		}
		c.Shutdown()
		t.Logf("cluster did not start (%v): forming it again with other ports", err)
	}
	t.Fatalf("cluster did not start in 3 attempts: %v", err)
	return nil
}

// newCluster configures n nodes on ports free now, under dir; nothing is started.
func newCluster(t testing.TB, n int, dir string) (*Cluster, error) {
	c := &Cluster{t: t}
	var routes []string
	for i := range n {
		client, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		route, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		routes = append(routes, "nats-route://"+route)
		c.nodes = append(c.nodes, &node{url: "nats://" + client, cfg: bus.Config{
			StateDir: filepath.Join(dir, fmt.Sprintf("n%d", i)), Listen: client,
			ClusterListen: route, ServerName: fmt.Sprintf("n%d", i), ClusterName: "sluice-test",
		}})
	}
	for _, nd := range c.nodes {
		nd.cfg.Routes = routes
	}
	return c, nil
}

// startAll starts every node once: a port already taken fails at once rather than after the
// server's 30 s wait for readiness.
func (c *Cluster) startAll() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, nd := range c.nodes {
		if err := portsFree(nd.cfg); err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
		srv, err := bus.StartEmbedded(nd.cfg)
		if err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
		nd.srv = srv
	}
	return nil
}

// portsFree reports an error when the client or route port of cfg cannot be bound now.
func portsFree(cfg bus.Config) error {
	for _, addr := range []string{cfg.Listen, cfg.ClusterListen} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		if err := l.Close(); err != nil {
			return err
		}
	}
	return nil
}

// NewClusterBus starts a three-node cluster under t.TempDir() and returns it with a bus
// connected to every node, its streams and buckets created with three replicas.
func NewClusterBus(t testing.TB) (*Cluster, *bus.Bus) {
	t.Helper()
	c := NewCluster(t, 3, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Config{URL: c.URL(), Replicas: 3, Subjects: bus.Subjects{Prefix: "sluice", Partitions: 4}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	return c, b
}

// FreeAddr returns a loopback host:port free at the time of the call, for a listener started
// later (a node's client and route ports, kept across its restarts).
//
// The port is taken below the kernel's ephemeral range. A port the kernel handed out for
// 127.0.0.1:0 goes back to that range when the probe closes it, and any outgoing connection
// can take it before the listener binds it: a cluster node whose client port was taken that way
// never became ready, and bustest.Cluster.Start kept retrying it for 25 minutes (a CI failure
// of the fault suite). Below the range only another caller of FreeAddr can take it, and the
// port is chosen at random among thousands.
func FreeAddr() (string, error) {
	lo, hi := 20000, ephemeralStart()-1
	for range 200 {
		port := lo + mrand.IntN(hi-lo+1)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // in use
		}
		addr := l.Addr().String()
		return addr, l.Close()
	}
	return "", fmt.Errorf("find a free port: none free among 200 tried in %d-%d", lo, hi)
}

// ephemeralStart is the first port of the kernel's ephemeral range (Linux), 32768 when unknown.
func ephemeralStart() int {
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 21000 {
				return n
			}
		}
	}
	return 32768
}

// URL is the comma-separated client URLs of every node (a client fails over between them).
func (c *Cluster) URL() string {
	urls := make([]string, len(c.nodes))
	for i, nd := range c.nodes {
		urls[i] = nd.url
	}
	return strings.Join(urls, ",")
}

// Size is the number of nodes, running or not.
func (c *Cluster) Size() int { return len(c.nodes) }

// Name is node i's server name.
func (c *Cluster) Name(i int) string { return c.nodes[i].cfg.ServerName }

// Server is node i's server, nil while it is stopped.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].srv
}

// Start starts node i again: same ports, same store. The ports may take a moment to be free
// after a stop, so it waits for them, for a minute at most: a port taken for good fails the
// start then (each attempt whose port was taken after the check waits 30 s for readiness).
func (c *Cluster) Start(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	nd := c.nodes[i]
	if nd.srv != nil {
		return nil
	}
	var err error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = portsFree(nd.cfg); err != nil {
			continue
		}
		var srv *server.Server
		if srv, err = bus.StartEmbedded(nd.cfg); err == nil {
			nd.srv = srv
			return nil
		}
	}
	return err
}

// StartNodes starts each listed node again (Start), failing the test when one cannot start.
func (c *Cluster) StartNodes(nodes ...int) {
	c.t.Helper()
	for _, i := range nodes {
		if err := c.Start(i); err != nil {
			c.t.Fatalf("start node %d: %v", i, err)
		}
	}
}

// Stop shuts node i down (its store stays) and waits until it is gone.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	srv := c.nodes[i].srv
	c.nodes[i].srv = nil
	c.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Shutdown stops every node.
func (c *Cluster) Shutdown() {
	for i := range c.nodes {
		c.Stop(i)
	}
}

// running returns the running servers with their indexes.
func (c *Cluster) running() map[int]*server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int]*server.Server{}
	for i, nd := range c.nodes {
		if nd.srv != nil && nd.srv.Running() {
			out[i] = nd.srv
		}
	}
	return out
}

// MetaLeader is the index of the node leading the JetStream meta group, -1 when none does.
func (c *Cluster) MetaLeader() int {
	for i, s := range c.running() {
		if s.JetStreamIsLeader() {
			return i
		}
	}
	return -1
}

// StreamLeader is the index of the node leading stream (global account), -1 when none does.
func (c *Cluster) StreamLeader(stream string) int {
	for i, s := range c.running() {
		if s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// ConsumerLeader is the index of the node leading consumer of stream, -1 when none does.
func (c *Cluster) ConsumerLeader(stream, consumer string) int {
	for i, s := range c.running() {
		if s.JetStreamIsConsumerLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream, consumer) {
			return i
		}
	}
	return -1
}

// WaitReady waits until a meta leader sees peers JetStream peers and every running node is
// current.
func (c *Cluster) WaitReady(peers int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if l := c.MetaLeader(); l >= 0 {
			rs := c.running()
			if ls := rs[l]; ls != nil && len(ls.JetStreamClusterPeers()) >= peers {
				current := true
				for _, s := range rs {
					if !s.JetStreamIsCurrent() {
						current = false
					}
				}
				if current {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster not ready after %s: meta leader %d, %d nodes running", timeout, c.MetaLeader(), len(c.running()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitStreamLeader waits until stream has a leader on a running node and returns its index.
func (c *Cluster) WaitStreamLeader(stream string, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		if l := c.StreamLeader(stream); l >= 0 {
			return l, nil
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("stream %s has no leader after %s", stream, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
