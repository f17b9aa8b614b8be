package webhook

import (
	"context"
	"fmt"
	"slices"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/webhook"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/viewer"
)

// Enqueue writes a delivery of ev for each enabled webhook of its organization that wants
// its type. c is the client of the event's transaction, so the deliveries commit with the
// event or not at all: a crash loses none. It is the event log's OnAppend hook.
func (s *Service) Enqueue(ctx context.Context, c *ent.Client, ev *ent.Event) error {
	sys := viewer.System(ctx, "webhook-enqueue")
	hooks, err := c.Webhook.Query().
		Where(webhook.OrganizationID(ev.OrganizationID), webhook.Enabled(true)).
		Select(webhook.FieldID, webhook.FieldEventTypes).All(sys)
	if err != nil {
		return fmt.Errorf("finding webhooks: %w", err)
	}
	var creates []*ent.WebhookDeliveryCreate
	now := s.now()
	for _, w := range hooks {
		if !slices.Contains(w.EventTypes, string(ev.Type)) {
			continue
		}
		creates = append(creates, c.WebhookDelivery.Create().SetOrganizationID(ev.OrganizationID).
			SetWebhookID(w.ID).SetEventID(ev.ID).SetNextAttemptAt(now))
	}
	if len(creates) == 0 {
		return nil
	}
	if err := c.WebhookDelivery.CreateBulk(creates...).Exec(sys); err != nil {
		return fmt.Errorf("enqueuing webhook deliveries: %w", err)
	}
	database.AfterCommit(ctx, s.notify)
	return nil
}
