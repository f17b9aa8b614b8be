package webhook_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/events"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/testdb"
	"github.com/wagate/wagate/internal/viewer"
	"github.com/wagate/wagate/internal/webhook"
)

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// service returns the webhook service on db, with a test keyring and opts otherwise, and an
// event log that enqueues deliveries through it.
func service(t *testing.T, db *database.DB, opts webhook.Options) (*webhook.Service, *events.Log) {
	t.Helper()
	keys, err := webhook.NewKeyring(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	opts.Keys = keys
	svc := webhook.New(db.Client, opts)
	log := events.New(db.Client, nil)
	log.Webhooks = svc
	return svc, log
}

// An organization's webhooks are read once and remembered: a webhook written through the
// service's client (created, changed, deleted, or gone with its organization) is seen at
// once; one written behind its back within 10 s.
func TestTargetsAreRememberedUntilAWebhookChanges(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		ctx := viewer.System(context.Background(), "test")
		clk := &clock{t: time.Now()}
		svc, _ := service(t, db, webhook.Options{Now: clk.Now})
		org := db.Client.Organization.Create().SetName("Acme").SetSlug("acme").SaveX(ctx)
		create := func(c *ent.Client) gid.ID {
			return c.Webhook.Create().SetOrganizationID(org.ID).SetURL("https://example.com/").
				SetEventTypes([]string{"MESSAGE_RECEIVED"}).SetSecretEncrypted([]byte("x")).SaveX(ctx).ID
		}
		targets := func() []gid.ID {
			t.Helper()
			ts, err := svc.Targets(ctx, org.ID)
			if err != nil {
				t.Fatal(err)
			}
			var ids []gid.ID
			for _, tg := range ts {
				ids = append(ids, tg.Webhook)
			}
			return ids
		}
		expect := func(what string, want ...gid.ID) {
			t.Helper()
			if got := targets(); !slices.Equal(got, want) {
				t.Fatalf("%s: targets %v, want %v", what, got, want)
			}
		}
		expect("none yet")
		// Behind the service's back (another pool, as a manual fix in the database would be).
		second, err := database.Open(ctx, db.DSN, database.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer second.Close()
		other := second.Client
		hidden := create(other)
		expect("created behind its back: not seen yet")
		clk.Add(11 * time.Second)
		expect("10 s later", hidden)
		// Through the client: seen at once.
		seen := create(db.Client)
		expect("created", hidden, seen)
		db.Client.Webhook.UpdateOneID(seen).SetEnabled(false).ExecX(ctx)
		expect("disabled", hidden)
		// In a transaction: forgotten when it commits, not before.
		err = database.InTx(ctx, db.Client, func(ctx context.Context, c *ent.Client) error {
			c.Webhook.DeleteOneID(hidden).ExecX(ctx)
			expect("deleted, not committed", hidden)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		expect("deleted")
		// The organization's deletion takes its webhooks along, unseen by hooks of webhooks.
		again := create(other)
		clk.Add(11 * time.Second)
		expect("created behind its back, 10 s later", again)
		db.Client.Organization.DeleteOneID(org.ID).ExecX(ctx)
		expect("organization deleted")
	})
}

// With a cached answer that the organization has no webhooks, appending an event looks
// nothing up; the webhooks of an organization that has some are looked up in the event's
// transaction.
func TestEnqueueAsksOnlyForOrganizationsWithWebhooks(t *testing.T) {
	rec := &testdb.Recorder{}
	db := testdb.OpenRecorded(t, "postgres", rec)
	ctx := viewer.System(context.Background(), "test")
	_, log := service(t, db, webhook.Options{})
	quiet := db.Client.Organization.Create().SetName("Quiet").SetSlug("quiet").SaveX(ctx)
	busy := db.Client.Organization.Create().SetName("Busy").SetSlug("busy").SaveX(ctx)
	db.Client.Webhook.Create().SetOrganizationID(busy.ID).SetURL("https://example.com/").
		SetEventTypes([]string{"MESSAGE_RECEIVED"}).SetSecretEncrypted([]byte("x")).ExecX(ctx)
	appendTo := func(org gid.ID) (lookups int) {
		t.Helper()
		rec.Reset()
		err := database.InTx(ctx, db.Client, func(ctx context.Context, c *ent.Client) error {
			_, err := log.Append(ctx, c, events.Entry{Org: org, Type: "MESSAGE_RECEIVED", OccurredAt: time.Now()})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, stmt := range rec.Reset() {
			if strings.Contains(stmt, `FROM "webhooks"`) {
				lookups++
			}
		}
		return lookups
	}
	for i, want := range []int{1, 0, 0} {
		if n := appendTo(quiet.ID); n != want {
			t.Errorf("quiet organization, event %d: %d look-ups of webhooks, want %d", i, n, want)
		}
	}
	for i := range 2 {
		if n := appendTo(busy.ID); n != 1 {
			t.Errorf("busy organization, event %d: %d look-ups of webhooks, want 1", i, n)
		}
	}
	if n := db.Client.WebhookDelivery.Query().CountX(ctx); n != 2 {
		t.Errorf("%d deliveries, want 2", n)
	}
}

// What a transaction reads of its organization's webhooks is remembered only if it commits:
// a transaction that deletes the webhooks, then appends an event (and so finds none), and
// rolls back leaves no memory of "none".
func TestTargetsReadInARolledBackTransactionAreForgotten(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		ctx := viewer.System(context.Background(), "test")
		svc, log := service(t, db, webhook.Options{})
		org := db.Client.Organization.Create().SetName("Acme").SetSlug("acme").SaveX(ctx)
		hook := db.Client.Webhook.Create().SetOrganizationID(org.ID).SetURL("https://example.com/").
			SetEventTypes([]string{"MESSAGE_RECEIVED"}).SetSecretEncrypted([]byte("x")).SaveX(ctx)
		errUndo := errors.New("undone")
		err := database.InTx(ctx, db.Client, func(ctx context.Context, c *ent.Client) error {
			c.Webhook.DeleteOneID(hook.ID).ExecX(ctx)
			if _, err := log.Append(ctx, c, events.Entry{Org: org.ID, Type: "MESSAGE_RECEIVED", OccurredAt: time.Now()}); err != nil {
				return err
			}
			return errUndo
		})
		if !errors.Is(err, errUndo) {
			t.Fatal(err)
		}
		ts, err := svc.Targets(ctx, org.ID)
		if err != nil || len(ts) != 1 || ts[0].Webhook != hook.ID {
			t.Fatalf("targets after the rollback: %v %v, want the webhook", ts, err)
		}
	})
}
