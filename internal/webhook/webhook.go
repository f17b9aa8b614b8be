// Package webhook delivers each organization's events to its webhooks: endpoints managed
// through the API (ADMIN and OWNER), deliveries written in the transaction of every matching
// event, and workers that POST them signed per the Standard Webhooks specification, retrying
// with backoff until they succeed or their retry window ends.
package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"time"

	"entgo.io/contrib/entgql"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/event"
	"github.com/wagate/wagate/ent/webhook"
	"github.com/wagate/wagate/ent/webhookdelivery"
	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/audit"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/metrics"
	"github.com/wagate/wagate/internal/page"
	"github.com/wagate/wagate/internal/rule"
	"github.com/wagate/wagate/internal/viewer"
)

// Options configure the service.
type Options struct {
	// Keys seal the signing secrets at rest. Required.
	Keys *Keyring
	// AllowPrivate lets webhooks reach loopback, private, link-local and metadata addresses
	// (WAGATE_WEBHOOK_ALLOW_PRIVATE): for development and tests only.
	AllowPrivate bool
	// RotationOverlap is how long a rotated-out secret keeps signing; 0 means 24 h.
	RotationOverlap time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Resolver resolves webhook hosts when they are saved; nil means net.DefaultResolver.
	Resolver Resolver
	Log      *slog.Logger
	// Metrics counts delivery attempts; nil counts nothing.
	Metrics *metrics.Metrics
}

// Service manages webhooks and enqueues their deliveries.
type Service struct {
	client *ent.Client
	opts   Options
	// wake tells this process's workers that deliveries were enqueued.
	wake     chan struct{}
	interest *interest
}

// New returns the service, and installs on client the hooks that keep its cache of
// organizations' webhooks current (see watchChanges).
func New(client *ent.Client, opts Options) *Service {
	if opts.Keys == nil {
		panic("webhook: Options.Keys is required")
	}
	if opts.RotationOverlap <= 0 {
		opts.RotationOverlap = 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	s := &Service{client: client, opts: opts, wake: make(chan struct{}, 1), interest: newInterest(opts.Now)}
	if client != nil { // nil in tests of the address guard
		s.watchChanges(client)
	}
	return s
}

func (s *Service) now() time.Time { return s.opts.Now() }

// notify wakes a worker of this process.
func (s *Service) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// CreateInput describes a new webhook.
type CreateInput struct {
	URL string
	// EventTypes nil means every type.
	EventTypes []event.Type
}

// UpdateInput changes a webhook; nil fields stay as they are.
type UpdateInput struct {
	ID         gid.ID
	URL        *string
	EventTypes []event.Type
	Enabled    *bool
}

// Created is a webhook with its signing secret, which is never shown again.
type Created struct {
	Webhook *ent.Webhook
	Secret  string
}

// eventTypes validates a list of event types; nil means all of them.
func eventTypes(in []event.Type) ([]string, error) {
	if in == nil {
		in = allTypes()
	}
	if len(in) == 0 {
		return nil, apperr.Invalid("eventTypes", "choose at least one event type, or leave eventTypes out for all of them")
	}
	out := make([]string, 0, len(in))
	for _, t := range in {
		if err := event.TypeValidator(t); err != nil {
			return nil, apperr.Invalid("eventTypes", "%q is not an event type", t)
		}
		if !slices.Contains(out, string(t)) {
			out = append(out, string(t))
		}
	}
	return out, nil
}

func allTypes() []event.Type {
	return []event.Type{event.TypeMESSAGE_RECEIVED, event.TypeMESSAGE_SENT, event.TypeMESSAGE_STATUS,
		event.TypeSESSION_STATUS, event.TypeQR_CODE, event.TypePAIRED, event.TypePRESENCE,
		event.TypeCHAT_STATE, event.TypeGROUP_UPDATE, event.TypeCALL}
}

// EventTypes is Webhook.eventTypes.
func EventTypes(w *ent.Webhook) []event.Type {
	out := make([]event.Type, len(w.EventTypes))
	for i, t := range w.EventTypes {
		out[i] = event.Type(t)
	}
	return out
}

func (s *Service) checkURL(ctx context.Context, raw string) (string, error) {
	u, err := checkURL(ctx, raw, s.opts.AllowPrivate, s.opts.Resolver)
	if err != nil {
		return "", apperr.Invalid("url", "%s", err.Error())
	}
	return u, nil
}

// redactURL hides a password in a URL, for audit details.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// Create adds a webhook to the current organization and returns its secret.
func (s *Service) Create(ctx context.Context, in CreateInput) (*Created, error) {
	if err := rule.Require(viewer.FromContext(ctx), viewer.PermManageWebhooks); err != nil {
		return nil, err
	}
	// Validated before the transaction, as in Update.
	u, err := s.checkURL(ctx, in.URL)
	if err != nil {
		return nil, err
	}
	types, err := eventTypes(in.EventTypes)
	if err != nil {
		return nil, err
	}
	id := gid.New("whk")
	key := newSecret()
	var out *Created
	err = database.InTx(ctx, s.client, func(ctx context.Context, c *ent.Client) error {
		w, err := c.Webhook.Create().SetID(id).SetURL(u).SetEventTypes(types).
			SetSecretEncrypted(s.opts.Keys.Seal(key, string(id))).Save(ctx)
		if err != nil {
			return err
		}
		out = &Created{Webhook: w, Secret: FormatSecret(key)}
		return audit.Record(ctx, c, audit.Entry{Action: "webhook.create", TargetType: "Webhook", TargetID: id,
			Details: map[string]any{"url": redactURL(u), "eventTypes": types}})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Update changes a webhook of the current organization.
func (s *Service) Update(ctx context.Context, in UpdateInput) (*ent.Webhook, error) {
	if err := rule.Require(viewer.FromContext(ctx), viewer.PermManageWebhooks); err != nil {
		return nil, err
	}
	// Validated before the transaction (the GraphQL layer leaves it to this method):
	// resolving a host name may take seconds, and must not hold SQLite's only writer.
	var u string
	if in.URL != nil {
		var err error
		if u, err = s.checkURL(ctx, *in.URL); err != nil {
			return nil, err
		}
	}
	var types []string
	if in.EventTypes != nil {
		var err error
		if types, err = eventTypes(in.EventTypes); err != nil {
			return nil, err
		}
	}
	var w *ent.Webhook
	err := database.InTx(ctx, s.client, func(ctx context.Context, c *ent.Client) error {
		old, err := c.Webhook.Get(ctx, in.ID)
		if err != nil {
			return err
		}
		upd := c.Webhook.UpdateOne(old)
		details := map[string]any{}
		if in.URL != nil && u != old.URL {
			upd.SetURL(u)
			details["url"] = redactURL(u)
		}
		if types != nil && !slices.Equal(types, old.EventTypes) {
			upd.SetEventTypes(types)
			details["eventTypes"] = types
		}
		if in.Enabled != nil && *in.Enabled != old.Enabled {
			upd.SetEnabled(*in.Enabled).ClearDisabledReason()
			if *in.Enabled {
				upd.ClearFailingSince() // a fresh start: the disable clock runs again
			}
			details["enabled"] = *in.Enabled
		}
		if w, err = upd.Save(ctx); err != nil {
			return err
		}
		if len(details) == 0 {
			return nil
		}
		if in.Enabled != nil && *in.Enabled {
			database.AfterCommit(ctx, s.notify)
		}
		return audit.Record(ctx, c, audit.Entry{Action: "webhook.update", TargetType: "Webhook", TargetID: w.ID, Details: details})
	})
	return w, err
}

// Rotate issues a new signing secret; the previous one keeps signing for
// Options.RotationOverlap (24 h), so receivers can switch without a gap.
func (s *Service) Rotate(ctx context.Context, id gid.ID) (*Created, error) {
	if err := rule.Require(viewer.FromContext(ctx), viewer.PermManageWebhooks); err != nil {
		return nil, err
	}
	key := newSecret()
	var out *Created
	err := database.InTx(ctx, s.client, func(ctx context.Context, c *ent.Client) error {
		old, err := c.Webhook.Get(ctx, id)
		if err != nil {
			return err
		}
		w, err := c.Webhook.UpdateOne(old).
			SetSecretEncrypted(s.opts.Keys.Seal(key, string(id))).
			SetPreviousSecretEncrypted(old.SecretEncrypted).
			SetPreviousSecretExpiresAt(s.now().Add(s.opts.RotationOverlap)).
			Save(ctx)
		if err != nil {
			return err
		}
		out = &Created{Webhook: w, Secret: FormatSecret(key)}
		return audit.Record(ctx, c, audit.Entry{Action: "webhook.rotate_secret", TargetType: "Webhook", TargetID: id,
			Details: map[string]any{"url": redactURL(w.URL), "previousSecretValidUntil": s.now().Add(s.opts.RotationOverlap).UTC()}})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Delete removes a webhook and its deliveries.
func (s *Service) Delete(ctx context.Context, id gid.ID) (gid.ID, error) {
	if err := rule.Require(viewer.FromContext(ctx), viewer.PermManageWebhooks); err != nil {
		return "", err
	}
	err := database.InTx(ctx, s.client, func(ctx context.Context, c *ent.Client) error {
		w, err := c.Webhook.Get(ctx, id)
		if err != nil {
			return err
		}
		if err := c.Webhook.DeleteOne(w).Exec(ctx); err != nil {
			return err
		}
		return audit.Record(ctx, c, audit.Entry{Action: "webhook.delete", TargetType: "Webhook", TargetID: id,
			Details: map[string]any{"url": redactURL(w.URL)}})
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

// Redeliver queues a delivery for an attempt now, with a fresh retry schedule. A delivery
// being attempted right now is left to that attempt: CONFLICT.
func (s *Service) Redeliver(ctx context.Context, id gid.ID) (*ent.WebhookDelivery, error) {
	if err := rule.Require(viewer.FromContext(ctx), viewer.PermManageWebhooks); err != nil {
		return nil, err
	}
	var d *ent.WebhookDelivery
	err := database.InTx(ctx, s.client, func(ctx context.Context, c *ent.Client) error {
		var err error
		if d, err = c.WebhookDelivery.Get(ctx, id); err != nil {
			return err
		}
		now := s.now()
		if d.LeasedUntil != nil && d.LeasedUntil.After(now) {
			return errInFlight
		}
		w, err := c.Webhook.Get(ctx, d.WebhookID)
		if err != nil {
			return err
		}
		if !w.Enabled {
			return apperr.New(apperr.Conflict, "the webhook is disabled: enable it first")
		}
		// Only if no worker claimed it since it was read (nothing locks the row on
		// PostgreSQL): clearing a fresh lease would let a second worker send it meanwhile.
		d, err = c.WebhookDelivery.UpdateOne(d).Where(webhookdelivery.Attempts(d.Attempts),
			webhookdelivery.Or(webhookdelivery.LeasedUntilIsNil(), webhookdelivery.LeasedUntilLTE(now))).
			SetStatus(webhookdelivery.StatusPENDING).SetNextAttemptAt(now).SetRoundStart(d.Attempts).ClearLeasedUntil().
			Save(ctx)
		if ent.IsNotFound(err) {
			return errInFlight
		}
		if err != nil {
			return err
		}
		database.AfterCommit(ctx, s.notify)
		return audit.Record(ctx, c, audit.Entry{Action: "webhook.redeliver", TargetType: "WebhookDelivery", TargetID: id,
			Details: map[string]any{"webhookId": d.WebhookID, "eventId": d.EventID}})
	})
	return d, err
}

var errInFlight = apperr.New(apperr.Conflict, "an attempt is in progress: try again when it is over")

// List returns an organization's webhooks, newest first (the current organization only).
func (s *Service) List(ctx context.Context, org *ent.Organization) ([]*ent.Webhook, error) {
	if err := rule.Require(viewer.FromContext(ctx), viewer.PermManageWebhooks); err != nil {
		return nil, err
	}
	return database.Client(ctx, s.client).Webhook.Query().Where(webhook.OrganizationID(org.ID)).
		Order(ent.Desc(webhook.FieldID)).All(ctx)
}

// Deliveries pages a webhook's deliveries, newest first.
func (s *Service) Deliveries(ctx context.Context, w *ent.Webhook, p page.Args, status *webhookdelivery.Status) (*ent.WebhookDeliveryConnection, error) {
	p, err := p.BoundedBy(page.ByTime)
	if err != nil {
		return nil, err
	}
	q := database.Client(ctx, s.client).WebhookDelivery.Query().Where(webhookdelivery.WebhookID(w.ID))
	if status != nil {
		q.Where(webhookdelivery.StatusEQ(*status))
	}
	newestFirst := &ent.WebhookDeliveryOrder{Field: ent.WebhookDeliveryOrderFieldCreatedAt, Direction: entgql.OrderDirectionDesc}
	conn, err := q.Paginate(ctx, p.After, p.First, p.Before, p.Last, ent.WithWebhookDeliveryOrder(newestFirst))
	if err != nil {
		return nil, fmt.Errorf("listing deliveries: %w", err)
	}
	return conn, nil
}
