package graph

import (
	"context"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/wagate/wagate/internal/apperr"
)

// refuseNUL refuses operations whose input holds a NUL character (U+0000), in a variable or
// written in the document: PostgreSQL cannot store it in text, so a name or a message with
// one would fail as an internal error deep inside a mutation.
type refuseNUL struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = refuseNUL{}

func (refuseNUL) ExtensionName() string                   { return "RefuseNUL" }
func (refuseNUL) Validate(graphql.ExecutableSchema) error { return nil }

func (refuseNUL) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	for name, v := range oc.Variables {
		if hasNUL(v) {
			return nulError(name)
		}
	}
	if oc.Operation != nil {
		if name := nulArgument(oc.Operation.SelectionSet); name != "" {
			return nulError(name)
		}
	}
	return nil
}

func nulError(field string) *gqlerror.Error {
	return &gqlerror.Error{Message: field + ": text may not contain the NUL character (U+0000)",
		Extensions: map[string]any{"code": apperr.BadUserInput, "field": field}}
}

// hasNUL reports whether a variable's value holds a string with NUL.
func hasNUL(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.IndexByte(v, 0) >= 0
	case map[string]any:
		for k, e := range v {
			if hasNUL(k) || hasNUL(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if hasNUL(e) {
				return true
			}
		}
	}
	return false
}

// nulArgument returns the name of an argument written in the selections with a string that
// holds NUL ("" when none does).
func nulArgument(set ast.SelectionSet) string {
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			for _, arg := range sel.Arguments {
				if valueHasNUL(arg.Value) {
					return arg.Name
				}
			}
			if name := nulArgument(sel.SelectionSet); name != "" {
				return name
			}
		case *ast.InlineFragment:
			if name := nulArgument(sel.SelectionSet); name != "" {
				return name
			}
		case *ast.FragmentSpread:
			if sel.Definition != nil {
				if name := nulArgument(sel.Definition.SelectionSet); name != "" {
					return name
				}
			}
		}
	}
	return ""
}

func valueHasNUL(v *ast.Value) bool {
	if v == nil {
		return false
	}
	if (v.Kind == ast.StringValue || v.Kind == ast.BlockValue) && strings.IndexByte(v.Raw, 0) >= 0 {
		return true
	}
	for _, c := range v.Children {
		if valueHasNUL(c.Value) {
			return true
		}
	}
	return false
}
