package webhook

import (
	"context"
	"fmt"
	"time"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/webhook"
	"github.com/wagate/wagate/internal/changecache"
	"github.com/wagate/wagate/internal/cluster"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/events"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/viewer"
)

// Bounds of the interest cache. An organization falls out after interestTTL even when no
// hook saw a change (a write made outside this server's ent client), and the cache keeps at
// most interestSize organizations.
const (
	interestTTL  = 10 * time.Second
	interestSize = 100_000
)

// changesChannel carries a hint that webhooks changed: every replica forgets what it knew of
// organizations' webhooks.
const changesChannel = "wagate_webhooks"

// interest remembers, per organization, its enabled webhooks and the event types they want,
// so that most events — those of organizations without webhooks — enqueue nothing without a
// query. Any change to a webhook empties it (see watchChanges): a webhook created on this
// replica gets every event committed after it; on another replica, every event committed
// after its notification arrives (milliseconds later). A webhook disabled or deleted may
// stay listed until then, so whoever writes deliveries from the list checks each webhook in
// the statement that writes them.
type interest = changecache.Cache[gid.ID, []events.Target]

func newInterest(now func() time.Time) *interest {
	return changecache.New[gid.ID, []events.Target](changesChannel, interestTTL, interestSize, now)
}

// Targets implements events.Enqueuer: org's enabled webhooks, from the cache or read outside
// any transaction.
func (s *Service) Targets(ctx context.Context, org gid.ID) ([]events.Target, error) {
	targets, known, ticket := s.interest.Get(org)
	if known {
		return targets, nil
	}
	return s.readTargets(database.Outside(ctx), s.client, org, ticket)
}

// readTargets reads org's enabled webhooks with c and remembers them as found by the look-up
// holding ticket.
func (s *Service) readTargets(ctx context.Context, c *ent.Client, org gid.ID, ticket changecache.Ticket) ([]events.Target, error) {
	hooks, err := c.Webhook.Query().
		Where(webhook.OrganizationID(org), webhook.Enabled(true)).
		Select(webhook.FieldID, webhook.FieldEventTypes).All(viewer.System(ctx, "webhook-enqueue"))
	if err != nil {
		return nil, fmt.Errorf("finding webhooks: %w", err)
	}
	targets := make([]events.Target, len(hooks))
	for i, w := range hooks {
		targets[i] = events.Target{Webhook: w.ID, Types: w.EventTypes}
	}
	// Read in a transaction, the answer may include that transaction's own changes: it is
	// remembered only once they commit (after the flush they cause, which then refuses it).
	database.AfterCommit(ctx, func() { s.interest.Put(org, ticket, targets) })
	return targets, nil
}

// Enqueued implements events.Enqueuer.
func (s *Service) Enqueued() { s.notify() }

// watchChanges empties the interest cache when a webhook is written through client: on this
// replica at commit, on the others when the notification sent in the change's transaction
// reaches them (see Distribute). Deleting an organization deletes its webhooks unseen by
// hooks, so it counts as a change too.
func (s *Service) watchChanges(client *ent.Client) {
	client.Webhook.Use(s.interest.Hook(func(ent.Mutation) bool { return true }))
	client.Organization.Use(s.interest.Hook(func(m ent.Mutation) bool { return m.Op().Is(ent.OpDelete | ent.OpDeleteOne) }))
}

// Distribute keeps the cache in step with the other replicas on the bus's database (see
// changecache.Cache.Distribute).
func (s *Service) Distribute(b *cluster.Bus) error { return s.interest.Distribute(b) }
