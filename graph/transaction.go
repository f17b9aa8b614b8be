package graph

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/database"
)

// txPerMutation runs each mutation operation in one database transaction: all its writes
// commit together, or none do when any field fails. Unlike entgql.Transactioner it copes
// with WebSocket operations (whose response handler is called again after the result) and
// gives its own failures an error code.
type txPerMutation struct {
	client *ent.Client
	log    *slog.Logger
	// own lists root fields that manage their own transactions, so that slow work before
	// their writes (password hashing, resolving a webhook's host) holds no database lock.
	own []string
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
	graphql.OperationInterceptor
	graphql.ResponseInterceptor
} = txPerMutation{}

func (txPerMutation) ExtensionName() string                   { return "TxPerMutation" }
func (txPerMutation) Validate(graphql.ExecutableSchema) error { return nil }

func (t txPerMutation) wanted(op *ast.OperationDefinition) bool {
	if op == nil || op.Operation != ast.Mutation {
		return false
	}
	return slices.ContainsFunc(op.SelectionSet, func(s ast.Selection) bool {
		f, ok := s.(*ast.Field)
		return !ok || !slices.Contains(t.own, f.Name)
	})
}

// MutateOperationContext serializes the resolvers of a transactional operation: they share
// one transaction, which must not run two statements at once.
func (t txPerMutation) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if !t.wanted(oc.Operation) {
		return nil
	}
	previous := oc.ResolverMiddleware
	var mu sync.Mutex
	oc.ResolverMiddleware = func(ctx context.Context, next graphql.Resolver) (any, error) {
		mu.Lock()
		defer mu.Unlock()
		return previous(ctx, next)
	}
	return nil
}

type onceKey struct{}

// InterceptOperation marks the operation, so only its first response opens a transaction.
func (t txPerMutation) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	return next(context.WithValue(ctx, onceKey{}, new(atomic.Bool)))
}

// InterceptResponse runs the operation in a transaction.
func (t txPerMutation) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	// A request refused before it became an operation (a body that is not JSON) has no
	// operation context.
	if !graphql.HasOperationContext(ctx) || !t.wanted(graphql.GetOperationContext(ctx).Operation) {
		return next(ctx)
	}
	if ran, _ := ctx.Value(onceKey{}).(*atomic.Bool); ran != nil && ran.Swap(true) {
		return next(ctx) // the WebSocket transport asking for more: there is none
	}
	tx, err := t.client.Tx(ctx)
	if err != nil {
		return t.failed(ctx, "starting a transaction", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	rsp := next(database.WithTx(ctx, tx))
	if rsp == nil || len(rsp.Errors) > 0 {
		if rsp != nil {
			// The writes are undone, so partial data would describe what did not happen.
			return &graphql.Response{Errors: rsp.Errors, Extensions: rsp.Extensions}
		}
		return nil
	}
	if err := tx.Commit(); err != nil {
		return t.failed(ctx, "committing the transaction", err)
	}
	committed = true
	return rsp
}

func (t txPerMutation) failed(ctx context.Context, what string, err error) *graphql.Response {
	t.log.ErrorContext(ctx, what, "err", err)
	return &graphql.Response{Errors: gqlerror.List{{
		Message:    "the database is busy or unavailable: try again",
		Extensions: map[string]any{"code": apperr.Internal},
	}}}
}
