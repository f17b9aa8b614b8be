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

// Message is a WhatsApp message of a session, inbound or outbound. An outbound message is
// first a PENDING row (the outbox) with its WhatsApp ID already chosen; the session's
// runtime sends it and records what happens to it.
type Message struct{ ent.Schema }

func (Message) Mixin() []ent.Mixin { return []ent.Mixin{withID("msg"), timeMixin{}} }

func (Message) Fields() []ent.Field {
	return []ent.Field{
		field.String("organization_id").GoType(gid.ID("")).Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("session_id").GoType(gid.ID("")).Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("chat_jid").NotEmpty().Immutable().
			Annotations(entgql.MapsTo("chatJID")),
		field.String("sender_jid").Default("").Immutable().
			Annotations(entgql.MapsTo("senderJID")),
		// The sender's number, masked for MEMBER viewers when the organization asks to.
		field.String("sender_phone").Optional().Nillable().Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("push_name").Default("").Immutable(),
		field.Bool("from_me").Immutable(),
		field.Enum("direction").Values("INBOUND", "OUTBOUND").Immutable().
			Annotations(entgql.Type("Direction")),
		field.Enum("kind").Values("TEXT", "IMAGE", "VIDEO", "AUDIO", "DOCUMENT", "STICKER", "LOCATION",
			"CONTACT", "REACTION", "POLL", "OTHER").Immutable().
			Annotations(entgql.Type("MessageKind")),
		field.String("text").Optional().Nillable(),
		field.Enum("status").Values("PENDING", "SENT", "DELIVERED", "READ", "FAILED").
			Annotations(entgql.Type("MessageStatus")),
		// Why an outbound message FAILED.
		field.String("error").Optional().Nillable(),
		field.String("wa_message_id").NotEmpty().Immutable().
			Annotations(entgql.MapsTo("waMessageID")),
		field.Time("timestamp").
			Annotations(entgql.OrderField("TIMESTAMP")),
		field.String("reply_to").Optional().Nillable().Immutable().
			Annotations(entgql.MapsTo("replyTo")),
		// A reaction's target, by its WhatsApp ID.
		field.String("target_wa_id").Optional().Nillable().Immutable().
			Annotations(entgql.MapsTo("targetWAMessageID")),
		field.Bool("edited").Default(false),
		field.Bool("revoked").Default(false),
		field.String("media_mime").Optional().Nillable().Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("media_name").Optional().Nillable().Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.Int64("media_size").Optional().Nillable().Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		// How the engine downloads the media again (opaque to wagate).
		field.Bytes("media_descriptor").Optional().Nillable().Sensitive().
			Annotations(entgql.Skip(entgql.SkipAll)),
		// Outbound media waiting to be sent; cleared once WhatsApp has it.
		field.Bytes("media_data").Optional().Nillable().Sensitive().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.JSON("extra", map[string]any{}).Optional().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("sent_by_id").GoType(gid.ID("")).Optional().Nillable().Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("sent_by_api_key_id").GoType(gid.ID("")).Optional().Nillable().Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("idempotency_key").MaxRuneLen(200).Optional().Nillable().Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.Int("attempts").Default(0).NonNegative().
			Annotations(entgql.Skip(entgql.SkipAll)),
	}
}

func (Message) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("events", Event.Type).
			Annotations(entsql.OnDelete(entsql.SetNull), entgql.Skip(entgql.SkipAll)),
		edge.From("session", Session.Type).Ref("messages").Field("session_id").Unique().Required().Immutable().
			Annotations(entgql.Skip(entgql.SkipWhereInput | entgql.SkipMutationCreateInput | entgql.SkipMutationUpdateInput)),
		edge.From("sent_by", User.Type).Ref("sent_messages").Field("sent_by_id").Unique().Immutable().
			Annotations(entgql.Skip(entgql.SkipWhereInput | entgql.SkipMutationCreateInput | entgql.SkipMutationUpdateInput)),
		edge.From("sent_by_api_key", APIKey.Type).Ref("sent_messages").Field("sent_by_api_key_id").Unique().Immutable().
			Annotations(entgql.MapsTo("sentByAPIKey"), entgql.Skip(entgql.SkipWhereInput|entgql.SkipMutationCreateInput|entgql.SkipMutationUpdateInput)),
	}
}

func (Message) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("session_id", "wa_message_id").Unique(),
		index.Fields("session_id", "idempotency_key").Unique(),
		index.Fields("session_id", "chat_jid", "timestamp"),
		index.Fields("session_id", "status", "direction"),
	}
}

// Bind: a simulated message is answered with the row the bulk statement wrote (see
// whatsapp.Manager.Simulate).
func (Message) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.RelayConnection(), bindAnnotation{Enabled: true}}
}

// Members read and send; everything else is the session runtime's (a system task).
func (Message) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{
			rule.AllowSystem(),
			rule.DenyAnonymous(),
			rule.FilterCurrentOrg(rule.FieldOrganizationID),
		},
		Mutation: privacy.MutationPolicy{
			rule.AllowSystem(),
			rule.DenyAnonymous(),
			rule.OnCreate(rule.OrgOwnedMutation(viewer.PermSendMessages)),
			rule.DenyAll(),
		},
	}
}
