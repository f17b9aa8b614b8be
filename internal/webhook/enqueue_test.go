package webhook_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/event"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/events"
	"github.com/wagate/wagate/internal/testdb"
	"github.com/wagate/wagate/internal/viewer"
	"github.com/wagate/wagate/internal/webhook"
)

// Deliveries are written in the event's transaction: they commit with it, or vanish with it.
func TestEnqueueIsPartOfTheEventsTransaction(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		ctx := viewer.System(context.Background(), "test")
		org := db.Client.Organization.Create().SetName("Acme").SetSlug("acme").SaveX(ctx)
		mk := func(types []string, enabled bool) *ent.Webhook {
			return db.Client.Webhook.Create().SetOrganizationID(org.ID).SetURL("https://example.com/").
				SetEventTypes(types).SetEnabled(enabled).SetSecretEncrypted([]byte("x")).SaveX(ctx)
		}
		wanted := mk([]string{"MESSAGE_RECEIVED", "CALL"}, true)
		mk([]string{"SESSION_STATUS"}, true)    // another type
		mk([]string{"MESSAGE_RECEIVED"}, false) // disabled
		_, log := service(t, db, webhook.Options{})
		appendEvent := func(fail bool) error {
			return database.InTx(ctx, db.Client, func(ctx context.Context, c *ent.Client) error {
				_, err := log.Append(ctx, c, events.Entry{Org: org.ID, Type: event.TypeMESSAGE_RECEIVED, OccurredAt: time.Now()})
				if err == nil && fail {
					err = errors.New("the change failed")
				}
				return err
			})
		}
		if err := appendEvent(true); err == nil {
			t.Fatal("no error")
		}
		if n := db.Client.WebhookDelivery.Query().CountX(ctx); n != 0 {
			t.Fatalf("%d deliveries of a rolled-back event", n)
		}
		if err := appendEvent(false); err != nil {
			t.Fatal(err)
		}
		ds := db.Client.WebhookDelivery.Query().AllX(ctx)
		if len(ds) != 1 || ds[0].WebhookID != wanted.ID || ds[0].Status != "PENDING" || ds[0].NextAttemptAt == nil || ds[0].OrganizationID != org.ID {
			t.Fatalf("deliveries: %+v", ds)
		}
	})
}
