package schema

import (
	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/privacy"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"

	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/rule"
)

// User is a person with an account. Users belong to organizations through memberships.
type User struct{ ent.Schema }

func (User) Mixin() []ent.Mixin { return []ent.Mixin{withID("usr"), timeMixin{}} }

func (User) Fields() []ent.Field {
	return []ent.Field{
		// Stored lower-cased, so the unique index makes addresses unique case-insensitively.
		field.String("email").MaxRuneLen(254).NotEmpty().Unique().
			Annotations(entgql.OrderField("EMAIL")),
		field.String("name").MaxRuneLen(200).Default(""),
		field.String("password_hash").Sensitive().NotEmpty().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.Bool("is_super_admin").Default(false),
		field.Bool("disabled").Default(false),
		// Set once the user proved they read this address (a verification or invitation link).
		field.Time("email_verified_at").Optional().Nillable(),
		field.Bytes("email_verification_hash").Optional().Nillable().Sensitive().Unique().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.Time("email_verification_expires_at").Optional().Nillable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("selected_organization_id").GoType(gid.ID("")).Optional().Nillable().
			Annotations(entgql.Skip(entgql.SkipAll)),
	}
}

func (User) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("memberships", Membership.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip(entgql.SkipAll)),
		edge.To("auth_tokens", AuthToken.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip(entgql.SkipAll)),
		edge.To("sent_invitations", Invitation.Type).
			Annotations(entsql.OnDelete(entsql.SetNull), entgql.Skip(entgql.SkipAll)),
		edge.To("created_api_keys", APIKey.Type).
			Annotations(entsql.OnDelete(entsql.SetNull), entgql.Skip(entgql.SkipAll)),
		edge.To("audit_entries", AuditEntry.Type).
			Annotations(entsql.OnDelete(entsql.SetNull), entgql.Skip(entgql.SkipAll)),
		edge.To("sent_messages", Message.Type).
			Annotations(entsql.OnDelete(entsql.SetNull), entgql.Skip(entgql.SkipAll)),
		edge.To("selected_organization", Organization.Type).Unique().Field("selected_organization_id").
			Annotations(entsql.OnDelete(entsql.SetNull), entgql.Skip(entgql.SkipAll)),
	}
}

func (User) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.RelayConnection()}
}

func (User) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{
			rule.AllowSystem(),
			rule.DenyAnonymous(),
			rule.AllowOversight(),
			rule.FilterVisibleUsers(),
		},
		Mutation: privacy.MutationPolicy{
			rule.AllowSystem(),
			rule.DenyAnonymous(),
			rule.UserMutation(),
		},
	}
}
