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
)

// Event is one entry of an organization's event log: every inbound WhatsApp event, message
// status change and session state change, numbered by a per-organization sequence without
// gaps, and written in the transaction of the change it describes.
type Event struct{ ent.Schema }

func (Event) Mixin() []ent.Mixin { return []ent.Mixin{withID("evt")} }

func (Event) Fields() []ent.Field {
	return []ent.Field{
		field.String("organization_id").GoType(gid.ID("")).Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		// The API shows seq as the event's cursor, a string (ent.Event.Cursor, from the cursor
		// template): mapped here, a query for cursors selects the column without the others.
		field.Int64("seq").Immutable().
			Comment("The event's position in its organization's log: resume a subscription after it with `events(after:)`.").
			Annotations(entgql.Skip(entgql.SkipWhereInput, entgql.SkipMutationCreateInput,
				entgql.SkipMutationUpdateInput), entgql.OrderField("SEQ"), entgql.MapsTo("cursor"), entgql.Type("String")),
		field.Enum("type").Values("MESSAGE_RECEIVED", "MESSAGE_SENT", "MESSAGE_STATUS", "SESSION_STATUS",
			"QR_CODE", "PAIRED", "PRESENCE", "CHAT_STATE", "GROUP_UPDATE", "CALL").Immutable().
			Annotations(entgql.Type("EventType")),
		field.String("session_id").GoType(gid.ID("")).Optional().Nillable().Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("message_id").GoType(gid.ID("")).Optional().Nillable().Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.JSON("payload", map[string]any{}).Immutable().
			Annotations(entgql.Type("Map")),
		field.Time("occurred_at").Immutable(),
		field.Time("created_at").Default(time.Now).Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
	}
}

func (Event) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("organization", Organization.Type).Ref("events").Field("organization_id").
			Unique().Required().Immutable().Annotations(entgql.Skip(entgql.SkipAll)),
		edge.From("session", Session.Type).Ref("events").Field("session_id").Unique().Immutable().
			Annotations(entgql.Skip(entgql.SkipWhereInput | entgql.SkipMutationCreateInput | entgql.SkipMutationUpdateInput)),
		edge.From("message", Message.Type).Ref("events").Field("message_id").Unique().Immutable().
			Annotations(entgql.Skip(entgql.SkipWhereInput | entgql.SkipMutationCreateInput | entgql.SkipMutationUpdateInput)),
	}
}

func (Event) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("organization_id", "seq").Unique(),
		index.Fields("organization_id", "session_id", "seq"),
	}
}

// Bind: inbound messages' events are written in bulk by a statement of wagate's own, and
// handed to subscribers without being read back (see whatsapp's bulk ingest).
func (Event) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.RelayConnection(), bindAnnotation{Enabled: true}}
}

// Events are written by the event log (a system task) only, and never changed.
func (Event) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{
			rule.AllowSystem(),
			rule.DenyAnonymous(),
			rule.FilterCurrentOrg(rule.FieldOrganizationID),
		},
		Mutation: privacy.MutationPolicy{rule.AllowSystem(), rule.DenyAll()},
	}
}

// EventCounter holds the last sequence number of an organization's event log. Its row lock
// orders concurrent writers, so numbers commit in order and readers never skip one.
type EventCounter struct{ ent.Schema }

func (EventCounter) Fields() []ent.Field {
	return []ent.Field{
		// The organization's ID.
		field.String("id").GoType(gid.ID("")).Immutable(),
		field.Int64("last_seq"),
	}
}

func (EventCounter) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Skip(entgql.SkipAll)}
}

func (EventCounter) Policy() ent.Policy {
	return privacy.Policy{
		Query:    privacy.QueryPolicy{rule.AllowSystem(), rule.DenyAll()},
		Mutation: privacy.MutationPolicy{rule.AllowSystem(), rule.DenyAll()},
	}
}
