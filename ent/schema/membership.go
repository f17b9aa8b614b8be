package schema

import (
	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/privacy"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/rule"
	"github.com/wagate/wagate/internal/viewer"
)

// Membership gives a user a role in an organization.
type Membership struct{ ent.Schema }

func (Membership) Mixin() []ent.Mixin { return []ent.Mixin{withID("mem"), timeMixin{}} }

func (Membership) Fields() []ent.Field {
	return []ent.Field{
		field.String("user_id").GoType(gid.ID("")).Immutable(),
		field.String("organization_id").GoType(gid.ID("")).Immutable(),
		field.Enum("role").GoType(viewer.Role("")).
			Annotations(entgql.Type("Role"), entgql.OrderField("ROLE")),
	}
}

func (Membership) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("user", User.Type).Ref("memberships").Field("user_id").Unique().Required().Immutable().
			Annotations(entgql.Skip(entgql.SkipWhereInput)),
		edge.From("organization", Organization.Type).Ref("members").Field("organization_id").Unique().Required().Immutable().
			Annotations(entgql.Skip(entgql.SkipWhereInput)),
	}
}

func (Membership) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("organization_id", "user_id").Unique(),
		index.Fields("user_id"),
	}
}

func (Membership) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.RelayConnection()}
}

func (Membership) Hooks() []ent.Hook { return []ent.Hook{keepAnOwner()} }

func (Membership) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{
			rule.AllowSystem(),
			rule.DenyAnonymous(),
			rule.FilterMemberOrgs(rule.FieldOrganizationID),
		},
		Mutation: privacy.MutationPolicy{
			rule.AllowSystem(),
			rule.DenyAnonymous(),
			rule.MembershipMutation(),
		},
	}
}
