package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/pipeline"
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
	f.StringVar(&c.state, "state", ".state", "state directory (embedded JetStream store, spill files)")
	f.StringVar(&c.prefix, "prefix", "sluice", "subject prefix")
	f.IntVar(&c.partitions, "partitions", 8, "row partitions (fixed for the life of the streams)")
	f.DurationVar(&c.rowsMaxAge, "retention", 72*time.Hour, "how long the rows stream keeps data for replay")
	f.DurationVar(&c.dupWindow, "dedup-window", time.Hour, "Nats-Msg-Id de-duplication window")
	f.StringVar(&c.rowsCompression, "rows-compression", "none", "server-side compression of the rows stream: none or s2 (chunks are already compressed by the extractor unless --chunk-codec none)")
	f.StringVar(&c.configFile, "config", "", "partner configuration (YAML); defaults work without one")
	f.StringVar(&c.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics and /healthz on this address")
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
			return &exitError{code: 0}
		}
		return &exitError{code: 2, err: err}
	}
	return applyEnv(c.fs)
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
				err = &exitError{code: 2, err: fmt.Errorf("%s: %w", env, e)}
			}
		}
	})
	return err
}

func (c *common) logger() *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.logLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if c.logFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
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
	}
}

func (c *common) setup(ctx context.Context, name string) (*pipeline.Env, func(), error) {
	log := c.logger()
	partners, err := config.Load(c.configFile)
	if err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	b, err := bus.Connect(ctx, c.busConfig(name), log)
	if err != nil {
		return nil, nil, err
	}
	if err := b.Ensure(ctx); err != nil {
		b.Close()
		return nil, nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	e, err := pipeline.NewEnv(ctx, b, partners, log, reg)
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	stopMetrics := func() {}
	if c.metricsAddr != "" {
		stopMetrics, err = serveMetrics(c.metricsAddr, reg, b, log)
		if err != nil {
			e.Close()
			b.Close()
			return nil, nil, err
		}
	}
	return e, func() { stopMetrics(); e.Close(); b.Close() }, nil
}

func serveMetrics(addr string, reg *prometheus.Registry, b *bus.Bus, log *slog.Logger) (func(), error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !b.NC.IsConnected() {
			http.Error(w, "nats disconnected", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
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
