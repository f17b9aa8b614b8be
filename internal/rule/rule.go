// Package rule holds the ent privacy rules that enforce tenancy and the role table.
//
// Rules read only the viewer in the context (no SQL), and scope reads and writes with
// predicates, so they cost nothing per evaluation and cannot be bypassed by a resolver that
// forgets a check. Filters use entql (field names, not generated predicates), so the rules
// keep compiling while a schema change is being generated.
package rule

import (
	"context"
	"errors"
	"slices"

	"entgo.io/ent"
	"entgo.io/ent/entql"
	"entgo.io/ent/privacy"

	entprivacy "github.com/wagate/wagate/ent/privacy"
	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/viewer"
)

// deny is a privacy denial that the API reports with code.
func deny(code apperr.Code, msg string) error {
	return &apperr.Error{Code: code, Message: msg, Err: privacy.Deny}
}

var (
	// ErrUnauthenticated denies anonymous callers.
	ErrUnauthenticated = deny(apperr.Unauthenticated, "authentication required")
	// ErrForbidden denies callers whose role does not allow the operation.
	ErrForbidden = deny(apperr.Forbidden, "your role does not allow this")
)

// Require returns nil when the viewer has permission p in its current organization, and
// otherwise the error to show: UNAUTHENTICATED for anonymous callers, FORBIDDEN for the rest.
// Services use it to refuse early where even looking something up would reveal too much.
func Require(v *viewer.Viewer, p viewer.Permission) error {
	switch {
	case v.Kind == viewer.KindAnonymous:
		return ErrUnauthenticated
	case !v.Can(p):
		return ErrForbidden
	}
	return nil
}

// QueryRuleFunc adapts a function to privacy.QueryRule.
type QueryRuleFunc func(context.Context, ent.Query) error

// EvalQuery implements privacy.QueryRule.
func (f QueryRuleFunc) EvalQuery(ctx context.Context, q ent.Query) error { return f(ctx, q) }

// QueryMutationRuleFunc applies one function to queries and mutations alike.
type QueryMutationRuleFunc func(ctx context.Context, target any) error

// EvalQuery implements privacy.QueryRule.
func (f QueryMutationRuleFunc) EvalQuery(ctx context.Context, q ent.Query) error { return f(ctx, q) }

// EvalMutation implements privacy.MutationRule.
func (f QueryMutationRuleFunc) EvalMutation(ctx context.Context, m ent.Mutation) error {
	return f(ctx, m)
}

// AllowSystem lets named system tasks through.
func AllowSystem() privacy.QueryMutationRule {
	return privacy.ContextQueryMutationRule(func(ctx context.Context) error {
		if viewer.FromContext(ctx).Kind == viewer.KindSystem {
			return privacy.Allow
		}
		return privacy.Skip
	})
}

// DenyAnonymous stops callers that presented no credentials.
func DenyAnonymous() privacy.QueryMutationRule {
	return privacy.ContextQueryMutationRule(func(ctx context.Context) error {
		if viewer.FromContext(ctx).Kind == viewer.KindAnonymous {
			return ErrUnauthenticated
		}
		return privacy.Skip
	})
}

// AllowOversight lets a super admin read across organizations inside the `admin` namespace.
// It is a query rule only: oversight never writes.
func AllowOversight() privacy.QueryRule {
	return QueryRuleFunc(func(ctx context.Context, _ ent.Query) error {
		if viewer.Oversight(ctx) {
			return privacy.Allow
		}
		return privacy.Skip
	})
}

// DenyAll ends a policy: whatever no earlier rule allowed is forbidden.
func DenyAll() privacy.QueryMutationRule {
	return privacy.ContextQueryMutationRule(func(context.Context) error { return ErrForbidden })
}

// where narrows a query or mutation with p (through ent's generated entql filters) and
// lets the evaluation continue. A type that cannot be filtered is denied, never let through.
func where(ctx context.Context, target any, p entql.P) error {
	narrow := entprivacy.FilterFunc(func(_ context.Context, f entprivacy.Filter) error {
		f.Where(p)
		return privacy.Skip
	})
	if m, ok := target.(ent.Mutation); ok {
		return narrow.EvalMutation(ctx, m)
	}
	return narrow.EvalQuery(ctx, target)
}

// nothing matches no row (an empty IN list is FALSE).
var nothing = entql.FieldIn(FieldID)

func idsAny(ids []gid.ID) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// FilterCurrentOrg scopes rows to the viewer's current organization through field.
// Rows of other organizations then simply do not exist for the caller (NOT_FOUND).
func FilterCurrentOrg(field string) privacy.QueryMutationRule {
	return QueryMutationRuleFunc(func(ctx context.Context, target any) error {
		v := viewer.FromContext(ctx)
		if v.OrgID == "" {
			return where(ctx, target, nothing)
		}
		return where(ctx, target, entql.FieldEQ(field, v.OrgID))
	})
}

// FilterMemberOrgs scopes rows to every organization the viewer belongs to through field.
func FilterMemberOrgs(field string) privacy.QueryMutationRule {
	return QueryMutationRuleFunc(func(ctx context.Context, target any) error {
		return where(ctx, target, entql.FieldIn(field, idsAny(viewer.FromContext(ctx).OrgIDs())...))
	})
}

// mutationID returns the id of an UpdateOne/DeleteOne mutation.
func mutationID(m ent.Mutation) (gid.ID, bool) {
	idm, ok := m.(interface{ ID() (gid.ID, bool) })
	if !ok {
		return "", false
	}
	return idm.ID()
}

// stringField returns the value a mutation sets for a string-kinded field.
func stringField[T ~string](m ent.Mutation, name string) (T, bool) {
	v, ok := m.Field(name)
	if !ok {
		return "", false
	}
	switch s := v.(type) {
	case T:
		return s, true
	case string:
		return T(s), true
	}
	return "", false
}

// onlyFields reports whether m sets, clears, adds or removes nothing but the allowed fields
// and edges (an edge field such as selected_organization_id changes its edge too).
func onlyFields(m ent.Mutation, allowed ...string) bool {
	changed := slices.Concat(m.Fields(), m.ClearedFields(), m.AddedEdges(), m.RemovedEdges(), m.ClearedEdges())
	for _, f := range changed {
		if !slices.Contains(allowed, f) {
			return false
		}
	}
	return true
}

func isSkip(err error) bool { return errors.Is(err, privacy.Skip) }
