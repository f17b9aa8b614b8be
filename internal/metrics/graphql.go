package metrics

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// GraphQL returns the gqlgen extension that records operations: register it before the
// others, so that it also sees the errors of operations they refuse.
func (m *Metrics) GraphQL() graphql.HandlerExtension { return gqlExtension{m} }

type gqlExtension struct{ m *Metrics }

var (
	_ graphql.OperationInterceptor = gqlExtension{}
	_ graphql.ResponseInterceptor  = gqlExtension{}
)

func (gqlExtension) ExtensionName() string                   { return "Metrics" }
func (gqlExtension) Validate(graphql.ExecutableSchema) error { return nil }

// observedKey marks the responses of operations counted by InterceptOperation, so that
// InterceptResponse counts only those refused before execution (parse and validation
// errors), which never reach the operation interceptors.
type observedKey struct{}

// InterceptOperation times queries and mutations up to their response, keeps the gauge of
// active subscriptions, and counts errors of every response.
func (e gqlExtension) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	m := e.m
	oc := graphql.GetOperationContext(ctx)
	op := &operation{m: m, typ: string(oc.Operation.Operation), name: m.operationNames.label(oc.Operation.Name),
		start: time.Now(), first: true}
	m.gqlOperations.WithLabelValues(op.typ, op.name).Inc()
	if oc.Operation.Operation == ast.Subscription {
		g := m.subscriptions.WithLabelValues(rootField(oc.Operation))
		g.Inc()
		op.ended = sync.OnceFunc(g.Dec)
		// The transport cancels a subscription's context when it ends, however it ends.
		context.AfterFunc(ctx, op.ended)
	}
	responses := next(ctx)
	// Kept small: an idle subscription's goroutine waits below it for the next event, and
	// keeps a stack as deep as that wait.
	return func(ctx context.Context) *graphql.Response {
		return op.observe(responses(context.WithValue(ctx, observedKey{}, true)))
	}
}

// operation is one operation InterceptOperation records.
type operation struct {
	m         *Metrics
	typ, name string
	start     time.Time
	ended     func() // a subscription's: decrements the gauge once
	first     bool
}

// observe records resp, the operation's next response (nil: the operation is over).
func (op *operation) observe(resp *graphql.Response) *graphql.Response {
	if resp == nil {
		if op.ended != nil {
			op.ended()
		}
		return nil
	}
	if op.first && op.ended == nil {
		op.m.gqlDuration.WithLabelValues(op.typ, op.name).Observe(time.Since(op.start).Seconds())
	}
	op.first = false
	op.m.countErrors(op.typ, op.name, resp)
	return resp
}

// InterceptResponse counts requests refused before their operation ran.
func (e gqlExtension) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp == nil || ctx.Value(observedKey{}) != nil {
		return resp
	}
	typ, name := "unknown", "other"
	if graphql.HasOperationContext(ctx) {
		if oc := graphql.GetOperationContext(ctx); oc.Operation != nil {
			typ, name = string(oc.Operation.Operation), e.m.operationNames.label(oc.Operation.Name)
		}
	}
	e.m.countErrors(typ, name, resp)
	return resp
}

func (m *Metrics) countErrors(typ, name string, resp *graphql.Response) {
	seen := map[string]bool{}
	for _, err := range resp.Errors {
		code := "UNKNOWN"
		if c, ok := err.Extensions["code"]; ok {
			code = fmt.Sprint(c) // a string or a named string type (apperr.Code)
		}
		if !seen[code] {
			seen[code] = true
			m.gqlErrors.WithLabelValues(typ, name, code).Inc()
		}
	}
}

// rootField names a subscription by its (first) root field, which the schema bounds.
func rootField(op *ast.OperationDefinition) string {
	for _, sel := range op.SelectionSet {
		if f, ok := sel.(*ast.Field); ok {
			return f.Name
		}
	}
	return "other"
}

// maxOperationNames bounds the distinct operation names recorded: names are chosen by
// clients, and each would be a new series of every GraphQL metric.
const maxOperationNames = 200

var operationName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// nameLimiter admits the first maxOperationNames well-formed names; the rest are "other".
type nameLimiter struct {
	mu   sync.Mutex
	seen map[string]struct{}
	max  int
}

func newNameLimiter(max int) *nameLimiter {
	return &nameLimiter{seen: map[string]struct{}{}, max: max}
}

func (l *nameLimiter) label(name string) string {
	if name == "" {
		return "anonymous"
	}
	if !operationName.MatchString(name) {
		return "other"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.seen[name]; ok {
		return name
	}
	if len(l.seen) >= l.max {
		return "other"
	}
	l.seen[name] = struct{}{}
	return name
}
