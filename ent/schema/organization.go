package schema

import (
	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/privacy"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"

	"github.com/wagate/wagate/internal/rule"
)

// Organization owns WhatsApp sessions, API keys and webhooks; people reach them as members.
type Organization struct{ ent.Schema }

func (Organization) Mixin() []ent.Mixin { return []ent.Mixin{withID("org"), timeMixin{}} }

func (Organization) Fields() []ent.Field {
	return []ent.Field{
		field.String("name").MaxRuneLen(100).NotEmpty().
			Annotations(entgql.OrderField("NAME")),
		field.String("slug").MaxRuneLen(64).NotEmpty().Unique(),
		// Settings are exposed together as Organization.settings.
		field.String("timezone").Default("UTC").
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("date_format").Default("YYYY-MM-DD").
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.Bool("mask_phone_numbers").Default(false).
			Annotations(entgql.Skip(entgql.SkipAll)),
		// Personal marks the organization created at sign-up.
		field.Bool("personal").Default(false).Immutable(),
	}
}

func (Organization) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("members", Membership.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.RelayConnection(), entgql.Skip(entgql.SkipWhereInput|entgql.SkipMutationCreateInput|entgql.SkipMutationUpdateInput)),
		edge.To("sessions", Session.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.RelayConnection(), entgql.Skip(entgql.SkipWhereInput|entgql.SkipMutationCreateInput|entgql.SkipMutationUpdateInput)),
		edge.To("invitations", Invitation.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip(entgql.SkipAll)),
		edge.To("api_keys", APIKey.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip(entgql.SkipAll)),
		edge.To("audit_entries", AuditEntry.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip(entgql.SkipAll)),
		edge.To("events", Event.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip(entgql.SkipAll)),
		edge.From("selected_by", User.Type).Ref("selected_organization").
			Annotations(entgql.Skip(entgql.SkipAll)),
	}
}

// Bind: a query that reads nothing of the current organization but its ID and lists is
// answered without loading its row (see tenancy.Service.Current).
func (Organization) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.RelayConnection(), bindAnnotation{Enabled: true}}
}

func (Organization) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{
			rule.AllowSystem(),
			rule.DenyAnonymous(),
			rule.AllowOversight(),
			rule.FilterVisibleOrganizations(),
		},
		Mutation: privacy.MutationPolicy{
			rule.AllowSystem(),
			rule.DenyAnonymous(),
			rule.OrganizationMutation(),
		},
	}
}
