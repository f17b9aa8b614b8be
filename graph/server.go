package graph

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"entgo.io/contrib/entgql"
	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/metrics"
	"github.com/wagate/wagate/internal/page"
	"github.com/wagate/wagate/internal/wsgorilla"
)

// ServerConfig tunes the GraphQL server.
type ServerConfig struct {
	// Introspection enables schema introspection (GraphiQL needs it).
	Introspection bool
	// AllowedOrigins may open WebSockets besides the server's own origin ("*": any).
	AllowedOrigins []string
	// MaxUploadBytes bounds an attachment in a multipart request.
	MaxUploadBytes int64
	// WebsocketInit authenticates a WebSocket's connection_init.
	WebsocketInit transport.WebsocketInitFunc
	// WebSocketWriteTimeout bounds each frame written to a subscriber; a subscriber that
	// cannot take one in time is disconnected as a slow consumer. 0 means 10 s.
	WebSocketWriteTimeout time.Duration
	// PerOperation runs around every operation (it re-checks WebSocket callers).
	PerOperation graphql.OperationMiddleware
	// Metrics records operations and WebSocket connections; nil records nothing.
	Metrics *metrics.Metrics
	// Limits bound complexity and depth, and size the persisted-query cache.
	Limits Limits
	Log    *slog.Logger
}

// NewServer assembles the GraphQL server: transports, caches, limits, the transaction per
// mutation, pagination bounds and the error presenter.
func NewServer(r *Resolver, cfg ServerConfig) *handler.Server {
	srv := handler.New(connectionCosts{NewExecutableSchema(Config{Resolvers: r})})
	if cfg.WebSocketWriteTimeout <= 0 {
		cfg.WebSocketWriteTimeout = 10 * time.Second
	}
	ws := wsgorilla.New(wsgorilla.OriginPolicy(cfg.AllowedOrigins), cfg.WebSocketWriteTimeout)
	ws.Open = cfg.Metrics.WebSockets()
	ws.PingInterval = 20 * time.Second // detects dead peers, whatever the protocol
	// First: it claims the requests that carry an Upgrade header.
	srv.AddTransport(transport.Websocket{
		Implementation:        ws,
		InitFunc:              cfg.WebsocketInit,
		InitTimeout:           10 * time.Second,
		KeepAlivePingInterval: 20 * time.Second, // legacy graphql-ws: its clients wait for "ka"
		PayloadReadLimit:      ptr(int64(64 << 10)),
		ErrorFunc: func(ctx context.Context, err error) {
			var we transport.WebsocketError
			if errors.As(err, &we) && !we.IsReadError {
				cfg.Log.InfoContext(ctx, "WebSocket write failed; connection closed", "err", we.Err)
			}
		},
	})
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.AddTransport(transport.MultipartForm{MaxUploadSize: cfg.MaxUploadBytes, MaxMemory: 4 << 20})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	// Outermost, so they also see operations refused by the extensions below.
	if cfg.Metrics != nil {
		srv.Use(cfg.Metrics.GraphQL())
	}
	srv.AroundOperations(logOperation(cfg.Log))
	if cfg.Introspection {
		srv.Use(extension.Introspection{})
	}
	lim := cfg.Limits.withDefaults()
	if lim.APQCacheSize > 0 {
		srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](lim.APQCacheSize)})
	}
	if lim.MaxComplexity > 0 {
		srv.Use(extension.FixedComplexityLimit(lim.MaxComplexity, complexity.WithFixedScalarValue(0)))
	}
	if lim.MaxDepth > 0 {
		srv.Use(depthLimit{max: lim.MaxDepth})
	}
	srv.Use(refuseNUL{})
	if cfg.PerOperation != nil {
		srv.AroundOperations(cfg.PerOperation)
	}
	srv.Use(txPerMutation{client: r.client, log: cfg.Log, own: ownTransactions})
	srv.Use(eventFanout{}) // innermost: see eventFanout
	srv.AroundFields(boundConnections)
	srv.SetErrorPresenter(errorPresenter(cfg.Log))
	srv.SetRecoverFunc(recoverFunc(cfg.Log))
	return srv
}

// ownTransactions are the mutations that manage their own transactions: hashing a password,
// resolving a webhook's host, or waiting for the replica that runs a session must not hold
// a transaction (and with it a pooled connection, or SQLite's only writer) meanwhile.
var ownTransactions = []string{"signUp", "logIn", "markRead", "simulateIncomingMessage", "simulateIncomingMessages", "requestPairingCode",
	"createWebhook", "updateWebhook"}

// checkCursors refuses forged cursors here, before ent edges load them with their parent.
// The kind of ordering value is known when the query chose an order; services check their
// fixed orders themselves.
func checkCursors(ctx context.Context, fc *graphql.FieldContext) error {
	after, _ := fc.Args["after"].(*entgql.Cursor[gid.ID])
	before, _ := fc.Args["before"].(*entgql.Cursor[gid.ID])
	if after == nil && before == nil {
		return nil
	}
	raw := fc.Field.ArgumentMap(graphql.GetOperationContext(ctx).Variables)
	if order, ok := raw["orderBy"].(map[string]any); ok {
		if field, ok := order["field"].(string); ok {
			return page.CheckCursors(after, before, page.ValueOf(field))
		}
	}
	return page.CheckAnyCursors(after, before)
}

func ptr[T any](v T) *T { return &v }

// boundConnections enforces the page-size cap on every connection. Connections resolved by
// ent edges load together with their parent (one query for all parents), before any
// resolver could add a default, so they need first or last explicitly; connections behind
// a resolver default to page.Max.
func boundConnections(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || fc.Field.Definition == nil || !strings.HasSuffix(fc.Field.Definition.Type.Name(), "Connection") {
		return next(ctx)
	}
	first, _ := fc.Args["first"].(*int)
	last, _ := fc.Args["last"].(*int)
	if err := page.Check(first, last); err != nil {
		return nil, err
	}
	if err := checkCursors(ctx, fc); err != nil {
		return nil, err
	}
	if !fc.IsResolver && first == nil && last == nil {
		return nil, apperr.Invalid("first", "%s: pass first or last (at most %d)", fc.Field.Name, page.Max)
	}
	return next(ctx)
}
