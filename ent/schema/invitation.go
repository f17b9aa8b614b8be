package schema

import (
	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/privacy"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/rule"
	"github.com/wagate/wagate/internal/viewer"
)

// Invitation asks someone, by e-mail, to join an organization. The e-mailed token is stored
// only as a hash.
type Invitation struct{ ent.Schema }

func (Invitation) Mixin() []ent.Mixin { return []ent.Mixin{withID("inv"), timeMixin{}} }

func (Invitation) Fields() []ent.Field {
	return []ent.Field{
		field.String("organization_id").GoType(gid.ID("")).Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		// Stored lower-cased, like User.email.
		field.String("email").MaxRuneLen(254).NotEmpty().Immutable(),
		field.Enum("role").GoType(viewer.Role("")).Immutable().
			Annotations(entgql.Type("Role")),
		// EXPIRED is never stored: a PENDING invitation past expires_at reads as EXPIRED.
		field.Enum("status").Values("PENDING", "ACCEPTED", "DECLINED", "REVOKED", "EXPIRED").Default("PENDING").
			Annotations(entgql.Type("InvitationStatus")),
		field.Bytes("token_hash").Sensitive().Unique().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("invited_by_id").GoType(gid.ID("")).Optional().Nillable().Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.Time("expires_at"),
		field.Time("responded_at").Optional().Nillable().
			Annotations(entgql.Skip(entgql.SkipAll)),
	}
}

func (Invitation) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("organization", Organization.Type).Ref("invitations").Field("organization_id").
			Unique().Required().Immutable().
			Annotations(entgql.Skip(entgql.SkipWhereInput | entgql.SkipMutationCreateInput | entgql.SkipMutationUpdateInput)),
		edge.From("invited_by", User.Type).Ref("sent_invitations").Field("invited_by_id").Unique().Immutable().
			Annotations(entgql.Skip(entgql.SkipWhereInput | entgql.SkipMutationCreateInput | entgql.SkipMutationUpdateInput)),
	}
}

func (Invitation) Indexes() []ent.Index {
	return []ent.Index{index.Fields("organization_id", "email"), index.Fields("email", "status")}
}

func (Invitation) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{
			rule.AllowSystem(),
			rule.DenyAnonymous(),
			rule.AllowInvitationToken(),
			rule.FilterInvitations(),
		},
		Mutation: privacy.MutationPolicy{
			rule.AllowSystem(),
			rule.DenyAnonymous(),
			rule.AllowInviteeResponse(),
			rule.OnCreate(rule.RoleCeiling()),
			rule.OrgOwnedMutation(viewer.PermInviteMembers),
		},
	}
}
