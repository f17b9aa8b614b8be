package webhook

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/webhook"
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
// organizations' webhooks. The payload is the sending replica.
const changesChannel = "wagate_webhooks"

// interest remembers, per organization, its enabled webhooks and the event types they want,
// so that most events — those of organizations without webhooks — enqueue nothing without a
// query. Any change to a webhook empties it (see watchChanges): a webhook created on this
// replica gets every event committed after it; on another replica, every event committed
// after its notification arrives (milliseconds later). A webhook disabled or deleted may
// stay listed until then, so whoever writes deliveries from the list checks each webhook in
// the statement that writes them.
type interest struct {
	now     func() time.Time
	replica string
	// notifyReplicas is set by Distribute: the hooks then tell the other replicas.
	notifyReplicas bool

	mu sync.Mutex
	// gen counts flushes: a look-up that began before one may have read what the flush was
	// for, so it must not store its result.
	gen  uint64
	orgs *simplelru.LRU[gid.ID, interestEntry]
}

type interestEntry struct {
	targets []events.Target
	readAt  time.Time
}

func newInterest(now func() time.Time) *interest {
	q := &interest{now: now, replica: rand.Text()}
	q.orgs = newInterestLRU()
	return q
}

func newInterestLRU() *simplelru.LRU[gid.ID, interestEntry] {
	l, err := simplelru.NewLRU[gid.ID, interestEntry](interestSize, nil)
	if err != nil {
		panic(err) // only for a size ≤ 0
	}
	return l
}

// get returns org's webhooks if they are known, and the generation a look-up starting now
// must pass to store.
func (q *interest) get(org gid.ID) (targets []events.Target, known bool, gen uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.orgs.Get(org)
	if ok && q.now().Sub(e.readAt) >= interestTTL {
		q.orgs.Remove(org)
		ok = false
	}
	return e.targets, ok, q.gen
}

// store records org's webhooks as a look-up begun at generation gen and time at read them.
func (q *interest) store(org gid.ID, targets []events.Target, gen uint64, at time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.gen == gen {
		q.orgs.Add(org, interestEntry{targets: targets, readAt: at})
	}
}

func (q *interest) flush() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.gen++
	q.orgs = newInterestLRU()
}

// Targets implements events.Enqueuer: org's enabled webhooks, from the cache or read outside
// any transaction.
func (s *Service) Targets(ctx context.Context, org gid.ID) ([]events.Target, error) {
	if targets, known, _ := s.interest.get(org); known {
		return targets, nil
	}
	return s.readTargets(database.Outside(ctx), s.client, org)
}

// readTargets reads org's enabled webhooks with c and remembers them.
func (s *Service) readTargets(ctx context.Context, c *ent.Client, org gid.ID) ([]events.Target, error) {
	_, _, gen := s.interest.get(org)
	readAt := s.interest.now()
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
	database.AfterCommit(ctx, func() { s.interest.store(org, targets, gen, readAt) })
	return targets, nil
}

// Enqueued implements events.Enqueuer.
func (s *Service) Enqueued() { s.notify() }

// watchChanges empties the interest cache when a webhook is written through client: on this
// replica at commit, on the others when the notification sent in the change's transaction
// reaches them (see Distribute). Deleting an organization deletes its webhooks unseen by
// hooks, so it counts as a change too.
func (s *Service) watchChanges(client *ent.Client) {
	client.Webhook.Use(s.changeHook(func(ent.Mutation) bool { return true }))
	client.Organization.Use(s.changeHook(func(m ent.Mutation) bool { return m.Op().Is(ent.OpDelete | ent.OpDeleteOne) }))
}

func (s *Service) changeHook(relevant func(ent.Mutation) bool) ent.Hook {
	return database.ChangeHook(relevant, s.interest.flush, func(ctx context.Context, c *ent.Client) error {
		if !s.interest.notifyReplicas {
			return nil
		}
		return cluster.Notify(ctx, c, changesChannel, s.interest.replica) // delivered at commit
	})
}

// Distribute keeps the cache in step with the other replicas on the bus's database: their
// changes' notifications empty it, and so does a reconnection of the bus, since
// notifications sent meanwhile are lost.
func (s *Service) Distribute(b *cluster.Bus) error {
	s.interest.notifyReplicas = true
	b.OnResync(s.interest.flush)
	return b.Handle(changesChannel, func(from string) {
		// This replica's own notifications come back too, after it forgot at commit;
		// forgetting again would only cost look-ups.
		if from != s.interest.replica {
			s.interest.flush()
		}
	})
}
