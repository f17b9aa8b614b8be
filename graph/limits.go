package graph

import (
	"context"
	"encoding/json"
	"math"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/wagate/wagate/internal/page"
)

// Limits bound the work one operation may ask for, over HTTP and WebSocket alike.
type Limits struct {
	// MaxComplexity bounds an operation's cost (see connectionCosts); 0 means
	// DefaultMaxComplexity, negative means no limit.
	MaxComplexity int
	// MaxDepth bounds how deeply selections nest, introspection aside; 0 means
	// DefaultMaxDepth, negative means no limit.
	MaxDepth int
	// APQCacheSize is how many automatic persisted queries this process remembers; 0 means
	// DefaultAPQCacheSize, negative turns persisted queries off.
	APQCacheSize int
}

// The defaults. A complexity of 5000 admits a page of 50 objects each with a nested page of
// 50, and refuses 100 × 100.
const (
	DefaultMaxComplexity = 5000
	DefaultMaxDepth      = 12
	DefaultAPQCacheSize  = 1000
)

func (l Limits) withDefaults() Limits {
	if l.MaxComplexity == 0 {
		l.MaxComplexity = DefaultMaxComplexity
	}
	if l.MaxDepth == 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.APQCacheSize == 0 {
		l.APQCacheSize = DefaultAPQCacheSize
	}
	return l
}

// The extensions.reason of operations refused for their shape (extensions.code is
// BAD_USER_INPUT). The complexity one is gqlgen's own code.
const (
	reasonComplexity = "COMPLEXITY_LIMIT_EXCEEDED"
	reasonDepth      = "DEPTH_LIMIT_EXCEEDED"
)

// connectionCosts prices operations for the complexity limit by the objects they may load:
// an object field costs 1, a scalar 0, and a connection 1 plus its page size (first or
// last, else page.Max) times the cost of one edge's selection. Edge lists themselves cost
// nothing more than their nodes, and nodes(ids:) multiplies by the number of ids. So the
// cost of an operation is about the number of rows it reads.
type connectionCosts struct{ graphql.ExecutableSchema }

func (s connectionCosts) Complexity(ctx context.Context, typeName, field string, child int, args map[string]any) (int, bool) {
	var def *ast.FieldDefinition
	if t := s.Schema().Types[typeName]; t != nil {
		def = t.Fields.ForName(field)
	}
	switch {
	case def == nil:
	case strings.HasSuffix(def.Type.Name(), "Connection"):
		return saturating(1, child, pageSize(args)), true
	case def.Type.Elem != nil && strings.HasSuffix(def.Type.Name(), "Edge"):
		return child, true
	case typeName == "Query" && field == "nodes":
		ids, _ := args["ids"].([]any)
		return saturating(1, child, len(ids)), true
	}
	return s.ExecutableSchema.Complexity(ctx, typeName, field, child, args)
}

func pageSize(args map[string]any) int {
	for _, name := range []string{"first", "last"} {
		var n int64 = -1
		switch v := args[name].(type) { // a literal, or a variable as decoded from JSON
		case int64:
			n = v
		case int:
			n = int64(v)
		case json.Number:
			n, _ = v.Int64()
		case float64:
			n = int64(v)
		}
		if n >= 0 {
			return int(min(n, page.Max)) // larger values fail the page-size check anyway
		}
	}
	return page.Max
}

// saturating returns base + child×n, capped at MaxInt so that no query can overflow into a
// cheap one.
func saturating(base, child, n int) int {
	if n != 0 && child > (math.MaxInt-base)/n {
		return math.MaxInt
	}
	return base + child*n
}

// depthLimit refuses operations whose selections nest deeper than max. Introspection
// (__schema, __type) is not counted: GraphiQL's introspection query nests its type
// references deeply, and introspection is a setting of its own.
type depthLimit struct{ max int }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = depthLimit{}

func (depthLimit) ExtensionName() string                   { return "DepthLimit" }
func (depthLimit) Validate(graphql.ExecutableSchema) error { return nil }

func (d depthLimit) MutateOperationContext(_ context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	op := opCtx.Doc.Operations.ForName(opCtx.OperationName)
	if op == nil {
		return nil
	}
	w := depthWalker{fragments: map[string]int{}}
	if depth := w.depth(op.SelectionSet); depth > d.max {
		err := gqlerror.Errorf("operation nests %d levels deep, which exceeds the limit of %d", depth, d.max)
		errcode.Set(err, reasonDepth)
		return err
	}
	return nil
}

// depthWalker measures nesting; fragments are measured once each, so spreading the same
// fragment many times costs no more to check. Validation has already refused cycles.
type depthWalker struct{ fragments map[string]int }

func (w depthWalker) depth(set ast.SelectionSet) int {
	deepest := 0
	for _, sel := range set {
		var d int
		switch s := sel.(type) {
		case *ast.Field:
			if strings.HasPrefix(s.Name, "__") {
				continue // introspection, and __typename, a leaf
			}
			if len(s.SelectionSet) == 0 {
				d = 1
			} else {
				d = 1 + w.depth(s.SelectionSet)
			}
		case *ast.InlineFragment:
			d = w.depth(s.SelectionSet)
		case *ast.FragmentSpread:
			known, ok := w.fragments[s.Name]
			if !ok && s.Definition != nil {
				known = w.depth(s.Definition.SelectionSet)
				w.fragments[s.Name] = known
			}
			d = known
		}
		deepest = max(deepest, d)
	}
	return deepest
}
