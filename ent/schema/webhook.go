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

// Webhook is an endpoint of an organization that receives its events, signed per the
// Standard Webhooks specification. The signing secret must be usable for HMAC, so it is
// stored encrypted (AES-GCM, see internal/webhook), never hashed, and shown only when it is
// created or rotated.
type Webhook struct{ ent.Schema }

func (Webhook) Mixin() []ent.Mixin { return []ent.Mixin{withID("whk"), timeMixin{}} }

func (Webhook) Fields() []ent.Field {
	return []ent.Field{
		field.String("organization_id").GoType(gid.ID("")).Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("url").MaxLen(2048).NotEmpty().
			Annotations(entgql.Type("String")),
		// The event types sent; exposed as [EventType!]! by a resolver.
		field.Strings("event_types").
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.Bool("enabled").Default(true),
		// When the endpoint started failing without a success since; null while it works.
		field.Time("failing_since").Optional().Nillable(),
		// Why the endpoint was disabled automatically; null when enabled or disabled by hand.
		field.String("disabled_reason").Optional().Nillable(),
		field.Bytes("secret_encrypted").Sensitive().
			Annotations(entgql.Skip(entgql.SkipAll)),
		// After a rotation the previous secret keeps signing until previous_secret_expires_at.
		field.Bytes("previous_secret_encrypted").Sensitive().Optional().Nillable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.Time("previous_secret_expires_at").Optional().Nillable().
			Annotations(entgql.Skip(entgql.SkipAll)),
	}
}

func (Webhook) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("organization", Organization.Type).Field("organization_id").
			Unique().Required().Immutable().
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip(entgql.SkipAll)),
		edge.To("deliveries", WebhookDelivery.Type).
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip(entgql.SkipAll)),
	}
}

func (Webhook) Indexes() []ent.Index {
	return []ent.Index{index.Fields("organization_id", "created_at")}
}

func (Webhook) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Skip(entgql.SkipWhereInput)}
}

// Webhooks are managed, and read, by ADMIN and OWNER (and ADMIN API keys) of the current
// organization only; the delivery worker reads and updates them as a system task.
func (Webhook) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{
			rule.AllowSystem(),
			rule.DenyAnonymous(),
			rule.RequireQuery(viewer.PermManageWebhooks),
			rule.FilterCurrentOrg(rule.FieldOrganizationID),
		},
		Mutation: privacy.MutationPolicy{
			rule.AllowSystem(),
			rule.DenyAnonymous(),
			rule.OrgOwnedMutation(viewer.PermManageWebhooks),
		},
	}
}

// WebhookDelivery is one event to send to one webhook: written in the transaction of the
// event, so a crash loses none, and claimed by delivery workers until it succeeds or fails
// for good.
type WebhookDelivery struct{ ent.Schema }

func (WebhookDelivery) Mixin() []ent.Mixin { return []ent.Mixin{withID("whd"), timeMixin{}} }

func (WebhookDelivery) Fields() []ent.Field {
	return []ent.Field{
		field.String("organization_id").GoType(gid.ID("")).Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("webhook_id").GoType(gid.ID("")).Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("event_id").GoType(gid.ID("")).Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.Enum("status").Values("PENDING", "SUCCEEDED", "FAILED").Default("PENDING").
			Annotations(entgql.Type("WebhookDeliveryStatus")),
		// Attempts made so far, counted when a worker claims the delivery.
		field.Int("attempts").Default(0),
		// Attempts before this one that belong to earlier rounds (before a redelivery): the
		// retry schedule counts from here.
		field.Int("round_start").Default(0).
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.Int("last_status_code").Optional().Nillable(),
		field.String("last_error").Optional().Nillable(),
		field.Time("last_attempt_at").Optional().Nillable(),
		// When the next attempt is due; null once the delivery succeeded or failed for good.
		field.Time("next_attempt_at").Optional().Nillable(),
		// A worker holds the delivery until then; past it, the attempt is presumed lost (the
		// worker died) and another worker may try again.
		field.Time("leased_until").Optional().Nillable().
			Annotations(entgql.Skip(entgql.SkipAll)),
	}
}

func (WebhookDelivery) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("webhook", Webhook.Type).Ref("deliveries").Field("webhook_id").
			Unique().Required().Immutable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		edge.To("event", Event.Type).Field("event_id").
			Unique().Required().Immutable().
			Annotations(entsql.OnDelete(entsql.Cascade),
				entgql.Skip(entgql.SkipWhereInput|entgql.SkipMutationCreateInput|entgql.SkipMutationUpdateInput)),
		edge.To("organization", Organization.Type).Field("organization_id").
			Unique().Required().Immutable().
			Annotations(entsql.OnDelete(entsql.Cascade), entgql.Skip(entgql.SkipAll)),
	}
}

func (WebhookDelivery) Indexes() []ent.Index {
	return []ent.Index{
		// Workers look for due deliveries.
		index.Fields("status", "next_attempt_at"),
		// An endpoint's log, newest first.
		index.Fields("webhook_id", "id"),
		// One delivery per event and endpoint.
		index.Fields("event_id", "webhook_id").Unique(),
	}
}

func (WebhookDelivery) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.RelayConnection(), entgql.Skip(entgql.SkipWhereInput)}
}

func (WebhookDelivery) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{
			rule.AllowSystem(),
			rule.DenyAnonymous(),
			rule.RequireQuery(viewer.PermManageWebhooks),
			rule.FilterCurrentOrg(rule.FieldOrganizationID),
		},
		Mutation: privacy.MutationPolicy{
			rule.AllowSystem(),
			rule.DenyAnonymous(),
			rule.OrgOwnedMutation(viewer.PermManageWebhooks),
		},
	}
}
