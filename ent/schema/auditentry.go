package schema

import (
	"time"

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

// AuditEntry records one change to an organization: who did what to which object. It is
// append-only, written by the audit package in the transaction of the change.
type AuditEntry struct{ ent.Schema }

func (AuditEntry) Mixin() []ent.Mixin { return []ent.Mixin{withID("aud")} }

func (AuditEntry) Fields() []ent.Field {
	return []ent.Field{
		field.String("organization_id").GoType(gid.ID("")).Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("action").MaxRuneLen(64).NotEmpty().Immutable(),
		field.String("actor_user_id").GoType(gid.ID("")).Optional().Nillable().Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("actor_api_key_id").GoType(gid.ID("")).Optional().Nillable().Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("target_type").MaxRuneLen(32).Immutable(),
		field.String("target_id").GoType(gid.ID("")).Immutable().
			Annotations(entgql.Type("ID")),
		field.JSON("details", map[string]any{}).Optional().Immutable().
			Annotations(entgql.Type("Map")),
		field.Time("created_at").Default(time.Now).Immutable().
			Annotations(entgql.OrderField("CREATED_AT")),
	}
}

func (AuditEntry) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("organization", Organization.Type).Ref("audit_entries").Field("organization_id").
			Unique().Required().Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		edge.From("actor_user", User.Type).Ref("audit_entries").Field("actor_user_id").Unique().Immutable().
			Annotations(entgql.Skip(entgql.SkipWhereInput | entgql.SkipMutationCreateInput | entgql.SkipMutationUpdateInput)),
		edge.From("actor_api_key", APIKey.Type).Ref("audit_entries").Field("actor_api_key_id").Unique().Immutable().
			Annotations(entgql.MapsTo("actorAPIKey"), entgql.Skip(entgql.SkipWhereInput|entgql.SkipMutationCreateInput|entgql.SkipMutationUpdateInput)),
	}
}

func (AuditEntry) Indexes() []ent.Index {
	return []ent.Index{index.Fields("organization_id", "id")}
}

func (AuditEntry) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.RelayConnection()}
}

func (AuditEntry) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{
			rule.AllowSystem(),
			rule.DenyAnonymous(),
			rule.RequireQuery(viewer.PermReadAuditLog),
			rule.FilterCurrentOrg(rule.FieldOrganizationID),
		},
		// Only the audit package, as a system task, writes entries; nobody edits them.
		Mutation: privacy.MutationPolicy{rule.AllowSystem(), rule.DenyAll()},
	}
}
