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

// SessionCommand is an action on a WhatsApp session asked of the replica that runs it:
// any replica accepts the request, writes this row, and the owner carries it out and
// writes the result back. The row, not the notification that hints at it, is the
// request, so an owner that missed the hint still finds it.
type SessionCommand struct{ ent.Schema }

func (SessionCommand) Mixin() []ent.Mixin {
	return []ent.Mixin{withInternalID("cmd"), timeMixin{}}
}

func (SessionCommand) Fields() []ent.Field {
	return []ent.Field{
		field.String("session_id").GoType(gid.ID("")).Immutable(),
		field.String("kind").Immutable(),
		field.Bytes("args").Optional().Immutable(),
		// PENDING until a replica claims it; RUNNING while it runs; DONE or FAILED after;
		// EXPIRED when the caller stopped waiting before anyone claimed it.
		field.Enum("status").Values("PENDING", "RUNNING", "DONE", "FAILED", "EXPIRED").Default("PENDING"),
		field.Bytes("result").Optional(),
		// The engine error the owner met, as a stable name the caller maps back (see
		// whatsapp.ErrorName), and its text.
		field.String("error_name").Optional(),
		field.String("error").Optional(),
	}
}

func (SessionCommand) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("session", Session.Type).Ref("commands").Field("session_id").Unique().Required().Immutable(),
	}
}

func (SessionCommand) Indexes() []ent.Index {
	return []ent.Index{index.Fields("session_id", "status", "created_at"), index.Fields("status", "created_at")}
}

func (SessionCommand) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Skip(entgql.SkipAll)}
}

func (SessionCommand) Policy() ent.Policy {
	return privacy.Policy{
		Query:    privacy.QueryPolicy{rule.AllowSystem(), rule.DenyAll()},
		Mutation: privacy.MutationPolicy{rule.AllowSystem(), rule.DenyAll()},
	}
}
