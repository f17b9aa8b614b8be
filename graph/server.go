package graph

import (
	"context"
	"log/slog"
	"strings"

	"entgo.io/contrib/entgql"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/page"
)

// ServerConfig tunes the GraphQL server.
type ServerConfig struct {
	// Introspection enables schema introspection (GraphiQL needs it).
	Introspection bool
	Log           *slog.Logger
}

// NewServer assembles the GraphQL server: transports, caches, the transaction per mutation,
// pagination bounds and the error presenter.
func NewServer(r *Resolver, cfg ServerConfig) *handler.Server {
	srv := handler.New(NewExecutableSchema(Config{Resolvers: r}))
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	if cfg.Introspection {
		srv.Use(extension.Introspection{})
	}
	// Each mutation runs in one transaction: all its writes commit together or not at all.
	srv.Use(entgql.Transactioner{TxOpener: r.client})
	srv.AroundFields(boundConnections)
	srv.SetErrorPresenter(errorPresenter(cfg.Log))
	srv.SetRecoverFunc(recoverFunc(cfg.Log))
	return srv
}

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
	if !fc.IsResolver && first == nil && last == nil {
		return nil, apperr.Invalid("first", "%s: pass first or last (at most %d)", fc.Field.Name, page.Max)
	}
	return next(ctx)
}
