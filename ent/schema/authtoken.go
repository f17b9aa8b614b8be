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
)

// AuthToken is a user's session token. Only its SHA-256 is stored; the auth package is the
// only reader and writer, as a system task.
type AuthToken struct{ ent.Schema }

func (AuthToken) Mixin() []ent.Mixin { return []ent.Mixin{withInternalID("tok"), timeMixin{}} }

func (AuthToken) Fields() []ent.Field {
	return []ent.Field{
		field.String("user_id").GoType(gid.ID("")).Immutable(),
		field.Bytes("token_hash").Sensitive().Unique().Immutable(),
		field.Time("expires_at"),
		field.String("user_agent").MaxRuneLen(256).Default(""),
	}
}

func (AuthToken) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("user", User.Type).Ref("auth_tokens").Field("user_id").Unique().Required().Immutable(),
	}
}

func (AuthToken) Indexes() []ent.Index {
	return []ent.Index{index.Fields("user_id"), index.Fields("expires_at")}
}

func (AuthToken) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Skip(entgql.SkipAll)}
}

func (AuthToken) Policy() ent.Policy {
	return privacy.Policy{
		Query:    privacy.QueryPolicy{rule.AllowSystem(), rule.DenyAll()},
		Mutation: privacy.MutationPolicy{rule.AllowSystem(), rule.DenyAll()},
	}
}
