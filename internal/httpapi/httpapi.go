// Package httpapi assembles wagate's HTTP surface: GraphQL on /query, GraphiQL on /, and
// the health endpoints.
package httpapi

import (
	"context"
	"database/sql"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql/playground"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/graph"
	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/auth"
	"github.com/wagate/wagate/internal/clientip"
	"github.com/wagate/wagate/internal/cluster"
	"github.com/wagate/wagate/internal/events"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/metrics"
	"github.com/wagate/wagate/internal/oversight"
	"github.com/wagate/wagate/internal/reqlog"
	"github.com/wagate/wagate/internal/sessions"
	"github.com/wagate/wagate/internal/tenancy"
	"github.com/wagate/wagate/internal/webhook"
	"github.com/wagate/wagate/internal/whatsapp"
	"github.com/wagate/wagate/internal/whatsapp/sandbox"
	"github.com/wagate/wagate/internal/wsgorilla"
)

// Config tunes the HTTP surface.
type Config struct {
	// Introspection and GraphiQL are on by default; production may turn them off.
	Introspection bool
	// MaxBodyBytes bounds a request body; 0 means 1 MiB.
	MaxBodyBytes int64
	// Tenancy configures invitations.
	Tenancy tenancy.Options
	// AllowedOrigins are the web origins besides the server's own whose pages may use the
	// API: open WebSockets, and call /query and /media through CORS ("*": any).
	AllowedOrigins []string
	// TrustedProxies may say who the client is in X-Forwarded-For.
	TrustedProxies clientip.Trusted
	// Limits bound GraphQL operations (complexity, depth) and size the persisted-query cache.
	Limits graph.Limits
	// WebSocketWriteTimeout disconnects a subscriber that cannot take a frame in time
	// (0: 10 s).
	WebSocketWriteTimeout time.Duration
	// Sessions configures messaging (pacing, attachment size).
	Sessions sessions.Options
	// MetricsToken, when set, is the bearer token GET /metrics requires.
	MetricsToken string
	// MetricsElsewhere leaves /metrics out: the server serves it on its own listener.
	MetricsElsewhere bool
}

// Deps are the services the API serves.
type Deps struct {
	Client *ent.Client
	SQL    *sql.DB
	Auth   *auth.Service
	Log    *slog.Logger
	// Events is the event log (shared with the Manager).
	Events *events.Log
	// Manager runs the WhatsApp sessions; Sandbox is the sandbox engine, nil when off.
	Manager *whatsapp.Manager
	Sandbox *sandbox.Network
	// Webhooks manages webhooks (its delivery workers run beside the API).
	Webhooks *webhook.Service
	// Cluster is this replica's link to the others (PostgreSQL); nil when alone.
	Cluster *cluster.Node
	// Metrics collects this server's metrics (shared with the event log and webhooks);
	// nil means a registry of the API's own.
	Metrics *metrics.Metrics
}

// New returns the HTTP handler.
func New(cfg Config, d Deps) http.Handler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.Sessions.MaxMediaBytes <= 0 {
		cfg.Sessions.MaxMediaBytes = 16 << 20
	}
	if d.Metrics == nil {
		d.Metrics = metrics.New()
	}
	if err := watchSessions(d.Metrics, d.Client); err != nil {
		d.Log.Warn("session metrics unavailable", "err", err)
	}
	// Lines logged with a request's context carry its request_id.
	d.Log = slog.New(reqlog.Handler(d.Log.Handler()))
	sessionsSvc := sessions.New(d.Client, d.Manager, d.Sandbox, cfg.Sessions)
	resolver := graph.NewResolver(graph.Services{
		Client:    d.Client,
		Auth:      d.Auth,
		Tenancy:   tenancy.New(d.Client, d.Auth, cfg.Tenancy),
		Oversight: oversight.New(d.Client),
		Sessions:  sessionsSvc,
		Events:    d.Events,
		Webhooks:  d.Webhooks,
	})
	gql := graph.NewServer(resolver, graph.ServerConfig{
		Introspection:         cfg.Introspection,
		AllowedOrigins:        cfg.AllowedOrigins,
		MaxUploadBytes:        cfg.Sessions.MaxMediaBytes + cfg.MaxBodyBytes, // limitBody's bound, so its answer is the one
		Limits:                cfg.Limits,
		WebSocketWriteTimeout: cfg.WebSocketWriteTimeout,
		WebsocketInit:         d.Auth.WebsocketInit,
		PerOperation:          d.Auth.PerOperation,
		Metrics:               d.Metrics,
		Log:                   d.Log,
	})

	mux := http.NewServeMux()
	authn := d.Auth.Middleware(d.Log)
	// Multipart requests carry attachments: their bound is the attachment's, plus the form.
	mux.Handle("/query", limitBody(cfg.MaxBodyBytes, cfg.Sessions.MaxMediaBytes+cfg.MaxBodyBytes, authn(wsgorilla.Reap(gql))))
	mux.Handle("GET /media/{id}", authn(mediaHandler(sessionsSvc, d.Log)))
	if cfg.Introspection {
		mux.Handle("GET /{$}", playground.Handler("wagate", "/query"))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", readyz(d))
	if !cfg.MetricsElsewhere {
		mux.Handle("GET /metrics", d.Metrics.Handler(cfg.MetricsToken, d.Log))
	}
	observe := func(r *http.Request, status int, took time.Duration) {
		d.Metrics.ObserveHTTP(r.Pattern, r.Method, status, took)
	}
	// The access log and metrics wrap the mux directly: they read the route it matched
	// (r.Pattern), which the wrappers outside would not see on their copies of the request.
	return cfg.TrustedProxies.Middleware(cors(cfg.AllowedOrigins, reqlog.Middleware(d.Log, observe)(mux)))
}

// readyz answers 503 while the database is unreachable or, with replicas, while the event
// listener is disconnected.
func readyz(d Deps) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := d.SQL.PingContext(ctx); err != nil {
			d.Log.WarnContext(ctx, "readiness check failed", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("database unreachable\n"))
			return
		}
		if d.Cluster != nil && !d.Cluster.Bus.Ready() {
			// Subscribers here would miss other replicas' events until it reconnects.
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("event listener disconnected\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}
}

// mediaHandler serves a message's attachment to callers who may read the message.
func mediaHandler(svc *sessions.Service, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := gid.Parse(r.PathValue("id"))
		if err != nil {
			http.Error(w, "malformed message id", http.StatusBadRequest)
			return
		}
		data, mime, name, err := svc.Media(r.Context(), id)
		if err != nil {
			status := http.StatusBadGateway
			switch {
			case ent.IsNotFound(err), apperr.Is(err, apperr.NotFound):
				status = http.StatusNotFound
			case apperr.Is(err, apperr.Unauthenticated):
				status = http.StatusUnauthorized
			case apperr.Is(err, apperr.Conflict):
				status = http.StatusConflict
			default:
				log.WarnContext(r.Context(), "serving media", "message", id, "err", err)
			}
			http.Error(w, http.StatusText(status), status)
			return
		}
		w.Header().Set("Content-Type", mime)
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "private, max-age=3600")
		disposition := "attachment"
		if name != "" {
			disposition = mimeDisposition(name)
		}
		w.Header().Set("Content-Disposition", disposition)
		_, _ = w.Write(data)
	})
}

func mimeDisposition(name string) string {
	return mime.FormatMediaType("attachment", map[string]string{"filename": name})
}
