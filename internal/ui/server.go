package ui

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/summarizer"
)

//go:embed static
var static embed.FS

// DefaultAddr is where `sluice ui` listens unless told otherwise.
const DefaultAddr = "127.0.0.1:8089"

// Config says where the dashboard listens.
type Config struct {
	// Addr is host:port. A host-less address (":8089") binds 127.0.0.1: the dashboard is
	// reachable from other hosts only when a host (0.0.0.0, an interface address) is given.
	Addr string
	// Refresh is how old stream and consumer figures may be before a page asks the server again
	// (default 2s).
	Refresh time.Duration
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Addr == "" {
		return errors.New("ui: listen address required")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("ui: listen address %q: %w", c.Addr, err)
	}
	if c.Refresh < 0 {
		return fmt.Errorf("ui: refresh must be positive, got %s", c.Refresh)
	}
	return nil
}

// ListenAddr is the address Config.Addr binds: a missing host is 127.0.0.1.
func ListenAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" {
		return addr
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// Reader is what the dashboard needs of the output store: it only ever reads.
type Reader interface {
	Get(ctx context.Context, key string) (io.ReadCloser, error)
}

var _ Reader = objstore.Bucket(nil)

// Deps are the dashboard's collaborators. Bus is required.
type Deps struct {
	Bus *bus.Bus
	// Out is the output store the summaries are read from (summary.json once per summary
	// written, summary.txt when a page links it); nil shows dates without them.
	Out Reader
	Log *slog.Logger
	Now func() time.Time // nil: time.Now
}

// Server is the read-only dashboard: the Model plus its pages and JSON API.
type Server struct {
	cfg   Config
	model *Model
	log   *slog.Logger
}

// New validates cfg and deps and returns a dashboard ready to Run.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Bus == nil {
		return nil, errors.New("ui: bus is required")
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = 2 * time.Second
	}
	return &Server{cfg: cfg, model: newModel(deps.Bus, deps.Out, deps.Now, deps.Log, cfg.Refresh), log: deps.Log}, nil
}

// Run listens on Config.Addr and serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", ListenAddr(s.cfg.Addr))
	if err != nil {
		return fmt.Errorf("ui listen %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln (closed on return) and keeps the model up to date until ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.model.Run(gctx) })
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	})
	g.Go(func() error {
		s.log.Info("dashboard listening", "url", "http://"+ln.Addr().String()+"/")
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("ui serve: %w", err)
		}
		return nil
	})
	err := g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Handler serves the pages, the static files and the JSON API. Every route is GET (or HEAD).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	files, _ := fs.Sub(static, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(files)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		http.ServeFileFS(w, r, files, "index.html")
	})
	mux.HandleFunc("GET /api/overview", func(w http.ResponseWriter, r *http.Request) {
		o := s.model.overview()
		o.Cluster = s.model.clusterInfo(r.Context())
		writeJSON(w, o)
	})
	mux.HandleFunc("GET /api/tables", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.model.tables()) })
	mux.HandleFunc("GET /api/archives", func(w http.ResponseWriter, r *http.Request) {
		limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
		if err != nil || limit <= 0 || limit > 1000 {
			limit = 200
		}
		writeJSON(w, s.model.archives(r.URL.Query().Get("q"), limit))
	})
	mux.HandleFunc("GET /api/archives/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if !archiveIDPattern.MatchString(id) {
			http.Error(w, "bad archive id", http.StatusBadRequest)
			return
		}
		d, ok := s.model.archive(id)
		if !ok {
			http.Error(w, "no such archive", http.StatusNotFound)
			return
		}
		writeJSON(w, d)
	})
	mux.HandleFunc("GET /api/dates", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.model.datesView()) })
	mux.HandleFunc("GET /api/live", s.live)
	mux.HandleFunc("GET /summaries/{date}/{file}", s.summary)
	return guard(mux)
}

// guard adds the headers every answer carries and, when the request came to a loopback
// address, refuses a Host that is not a loopback name (a page of another site resolving its own
// name to 127.0.0.1 must not read the dashboard: DNS rebinding).
func guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
		if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && isLoopback(local.String()) && !isLoopback(r.Host) {
			http.Error(w, "this dashboard answers only to localhost names", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// isLoopback reports whether a host or host:port names this machine's loopback.
func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// live is a server-sent event stream: one "change" event (data: the model version) whenever
// the model changes, at most every 250ms (or 4× the longest view build, Model.liveGap), and a
// comment every 15s to keep proxies from closing it. Pages re-read the JSON of the view they
// show.
func (s *Server) live(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	var sent uint64
	for {
		v, ch := s.model.Changed()
		if v != sent {
			if _, err := fmt.Fprintf(w, "event: change\ndata: %d\n\n", v); err != nil {
				return
			}
			fl.Flush()
			sent = v
			// Coalesce a burst of events into one page refresh.
			select {
			case <-r.Context().Done():
				return
			case <-time.After(s.model.liveGap()):
			}
			continue
		}
		select {
		case <-r.Context().Done():
			return
		case <-ch:
		case <-keep.C:
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

var datePattern = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// summary serves a date's summary.txt or summary.json from the output store, read-only.
func (s *Server) summary(w http.ResponseWriter, r *http.Request) {
	date, file := r.PathValue("date"), r.PathValue("file")
	if !datePattern.MatchString(date) || (file != "summary.txt" && file != "summary.json") {
		http.NotFound(w, r)
		return
	}
	if s.model.out == nil {
		http.Error(w, "the dashboard was started without the output store (--out)", http.StatusNotFound)
		return
	}
	key := strings.TrimSuffix(summarizer.SummaryKey(date), "summary.json") + file
	rc, err := s.model.out.Get(r.Context(), key)
	if errors.Is(err, objstore.ErrNotFound) {
		http.Error(w, "no summary for "+date+" yet", http.StatusNotFound)
		return
	}
	if err != nil {
		s.log.Warn("read summary", "key", key, "err", err)
		http.Error(w, "the summary could not be read", http.StatusBadGateway)
		return
	}
	defer rc.Close()
	if file == "summary.json" {
		w.Header().Set("Content-Type", "application/json")
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.Copy(w, io.LimitReader(rc, 64<<20))
}
