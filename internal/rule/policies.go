package rule

import (
	"context"

	"entgo.io/ent"
	"entgo.io/ent/entql"
	"entgo.io/ent/privacy"

	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/viewer"
)

// Column and field names the rules rely on. The ent schemas use the same names.
const (
	FieldID             = "id"
	FieldOrganizationID = "organization_id"
	FieldUserID         = "user_id"
	FieldRole           = "role"
)

// Fields a user may change on their own account, and the one a super admin may change on any.
var (
	SelfServiceUserFields = []string{"name", "password_hash", "selected_organization_id", "selected_organization", "updated_at"}
	SuperAdminUserFields  = []string{"disabled", "updated_at"}
)

// FilterVisibleUsers lets a caller see itself, the people it shares an organization with, and
// those who invited it.
func FilterVisibleUsers() privacy.QueryRule {
	return QueryRuleFunc(func(ctx context.Context, q ent.Query) error {
		v := viewer.FromContext(ctx)
		shared := entql.HasEdgeWith("memberships", entql.FieldIn(FieldOrganizationID, idsAny(v.OrgIDs())...))
		if !v.IsUser() {
			return where(ctx, q, shared)
		}
		ps := []entql.P{entql.FieldEQ(FieldID, v.UserID), shared}
		if invited, ok := addressedTo(v); ok {
			// Whoever invited the caller is visible to them, so an invitation can say who sent it.
			ps = append(ps, entql.HasEdgeWith("sent_invitations", invited))
		}
		return where(ctx, q, anyOf(ps))
	})
}

// UserMutation: people edit their own profile, a super admin may (only) disable or re-enable
// an account; everything else about users is done by system tasks (sign-up, log-in).
func UserMutation() privacy.MutationRule {
	return privacy.MutationRuleFunc(func(ctx context.Context, m ent.Mutation) error {
		v := viewer.FromContext(ctx)
		if !m.Op().Is(ent.OpUpdateOne) {
			return ErrForbidden
		}
		id, _ := mutationID(m)
		switch {
		case v.IsUser() && id == v.UserID && onlyFields(m, SelfServiceUserFields...):
			return privacy.Allow
		case v.IsUser() && v.SuperAdmin && onlyFields(m, SuperAdminUserFields...):
			return privacy.Allow
		}
		return ErrForbidden
	})
}

// OrganizationMutation: any person may create an organization (and becomes its OWNER);
// settings need PermUpdateSettings and deletion PermOwnOrganization in that organization.
func OrganizationMutation() privacy.MutationRule {
	return privacy.MutationRuleFunc(func(ctx context.Context, m ent.Mutation) error {
		v := viewer.FromContext(ctx)
		id, _ := mutationID(m)
		switch {
		case m.Op().Is(ent.OpCreate):
			if v.IsUser() {
				return privacy.Allow
			}
			return deny(apperr.Forbidden, "only people create organizations")
		case m.Op().Is(ent.OpUpdateOne):
			if v.CanIn(id, viewer.PermUpdateSettings) {
				return privacy.Allow
			}
		case m.Op().Is(ent.OpDeleteOne):
			if v.CanIn(id, viewer.PermOwnOrganization) {
				return privacy.Allow
			}
		}
		return denyUnlessMember(v, id)
	})
}

// denyUnlessMember hides organizations the caller does not belong to (NOT_FOUND) and
// forbids the rest.
func denyUnlessMember(v *viewer.Viewer, org gid.ID) error {
	if org != "" && v.RoleIn(org) == "" {
		return deny(apperr.NotFound, "organization not found")
	}
	return ErrForbidden
}

// MembershipMutation enforces the membership rows of the role table:
//   - create: the founder of a new organization, the invitee accepting an invitation (with
//     its role), or PermInviteMembers there with a role no higher than the caller's own;
//   - update one (role change) and delete one (removal): PermManageMembers in the current
//     organization;
//   - bulk delete is how a person leaves: it is always narrowed to the caller's own rows.
func MembershipMutation() privacy.MutationRule {
	return privacy.MutationRuleFunc(func(ctx context.Context, m ent.Mutation) error {
		v := viewer.FromContext(ctx)
		switch {
		case m.Op().Is(ent.OpCreate):
			org, _ := stringField[gid.ID](m, FieldOrganizationID)
			user, _ := stringField[gid.ID](m, FieldUserID)
			role, _ := stringField[viewer.Role](m, FieldRole)
			if founded, ok := viewer.Founder(ctx); ok && founded == org && v.IsUser() &&
				user == v.UserID && role == viewer.RoleOwner {
				return privacy.Allow
			}
			if inv, ok := viewer.InviteeOf(ctx); ok && inv.OrgID == org && v.IsUser() &&
				user == v.UserID && role == inv.Role {
				return privacy.Allow
			}
			if !v.CanIn(org, viewer.PermInviteMembers) {
				return denyUnlessMember(v, org)
			}
			if !v.RoleIn(org).AtLeast(role) {
				return deny(apperr.Forbidden, "you cannot grant a role above your own")
			}
			return privacy.Allow
		case m.Op().Is(ent.OpUpdateOne), m.Op().Is(ent.OpDeleteOne):
			if !v.Can(viewer.PermManageMembers) {
				return ErrForbidden
			}
			return where(ctx, m, entql.FieldEQ(FieldOrganizationID, v.OrgID))
		case m.Op().Is(ent.OpDelete):
			if !v.IsUser() {
				return ErrForbidden
			}
			return where(ctx, m, entql.FieldEQ(FieldUserID, v.UserID))
		}
		return ErrForbidden
	})
}

// OrgOwnedMutation guards rows that belong to one organization (sessions, keys, webhooks…):
// the caller needs perm in its current organization, a new row always lands in that
// organization, and updates and deletes only reach rows there.
func OrgOwnedMutation(perm viewer.Permission) privacy.MutationRule {
	return privacy.MutationRuleFunc(func(ctx context.Context, m ent.Mutation) error {
		v := viewer.FromContext(ctx)
		if !v.Can(perm) {
			return ErrForbidden
		}
		if m.Op().Is(ent.OpCreate) {
			// ent's filters do not apply to inserts, so the tenant of a new row is decided here.
			org, ok := stringField[gid.ID](m, FieldOrganizationID)
			if !ok {
				if err := m.SetField(FieldOrganizationID, v.OrgID); err != nil {
					return privacy.Denyf("rule: setting the organization: %v", err)
				}
				return privacy.Allow
			}
			if org != v.OrgID {
				return deny(apperr.NotFound, "organization not found")
			}
			return privacy.Allow
		}
		return where(ctx, m, entql.FieldEQ(FieldOrganizationID, v.OrgID))
	})
}

// FilterVisibleOrganizations shows the caller's organizations, and those that invited it (so
// a pending invitation can name its organization).
func FilterVisibleOrganizations() privacy.QueryRule {
	return QueryRuleFunc(func(ctx context.Context, q ent.Query) error {
		v := viewer.FromContext(ctx)
		member := entql.FieldIn(FieldID, idsAny(v.OrgIDs())...)
		if invited, ok := addressedTo(v); ok {
			return where(ctx, q, entql.Or(member, entql.HasEdgeWith("invitations", invited)))
		}
		return where(ctx, q, member)
	})
}
