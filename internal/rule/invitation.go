package rule

import (
	"context"

	"entgo.io/ent"
	"entgo.io/ent/entql"
	"entgo.io/ent/privacy"

	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/viewer"
)

// Invitation fields the rules use.
const (
	FieldEmail     = "email"
	FieldStatus    = "status"
	FieldTokenHash = "token_hash"
)

// addressedTo matches invitations to the viewer's verified address: their organization and
// inviter become visible to the invitee, also after answering (the answer names them).
func addressedTo(v *viewer.Viewer) (entql.P, bool) {
	if !v.IsUser() || !v.EmailVerified {
		return nil, false
	}
	return entql.FieldEQ(FieldEmail, v.Email), true
}

// AllowInvitationToken lets a caller holding an invitation token read that one invitation.
func AllowInvitationToken() privacy.QueryRule {
	return QueryRuleFunc(func(ctx context.Context, q ent.Query) error {
		hash, ok := viewer.InvitationToken(ctx)
		if !ok {
			return privacy.Skip
		}
		if err := where(ctx, q, entql.FieldEQ(FieldTokenHash, hash)); !isSkip(err) {
			return err
		}
		return privacy.Allow
	})
}

// FilterInvitations shows an organization's invitations to those who may invite, and a
// person the invitations addressed to them, in any organization.
func FilterInvitations() privacy.QueryRule {
	return QueryRuleFunc(func(ctx context.Context, q ent.Query) error {
		v := viewer.FromContext(ctx)
		var ps []entql.P
		if v.Can(viewer.PermInviteMembers) {
			ps = append(ps, entql.FieldEQ(FieldOrganizationID, v.OrgID))
		}
		if v.IsUser() && v.EmailVerified {
			ps = append(ps, entql.FieldEQ(FieldEmail, v.Email))
		}
		return where(ctx, q, anyOf(ps))
	})
}

// anyOf ORs ps; no predicate matches nothing.
func anyOf(ps []entql.P) entql.P {
	switch len(ps) {
	case 0:
		return nothing
	case 1:
		return ps[0]
	}
	return entql.Or(ps[0], ps[1], ps[2:]...)
}

// AllowInviteeResponse lets the invitee mark their invitation answered, and nothing else:
// the change is narrowed to that one row.
func AllowInviteeResponse() privacy.MutationRule {
	return privacy.MutationRuleFunc(func(ctx context.Context, m ent.Mutation) error {
		inv, ok := viewer.InviteeOf(ctx)
		if !ok || !(m.Op().Is(ent.OpUpdate) || m.Op().Is(ent.OpUpdateOne)) ||
			!onlyFields(m, FieldStatus, "responded_at", "updated_at") {
			return privacy.Skip
		}
		if err := where(ctx, m, entql.FieldEQ(FieldID, inv.InvitationID)); !isSkip(err) {
			return err
		}
		return privacy.Allow
	})
}

// OnCreate applies rules to creates only.
func OnCreate(rules ...privacy.MutationRule) privacy.MutationRule {
	return privacy.OnMutationOperation(privacy.MutationPolicy(rules), ent.OpCreate)
}

// RoleCeiling refuses to create a row granting a role above the caller's own.
func RoleCeiling() privacy.MutationRule {
	return privacy.MutationRuleFunc(func(ctx context.Context, m ent.Mutation) error {
		role, ok := stringField[viewer.Role](m, FieldRole)
		if ok && !viewer.FromContext(ctx).Role.AtLeast(role) {
			return deny(apperr.Forbidden, "you cannot grant a role above your own")
		}
		return privacy.Skip
	})
}

// DenyRole refuses rows with the given role.
func DenyRole(role viewer.Role, msg string) privacy.MutationRule {
	return privacy.MutationRuleFunc(func(_ context.Context, m ent.Mutation) error {
		if r, _ := stringField[viewer.Role](m, FieldRole); r == role {
			return &apperr.Error{Code: apperr.BadUserInput, Field: "role", Message: msg, Err: privacy.Deny}
		}
		return privacy.Skip
	})
}

// FilterAPIKeysForNonAdmins shows callers who may not manage keys only the key they call with.
func FilterAPIKeysForNonAdmins() privacy.QueryRule {
	return QueryRuleFunc(func(ctx context.Context, q ent.Query) error {
		v := viewer.FromContext(ctx)
		if v.Can(viewer.PermManageAPIKeys) {
			return privacy.Skip
		}
		return where(ctx, q, entql.FieldEQ(FieldID, v.APIKeyID))
	})
}

// RequireQuery lets only callers with permission p in their current organization read.
func RequireQuery(p viewer.Permission) privacy.QueryRule {
	return QueryRuleFunc(func(ctx context.Context, _ ent.Query) error {
		if err := Require(viewer.FromContext(ctx), p); err != nil {
			return err
		}
		return privacy.Skip
	})
}
