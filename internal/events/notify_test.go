package events_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/event"
	"github.com/wagate/wagate/internal/cluster"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/events"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/testdb"
	"github.com/wagate/wagate/internal/viewer"
)

// An append notifies the other replicas once per transaction and organization, with the
// highest number the transaction gave the organization — in a transaction of InTx, in one
// opened for a GraphQL mutation (WithTx), and in a group commit, where a unit rolled back to
// its savepoint notifies nothing.
func TestAppendNotifiesOncePerTransactionAndOrganization(t *testing.T) {
	db := testdb.Open(t, "postgres", database.Options{})
	ctx := viewer.System(context.Background(), "test")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	bus := cluster.Listen(db.DSN, quiet)
	bctx, stop := context.WithCancel(context.Background())
	go bus.Run(bctx)
	defer func() { stop(); bus.Wait() }()
	log := events.New(db.Client, quiet)
	if err := log.Distribute(bus); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	if err := bus.Handle("wagate_events", func(p string) {
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	// expect waits for a marker sent after the work, then compares what arrived before it:
	// one listening connection receives notifications in commit order.
	expect := func(want ...string) {
		t.Helper()
		if err := cluster.Notify(ctx, db.SQL, "wagate_events", "end"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			done := slices.Contains(got, "end")
			mu.Unlock()
			if done {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the marker notification never arrived")
			}
			time.Sleep(5 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		have := slices.DeleteFunc(got, func(s string) bool { return s == "end" })
		// "org:seq:replica": every notification names the one sending replica.
		senders := map[string]bool{}
		for i, p := range have {
			org, rest, _ := strings.Cut(p, ":")
			seq, from, _ := strings.Cut(rest, ":")
			senders[from] = true
			have[i] = org + ":" + seq
		}
		if len(senders) > 1 || senders[""] {
			t.Errorf("notifications %q name %d senders, want one", got, len(senders))
		}
		slices.Sort(have)
		slices.Sort(want)
		if !slices.Equal(have, want) {
			t.Errorf("notifications %q, want %q", have, want)
		}
		got = nil
	}
	var orgs []gid.ID
	for _, slug := range []string{"a", "b", "c"} {
		orgs = append(orgs, db.Client.Organization.Create().SetName(slug).SetSlug(slug).SaveX(ctx).ID)
	}
	a, b, c := orgs[0], orgs[1], orgs[2]
	appendTo := func(ctx context.Context, cl *ent.Client, orgs ...gid.ID) error {
		for _, org := range orgs {
			if _, err := log.Append(ctx, cl, events.Entry{Org: org, Type: event.TypeCALL, OccurredAt: time.Now()}); err != nil {
				return err
			}
		}
		return nil
	}

	err := database.InTx(ctx, db.Client, func(ctx context.Context, cl *ent.Client) error {
		return appendTo(ctx, cl, a, b, a, a, b)
	})
	if err != nil {
		t.Fatal(err)
	}
	expect(string(a)+":3", string(b)+":2")

	tx, err := db.Client.Tx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := appendTo(database.WithTx(ctx, tx), tx.Client(), c, c); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	expect(string(c) + ":2")

	// A rolled-back transaction notifies nothing.
	_ = database.InTx(ctx, db.Client, func(ctx context.Context, cl *ent.Client) error {
		if err := appendTo(ctx, cl, a); err != nil {
			return err
		}
		return errors.New("rolled back")
	})
	expect()

	// A batch: a's and b's units commit, c's is rolled back to its savepoint.
	g := database.NewGroupCommitter(db.Client, database.GroupCommitOptions{})
	started, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = g.Do(ctx, "", func(context.Context, *ent.Client) error { close(started); <-release; return nil })
	})
	<-started
	for i, org := range []gid.ID{a, c, b, a} {
		wg.Go(func() {
			err := g.Do(ctx, "", func(ctx context.Context, cl *ent.Client) error {
				if err := appendTo(ctx, cl, org); err != nil {
					return err
				}
				if org == c {
					return errors.New("rolled back to its savepoint")
				}
				return nil
			})
			if (err == nil) != (org != c) {
				t.Errorf("unit of org %s: %v", org, err)
			}
		})
		for g.Pending() != i+1 {
			time.Sleep(time.Millisecond)
		}
	}
	close(release)
	wg.Wait()
	expect(string(a)+":5", string(b)+":3")
}
