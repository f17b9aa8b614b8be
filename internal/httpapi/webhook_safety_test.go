package httpapi_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	entgo "entgo.io/ent"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/testdb"
	"github.com/wagate/wagate/internal/viewer"
	webhooks "github.com/wagate/wagate/internal/webhook"
)

// resolverFunc adapts a function to webhooks.Resolver.
type resolverFunc func(ctx context.Context, host string) ([]netip.Addr, error)

func (f resolverFunc) LookupNetIP(ctx context.Context, _, host string) ([]netip.Addr, error) {
	return f(ctx, host)
}

// Saving a webhook resolves its host before any transaction opens: a slow DNS server must not
// hold SQLite's only writer, which every tenant's writes need.
func TestWebhookHostIsResolvedOutsideTheTransaction(t *testing.T) {
	db := testdb.Open(t, "sqlite", database.Options{})
	var writers sync.WaitGroup
	t.Cleanup(writers.Wait)
	var lookups, blocked atomic.Int32
	s := apitest.New(t, db, func(o *apitest.Options) {
		o.WebhookSSRFGuard = true
		o.WebhookResolver = resolverFunc(func(context.Context, string) ([]netip.Addr, error) {
			// Another tenant writes while the name resolves.
			n := lookups.Add(1)
			done := make(chan error, 1)
			writers.Add(1)
			go func() {
				defer writers.Done()
				done <- db.Client.Organization.Create().SetName("Other").SetSlug("other-" + strconv.Itoa(int(n))).
					Exec(viewer.System(context.Background(), "test"))
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Error(err)
				}
			case <-time.After(time.Second):
				blocked.Add(1)
			}
			return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
		})
	})
	ann := s.SignUp(t, "Ann")
	id, _ := createWebhook(t, s, ann, "https://hooks.example.test/a", "MESSAGE_RECEIVED")
	s.OK(t, q(ann, "", `mutation($id: ID!) { updateWebhook(input: {id: $id, url: "https://hooks.example.test/b"}) { id } }`,
		map[string]any{"id": id}), nil)
	if lookups.Load() != 2 || blocked.Load() != 0 {
		t.Fatalf("%d lookups, %d of them held the database's write lock", lookups.Load(), blocked.Load())
	}
	if w := getWebhook(t, s, ann, id); w.URL != "https://hooks.example.test/b" {
		t.Fatalf("webhook: %+v", w)
	}
}

// redeliver calls redeliverWebhookDelivery.
func redeliver(t *testing.T, s *apitest.Server, u *apitest.User, id string) *apitest.Response {
	t.Helper()
	return s.Do(t, q(u, "", `mutation($id: ID!) { redeliverWebhookDelivery(id: $id) { id status } }`, map[string]any{"id": id}))
}

// A delivery being attempted cannot be redelivered: the answer says so instead of claiming
// a redelivery that does not happen.
func TestWebhookRedeliverDuringAnAttemptConflicts(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s, ann, ses := annWithLine(t, db)
		hang := make(chan struct{})
		rc := newReceiver(t, func(int, received) int {
			<-hang
			return http.StatusOK
		})
		id, _ := createWebhook(t, s, ann, rc.URL, "MESSAGE_RECEIVED")
		simulate(t, s, ann, ses.ID, "one")
		s.StartWebhookWorker(t, webhooks.WorkerOptions{})
		t.Cleanup(func() { close(hang) }) // before the worker stops
		eventually(t, "the attempt to start", func() bool { return len(rc.requests()) == 1 })
		d := getWebhook(t, s, ann, id).Deliveries.Edges[0].Node
		wantCode(t, redeliver(t, s, ann, d.ID), "CONFLICT")
	})
}

// A worker may claim the delivery between Redeliver's read and its write (PostgreSQL locks
// nothing on the read): the write must not clear that fresh lease, or a second worker would
// send the delivery while the first attempt is still running.
func TestWebhookRedeliverKeepsALeaseTakenMeanwhile(t *testing.T) {
	db := testdb.Open(t, "postgres", database.Options{})
	s, ann, ses := annWithLine(t, db)
	id, _ := createWebhook(t, s, ann, "https://hooks.example.test/", "MESSAGE_RECEIVED")
	simulate(t, s, ann, ses.ID, "one")
	d := getWebhook(t, s, ann, id).Deliveries.Edges[0].Node
	sys := database.Outside(viewer.System(context.Background(), "test"))
	lease := time.Now().Add(time.Minute)
	var armed atomic.Bool
	db.Client.WebhookDelivery.Use(func(next ent.Mutator) ent.Mutator {
		return ent.MutateFunc(func(ctx context.Context, m ent.Mutation) (ent.Value, error) {
			if m.Op().Is(entgo.OpUpdateOne) && armed.CompareAndSwap(true, false) {
				// A worker's claim, committed on another connection just before the write.
				err := db.Client.WebhookDelivery.UpdateOneID(gid.ID(d.ID)).AddAttempts(1).SetLeasedUntil(lease).Exec(sys)
				if err != nil {
					return nil, err
				}
			}
			return next.Mutate(ctx, m)
		})
	})
	armed.Store(true)
	wantCode(t, redeliver(t, s, ann, d.ID), "CONFLICT")
	got, err := db.Client.WebhookDelivery.Get(sys, gid.ID(d.ID))
	if err != nil || got.LeasedUntil == nil || got.Attempts != 1 {
		t.Fatalf("the claim was undone: %+v %v", got, err)
	}
}

// A replica with another WAGATE_SECRET_KEY cannot sign: that is no failure of the endpoint.
// It hands the delivery back uncounted, leaves the endpoint's health alone and logs an
// error; a worker with the right key delivers it.
func TestWebhookWorkerWithAnotherKeyLeavesTheDeliveryAlone(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s, ann, ses := annWithLine(t, db)
		rc := newReceiver(t, nil)
		id, _ := createWebhook(t, s, ann, rc.URL, "MESSAGE_RECEIVED")
		simulate(t, s, ann, ses.ID, "one")
		otherKey, err := webhooks.NewKeyring(bytes.Repeat([]byte{7}, 32))
		if err != nil {
			t.Fatal(err)
		}
		var logs syncBuffer
		other := webhooks.New(db.Client, webhooks.Options{Keys: otherKey, AllowPrivate: true, Now: s.Clock.Now,
			Log: slog.New(slog.NewTextHandler(&logs, nil))})
		wrong := other.NewWorker(webhooks.WorkerOptions{Dialect: db.Dialect, Poll: 20 * time.Millisecond})
		wrong.Start()
		eventually(t, "the other worker to try", func() bool {
			return strings.Contains(logs.String(), "level=ERROR") || getWebhook(t, s, ann, id).Deliveries.Edges[0].Node.Attempts > 0
		})
		wrong.Stop(context.Background())
		if !strings.Contains(logs.String(), "WAGATE_SECRET_KEY") {
			t.Errorf("logs: %s", logs.String())
		}
		w := getWebhook(t, s, ann, id)
		if d := w.Deliveries.Edges[0].Node; d.Status != "PENDING" || d.Attempts != 0 || d.LastError != nil || w.FailingSince != nil || len(rc.requests()) != 0 {
			t.Fatalf("after the other key: %+v, failingSince %v, %d requests", d, w.FailingSince, len(rc.requests()))
		}
		s.Clock.Advance(2 * time.Minute) // past the hold-off
		s.StartWebhookWorker(t, webhooks.WorkerOptions{})
		if d := deliveriesSettled(t, s, ann, id, 1).Deliveries.Edges[0].Node; d.Status != "SUCCEEDED" || d.Attempts != 1 {
			t.Fatalf("with the right key: %+v", d)
		}
	})
}

// One tenant's endpoint that never answers, with a backlog, holds at most part of the
// worker: another organization's deliveries still go out at once.
func TestWebhookSlowEndpointDoesNotStarveOthers(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s, ann, annLine := annWithLine(t, db)
		bob := s.SignUp(t, "Bob")
		bobLine := connectedSandbox(t, s, bob, bob.OrgID, "B")
		release := make(chan struct{})
		var inFlight, most atomic.Int32
		blackhole := newReceiver(t, func(int, received) int {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			<-release
			return http.StatusOK
		})
		healthy := newReceiver(t, nil)
		createWebhook(t, s, ann, blackhole.URL, "MESSAGE_RECEIVED")
		bobHook, _ := createWebhook(t, s, bob, healthy.URL, "MESSAGE_RECEIVED")
		for i := range 8 {
			simulate(t, s, ann, annLine.ID, "backlog "+strconv.Itoa(i))
		}
		simulate(t, s, bob, bobLine.ID, "hello")
		s.StartWebhookWorker(t, webhooks.WorkerOptions{Concurrency: 4, Timeout: time.Minute})
		t.Cleanup(func() { close(release) }) // before the worker stops
		if d := deliveriesSettled(t, s, bob, bobHook, 1).Deliveries.Edges[0].Node; d.Status != "SUCCEEDED" {
			t.Fatalf("bob's delivery: %+v", d)
		}
		// The worker may have served Bob before it took any of Ann's backlog: wait for it to
		// reach the blackhole (it has spare slots and eight ready deliveries) before counting.
		for deadline := time.Now().Add(5 * time.Second); most.Load() < 1 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if n := most.Load(); n < 1 || n > 2 {
			t.Fatalf("%d attempts at once to one endpoint, want 1 or 2 (Concurrency/2)", n)
		}
	})
}
