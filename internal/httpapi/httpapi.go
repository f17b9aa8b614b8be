// Package httpapi assembles wagate's HTTP surface: GraphQL on /query, GraphiQL on /, and
// the health endpoints.
package httpapi

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql/playground"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/graph"
	"github.com/wagate/wagate/internal/auth"
	"github.com/wagate/wagate/internal/oversight"
	"github.com/wagate/wagate/internal/tenancy"
)

// Config tunes the HTTP surface.
type Config struct {
	// Introspection and GraphiQL are on by default; production may turn them off.
	Introspection bool
	// MaxBodyBytes bounds a request body; 0 means 1 MiB.
	MaxBodyBytes int64
	// Tenancy configures invitations.
	Tenancy tenancy.Options
	// AllowedOrigins may open WebSockets besides the server's own origin ("*": any).
	AllowedOrigins []string
}

// Deps are the services the API serves.
type Deps struct {
	Client *ent.Client
	SQL    *sql.DB
	Auth   *auth.Service
	Log    *slog.Logger
}

// New returns the HTTP handler.
func New(cfg Config, d Deps) http.Handler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	resolver := graph.NewResolver(graph.Services{
		Client:    d.Client,
		Auth:      d.Auth,
		Tenancy:   tenancy.New(d.Client, d.Auth, cfg.Tenancy),
		Oversight: oversight.New(d.Client),
	})
	gql := graph.NewServer(resolver, graph.ServerConfig{
		Introspection:  cfg.Introspection,
		AllowedOrigins: cfg.AllowedOrigins,
		WebsocketInit:  d.Auth.WebsocketInit,
		Log:            d.Log,
	})

	mux := http.NewServeMux()
	mux.Handle("/query", limitBody(cfg.MaxBodyBytes, d.Auth.Middleware(d.Log)(gql)))
	if cfg.Introspection {
		mux.Handle("GET /{$}", playground.Handler("wagate", "/query"))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := d.SQL.PingContext(ctx); err != nil {
			d.Log.Warn("readiness check failed", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("database unreachable\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

func limitBody(n int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, n)
		next.ServeHTTP(w, r)
	})
}
