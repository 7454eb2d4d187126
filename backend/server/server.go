//go:build !js

// Package server is RD-RE Studio's HTTP and websocket front: it opens the datasets and the workspace,
// serves images, thumbnails and masks over plain HTTP, and answers the typed messages of
// shared/protocol on one websocket endpoint (/ws).
//
// Security contract: the browser only ever names a dataset by its ID and an image by its ID (a path
// relative to the dataset root that the dataset index resolves through os.Root); nothing it sends is used
// as a file path. When a token is configured every HTTP request and the websocket upgrade must present it
// (cookie, ?token= or Authorization: Bearer), and the websocket checks that the Origin is this server.
package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/store"
	"github.com/rdre-studio/studio/shared/protocol"
)

// Config configures a Server.
type Config struct {
	// Data lists dataset roots, of any layout package dataset reads.
	Data []string
	// Layout forces the layout of every dataset in Data ("" detects each one).
	Layout string
	// Workspace is the bbolt file; it is created when missing.
	Workspace string
	// UI serves the pages of the go-app front end; nil serves a plain notice.
	UI http.Handler
	// Token, when set, is required on every request.
	Token string
	// AllowedHosts, when not empty, are the only Host headers accepted ("name:port", compared without
	// letter case): a page of another site whose name an attacker points at 127.0.0.1 (DNS rebinding)
	// sends its own name as Host and is refused. HostsFor computes them for a listener.
	AllowedHosts []string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Server holds the open workspace and datasets.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    *store.Store
	datasets map[string]*dataset.Dataset
	order    []string // dataset IDs in the order given
	hub      *hub
	jobs     JobRunner
	handlers []JobRunner // more message handlers (training runs), asked after jobs
	routes   []route

	closeOnce sync.Once
}

// JobRunner is the part of the evaluation job system the websocket needs; nil disables jobs.
type JobRunner interface {
	// HandleJobMessage answers one job-related frame; ok is false when the type is not a job type.
	HandleJobMessage(ctx context.Context, c Client, env protocol.Envelope) (ok bool)
}

// Client is one websocket connection as seen by message handlers.
type Client interface {
	// Send queues a frame; it never blocks on a slow client (a client that falls too far behind is
	// disconnected rather than stalling the server).
	Send(env protocol.Envelope)
	// ID is unique per connection.
	ID() uint64
}

// New opens the workspace and the datasets.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	st, err := store.Open(cfg.Workspace)
	if err != nil {
		return nil, fmt.Errorf("open workspace %s: %w", cfg.Workspace, err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, store: st, datasets: map[string]*dataset.Dataset{}}
	for _, root := range cfg.Data {
		if err := s.AddDataset(root); err != nil {
			st.Close()
			return nil, err
		}
	}
	s.hub = newHub(s)
	return s, nil
}

// AddDataset indexes root and registers it in the workspace.
func (s *Server) AddDataset(root string) error {
	ds, err := dataset.OpenWith(root, dataset.Options{Layout: s.cfg.Layout})
	if err != nil {
		return fmt.Errorf("open dataset %s: %w", root, err)
	}
	for _, w := range ds.Info().Warnings {
		s.log.Warn("dataset", "root", root, "warning", w)
	}
	info := ds.Info()
	if _, dup := s.datasets[info.ID]; dup {
		return nil
	}
	if err := s.store.PutDataset(info); err != nil {
		return fmt.Errorf("register dataset %s: %w", root, err)
	}
	kinds := make([]string, 0, len(info.Kinds))
	for _, k := range info.Kinds {
		if k != protocol.KindGood {
			kinds = append(kinds, k)
		}
	}
	if err := s.store.EnsureClasses(info.ID, kinds); err != nil {
		return fmt.Errorf("register classes of %s: %w", root, err)
	}
	s.datasets[info.ID] = ds
	s.order = append(s.order, info.ID)
	s.log.Info("dataset indexed", "id", info.ID, "root", info.Root, "layout", info.Layout, "images", info.Images)
	return nil
}

// Store returns the workspace.
func (s *Server) Store() *store.Store { return s.store }

// Dataset returns an open dataset by ID.
func (s *Server) Dataset(id string) (*dataset.Dataset, bool) {
	ds, ok := s.datasets[id]
	return ds, ok
}

// DatasetIDs returns the dataset IDs in registration order.
func (s *Server) DatasetIDs() []string { return append([]string(nil), s.order...) }

// SetJobRunner plugs the evaluation job system into the websocket.
func (s *Server) SetJobRunner(j JobRunner) { s.jobs = j }

// AddHandler plugs another message handler (the training runner) into the websocket; call it before
// serving. Its HandleJobMessage answers the types it owns and returns false for the others.
func (s *Server) AddHandler(h JobRunner) { s.handlers = append(s.handlers, h) }

// Broadcast sends env to every connected client.
func (s *Server) Broadcast(env protocol.Envelope) { s.hub.broadcast(env, 0) }

type route struct {
	pattern string
	h       http.Handler
}

// Handle adds a route (for the job system and reports); call it before Handler.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.routes = append(s.routes, route{pattern, h})
}

// Close closes every websocket and the workspace.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.hub.closeAll()
		err = s.store.Close()
	})
	return err
}

// Handler returns the HTTP handler: /api/..., /ws, then the UI.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/image", s.handleImage)
	mux.HandleFunc("GET /api/thumb", s.handleThumb)
	mux.HandleFunc("GET /api/gt", s.handleGroundTruth)
	mux.HandleFunc("GET /api/export", s.handleExport)
	mux.HandleFunc("GET /api/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /ws", s.hub.serveWS)
	for _, r := range s.routes {
		mux.Handle(r.pattern, r.h)
	}
	if s.cfg.UI != nil {
		mux.Handle("/", s.cfg.UI)
	} else {
		mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "RD-RE Studio: no UI handler configured", http.StatusNotFound)
		})
	}
	return s.checkHost(s.auth(hardened(mux)))
}

// maxQueryBytes bounds a request's query: ids are dataset paths (at most a few hundred bytes in practice),
// and error replies quote them, so a bound here bounds what a reply can echo.
const maxQueryBytes = 8 << 10

// hardened refuses oversized queries and marks every reply nosniff, so a text or Markdown download (a
// report, an error quoting a file name) is never run as HTML or script by a browser.
func hardened(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if len(r.URL.RawQuery) > maxQueryBytes {
			http.Error(w, fmt.Sprintf("RD-RE Studio: query longer than %d bytes", maxQueryBytes), http.StatusRequestURITooLong)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// HostsFor lists the Host headers a browser sends to a server listening on addr: for a loopback listener
// its address, localhost, 127.0.0.1 and [::1] at its port; for one IP, that IP at its port; nil for an
// unspecified address (0.0.0.0 or ::), where names cannot be known and the token guards the server.
// extra are more names ("name" means the listener's port, "name:port" as given).
func HostsFor(addr net.Addr, extra []string) []string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok || ta.IP.IsUnspecified() {
		return nil
	}
	port := strconv.Itoa(ta.Port)
	out := []string{net.JoinHostPort(ta.IP.String(), port)}
	if ta.IP.IsLoopback() {
		out = append(out, "localhost:"+port, "127.0.0.1:"+port, "[::1]:"+port)
	}
	for _, e := range extra {
		if _, _, err := net.SplitHostPort(e); err == nil {
			out = append(out, e)
		} else {
			out = append(out, net.JoinHostPort(e, port))
		}
	}
	return out
}

// checkHost refuses requests whose Host is not one of Config.AllowedHosts.
func (s *Server) checkHost(next http.Handler) http.Handler {
	if len(s.cfg.AllowedHosts) == 0 {
		return next
	}
	allowed := map[string]bool{}
	for _, h := range s.cfg.AllowedHosts {
		allowed[strings.ToLower(h)] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed[strings.ToLower(r.Host)] {
			s.log.Warn("request refused: unknown Host", "host", truncate(r.Host, 100), "remote", r.RemoteAddr)
			// The Host is not echoed: the reply must not carry attacker-chosen text.
			http.Error(w, "RD-RE Studio: this server only answers to its own address (start it with --allow-host NAME to add a name)", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// truncate bounds text that came from a request before it is logged or shown.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

const tokenCookie = "rdre_token"

// auth enforces the token when one is configured. A valid ?token= sets a cookie so that the page's own
// requests (images, the websocket) carry it without the UI knowing about tokens.
func (s *Server) auth(next http.Handler) http.Handler {
	if s.cfg.Token == "" {
		return next
	}
	want := []byte(s.cfg.Token)
	ok := func(got string) bool { return got != "" && subtle.ConstantTimeCompare([]byte(got), want) == 1 }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query().Get("token"); ok(q) {
			http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: q, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			next.ServeHTTP(w, r)
			return
		}
		if c, err := r.Cookie(tokenCookie); err == nil && ok(c.Value) {
			next.ServeHTTP(w, r)
			return
		}
		if h := r.Header.Get("Authorization"); len(h) > 7 && h[:7] == "Bearer " && ok(h[7:]) {
			next.ServeHTTP(w, r)
			return
		}
		http.Error(w, "RD-RE Studio: a token is required (open the URL printed at start, or send Authorization: Bearer TOKEN)", http.StatusUnauthorized)
	})
}

func httpError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, dataset.ErrNotFound), errors.Is(err, store.ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
	case errors.Is(err, dataset.ErrOutsideRoot):
		http.Error(w, err.Error(), http.StatusForbidden)
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}
