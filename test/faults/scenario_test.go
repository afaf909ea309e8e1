//go:build faults

package faults

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/bus/bustest"
	"github.com/sluice-dev/sluice/internal/gen"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/summarizer"
)

// partitions of every run: few enough that two mergers and poison messages share partitions
// with real batches.
const partitions = 4

// spec describes one run.
type spec struct {
	caseName string
	seed     int64
	s3       bool // output to S3 (else a folder)
	proxy    bool // stages reach S3 through a fault proxy
	mergers  int  // default 1
	// crash arms SLUICE_CRASH_AT on the first start of a process ("extractor", "merger1", …).
	crash map[string]string
	// hugeBytes adds one archive with a single member of about this size.
	hugeBytes int64
	timeout   time.Duration // until the run completes; default 5 min
	// beforeProduce runs once the stages are up, before the producer lands the archives.
	beforeProduce func(s *scenario)
	// inject runs concurrently with the pipeline once the stages are up, from when the producer
	// starts (it may wait for s.landed).
	inject func(s *scenario)
	// arm, when set, computes crash from the run's seeded random source.
	arm func(s *scenario) map[string]string
	// noRestart: processes not restarted after they die (default: every process is).
	noRestart map[string]bool
	// idle: the run mostly waits (an outage, delivery delays): it does not take one of the
	// FAULT_PARALLEL slots, so that it starts at once.
	idle bool
	// settle, when set, runs once the run completed, while the stages still run (before they
	// are stopped and the output is read back).
	settle func(s *scenario)
	// nodes > 0 runs a cluster of that many nats-server nodes in this process (bustest.Cluster)
	// instead of one server; streams and buckets get min(nodes, 3) replicas.
	nodes int
	// csvBytes overrides FAULT_MB for this run (0: FAULT_MB).
	csvBytes int64
	// mergerArgs are added to every merger's command line.
	mergerArgs []string
}

// scenario is one run: its nats-server, processes, output and figures.
type scenario struct {
	t     *testing.T
	spec  spec
	rngMu sync.Mutex
	rng   *rand.Rand
	dir   string
	fig   *runFigures

	natsAddr string
	natsURL  string
	srvMu    sync.Mutex
	srv      *server.Server
	cluster  *bustest.Cluster // spec.nodes > 0: the nodes (srv is nil)
	bus      *bus.Bus         // the test's own connection
	ledger   *ledger.Ledger

	manifest   *gen.Manifest
	archiveIDs map[string]string // archive base name -> archive id
	landing    string

	out        string // --out of the stages
	s3Bucket   string // "" for a folder
	outDir     string // the folder, when not S3
	readBucket objstore.Bucket
	proxy      *faultProxy

	procMu sync.Mutex
	procs  map[string]*proc

	landed    chan struct{} // closed once the producer has published every archive
	completed atomic.Bool   // the run completed (doneAt is set)
	doneAt    time.Time
	faultsMu  sync.Mutex

	ctx    context.Context // cancelled when the test ends: inject functions stop waiting
	cancel context.CancelFunc

	watched int // object versions whose footer the watcher read during the run

	quiet    bool     // verification problems are collected in problems instead of failing
	problems []string // (the verifier's self-test)
}

// run executes sp: generate, start, inject, wait for completion, stop, read back, record.
func run(t *testing.T, sp spec) *scenario {
	t.Helper()
	needSetup(t)
	if !sp.idle {
		select {
		case runSlots <- struct{}{}:
		case <-t.Context().Done():
			t.Fatal("cancelled waiting for a run slot")
		}
		defer func() { <-runSlots }()
	}

	if sp.mergers == 0 {
		sp.mergers = 1
	}
	if sp.timeout == 0 {
		sp.timeout = 5 * time.Minute
	}
	s := &scenario{
		t: t, spec: sp, rng: rand.New(rand.NewPCG(uint64(sp.seed), 0x5eed)), dir: runDir(t),
		procs: map[string]*proc{}, landed: make(chan struct{}),
		fig: &runFigures{Case: sp.caseName, Seed: sp.seed, Output: "dir", Faults: map[string]int64{}},
	}
	if sp.s3 {
		s.fig.Output = "s3"
	}
	if sp.arm != nil {
		s.spec.crash = sp.arm(s)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	t.Cleanup(s.cancel)
	start := time.Now()
	report.add(s.fig)
	t.Logf("run %s seed %d in %s; again: FAULT_SEEDS=%d, FAULT_SLOW_SEEDS=%d, go test -tags faults -count=1 -run '%s' ./test/faults/",
		sp.caseName, sp.seed, s.dir, sp.seed, sp.seed, t.Name())
	t.Cleanup(func() {
		s.addProxyFaults()
		s.fig.Seconds = time.Since(start).Seconds()
		s.fig.Passed = !t.Failed()
		if t.Failed() {
			s.dumpLogs()
		}
	})

	s.generate()
	s.startNATS()
	t.Cleanup(s.stopNATS)
	s.connect()
	s.openOutput()

	s.startProc("extractor", "extractor")
	for i := 1; i <= sp.mergers; i++ {
		name := fmt.Sprintf("merger%d", i)
		s.startProc(name, append([]string{"merger", "--out", s.out, "--instance", name}, sp.mergerArgs...)...)
		if i < sp.mergers { // merger1 is up (consumers created, pulling) before merger2 starts
			s.waitLog(name, `"msg":"merger started"`, time.Minute)
		}
	}
	s.startProc("summarizer", "summarizer", "--out", s.out)
	t.Cleanup(s.stopAll)
	s.waitStarted(time.Minute)
	w := s.watchObjects()
	t.Cleanup(w.stop)

	if sp.beforeProduce != nil {
		sp.beforeProduce(s)
	}
	var injectDone chan struct{}
	if sp.inject != nil {
		injectDone = make(chan struct{})
		go func() {
			defer close(injectDone)
			sp.inject(s)
		}()
		t.Cleanup(func() { s.cancel(); <-injectDone })
	}
	s.produce()
	close(s.landed)
	err := s.waitComplete(sp.timeout)
	if injectDone != nil {
		<-injectDone
	}
	if err != nil {
		t.Fatalf("run did not complete: %v", err)
	}
	if sp.settle != nil {
		sp.settle(s)
	}
	s.waitQuiet(3 * time.Minute)
	s.stopAll()
	w.stop()
	s.watched = w.checked
	s.verify()
	return s
}

// runDir is the run's directory: t.TempDir(), or kept under FAULT_KEEP when that names a folder.
func runDir(t *testing.T) string {
	root := os.Getenv("FAULT_KEEP")
	if root == "" {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp(root, strings.NewReplacer("/", "_", "=", "").Replace(t.Name())+"-")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// ---- input ----

func (s *scenario) generate() {
	s.landing = filepath.Join(s.dir, "landing")
	cfg := gen.DefaultConfig()
	cfg.Out, cfg.Seed = s.landing, s.spec.seed
	cfg.Days, cfg.Archives, cfg.Tables = 2, 2, 6
	cfg.TargetBytes = knobs.csvBytes
	if s.spec.csvBytes > 0 {
		cfg.TargetBytes = s.spec.csvBytes
	}
	cfg.HugeMemberBytes = s.spec.hugeBytes
	m, err := gen.Generate(cfg)
	if err != nil {
		s.t.Fatalf("generate: %v", err)
	}
	s.manifest = m
	s.archiveIDs = map[string]string{}
	for _, a := range m.Archives {
		f, err := os.Open(a.Path)
		if err != nil {
			s.t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			s.t.Fatal(err)
		}
		s.archiveIDs[a.Name] = hex.EncodeToString(h.Sum(nil))[:20]
	}
	s.fig.Archives, s.fig.Tables = len(m.Archives), len(m.Tables)
	for _, tt := range m.Tables {
		s.fig.RowsWant += int64(tt.Rows)
	}
}

// ---- nats ----

func (s *scenario) natsConfig() bus.Config {
	return bus.Config{StateDir: filepath.Join(s.dir, "nats"), Listen: s.natsAddr,
		Subjects: bus.Subjects{Prefix: "sluice", Partitions: partitions}, Replicas: s.replicas()}
}

// replicas of the run's streams and buckets: 1 on one server, up to 3 on a cluster.
func (s *scenario) replicas() int {
	return max(1, min(s.spec.nodes, 3))
}

// startNATS starts the nats-server in this process, on a free loopback port kept for the run.
func (s *scenario) startNATS() {
	if s.spec.nodes > 0 {
		s.cluster = bustest.NewCluster(s.t, s.spec.nodes, filepath.Join(s.dir, "nats"))
		s.natsURL = s.cluster.URL()
		return
	}
	addr, err := freeAddr()
	if err != nil {
		s.t.Fatal(err)
	}
	s.natsAddr, s.natsURL = addr, "nats://"+addr
	if err := s.restartNATS(); err != nil {
		s.t.Fatalf("start nats-server: %v", err)
	}
}

// restartNATS starts the nats-server again: same store, same port (safe from any goroutine).
func (s *scenario) restartNATS() error {
	var srv *server.Server
	var err error
	for range 50 { // the port may take a moment to be free again after a shutdown
		if srv, err = bus.StartEmbedded(s.natsConfig()); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	s.srvMu.Lock()
	s.srv = srv
	s.srvMu.Unlock()
	return nil
}

func (s *scenario) stopNATS() {
	if s.cluster != nil {
		s.cluster.Shutdown()
		return
	}
	s.srvMu.Lock()
	srv := s.srv
	s.srv = nil
	s.srvMu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// connect opens the test's own connection (it reconnects across a server restart) and creates
// the streams, as any stage would.
func (s *scenario) connect() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := s.natsConfig()
	cfg.URL, cfg.Name = s.natsURL, "faults-test"
	if s.cluster != nil {
		cfg.StateDir, cfg.Listen = "", ""
	}
	b, err := bus.Connect(ctx, cfg, nil)
	if err != nil {
		s.t.Fatalf("connect: %v", err)
	}
	s.t.Cleanup(func() { b.NC.Close() }) // not Drain: the server may be gone already
	if err := b.Ensure(ctx); err != nil {
		s.t.Fatalf("ensure streams: %v", err)
	}
	kv, err := b.Ledger(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	s.bus, s.ledger = b, ledger.New(kv, nil)
}

// ---- output ----

func (s *scenario) openOutput() {
	ctx := context.Background()
	var err error
	if !s.spec.s3 {
		s.outDir = filepath.Join(s.dir, "out")
		s.out = s.outDir
		s.readBucket, err = objstore.Open(ctx, s.outDir, objstore.Options{})
	} else {
		s.s3Bucket = newBucket(s.t)
		s.out = "s3://" + s.s3Bucket + "/lake"
		s.readBucket, err = objstore.Open(ctx, s.out, objstore.Options{Endpoint: s3Endpoint, PathStyle: true, RetryMaxElapsed: 30 * time.Second})
		if s.spec.proxy {
			s.proxy = startFaultProxy(s.t, s3Endpoint, s.seedFor("proxy"))
		}
	}
	if err != nil {
		s.t.Fatalf("open output: %v", err)
	}
}

// stageS3Endpoint is the endpoint the stages use: the fault proxy or versitygw.
func (s *scenario) stageS3Endpoint() string {
	if s.proxy != nil {
		return s.proxy.URL()
	}
	return s3Endpoint
}

// seedFor derives a seed for a component of the run.
func (s *scenario) seedFor(what string) int64 {
	h := sha256.Sum256([]byte(fmt.Sprintf("%d/%s/%s", s.spec.seed, s.spec.caseName, what)))
	var v int64
	for _, b := range h[:8] {
		v = v<<8 | int64(b)
	}
	return v
}

// ---- processes ----

// proc is one stage process, restarted by its supervisor loop after an unplanned exit.
type proc struct {
	s     *scenario
	name  string
	args  []string
	crash string

	mu       sync.Mutex
	fired    bool // the crash point fired: later incarnations run unarmed
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the current incarnation exited
	stopping bool          // stopAll: do not restart
	killed   bool          // the harness sent SIGKILL to the current incarnation
	hold     bool          // do not restart after the harness kill (until resume)
	resume   chan struct{}
	starts   int
	loopDone chan struct{}
}

func (s *scenario) commonArgs(name string) []string {
	args := []string{"--nats", s.natsURL, "--partitions", fmt.Sprint(partitions), "--log-format", "json",
		"--state", filepath.Join(s.dir, "state-"+name), "--replicas", fmt.Sprint(s.replicas())}
	if s.spec.s3 {
		args = append(args, "--s3-endpoint", s.stageS3Endpoint(), "--s3-path-style")
	}
	return args
}

func (s *scenario) startProc(name string, args ...string) *proc {
	p := &proc{s: s, name: name, args: append(args, s.commonArgs(name)...), crash: s.spec.crash[name],
		loopDone: make(chan struct{})}
	s.procMu.Lock()
	s.procs[name] = p
	s.procMu.Unlock()
	ready := make(chan error, 1)
	go p.loop(ready)
	if err := <-ready; err != nil {
		s.t.Fatalf("start %s: %v", name, err)
	}
	return p
}

func (s *scenario) proc(name string) *proc {
	s.procMu.Lock()
	defer s.procMu.Unlock()
	return s.procs[name]
}

func (p *proc) logPath() string { return filepath.Join(p.s.dir, p.name+".log") }

// loop runs the process, restarting it after every exit that was not asked for.
func (p *proc) loop(ready chan<- error) {
	defer close(p.loopDone)
	for {
		logf, err := os.OpenFile(p.logPath(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			if ready != nil {
				ready <- err
			}
			return
		}
		cmd := exec.Command(sluiceBin, p.args...)
		cmd.Env = append([]string(nil), childEnv...)
		cmd.Stdout, cmd.Stderr = logf, logf
		exited := make(chan struct{})
		// Start under p.mu, after checking stopping: stop either prevents this incarnation or
		// sees it (a restart racing with stopAll must not outlive the test).
		p.mu.Lock()
		if p.stopping {
			p.mu.Unlock()
			logf.Close()
			return
		}
		if p.crash != "" && !p.fired {
			// Armed until it fires; after a kill by the harness the count starts again at 1.
			spec := p.crash
			if p.starts > 0 {
				spec, _, _ = strings.Cut(p.crash, ":")
			}
			cmd.Env = append(cmd.Env, "SLUICE_CRASH_AT="+spec)
		}
		fmt.Fprintf(logf, "=== faults: start %d of %s (%s)\n", p.starts+1, p.name, time.Now().Format(time.RFC3339Nano))
		err = cmd.Start()
		if err == nil {
			p.cmd, p.exited, p.killed = cmd, exited, false
			p.starts++
		}
		p.mu.Unlock()
		if ready != nil {
			ready <- err
			ready = nil
		}
		if err != nil {
			logf.Close()
			p.s.t.Errorf("restart %s: %v", p.name, err)
			return
		}

		werr := cmd.Wait()
		logf.Close()
		close(exited)

		p.mu.Lock()
		stopping, killed, hold := p.stopping, p.killed, p.hold
		p.mu.Unlock()
		if stopping {
			return
		}
		var ee *exec.ExitError
		switch {
		case killed:
			// counted by whoever killed it
		case errors.As(werr, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL:
			p.mu.Lock()
			p.fired = true
			p.mu.Unlock()
			p.s.addFault("crashpoint "+p.crash, 1)
			p.s.t.Logf("%s: crash point %s fired", p.name, p.crash)
		default:
			// A stage that exits on its own: restart it like a supervisor would, and fail the test
			// (the harness waits for the stages to be connected before it injects anything).
			p.s.addFault("unplanned exit "+p.name, 1)
			p.s.t.Errorf("%s exited unexpectedly: %v (restarting); its log ends:\n%s", p.name, werr, tail(p.logPath(), 6))
		}
		if hold {
			p.mu.Lock()
			r := p.resume
			p.mu.Unlock()
			if r == nil {
				return
			}
			<-r
		}
		if p.s.spec.noRestart[p.name] {
			return
		}
		time.Sleep(time.Duration(200+p.s.intn(800)) * time.Millisecond)
	}
}

// kill9 sends SIGKILL to the current incarnation and waits for it to die; the loop restarts it
// unless hold (then resume, when not nil, restarts it once closed). It reports whether a
// process was killed.
func (p *proc) kill9(hold bool, resume chan struct{}) bool {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.killed, p.hold, p.resume = true, hold, resume
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return false
	}
	select {
	case <-exited:
		return false // between incarnations (a crash point fired): nothing to kill
	default:
	}
	_ = cmd.Process.Kill()
	<-exited
	p.s.addFault("kill -9 "+p.name, 1)
	return true
}

// waitStarted waits until every process has logged "started" (connected, streams ensured).
func (s *scenario) waitStarted(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	s.procMu.Lock()
	var names []string
	for n := range s.procs {
		names = append(names, n)
	}
	s.procMu.Unlock()
	for _, n := range names {
		s.waitLog(n, `"msg":"started"`, time.Until(deadline))
	}
}

// waitLog waits until the log of process name has a line containing text.
func (s *scenario) waitLog(name, text string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for s.logCount(name, text) == 0 {
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: no %s in its log within %s", name, text, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// incarnations is how many times the process was started.
func (p *proc) incarnations() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// stop sends SIGTERM and waits (SIGKILL after 30s). It reports whether the process stopped in
// time with exit status 0.
func (p *proc) stop() error {
	p.mu.Lock()
	p.stopping = true
	cmd, exited := p.cmd, p.exited
	r := p.resume
	p.mu.Unlock()
	if r != nil {
		select {
		case <-r:
		default:
			close(r) // a held process: let its loop return
		}
	}
	if cmd == nil || exited == nil {
		return nil
	}
	// An incarnation that has not logged "started" may not have installed its signal handler yet
	// (a restart right before the end of the run): SIGTERM would kill it by default action, an
	// exit by signal instead of a clean stop. Wait for it to start, or to exit.
	tick := time.NewTicker(20 * time.Millisecond) // how often its log is read
	defer tick.Stop()
	startBy := time.After(30 * time.Second)
waitStart:
	for p.s.logCount(p.name, `"msg":"started"`) < p.incarnations() {
		select {
		case <-exited:
			break waitStart
		case <-startBy:
			break waitStart
		case <-tick.C:
		}
	}
	select {
	case <-exited:
		<-p.loopDone
		return nil // already down (held after a kill)
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%s did not stop within 30s of SIGTERM", p.name)
	}
	<-p.loopDone
	if st := cmd.ProcessState; st != nil && !st.Success() {
		return fmt.Errorf("%s exited with %v after SIGTERM", p.name, st)
	}
	return nil
}

func (s *scenario) stopAll() {
	s.procMu.Lock()
	ps := make([]*proc, 0, len(s.procs))
	for _, p := range s.procs {
		ps = append(ps, p)
	}
	s.procMu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.stop(); err != nil {
				s.t.Errorf("stop: %v", err)
			}
		}()
	}
	wg.Wait()
}

func (s *scenario) addFault(kind string, n int64) {
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	s.fig.Faults[kind] += n
}

func (s *scenario) faults(kind string) int64 {
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	return s.fig.Faults[kind]
}

// produce publishes every archive with `sluice producer --once`, retrying while the bus is
// unavailable (a nats-server restart).
func (s *scenario) produce() {
	args := append([]string{"producer", "--landing", s.landing, "--once"}, s.commonArgs("producer")...)
	var out []byte
	var err error
	for attempt := 1; attempt <= 20; attempt++ {
		cmd := exec.Command(sluiceBin, args...)
		cmd.Env = childEnv
		out, err = cmd.CombinedOutput()
		if err == nil {
			_ = os.WriteFile(filepath.Join(s.dir, "producer.log"), out, 0o644)
			return
		}
		time.Sleep(time.Second)
	}
	s.t.Fatalf("producer --once: %v\n%s", err, out)
}

// ---- completion ----

// waitComplete waits until every archive is committed in the ledger and every process date's
// summary says OK with every archive committed and rows in == rows out == the generated rows.
func (s *scenario) waitComplete(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	dates := s.dateTruth()
	var last string
	for {
		last = s.incomplete(dates)
		if last == "" {
			s.doneAt = time.Now()
			s.completed.Store(true)
			return nil
		}
		if strings.HasPrefix(last, "FAILED") {
			return errors.New(last)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not complete after %s: %s", timeout, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// incomplete says what is still missing ("" when complete; "FAILED …" when it never will be).
func (s *scenario) incomplete(dates map[string]*struct {
	archives int
	rows     int64
}) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, a := range s.manifest.Archives {
		id := s.archiveIDs[a.Name]
		rec, _, err := s.ledger.Get(ctx, id)
		if err != nil {
			return fmt.Sprintf("archive %s: %v", a.Name, err)
		}
		switch rec.State {
		case ledger.Committed:
		case ledger.Failed:
			return fmt.Sprintf("FAILED archive %s (%s): %s", a.Name, id, rec.Reason)
		default:
			return fmt.Sprintf("archive %s is %s", a.Name, rec.State)
		}
	}
	keys := make([]string, 0, len(dates))
	for d := range dates {
		keys = append(keys, d)
	}
	slices.Sort(keys)
	for _, d := range keys {
		want := dates[d]
		rc, err := s.readBucket.Get(ctx, summarizer.SummaryKey(d))
		if err != nil {
			return fmt.Sprintf("summary %s: %v", d, err)
		}
		var doc summarizer.SummaryJSON
		err = json.NewDecoder(rc).Decode(&doc)
		rc.Close()
		if err != nil {
			return fmt.Sprintf("summary %s: %v", d, err)
		}
		tt := doc.Totals
		if doc.Check != summarizer.CheckOK || tt.Archives != want.archives || tt.Committed != want.archives ||
			tt.Pending != 0 || tt.Failed != 0 || tt.RowsIn != want.rows || tt.RowsOut != want.rows || tt.Quarantined != 0 {
			msg := fmt.Sprintf("summary %s: check %s, archives %d/%d committed (want %d), pending %d, failed %d, rows in %d out %d (want %d), quarantined %d",
				d, doc.Check, tt.Committed, tt.Archives, want.archives, tt.Pending, tt.Failed, tt.RowsIn, tt.RowsOut, want.rows, tt.Quarantined)
			if doc.Check == summarizer.CheckFail {
				return "FAILED " + msg
			}
			return msg
		}
	}
	return ""
}

// waitQuiet waits until the extractor and merger consumers hold nothing: no message pending
// and none delivered but un-acked. After a kill, messages a dead process held come back only
// when their AckWait (60s) runs out, possibly after the run completed: they must be settled
// (acked as duplicates, or committed again to the same keys) too.
func (s *scenario) waitQuiet(timeout time.Duration) {
	start := time.Now()
	var last string
	for {
		last = s.unsettled()
		if last == "" {
			if d := time.Since(start); d > time.Second {
				s.t.Logf("consumers settled %s after the run completed", d.Round(100*time.Millisecond))
			}
			return
		}
		if time.Since(start) > timeout {
			s.t.Errorf("consumers not settled %s after the run completed: %s", timeout, last)
			return
		}
		s.sleep(500 * time.Millisecond)
	}
}

func (s *scenario) unsettled() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type cons struct{ stream, name string }
	cs := []cons{{s.bus.Subjects.EventsStream(), "extractor"}}
	for p := 0; p < partitions; p++ {
		cs = append(cs, cons{s.bus.Subjects.RowsStream(), fmt.Sprintf("merger-p%d", p)})
	}
	for _, c := range cs {
		cc, err := s.bus.JS.Consumer(ctx, c.stream, c.name)
		if err != nil {
			return fmt.Sprintf("consumer %s: %v", c.name, err)
		}
		info, err := cc.Info(ctx)
		if err != nil {
			return fmt.Sprintf("consumer %s: %v", c.name, err)
		}
		if info.NumPending > 0 || info.NumAckPending > 0 {
			return fmt.Sprintf("consumer %s: %d pending, %d delivered and not acked", c.name, info.NumPending, info.NumAckPending)
		}
	}
	return ""
}

// ---- diagnostics ----

// dumpLogs prints the tail of every process log (test failures only).
func (s *scenario) dumpLogs() {
	names, _ := filepath.Glob(filepath.Join(s.dir, "*.log"))
	for _, n := range names {
		s.t.Logf("---- %s (last 40 lines) ----\n%s", filepath.Base(n), tail(n, 40))
	}
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// logCount counts the lines of a process log containing every one of words.
func (s *scenario) logCount(name string, words ...string) int {
	f, err := os.Open(filepath.Join(s.dir, name+".log"))
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		ok := true
		for _, w := range words {
			if !strings.Contains(sc.Text(), w) {
				ok = false
				break
			}
		}
		if ok {
			n++
		}
	}
	return n
}

// intn is a seeded random number in [0, n) (safe from any goroutine).
func (s *scenario) intn(n int) int {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.IntN(n)
}

// sleep waits d, or less when the test ends.
func (s *scenario) sleep(d time.Duration) {
	select {
	case <-time.After(d):
	case <-s.ctx.Done():
	}
}

// waitLanded waits until the producer has published every archive (or the test ends).
func (s *scenario) waitLanded() {
	select {
	case <-s.landed:
	case <-s.ctx.Done():
	}
}

// between is a seeded random duration in [lo, hi].
func (s *scenario) between(lo, hi time.Duration) time.Duration {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)+1))
}
