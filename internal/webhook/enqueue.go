package webhook

import (
	"context"
	"fmt"
	"slices"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/viewer"
)

// Enqueue implements events.Enqueuer: it writes a delivery of ev for each enabled webhook
// of its organization that wants its type. c is the client of the event's transaction, so
// the deliveries commit with the event or not at all: a crash loses none. An organization
// known to have no enabled webhook costs no query (see interest); one with webhooks is
// looked up in the transaction, so no delivery is written for a webhook gone meanwhile.
func (s *Service) Enqueue(ctx context.Context, c *ent.Client, ev *ent.Event) error {
	targets, known, ticket := s.interest.Get(ev.OrganizationID)
	if known && len(targets) == 0 {
		return nil
	}
	targets, err := s.readTargets(ctx, c, ev.OrganizationID, ticket)
	if err != nil {
		return err
	}
	var creates []*ent.WebhookDeliveryCreate
	now := s.now()
	for _, t := range targets {
		if !slices.Contains(t.Types, string(ev.Type)) {
			continue
		}
		creates = append(creates, c.WebhookDelivery.Create().SetOrganizationID(ev.OrganizationID).
			SetWebhookID(t.Webhook).SetEventID(ev.ID).SetNextAttemptAt(now))
	}
	if len(creates) == 0 {
		return nil
	}
	if err := c.WebhookDelivery.CreateBulk(creates...).Exec(viewer.System(ctx, "webhook-enqueue")); err != nil {
		return fmt.Errorf("enqueuing webhook deliveries: %w", err)
	}
	database.AfterCommit(ctx, s.notify)
	return nil
}
