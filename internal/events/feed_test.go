package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/event"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/events"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/testdb"
	"github.com/wagate/wagate/internal/viewer"
)

// subscriber is a subscription driven the way the GraphQL layer drives it.
type subscriber struct {
	tap *events.Tap
	out <-chan *ent.Event
}

func subscribe(t *testing.T, ctx context.Context, log *events.Log, cursor *string, f events.Filter) *subscriber {
	t.Helper()
	ctx, tap := events.WithTap(ctx)
	out, err := log.Subscribe(ctx, cursor, f)
	if err != nil {
		t.Fatal(err)
	}
	return &subscriber{tap, out}
}

// next pulls one event and checks it comes through the resolver's channel unchanged.
func (s *subscriber) next(t *testing.T, ctx context.Context) *ent.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d, ok := s.tap.Next(ctx)
	if !ok {
		t.Fatal("the stream ended")
	}
	s.tap.Hand(ctx, d)
	if e := <-s.out; e != d.Event {
		t.Fatalf("the channel carried %v, want %v", e, d.Event)
	}
	return d.Event
}

func appendN(t *testing.T, ctx context.Context, db *database.DB, log *events.Log, org gid.ID, n int, typ event.Type) {
	t.Helper()
	for range n {
		err := database.InTx(ctx, db.Client, func(ctx context.Context, c *ent.Client) error {
			_, err := log.Append(ctx, c, events.Entry{Org: org, Type: typ, OccurredAt: time.Now()})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// A subscriber far behind the feed reads the table on its own, then joins the feed's ring
// without a gap or a repeat; live subscribers share the feed's reads and its deliveries.
func TestFeedStragglersCatchUpWithoutGapsAndLiveSubscribersShare(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		sys := viewer.System(context.Background(), "test")
		org := db.Client.Organization.Create().SetName("Acme").SetSlug("acme").SaveX(sys)
		other := db.Client.Organization.Create().SetName("Other").SetSlug("other").SaveX(sys)
		log := events.New(db.Client, nil)
		ctx, cancel := context.WithCancel(viewer.NewContext(context.Background(), &viewer.Viewer{
			Kind: viewer.KindUser, UserID: "usr_test", OrgID: org.ID, Role: viewer.RoleOwner,
			Orgs: map[gid.ID]viewer.Role{org.ID: viewer.RoleOwner}}))
		defer cancel()

		const before, during = 150, 300 // during > the ring, so the straggler starts behind it
		appendN(t, sys, db, log, org.ID, before, event.TypeMESSAGE_RECEIVED)
		head := "150"
		live1 := subscribe(t, ctx, log, &head, events.Filter{})
		live2 := subscribe(t, ctx, log, &head, events.Filter{})
		calls := subscribe(t, ctx, log, &head, events.Filter{Types: []event.Type{event.TypeCALL}})
		for i := range during {
			typ := event.TypeMESSAGE_RECEIVED
			if i%50 == 0 {
				typ = event.TypeCALL
			}
			appendN(t, sys, db, log, org.ID, 1, typ)
			appendN(t, sys, db, log, other.ID, 1, event.TypeMESSAGE_RECEIVED)
			e1, e2 := live1.next(t, ctx), live2.next(t, ctx)
			if e1.Seq != int64(before+i+1) || e1 != e2 {
				t.Fatalf("live subscribers got seq %d (%p) and %d (%p), want %d from one shared read", e1.Seq, e1, e2.Seq, e2, before+i+1)
			}
		}
		for i := range during / 50 {
			if e := calls.next(t, ctx); e.Type != event.TypeCALL || e.Seq != int64(before+1+50*i) {
				t.Fatalf("filtered subscriber: %s %d", e.Type, e.Seq)
			}
		}

		straggler := subscribe(t, ctx, log, nil, events.Filter{})
		for want := int64(1); want <= before+during; want++ {
			if e := straggler.next(t, ctx); e.Seq != want || e.OrganizationID != org.ID {
				t.Fatalf("straggler got %s seq %d, want seq %d", e.OrganizationID, e.Seq, want)
			}
		}
		appendN(t, sys, db, log, org.ID, 1, event.TypeMESSAGE_RECEIVED)
		if e, l := straggler.next(t, ctx), live1.next(t, ctx); e != l {
			t.Fatal("the caught-up straggler does not share the feed's delivery")
		}
	})
}

// Subscribers replaying a log their organization's feed has not read yet share the first
// one's read of it: the events it read from the table join the ring, and the later ones get
// the same deliveries from there (so a cohort renders each event once).
func TestReplaysShareTheFirstReadOfTheLog(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		sys := viewer.System(context.Background(), "test")
		org := db.Client.Organization.Create().SetName("Acme").SetSlug("acme").SaveX(sys)
		ctx, cancel := context.WithCancel(viewer.NewContext(context.Background(), &viewer.Viewer{
			Kind: viewer.KindUser, UserID: "usr_test", OrgID: org.ID, Role: viewer.RoleOwner,
			Orgs: map[gid.ID]viewer.Role{org.ID: viewer.RoleOwner}}))
		defer cancel()
		log := events.New(db.Client, nil)
		appendN(t, sys, db, log, org.ID, 5, event.TypeMESSAGE_RECEIVED)

		first := subscribe(t, ctx, log, nil, events.Filter{})
		read := make([]*ent.Event, 5)
		for i := range read {
			read[i] = first.next(t, ctx)
		}
		second := subscribe(t, ctx, log, nil, events.Filter{})
		for i, want := range read {
			if e := second.next(t, ctx); e != want {
				t.Fatalf("event %d: the second replay read seq %d (%p) again, want the first's (%p)", i+1, e.Seq, e, want)
			}
		}
		calls := subscribe(t, ctx, log, nil, events.Filter{Types: []event.Type{event.TypeCALL}})
		appendN(t, sys, db, log, org.ID, 1, event.TypeCALL)
		if e := calls.next(t, ctx); e.Seq != 6 {
			t.Fatalf("a filtered replay got seq %d, want 6", e.Seq)
		}
		if e1, e2 := first.next(t, ctx), second.next(t, ctx); e1.Seq != 6 || e1 != e2 {
			t.Fatalf("after the replays: seq %d and %d, want 6 from one delivery", e1.Seq, e2.Seq)
		}
	})
}
