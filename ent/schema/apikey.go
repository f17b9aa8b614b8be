package schema

import (
	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/privacy"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/rule"
	"github.com/wagate/wagate/internal/viewer"
)

// APIKey lets an integrator act in one organization with a fixed role. The secret is shown
// once; only its hash is stored, found by its public prefix.
type APIKey struct{ ent.Schema }

func (APIKey) Mixin() []ent.Mixin { return []ent.Mixin{withID("key"), timeMixin{}} }

func (APIKey) Fields() []ent.Field {
	return []ent.Field{
		field.String("organization_id").GoType(gid.ID("")).Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("name").MaxRuneLen(100).NotEmpty(),
		field.String("prefix").MaxLen(16).NotEmpty().Unique().Immutable(),
		field.Bytes("secret_hash").Sensitive().Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.Enum("role").GoType(viewer.Role("")).Immutable().
			Annotations(entgql.Type("Role")),
		field.String("created_by_id").GoType(gid.ID("")).Optional().Nillable().Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.Time("last_used_at").Optional().Nillable(),
		field.Time("expires_at").Optional().Nillable().Immutable(),
		field.Time("revoked_at").Optional().Nillable(),
	}
}

func (APIKey) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("organization", Organization.Type).Ref("api_keys").Field("organization_id").
			Unique().Required().Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		edge.To("audit_entries", AuditEntry.Type).
			Annotations(entsql.OnDelete(entsql.SetNull), entgql.Skip(entgql.SkipAll)),
		edge.To("sent_messages", Message.Type).
			Annotations(entsql.OnDelete(entsql.SetNull), entgql.Skip(entgql.SkipAll)),
		edge.From("created_by", User.Type).Ref("created_api_keys").Field("created_by_id").Unique().Immutable().
			Annotations(entgql.Skip(entgql.SkipWhereInput | entgql.SkipMutationCreateInput | entgql.SkipMutationUpdateInput)),
	}
}

func (APIKey) Indexes() []ent.Index {
	return []ent.Index{index.Fields("organization_id", "created_at")}
}

func (APIKey) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Type("APIKey")}
}

func (APIKey) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{
			rule.AllowSystem(),
			rule.DenyAnonymous(),
			rule.FilterCurrentOrg(rule.FieldOrganizationID),
			rule.FilterAPIKeysForNonAdmins(),
		},
		Mutation: privacy.MutationPolicy{
			rule.AllowSystem(),
			rule.DenyAnonymous(),
			rule.OnCreate(rule.RoleCeiling(), rule.DenyRole(viewer.RoleOwner, "API keys are ADMIN or MEMBER")),
			rule.OrgOwnedMutation(viewer.PermManageAPIKeys),
		},
	}
}
