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

// Chat is a conversation of a session: with a person or a group.
type Chat struct{ ent.Schema }

func (Chat) Mixin() []ent.Mixin { return []ent.Mixin{withID("cht"), timeMixin{}} }

func (Chat) Fields() []ent.Field {
	return []ent.Field{
		field.String("organization_id").GoType(gid.ID("")).Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("session_id").GoType(gid.ID("")).Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("jid").NotEmpty().Immutable().
			Annotations(entgql.MapsTo("jid")),
		field.String("name").Default(""),
		field.Bool("is_group").Default(false).Immutable(),
		field.Time("last_message_at").Optional().Nillable().
			Annotations(entgql.OrderField("LAST_MESSAGE_AT")),
		field.Int("unread_count").Default(0).NonNegative(),
	}
}

func (Chat) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("session", Session.Type).Ref("chats").Field("session_id").Unique().Required().Immutable().
			Annotations(entgql.Skip(entgql.SkipWhereInput | entgql.SkipMutationCreateInput | entgql.SkipMutationUpdateInput)),
	}
}

func (Chat) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("session_id", "jid").Unique(),
		index.Fields("session_id", "last_message_at"),
	}
}

func (Chat) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.RelayConnection()}
}

// Chats are written by the session runtime (a system task) only.
func (Chat) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{
			rule.AllowSystem(),
			rule.DenyAnonymous(),
			rule.FilterCurrentOrg(rule.FieldOrganizationID),
		},
		Mutation: privacy.MutationPolicy{rule.AllowSystem(), rule.DenyAll()},
	}
}
