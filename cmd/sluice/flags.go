package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/ledger"
	"github.com/sluice-dev/sluice/internal/opsmetrics"
	"github.com/sluice-dev/sluice/internal/pipeline"
	"github.com/sluice-dev/sluice/internal/statedir"
	"github.com/sluice-dev/sluice/merger"
)

// common holds the flags every stage shares.
type common struct {
	fs *flag.FlagSet

	nats, natsCreds, natsNKey, natsUser, natsPassword string
	natsTLSCert, natsTLSKey, natsTLSCA, natsListen    string
	state, prefix, configFile, metricsAddr            string
	logLevel, logFormat                               string
	partitions                                        int
	rowsMaxAge, dupWindow                             time.Duration
	s3Endpoint                                        string
	s3PathStyle                                       bool
	rowsCompression                                   string

	ops    *ops      // set by setup: JetStream metrics, build_info, readiness checks
	logOut io.Writer // where logs go; nil: os.Stderr (run's progress line wraps it)
	// mergersConfig: without --config, commit under the partner configuration the mergers
	// recorded (merger.RecordedPartners): replay and dlq retry, which commit batches as a merger.
	mergersConfig bool
	// streams and buckets (issue #14): replicas, limits, and whether to apply them to existing ones
	replicas                                       int
	rowsMaxBytes                                   int64
	eventsMaxAge, dlqMaxAge                        time.Duration
	updateStreams                                  bool
	natsClusterListen, natsRoutes, natsClusterName string
}

func newCommon(name string) *common {
	c := &common{fs: flag.NewFlagSet("sluice "+name, flag.ContinueOnError)}
	f := c.fs
	f.StringVar(&c.nats, "nats", "", "NATS server URL; empty starts an embedded nats-server with its store under --state")
	f.StringVar(&c.natsCreds, "nats-creds", "", "NATS credentials file")
	f.StringVar(&c.natsNKey, "nats-nkey", "", "NATS nkey seed file")
	f.StringVar(&c.natsUser, "nats-user", "", "NATS user")
	f.StringVar(&c.natsPassword, "nats-password", "", "NATS password (prefer SLUICE_NATS_PASSWORD)")
	f.StringVar(&c.natsTLSCert, "nats-tls-cert", "", "client certificate for NATS TLS")
	f.StringVar(&c.natsTLSKey, "nats-tls-key", "", "client key for NATS TLS")
	f.StringVar(&c.natsTLSCA, "nats-tls-ca", "", "CA bundle for NATS TLS")
	f.StringVar(&c.natsListen, "nats-listen", "", "embedded server: also listen on host:port so other sluice processes can join")
	f.StringVar(&c.state, "state", ".state", "state directory (embedded JetStream store, scratch files)")
	f.StringVar(&c.prefix, "prefix", "sluice", "subject prefix")
	f.IntVar(&c.partitions, "partitions", 8, "row partitions (fixed for the life of the streams)")
	f.DurationVar(&c.rowsMaxAge, "retention", 72*time.Hour, "how long the rows stream keeps data for replay")
	f.DurationVar(&c.dupWindow, "dedup-window", time.Hour, "Nats-Msg-Id de-duplication window")
	f.StringVar(&c.rowsCompression, "rows-compression", "none", "server-side compression of the rows stream: none or s2 (chunks are already compressed by the extractor unless --chunk-codec none)")
	f.IntVar(&c.replicas, "replicas", 1, "replicas of every stream and KV bucket (1 with a standalone embedded server; 3 on a 3-node cluster)")
	f.Var(sizeValue{&c.rowsMaxBytes}, "rows-max-bytes", "rows stream size limit (oldest dropped beyond it; 0 = unlimited), e.g. 500GiB")
	f.DurationVar(&c.eventsMaxAge, "events-max-age", 30*24*time.Hour, "how long the events stream keeps events")
	f.DurationVar(&c.dlqMaxAge, "dlq-max-age", 30*24*time.Hour, "how long the dead-letter stream keeps dead letters")
	f.BoolVar(&c.updateStreams, "update-streams", false, "apply --replicas and the limits to streams and buckets that exist with other settings (default: keep theirs, log the difference)")
	f.StringVar(&c.natsClusterListen, "nats-cluster-listen", "", "embedded server: be a node of a NATS cluster, listening for routes on host:port (with --nats-routes)")
	f.StringVar(&c.natsRoutes, "nats-routes", "", "embedded cluster node: comma-separated route URLs of the nodes (nats-route://host:port,...)")
	f.StringVar(&c.natsClusterName, "nats-cluster-name", "sluice", "embedded cluster node: the cluster's name")
	f.StringVar(&c.configFile, "config", "", "partner configuration (YAML); defaults work without one")
	if cmd, _, _ := strings.Cut(name, " "); !oneShot[cmd] {
		f.StringVar(&c.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics, /healthz (alive) and /readyz (connected, streams present, stage caught up) on this address")
	}
	f.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn, error")
	f.StringVar(&c.logFormat, "log-format", "text", "text or json")
	f.StringVar(&c.s3Endpoint, "s3-endpoint", "", "S3 endpoint URL (MinIO, versitygw); default from the AWS chain")
	f.BoolVar(&c.s3PathStyle, "s3-path-style", false, "use path-style S3 addressing")
	return c
}

// parse parses args, then fills every flag not given on the command line from SLUICE_<FLAG>.
func (c *common) parse(args []string) error {
	if err := c.fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return &exitError{code: exitOK}
		}
		return &exitError{code: exitUsage, err: err}
	}
	if c.fs.NArg() > 0 {
		// The flag package stops at the first word that is not a flag: `--out O oops --state X`
		// would silently drop --state X (and run on ./.state).
		return &exitError{code: exitUsage, err: fmt.Errorf("unexpected argument %q: %s takes no arguments, only flags (everything after it was not read)", c.fs.Arg(0), c.fs.Name())}
	}
	if err := applyEnv(c.fs); err != nil {
		return err
	}
	// Zero values the bus would read as its defaults; the rest of its ranges are bus.Config.Validate's
	// (setup, exit 64 as well).
	switch {
	case c.partitions == 0:
		return &exitError{code: exitUsage, err: errors.New("--partitions 0: want 1 to 1024")}
	case c.rowsMaxAge <= 0, c.eventsMaxAge <= 0, c.dlqMaxAge <= 0, c.dupWindow <= 0:
		return &exitError{code: exitUsage, err: fmt.Errorf("--retention %s, --events-max-age %s, --dlq-max-age %s, --dedup-window %s: each must be positive",
			c.rowsMaxAge, c.eventsMaxAge, c.dlqMaxAge, c.dupWindow)}
	case c.rowsMaxBytes < 0:
		return &exitError{code: exitUsage, err: fmt.Errorf("--rows-max-bytes %d: want 0 (unlimited) or a size", c.rowsMaxBytes)}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		return &exitError{code: exitUsage, err: fmt.Errorf("--log-level %q: want debug, info, warn or error", c.logLevel)}
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		return &exitError{code: exitUsage, err: fmt.Errorf("--log-format %q: want text or json", c.logFormat)}
	}
	return nil
}

func applyEnv(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := "SLUICE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = &exitError{code: exitUsage, err: fmt.Errorf("%s: %w", env, e)}
			}
		}
	})
	return err
}

func (c *common) logger() *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.logLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	var out io.Writer = os.Stderr
	if c.logOut != nil {
		out = c.logOut
	}
	var h slog.Handler = slog.NewTextHandler(out, opts)
	if c.logFormat == "json" {
		h = slog.NewJSONHandler(out, opts)
	}
	return slog.New(h)
}

func (c *common) busConfig(name string) bus.Config {
	return bus.Config{
		URL: c.nats, CredsFile: c.natsCreds, NKeyFile: c.natsNKey, User: c.natsUser, Password: c.natsPassword,
		TLSCert: c.natsTLSCert, TLSKey: c.natsTLSKey, TLSCA: c.natsTLSCA,
		StateDir: c.state, Listen: c.natsListen,
		Subjects:   bus.Subjects{Prefix: c.prefix, Partitions: c.partitions},
		RowsMaxAge: c.rowsMaxAge, DupWindow: c.dupWindow, Name: "sluice-" + name, RowsCompression: c.rowsCompression,
		Replicas: c.replicas, RowsMaxBytes: c.rowsMaxBytes, EventsMaxAge: c.eventsMaxAge, DLQMaxAge: c.dlqMaxAge,
		UpdateStreams: c.updateStreams, ClusterListen: c.natsClusterListen, Routes: splitList(c.natsRoutes),
		ClusterName: c.natsClusterName,
	}
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// joinsLiveStore are the commands that, without --nats, reach the server of a process that owns
// --state (through its server.json) instead of being refused; the others own the state dir.
var joinsLiveStore = map[string]bool{"status": true, "dlq": true, "reextract": true, "replay": true, "ui": true}

// needsStore are the commands that only read: with no --nats and no store in --state there is
// nothing to show, and starting an empty embedded server would print an empty table.
var needsStore = map[string]bool{"status": true, "dlq": true, "ui": true, "replay": true, "reextract": true}

// oneShot are the operator's tools that do one thing and exit: they serve no metrics, so a
// SLUICE_METRICS_ADDR meant for the stage of the same container (compose.yaml) does not make
// `docker compose exec merger sluice status` fail to bind the stage's port.
var oneShot = map[string]bool{"status": true, "dlq": true, "reextract": true, "replay": true, "dq": true}

// outKey is where the output root this state's archives were committed to is recorded, in the
// ledger's bucket (which says what was ingested: it says where to).
const outKey = "config.out"

// outRoot is out written one way for every spelling of the same location: an absolute path for a
// folder (file:// stripped), s3://bucket/prefix without empty segments at its ends.
func outRoot(out string) (string, error) {
	if rest, ok := strings.CutPrefix(out, "s3://"); ok {
		bucket, prefix, _ := strings.Cut(rest, "/")
		if prefix = strings.Trim(prefix, "/"); prefix != "" {
			return "s3://" + bucket + "/" + prefix, nil
		}
		return "s3://" + bucket, nil
	}
	return filepath.Abs(strings.TrimPrefix(out, "file://"))
}

// bindOut ties the state to its output root: a stage that commits records out; a later command
// with another --out on a state it owns is refused (exit 64) while the state's ledger shows
// archives committed to the recorded one — a once run pointed at the wrong folder said OK for
// archives committed before, and wrote summaries claiming rows that folder does not hold. A state
// with nothing committed takes the new root (a first run that failed). Against a shared --nats or
// on a cluster node, where hosts may mount the output under other paths, a mismatch is a warning.
// record is false for the re-run tools and the summarizer, which check without recording.
func (c *common) bindOut(ctx context.Context, e *pipeline.Env, out string, record bool) error {
	if out == "" {
		return nil
	}
	root, err := outRoot(out)
	if err != nil {
		return err
	}
	// Read on a cluster node starting beside the others, whose bucket may be electing its leader:
	// transient errors are waited out as the stages wait them out.
	var entry jetstream.KeyValueEntry
	var kv jetstream.KeyValue
	err = bus.Retry(ctx, e.Log, "read the output root", func(ctx context.Context) (err error) {
		if kv, err = e.Bus.Ledger(ctx); err != nil {
			return err
		}
		entry, err = kv.Get(ctx, outKey)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		return err
	})
	if err == nil && entry == nil {
		err = jetstream.ErrKeyNotFound
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		if record {
			err := bus.Retry(ctx, e.Log, "record the output root", func(ctx context.Context) error {
				_, err := kv.Create(ctx, outKey, []byte(root))
				if errors.Is(err, jetstream.ErrKeyExists) {
					return nil // another node or stage recorded it: the same root, or its check will say
				}
				return err
			})
			if err != nil {
				return fmt.Errorf("record the output root: %w", err)
			}
		}
		return nil
	case err != nil:
		return fmt.Errorf("read the output root: %w", err)
	case string(entry.Value()) == root:
		return nil
	case c.nats != "" || c.natsClusterListen != "":
		e.Log.Warn("--out differs from the output root the stages recorded", "out", root, "recorded", string(entry.Value()))
		return nil
	}
	recs, err := e.Ledger.List(ctx)
	if err != nil {
		return err
	}
	committed := 0
	for _, r := range recs {
		if r.State == ledger.Committed || len(r.TablesCommitted) > 0 {
			committed++
		}
	}
	if committed == 0 { // nothing is in the recorded root: this is the state's output now
		if record {
			if _, err := kv.Update(ctx, outKey, []byte(root), entry.Revision()); err != nil {
				return fmt.Errorf("record the output root: %w", err)
			}
		}
		return nil
	}
	return &exitError{code: exitUsage, err: fmt.Errorf("--out %s: %d archives of --state %s were committed to %s; use that --out, or another --state for a new output",
		root, committed, c.state, string(entry.Value()))}
}

// readOnly are the commands that never create or update streams (the dashboard and the operator's
// tools): they use what the stages made, with the settings the stages gave it. `status --nats`
// against a cluster used to ensure the streams with its own default of one replica — warning on
// every call, and creating them at one replica on a server the stages had not set up yet.
var readOnly = map[string]bool{"ui": true, "status": true, "dlq": true, "replay": true, "reextract": true}

func (c *common) setup(ctx context.Context, name string) (*pipeline.Env, func(), error) {
	log := c.logger()
	partners, err := config.Load(c.configFile)
	if err != nil {
		return nil, nil, &exitError{code: exitConfig, err: err}
	}
	cfg := c.busConfig(name)
	if err := cfg.Validate(); err != nil { // --replicas 3 with a standalone embedded server, …
		return nil, nil, &exitError{code: exitUsage, err: err}
	}
	var lock *statedir.Lock
	joined := false
	if c.nats == "" {
		lock, joined, err = c.claimState(ctx, name, &cfg)
		if err != nil {
			return nil, nil, err
		}
	}
	release := func() {
		if lock != nil {
			lock.Release()
		}
	}
	b, err := bus.Connect(ctx, cfg, log)
	if err != nil {
		release()
		return nil, nil, err
	}
	closeBus := func() { b.Close(); release() }
	switch {
	case readOnly[name]:
		if err := b.AwaitLedger(ctx); err != nil {
			closeBus()
			return nil, nil, fmt.Errorf("sluice's streams: %w", err)
		}
	case !joined: // a live owner already ensured its streams with its own settings
		if err := b.Ensure(ctx); err != nil {
			closeBus()
			return nil, nil, err
		}
	}
	if lock != nil && !joined && !joinsLiveStore[name] && c.soleServer() {
		// This process owns the store and its server just started: every delivery still
		// outstanding belongs to a process that died. Hand them back now rather than after
		// AckWait (bus.RecoverDeliveries). Not on a cluster node, nor on a server other stages
		// join (--nats-listen): their processes hold deliveries too, and may still be alive.
		rec, err := b.RecoverDeliveries(ctx)
		if err != nil {
			closeBus()
			return nil, nil, fmt.Errorf("recover deliveries of a previous run: %w", err)
		}
		for _, r := range rec {
			log.Info("redelivering what a previous process held", "stream", r.Stream, "consumer", r.Consumer,
				"ack_pending", r.AckPending, "from_seq", r.From)
		}
	}
	if c.configFile == "" && c.mergersConfig {
		rec, err := merger.RecordedPartners(ctx, b)
		if err != nil {
			closeBus()
			return nil, nil, &exitError{code: exitConfig, err: err}
		}
		if rec != nil {
			partners = rec
			log.Info("using the partner configuration the mergers recorded (pass --config to use another)")
		}
	}
	if lock != nil && b.Server != nil {
		if err := lock.Publish(statedir.Server{URL: b.Server.ClientURL(), Token: cfg.Token}); err != nil {
			log.Warn("publish server address in the state dir", "err", err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if c.ops, err = newOps(b, reg, reg); err != nil {
		closeBus()
		return nil, nil, err
	}
	e, err := pipeline.NewEnv(ctx, b, partners, log, reg)
	if err != nil {
		closeBus()
		return nil, nil, err
	}
	stopMetrics := func() {}
	if c.metricsAddr != "" {
		stopMetrics, err = serveMetrics(c.metricsAddr, reg, &c.ops.ready, log)
		if err != nil {
			e.Close()
			closeBus()
			return nil, nil, err
		}
	}
	return e, func() { stopMetrics(); e.Close(); closeBus() }, nil
}

// soleServer reports whether this process's server is one no other process's stages use: an
// embedded server that is neither a cluster node nor listening for other stages (--nats-listen).
// Only then is every outstanding delivery at start a dead process's (handed back at once), and
// every unfinished upload in --out a dead writer's (ReclaimStale).
func (c *common) soleServer() bool {
	return c.nats == "" && c.natsClusterListen == "" && c.natsListen == ""
}

// claimState decides how a command without --nats uses --state. It takes the state dir's lock
// (statedir) and prepares cfg for an embedded server on a loopback port with a random token
// (published in server.json for the commands that join it). When another process holds the lock,
// a command of joinsLiveStore connects to that process's server instead (joined is true); any
// other command is refused with the holder's name.
func (c *common) claimState(ctx context.Context, name string, cfg *bus.Config) (lock *statedir.Lock, joined bool, err error) {
	if needsStore[name] && !statedir.HasStore(c.state) {
		if _, err := statedir.ReadServer(c.state); err != nil {
			return nil, false, &exitError{code: exitFailure, err: fmt.Errorf(
				"no sluice state in %s: point --state at the state directory of a `sluice run` (or set SLUICE_STATE), or --nats at the NATS server the stages use", c.state)}
		}
	}
	wait := 2 * time.Second // the holder may be a process killed a moment ago
	if joinsLiveStore[name] {
		wait = 0
	}
	lock, err = statedir.Acquire(c.state, name, wait)
	var held *statedir.HeldError
	if errors.As(err, &held) && joinsLiveStore[name] {
		srv, werr := waitServer(ctx, c.state)
		if werr == nil && reachable(srv.URL) {
			cfg.URL, cfg.Token = srv.URL, srv.Token
			return nil, true, nil
		}
		// Not serving: it is starting, or dying. Take the store if it lets go.
		lock, err = statedir.Acquire(c.state, name, 3*time.Second)
		if errors.As(err, &held) {
			if werr == nil {
				werr = errors.New("its server does not answer")
			}
			return nil, false, &exitError{code: exitFailure, err: fmt.Errorf("%v: %w", held, werr)}
		}
	}
	switch {
	case errors.As(err, &held):
		return nil, false, &exitError{code: exitFailure, err: fmt.Errorf(
			"%v: two processes must not share one embedded store; stop it first, use another --state, or run this stage against a shared server with --nats", held)}
	case err != nil:
		return nil, false, &exitError{code: exitFailure, err: err}
	}
	if !cfg.Clustered() && statedir.ClusteredStore(c.state) {
		// A server started alone on a cluster node's store would answer from a stale copy, and
		// what it wrote (a re-extraction, a dead-letter retry) the cluster discards when the node
		// rejoins: the command would say done for something that never happens.
		lock.Release()
		return nil, false, &exitError{code: exitFailure, err: fmt.Errorf(
			"%s is the store of a JetStream cluster node that is not running: point --nats at a live node of the cluster, or start the node again with its cluster flags (--nats-routes, docs/SCALING.md)", c.state)}
	}
	if cfg.Listen == "" {
		// Loopback only, behind a token kept in the 0600 server.json: status, dlq, replay and
		// reextract of the same --state reach this process through it.
		cfg.Listen, cfg.Token = "127.0.0.1:0", rand.Text()
	}
	return lock, false, nil
}

// helpOnly reports whether args ask for help alone (-h, -help, --help): a usage asked for exits 0,
// as every flag set's --help does; a wrong command line exits 64.
func helpOnly(args []string) bool {
	return len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help")
}

// reachable reports whether a TCP connection to a nats:// URL opens.
func reachable(u string) bool {
	host := strings.TrimPrefix(u, "nats://")
	conn, err := net.DialTimeout("tcp", host, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// waitServer waits (up to 10s) for the owner of dir to publish its server: it may still be starting.
func waitServer(ctx context.Context, dir string) (statedir.Server, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		srv, err := statedir.ReadServer(dir)
		if err == nil && srv.URL != "" {
			return srv, nil
		}
		select {
		case <-ctx.Done():
			return srv, fmt.Errorf("no server.json after 10s")
		case <-t.C:
		}
	}
}

// serveMetrics serves /metrics, /healthz, /readyz and pprof on addr. /healthz is liveness: 200
// while the process serves at all (a NATS outage is not a reason to restart it: the client
// reconnects by itself). /readyz is 200 only when every check passes (docs/OPERATIONS.md).
func serveMetrics(addr string, reg *prometheus.Registry, ready *opsmetrics.Checks, log *slog.Logger) (func(), error) {
	mux := metricsMux(reg, ready)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Error("metrics server", "err", err)
		}
	}()
	log.Info("metrics listening", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

func metricsMux(reg *prometheus.Registry, ready *opsmetrics.Checks) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("/readyz", opsmetrics.ReadyHandler(ready, 5*time.Second))
	return mux
}
