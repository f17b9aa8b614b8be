package cluster_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/wagate/wagate/internal/cluster"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// One holder per name; a released or dropped lock goes to the next; a broken connection
// loses every lock and says so.
func TestLocks(t *testing.T) {
	db := testdb.Open(t, "postgres", database.Options{})
	ctx := context.Background()
	a, b := cluster.NewLocks(db.SQL, "test", quiet), cluster.NewLocks(db.SQL, "test", quiet)
	defer a.Close()
	defer b.Close()
	try := func(l *cluster.Locks, name string) bool {
		t.Helper()
		ok, err := l.TryAcquire(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !try(a, "s1") || !try(a, "s1") || try(b, "s1") || !try(b, "s2") {
		t.Fatal("want s1 held by a alone, s2 by b")
	}
	if !a.Held("s1") || b.Held("s1") {
		t.Fatal("Held disagrees")
	}
	a.Release(ctx, "s1")
	if !try(b, "s1") || try(a, "s1") {
		t.Fatal("a released s1: b should get it")
	}

	// PostgreSQL ends b's connection: b learns it (at its next ping) and a can take
	// everything b held.
	lost := b.Lost()
	watch, stop := context.WithCancel(ctx)
	defer stop()
	go b.Watch(watch, 20*time.Millisecond)
	if _, err := db.SQL.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()
		AND (classid::bigint << 32 | objid::bigint) = hashtextextended('test:s2', 0)`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("b never noticed its connection was gone")
	}
	if b.Held("s1") || b.Held("s2") {
		t.Fatal("b still believes it holds its locks")
	}
	if !try(a, "s1") || !try(a, "s2") {
		t.Fatal("b's locks should be free")
	}
}

// Notifications reach handlers of their channel only, and only once committed.
func TestBus(t *testing.T) {
	db := testdb.Open(t, "postgres", database.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bus := cluster.Listen(db.DSN, quiet)
	got := make(chan string, 10)
	if err := bus.Handle("test_a", func(p string) { got <- p }); err != nil {
		t.Fatal(err)
	}
	go bus.Run(ctx)
	for deadline := time.Now().Add(5 * time.Second); !bus.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the listener never connected")
		}
	}
	tx, err := db.SQL.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.Notify(ctx, tx, "test_a", "rolled back"); err != nil {
		t.Fatal(err)
	}
	_ = tx.Rollback()
	for _, n := range []struct{ ch, payload string }{{"test_b", "other channel"}, {"test_a", "hello"}} {
		if err := cluster.Notify(ctx, db.SQL, n.ch, n.payload); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case p := <-got:
		if p != "hello" {
			t.Fatalf("got %q, want only the committed notification of test_a", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no notification")
	}
	cancel()
	bus.Wait()
}
