package bus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config says how to reach JetStream and how the streams are laid out.
type Config struct {
	URL       string // nats://host:port; empty starts an embedded server
	CredsFile string
	NKeyFile  string
	User      string
	Password  string
	// Token authenticates with a token: the client sends it, and an embedded server started by
	// Connect requires it (sluice's own loopback listener, see statedir).
	Token   string
	TLSCert string
	TLSKey  string
	TLSCA   string

	StateDir string // embedded server store (StateDir/jetstream); required when URL is empty
	Listen   string // embedded server listen address (host:port); empty = in-process only
	// ClusterListen makes the embedded server a node of a NATS cluster: it listens for routes
	// on this host:port and connects to Routes (nats-route://host:port URLs of the other nodes;
	// its own may be among them). Empty: a standalone server.
	ClusterListen string
	Routes        []string
	ClusterName   string // default "sluice"
	// ServerName names the embedded server (unique in a cluster, stable across restarts: the
	// cluster knows its JetStream peers by name). Default "sluice-embedded", or, in a cluster,
	// "sluice-<host>-<cluster port>".
	ServerName string

	Subjects Subjects

	RowsMaxAge   time.Duration // retention of the rows stream (replay window), default 72h
	RowsMaxBytes int64         // -1 unlimited (default)
	EventsMaxAge time.Duration // default 30 days
	DLQMaxAge    time.Duration // dead letters, default 30 days
	DupWindow    time.Duration // Nats-Msg-Id de-duplication window, default 1h
	Replicas     int           // replicas of every stream and bucket (a clustered server), default 1
	// UpdateStreams applies the settings above to streams and buckets that exist with others
	// (Ensure); without it their settings are kept, and the differences logged.
	UpdateStreams bool
	// RowsCompression is the on-disk compression of the rows stream: "none" (default) or "s2".
	// The extractor compresses each chunk's data itself (Chunk.codec, extractor.Config.ChunkCodec),
	// so the server stores the payloads as they come; server-side S2 on top would cost the server
	// CPU (compressing blocks, decompressing whole blocks on every read) for almost no gain. "s2"
	// stays useful with extractors sending raw chunks (--chunk-codec none).
	RowsCompression string
	MaxPayload      int32  // embedded server max payload, default 1 MiB (the NATS default)
	Name            string // connection name
}

// withDefaults fills zero values.
func (c Config) withDefaults() Config {
	if c.Subjects.Prefix == "" {
		c.Subjects.Prefix = DefaultSubjects.Prefix
	}
	if c.Subjects.Partitions == 0 {
		c.Subjects.Partitions = DefaultSubjects.Partitions
	}
	if c.RowsMaxAge == 0 {
		c.RowsMaxAge = 72 * time.Hour
	}
	if c.RowsMaxBytes == 0 {
		c.RowsMaxBytes = -1
	}
	if c.EventsMaxAge == 0 {
		c.EventsMaxAge = 30 * 24 * time.Hour
	}
	if c.DLQMaxAge == 0 {
		c.DLQMaxAge = 30 * 24 * time.Hour
	}
	if c.ClusterName == "" {
		c.ClusterName = "sluice"
	}
	if c.DupWindow == 0 {
		c.DupWindow = time.Hour
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = 1 << 20
	}
	if c.Name == "" {
		c.Name = "sluice"
	}
	if c.RowsCompression == "" {
		c.RowsCompression = "none"
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := c.Subjects.Validate(); err != nil {
		return err
	}
	if c.URL == "" && c.StateDir == "" {
		return errors.New("embedded nats-server needs a state directory")
	}
	if c.RowsCompression != "s2" && c.RowsCompression != "none" {
		return fmt.Errorf("rows compression must be s2 or none, got %q", c.RowsCompression)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls cert and key go together")
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("replicas must be 1 to 5, got %d", c.Replicas)
	}
	if c.URL == "" && c.ClusterListen == "" && c.Replicas > 1 {
		return fmt.Errorf("replicas %d: the embedded nats-server alone holds one copy; use --replicas 1, "+
			"a NATS cluster (--nats), or make the embedded server a cluster node (--nats-cluster-listen, --nats-routes)", c.Replicas)
	}
	if c.URL == "" && c.ClusterListen != "" && len(c.Routes) == 0 {
		return errors.New("an embedded cluster node needs the routes of the other nodes (--nats-routes)")
	}
	if c.URL != "" && (c.ClusterListen != "" || len(c.Routes) > 0) {
		return errors.New("cluster listen and routes are for the embedded server: not with a NATS URL")
	}
	return nil
}

// Clustered reports whether the embedded server is a node of a cluster.
func (c Config) Clustered() bool { return c.URL == "" && c.ClusterListen != "" }

// Bus is a live connection to JetStream plus, in embedded mode, the server itself.
type Bus struct {
	Cfg      Config
	Subjects Subjects
	NC       *nats.Conn
	JS       jetstream.JetStream
	Server   *server.Server // nil when connected to an external server
	log      *slog.Logger

	reconnects atomic.Uint64
}

// Reconnects counts the connection's reconnections: what was in flight to this client when it
// lost its server (deliveries of pull requests) is gone, and returns only after AckWait unless a
// stage hands it back sooner (the merger resets its partition consumers).
func (b *Bus) Reconnects() uint64 { return b.reconnects.Load() }

// Connect connects to cfg.URL, or starts nats-server in-process with JetStream and a file
// store under cfg.StateDir when no URL is given. It does not create streams: call Ensure.
func Connect(ctx context.Context, cfg Config, log *slog.Logger) (*Bus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Bus{Cfg: cfg, Subjects: cfg.Subjects, log: log}
	// Errors of the client may quote the URL as given (a parse error does): scrub them.
	secrets := append(urlSecrets(cfg.URL), cfg.Password, cfg.Token)
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(64 << 20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", scrub(err, secrets))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.reconnects.Add(1)
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
	}
	url := cfg.URL
	if url == "" {
		srv, err := StartEmbedded(cfg)
		if err != nil {
			return nil, err
		}
		b.Server = srv
		opts = append(opts, nats.InProcessServer(srv))
		if cfg.Token != "" {
			opts = append(opts, nats.Token(cfg.Token))
		}
		url = srv.ClientURL()
	} else {
		auth, err := authOptions(cfg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, auth...)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		b.shutdownServer()
		return nil, fmt.Errorf("connect to nats %s: %w", redactURL(url), scrub(err, secrets))
	}
	b.NC = nc
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		b.shutdownServer()
		return nil, fmt.Errorf("jetstream context: %w", err)
	}
	b.JS = js
	return b, nil
}

// StartEmbedded starts nats-server with JetStream and a file store under cfg.StateDir.
func StartEmbedded(cfg Config) (*server.Server, error) {
	cfg = cfg.withDefaults()
	store := filepath.Join(cfg.StateDir, "jetstream")
	if err := os.MkdirAll(store, 0o755); err != nil {
		return nil, fmt.Errorf("create store dir: %w", err)
	}
	name := cfg.ServerName
	if name == "" {
		name = "sluice-embedded"
	}
	o := &server.Options{
		ServerName: name,
		JetStream:  true,
		StoreDir:   store,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: cfg.MaxPayload,
		DontListen: cfg.Listen == "",
		// The embedded server belongs to this process; keep JetStream's memory use modest.
		JetStreamMaxMemory: 256 << 20,
		Authorization:      cfg.Token,
	}
	if cfg.Listen != "" {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, err
		}
		o.Host, o.Port = host, port
	}
	if cfg.ClusterListen != "" {
		if err := clusterOptions(o, cfg); err != nil {
			return nil, err
		}
	}
	srv, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	// Start does not block, and returns with the client listener up; ReadyForConnections then
	// passes at its first look (a cluster node's route listener comes up on a goroutine of its own,
	// for which it may wait). Started on a goroutine instead, the first look came too early and
	// ReadyForConnections slept 25 ms before the next: every run paid it.
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("embedded nats-server did not become ready in 30s")
	}
	return srv, nil
}

// clusterOptions makes o a node of the cluster cfg describes.
func clusterOptions(o *server.Options, cfg Config) error {
	host, port, err := splitHostPort(cfg.ClusterListen)
	if err != nil {
		return fmt.Errorf("cluster %w", err)
	}
	o.Cluster.Name, o.Cluster.Host, o.Cluster.Port = cfg.ClusterName, host, port
	var routes []string
	for _, r := range cfg.Routes {
		if r = strings.TrimSpace(r); r != "" {
			routes = append(routes, r)
		}
	}
	o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
	if len(o.Routes) == 0 {
		return fmt.Errorf("routes %q: no route URL", strings.Join(cfg.Routes, ","))
	}
	if cfg.ServerName == "" {
		h, _ := os.Hostname()
		if h == "" {
			h = "localhost"
		}
		o.ServerName = fmt.Sprintf("sluice-%s-%d", h, port)
	}
	return nil
}

func authOptions(cfg Config) ([]nats.Option, error) {
	var opts []nats.Option
	if cfg.Token != "" {
		opts = append(opts, nats.Token(cfg.Token))
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.NKeyFile != "" {
		o, err := nats.NkeyOptionFromSeed(cfg.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("load nkey seed: %w", err)
		}
		opts = append(opts, o)
	}
	if cfg.User != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.TLSCert != "" || cfg.TLSCA != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.TLSCert != "" {
			cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
			if err != nil {
				return nil, fmt.Errorf("load tls key pair: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		if cfg.TLSCA != "" {
			pem, err := os.ReadFile(cfg.TLSCA)
			if err != nil {
				return nil, fmt.Errorf("read tls ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, errors.New("tls ca: no certificates found")
			}
			tc.RootCAs = pool
		}
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

// MaxPayload is the largest message the connected server accepts.
func (b *Bus) MaxPayload() int64 { return b.NC.MaxPayload() }

// Close flushes what the connection wrote (for up to 5 s), closes it and stops the embedded server,
// if any.
func (b *Bus) Close() {
	if b.NC != nil {
		// The stages have returned: nothing is left to receive, only what this connection wrote
		// (acks, publishes whose answers nobody waits for). A flush sends it and waits until the
		// server has read it, as Drain would; Drain then also polls every 10 ms until the
		// connection's subscriptions are gone, 20 ms at the end of every `run --once`.
		_ = b.NC.FlushTimeout(5 * time.Second)
		b.NC.Close()
	}
	b.shutdownServer()
}

func (b *Bus) shutdownServer() {
	if b.Server != nil {
		if b.Cfg.ClusterListen == "" { // a cluster node's consumers are replicated: Shutdown does not wait for them
			disconnectClients(b.Server)
			dropStalePulls(b.Server, b.Cfg.Token)
		}
		b.Server.Shutdown()
		b.Server.WaitForShutdown()
	}
}

// disconnectClients closes the connections other processes still have to the embedded server
// (a `sluice merger` beside `sluice run --once`, say) before it shuts down. Shutdown closes them
// anyway, but first tells each of their waiting pull requests that the server is going away and
// sleeps 50 ms for those messages to get out: a remote merger idling on its pulls made every
// `run --once` it joined 50 ms longer (scripts/bench-scale.sh). Closed first, their requests
// lose their subscribers and dropStalePulls drops them; the remote client sees its connection
// end as it would a moment later. This process's own connections are closed before this is
// called.
func disconnectClients(srv *server.Server) {
	cz, err := srv.Connz(&server.ConnzOptions{Limit: 1 << 16})
	if err != nil {
		return
	}
	for _, c := range cz.Conns {
		_ = srv.DisconnectClientByID(c.Cid)
	}
}

// dropStalePulls has the embedded server forget the pull requests of subscriptions that are gone,
// before it shuts down. A pull consumer keeps a request until it expires, even when its subscriber
// has left; nats-server's Shutdown tells every R1 consumer's pending requesters that it is going
// away and then sleeps 50 ms for those messages to get out, whether anyone is listening or not:
// a third of the embedded server's shutdown, which ends every `sluice run --once`. Consumer info
// drops the requests that have no subscriber left (TestConsumerInfoDropsStalePulls), so this lists
// every stream's consumers over a short in-process connection. Best effort, bounded by 2 s.
func dropStalePulls(srv *server.Server, token string) {
	opts := []nats.Option{nats.InProcessServer(srv), nats.Name("sluice shutdown")}
	if token != "" {
		opts = append(opts, nats.Token(token))
	}
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for name := range js.StreamNames(ctx).Name() {
		st, err := js.Stream(ctx, name)
		if err != nil {
			continue
		}
		for range st.ListConsumers(ctx).Info() {
		}
	}
}
