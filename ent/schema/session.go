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

// Session is one WhatsApp number (a linked device) owned by an organization.
type Session struct{ ent.Schema }

func (Session) Mixin() []ent.Mixin { return []ent.Mixin{withID("ses"), timeMixin{}} }

func (Session) Fields() []ent.Field {
	return []ent.Field{
		field.String("organization_id").GoType(gid.ID("")).Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("name").MaxRuneLen(100).NotEmpty().
			Annotations(entgql.OrderField("NAME")),
		field.Enum("engine").Values("WHATSAPP", "SANDBOX").Immutable().
			Annotations(entgql.Type("Engine")),
		field.Enum("status").
			Values("NEW", "PAIRING", "CONNECTING", "CONNECTED", "DISCONNECTED",
				"LOGGED_OUT", "REPLACED", "BANNED", "OUTDATED", "FAILED").
			Default("NEW").
			Annotations(entgql.Type("SessionStatus")),
		field.String("status_reason").Default(""),
		// The raw number; the API masks it for MEMBER viewers when the organization asks to.
		field.String("phone_number").Optional().Nillable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("push_name").Optional().Nillable(),
		field.Time("last_connected_at").Optional().Nillable(),
		// The linked device's address, set at pairing and cleared at logout.
		field.String("device_jid").Optional().Nillable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("lid").Optional().Nillable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		// Whether the session should be connected: set by connectSession, cleared by
		// disconnectSession and terminal states; the manager reconnects such sessions at start.
		field.Bool("autoconnect").Default(false).
			Annotations(entgql.Skip(entgql.SkipAll)),
	}
}

func (Session) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("chats", Chat.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip(entgql.SkipAll)),
		edge.To("messages", Message.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip(entgql.SkipAll)),
		edge.To("commands", SessionCommand.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip(entgql.SkipAll)),
		edge.To("events", Event.Type).
			Annotations(entsql.OnDelete(entsql.SetNull), entgql.Skip(entgql.SkipAll)),
		edge.From("organization", Organization.Type).Ref("sessions").Field("organization_id").
			Unique().Required().Immutable().
			Annotations(entgql.Skip(entgql.SkipWhereInput | entgql.SkipMutationCreateInput | entgql.SkipMutationUpdateInput)),
	}
}

func (Session) Indexes() []ent.Index {
	return []ent.Index{index.Fields("organization_id", "created_at"), index.Fields("status")}
}

func (Session) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.RelayConnection()}
}

func (Session) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{
			rule.AllowSystem(),
			rule.DenyAnonymous(),
			rule.AllowOversight(),
			rule.FilterCurrentOrg(rule.FieldOrganizationID),
		},
		Mutation: privacy.MutationPolicy{
			rule.AllowSystem(),
			rule.DenyAnonymous(),
			rule.OrgOwnedMutation(viewer.PermManageSessions),
		},
	}
}
