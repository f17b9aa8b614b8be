package database_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	"github.com/lib/pq"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/event"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/events"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/testdb"
	"github.com/wagate/wagate/internal/viewer"
)

// counting is an ent driver that counts the transactions it starts, and can fail a commit.
type counting struct {
	dialect.Driver
	txs        atomic.Int64
	failCommit atomic.Bool // the next commit fails (and rolls back)
}

func (d *counting) wrap(drv dialect.Driver) dialect.Driver {
	d.Driver = drv
	return d
}

func (d *counting) Tx(ctx context.Context) (dialect.Tx, error) {
	tx, err := d.Driver.Tx(ctx)
	if err != nil {
		return nil, err
	}
	d.txs.Add(1)
	return &countingTx{Tx: tx, d: d}, nil
}

type countingTx struct {
	dialect.Tx
	d *counting
}

func (t *countingTx) Commit() error {
	if t.d.failCommit.CompareAndSwap(true, false) {
		_ = t.Tx.Rollback()
		return errors.New("the disk is full (test)")
	}
	return t.Tx.Commit()
}

func (t *countingTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.Tx.(interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	}).ExecContext(ctx, q, args...)
}

func (t *countingTx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.Tx.(interface {
		QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	}).QueryContext(ctx, q, args...)
}

type fixture struct {
	db  *database.DB
	drv *counting
	ctx context.Context
	log *events.Log
}

func eachDialect(t *testing.T, fn func(t *testing.T, f *fixture)) {
	for _, d := range testdb.Dialects {
		t.Run(d, func(t *testing.T) {
			drv := &counting{}
			db := testdb.Open(t, d, database.Options{WrapDriver: drv.wrap})
			fn(t, &fixture{db: db, drv: drv, ctx: viewer.System(context.Background(), "test"), log: events.New(db.Client, nil)})
		})
	}
}

func (f *fixture) org(t *testing.T) gid.ID {
	t.Helper()
	n := f.db.Client.Organization.Query().CountX(f.ctx)
	return f.db.Client.Organization.Create().SetName("Org").SetSlug(fmt.Sprintf("org-%d", n)).SaveX(f.ctx).ID
}

func (f *fixture) appendTo(org gid.ID) func(ctx context.Context, c *ent.Client) error {
	return func(ctx context.Context, c *ent.Client) error {
		_, err := f.log.Append(ctx, c, events.Entry{Org: org, Type: event.TypeMESSAGE_RECEIVED, OccurredAt: time.Now()})
		return err
	}
}

// seqs returns an organization's event numbers, in order.
func (f *fixture) seqs(t *testing.T, org gid.ID) []int64 {
	t.Helper()
	evs := f.db.Client.Event.Query().Where(event.OrganizationID(org)).Order(event.BySeq()).AllX(f.ctx)
	var out []int64
	for _, e := range evs {
		out = append(out, e.Seq)
	}
	return out
}

func upTo(n int) []int64 {
	var out []int64
	for i := range n {
		out = append(out, int64(i+1))
	}
	return out
}

// hold starts a unit that blocks its lane until the returned function is called, so that the
// units submitted meanwhile form the next batch together.
func hold(t *testing.T, f *fixture, g *database.GroupCommitter) (release func()) {
	t.Helper()
	started, done := make(chan struct{}), make(chan struct{})
	ch := make(chan struct{})
	go func() {
		defer close(done)
		if err := g.Do(f.ctx, "", func(context.Context, *ent.Client) error {
			close(started)
			<-ch
			return nil
		}); err != nil {
			t.Errorf("the holding unit: %v", err)
		}
	}()
	<-started
	return func() { close(ch); <-done }
}

// waitQueued waits until n units wait in g's queue.
func waitQueued(t *testing.T, g *database.GroupCommitter, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for g.Pending() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d units queued, want %d", g.Pending(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Many callers at once, into one organization and into several: every unit commits, each
// organization's events are numbered 1..n with no gap or duplicate, and the units share
// transactions.
func TestGroupCommitNumbersConcurrentEventsWithoutGaps(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fixture) {
		for _, n := range []int{1, 8} {
			t.Run(fmt.Sprintf("orgs=%d", n), func(t *testing.T) {
				var orgs []gid.ID
				for range n {
					orgs = append(orgs, f.org(t))
				}
				g := database.NewGroupCommitter(f.db.Client, database.GroupCommitOptions{Lanes: 2})
				const workers, each = 16, 25
				before := f.drv.txs.Load()
				var wg sync.WaitGroup
				var failed atomic.Int64
				for w := range workers {
					wg.Go(func() {
						for i := range each {
							org := orgs[(w+i)%len(orgs)]
							if err := g.Do(f.ctx, string(org), f.appendTo(org)); err != nil {
								failed.Add(1)
								t.Error(err)
							}
						}
					})
				}
				wg.Wait()
				txs := f.drv.txs.Load() - before
				total := 0
				for i, org := range orgs {
					got := f.seqs(t, org)
					want := workers * each / n
					if i < workers*each%n {
						want++
					}
					if !slices.Equal(got, upTo(want)) {
						t.Errorf("org %d: seqs %v, want 1..%d", i, got, want)
					}
					total += len(got)
				}
				if total != workers*each || failed.Load() != 0 {
					t.Errorf("%d events stored, %d units failed; want %d, 0", total, failed.Load(), workers*each)
				}
				if txs >= workers*each {
					t.Errorf("%d units took %d transactions: no batching", workers*each, txs)
				}
				t.Logf("%d units in %d transactions", workers*each, txs)
			})
		}
	})
}

// A unit that fails is rolled back to its savepoint alone: the others of its batch commit,
// its numbers are reused without a gap, and neither its after-commit nor its before-commit
// work runs. Keyed before-commit work runs once for the batch.
func TestGroupCommitRollsBackAFailingUnitAlone(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fixture) {
		org := f.org(t)
		g := database.NewGroupCommitter(f.db.Client, database.GroupCommitOptions{})
		var mu sync.Mutex
		var after, before []string
		record := func(list *[]string, s string) {
			mu.Lock()
			*list = append(*list, s)
			mu.Unlock()
		}
		errFailed := errors.New("the unit failed")
		unit := func(name string, fail bool) func(ctx context.Context, c *ent.Client) error {
			return func(ctx context.Context, c *ent.Client) error {
				if err := f.appendTo(org)(ctx, c); err != nil {
					return err
				}
				database.AfterCommit(ctx, func() { record(&after, name) })
				database.AfterCommitOnce(ctx, "once", func() { record(&after, "once") })
				err := database.BeforeCommit(ctx, "shared", func(context.Context) error {
					record(&before, "shared")
					return nil
				})
				if err != nil {
					return err
				}
				if fail {
					_ = database.BeforeCommit(ctx, "failed's own", func(context.Context) error {
						record(&before, "failed's own")
						return nil
					})
					return errFailed
				}
				return nil
			}
		}
		// The failing unit first (the transaction has no savepoint for it: it is rolled back
		// whole, and the others run in the next one), in the middle, and last.
		for failing, wantTxs := range []int64{2, 1, 1} {
			after, before = nil, nil
			names := []string{"A", "B", "C"}
			names[failing] = "failed"
			release := hold(t, f, g)
			txs := f.drv.txs.Load()
			results := make([]error, 3)
			var wg sync.WaitGroup
			for i, name := range names {
				wg.Go(func() { results[i] = g.Do(f.ctx, "", unit(name, name == "failed")) })
				waitQueued(t, g, i+1)
			}
			release()
			wg.Wait()
			for i, err := range results {
				if (i == failing) != errors.Is(err, errFailed) || i != failing && err != nil {
					t.Fatalf("unit %d failing: results %v", failing, results)
				}
			}
			if got, want := f.seqs(t, org), upTo(2*(failing+1)); !slices.Equal(got, want) {
				t.Errorf("unit %d failing: seqs %v, want %v", failing, got, want)
			}
			slices.Sort(after)
			var wantAfter []string
			for _, n := range names {
				if n != "failed" {
					wantAfter = append(wantAfter, n)
				}
			}
			if wantAfter = append(wantAfter, "once"); !slices.Equal(after, wantAfter) {
				t.Errorf("unit %d failing: after-commit work %v, want %v", failing, after, wantAfter)
			}
			if !slices.Equal(before, []string{"shared"}) {
				t.Errorf("unit %d failing: before-commit work %v, want shared once", failing, before)
			}
			if n := f.drv.txs.Load() - txs; n != wantTxs {
				t.Errorf("unit %d failing: the three units took %d transactions, want %d", failing, n, wantTxs)
			}
		}
	})
}

// A failed commit, or failed work before it, fails every unit of the batch and runs no
// after-commit work.
func TestGroupCommitFailureFailsTheBatch(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fixture) {
		org := f.org(t)
		g := database.NewGroupCommitter(f.db.Client, database.GroupCommitOptions{})
		var afterRan atomic.Int64
		errBefore := errors.New("notifying failed")
		for _, how := range []string{"commit", "before-commit"} {
			t.Run(how, func(t *testing.T) {
				release := hold(t, f, g)
				results := make([]error, 2)
				var wg sync.WaitGroup
				for i := range 2 {
					wg.Go(func() {
						results[i] = g.Do(f.ctx, "", func(ctx context.Context, c *ent.Client) error {
							if err := f.appendTo(org)(ctx, c); err != nil {
								return err
							}
							database.AfterCommit(ctx, func() { afterRan.Add(1) })
							if i == 0 && how == "commit" {
								f.drv.failCommit.Store(true)
							}
							if i == 0 && how == "before-commit" {
								return database.BeforeCommit(ctx, "k", func(context.Context) error { return errBefore })
							}
							return nil
						})
					})
					waitQueued(t, g, i+1)
				}
				release()
				wg.Wait()
				for i, err := range results {
					if err == nil {
						t.Errorf("unit %d succeeded", i)
					}
					if how == "before-commit" && !errors.Is(err, errBefore) {
						t.Errorf("unit %d: %v, want %v", i, err, errBefore)
					}
				}
				if got := f.seqs(t, org); len(got) != 0 {
					t.Errorf("events %v of a failed batch", got)
				}
				if afterRan.Load() != 0 {
					t.Errorf("after-commit work of a failed batch ran")
				}
			})
		}
		// The committer goes on.
		if err := g.Do(f.ctx, "", f.appendTo(org)); err != nil {
			t.Fatal(err)
		}
		if got := f.seqs(t, org); !slices.Equal(got, []int64{1}) {
			t.Errorf("seqs %v, want [1]", got)
		}
	})
}

// After-commit work runs once the batch's changes are visible to everyone.
func TestGroupCommitAfterCommitSeesTheCommit(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fixture) {
		org := f.org(t)
		g := database.NewGroupCommitter(f.db.Client, database.GroupCommitOptions{})
		seen := -1
		err := g.Do(f.ctx, "", func(ctx context.Context, c *ent.Client) error {
			if err := f.appendTo(org)(ctx, c); err != nil {
				return err
			}
			database.AfterCommit(ctx, func() {
				seen = f.db.Client.Event.Query().Where(event.OrganizationID(org)).CountX(f.ctx)
			})
			if seen != -1 {
				t.Error("after-commit work ran before the commit")
			}
			return nil
		})
		if err != nil || seen != 1 {
			t.Fatalf("Do: %v; after-commit work saw %d events, want 1", err, seen)
		}
	})
}

// A caller that goes away before its unit starts is not waited for, and its unit never runs;
// one that goes away while its unit runs does not abort the batch, and learns the outcome.
func TestGroupCommitCancelledCallers(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fixture) {
		org := f.org(t)
		g := database.NewGroupCommitter(f.db.Client, database.GroupCommitOptions{})
		release := hold(t, f, g)

		gone, leave := context.WithCancel(f.ctx)
		ran := false
		done := make(chan error, 1)
		go func() {
			done <- g.Do(gone, "", func(context.Context, *ent.Client) error { ran = true; return nil })
		}()
		waitQueued(t, g, 1)
		leave()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("a caller that left: %v, want context.Canceled", err)
		}

		leaving, leaveNow := context.WithCancel(f.ctx)
		results := make([]error, 2)
		var wg sync.WaitGroup
		wg.Go(func() {
			results[0] = g.Do(leaving, "", func(ctx context.Context, c *ent.Client) error {
				leaveNow() // the request ends while its unit runs
				time.Sleep(20 * time.Millisecond)
				return f.appendTo(org)(ctx, c)
			})
		})
		waitQueued(t, g, 2) // the unit whose caller left is still queued
		wg.Go(func() { results[1] = g.Do(f.ctx, "", f.appendTo(org)) })
		waitQueued(t, g, 3)
		release()
		wg.Wait()
		if results[0] != nil || results[1] != nil {
			t.Errorf("results %v, want nil, nil", results)
		}
		if ran {
			t.Error("the unit of a caller that left ran")
		}
		if got := f.seqs(t, org); !slices.Equal(got, []int64{1, 2}) {
			t.Errorf("seqs %v, want [1 2]", got)
		}
	})
}

// A unit that panics makes its caller panic, and only its own work is lost.
func TestGroupCommitPanickingUnit(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fixture) {
		org := f.org(t)
		g := database.NewGroupCommitter(f.db.Client, database.GroupCommitOptions{})
		release := hold(t, f, g)
		var recovered any
		var ok error
		var wg sync.WaitGroup
		wg.Go(func() {
			defer func() { recovered = recover() }()
			_ = g.Do(f.ctx, "", func(ctx context.Context, c *ent.Client) error {
				_ = f.appendTo(org)(ctx, c)
				panic("boom")
			})
		})
		waitQueued(t, g, 1)
		wg.Go(func() { ok = g.Do(f.ctx, "", f.appendTo(org)) })
		waitQueued(t, g, 2)
		release()
		wg.Wait()
		if recovered != "boom" || ok != nil {
			t.Fatalf("recovered %v, other unit %v; want boom, nil", recovered, ok)
		}
		if got := f.seqs(t, org); !slices.Equal(got, []int64{1}) {
			t.Errorf("seqs %v, want [1]", got)
		}
	})
}

// With a transaction in ctx already, a unit joins it, as with InTx.
func TestGroupCommitJoinsTheTransactionInContext(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fixture) {
		org := f.org(t)
		g := database.NewGroupCommitter(f.db.Client, database.GroupCommitOptions{})
		txs := f.drv.txs.Load()
		errOuter := errors.New("the outer change failed")
		err := database.InTx(f.ctx, f.db.Client, func(ctx context.Context, c *ent.Client) error {
			if err := g.Do(ctx, "", f.appendTo(org)); err != nil {
				return err
			}
			return errOuter
		})
		if !errors.Is(err, errOuter) {
			t.Fatal(err)
		}
		if n := f.drv.txs.Load() - txs; n != 1 {
			t.Errorf("%d transactions, want 1", n)
		}
		if got := f.seqs(t, org); len(got) != 0 {
			t.Errorf("events %v survived the outer rollback", got)
		}
	})
}

// A unit that loses a deadlock against an ordinary transaction is run again in the next
// batch instead of failing (PostgreSQL; SQLite has one writer at a time).
func TestGroupCommitRetriesADeadlockedUnit(t *testing.T) {
	drv := &counting{}
	db := testdb.Open(t, "postgres", database.Options{WrapDriver: drv.wrap})
	ctx := viewer.System(context.Background(), "test")
	f := &fixture{db: db, drv: drv, ctx: ctx, log: events.New(db.Client, nil)}
	x, y := f.org(t), f.org(t)
	g := database.NewGroupCommitter(db.Client, database.GroupCommitOptions{})
	rename := func(ctx context.Context, c interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	}, org gid.ID) error {
		_, err := c.ExecContext(ctx, "UPDATE organizations SET name = name || '.' WHERE id = $1", string(org))
		return err
	}

	// The other transaction locks y, then waits for x, which the batch holds.
	other := make(chan error, 1)
	xLocked := make(chan struct{})
	go func() {
		<-xLocked
		tx, err := db.SQL.BeginTx(ctx, nil)
		if err != nil {
			other <- err
			return
		}
		defer tx.Rollback()                                                //nolint:errcheck // after the commit: a no-op
		_, err = tx.ExecContext(ctx, "SET LOCAL deadlock_timeout = '10s'") // the batch detects it first
		if err == nil {
			err = rename(ctx, tx, y)
		}
		if err == nil {
			err = rename(ctx, tx, x)
		}
		if err == nil {
			err = tx.Commit()
		}
		other <- err
	}()
	waitingForLock := func() bool {
		var n int
		err := db.SQL.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
		return err == nil && n > 0
	}

	release := hold(t, f, g)
	results := make([]error, 2)
	var attempts atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		results[0] = g.Do(ctx, "", func(ctx context.Context, c *ent.Client) error {
			if _, err := c.ExecContext(ctx, "SET LOCAL deadlock_timeout = '50ms'"); err != nil {
				return err
			}
			if err := rename(ctx, c, x); err != nil {
				return err
			}
			close(xLocked)
			for deadline := time.Now().Add(5 * time.Second); !waitingForLock(); {
				if time.Now().After(deadline) {
					return errors.New("the other transaction never waited for x")
				}
				time.Sleep(5 * time.Millisecond)
			}
			return nil
		})
	})
	waitQueued(t, g, 1)
	wg.Go(func() {
		results[1] = g.Do(ctx, "", func(ctx context.Context, c *ent.Client) error {
			attempts.Add(1)
			return rename(ctx, c, y) // waits for the other transaction, which waits for x: a deadlock
		})
	})
	waitQueued(t, g, 2)
	release()
	wg.Wait()
	if err := <-other; err != nil {
		t.Errorf("the other transaction: %v", err)
	}
	if results[0] != nil || results[1] != nil {
		t.Fatalf("results %v, want nil, nil", results)
	}
	if attempts.Load() != 2 {
		t.Errorf("the deadlocked unit ran %d times, want 2", attempts.Load())
	}
	name := db.Client.Organization.GetX(ctx, y).Name
	if name != "Org.." {
		t.Errorf("y is named %q, want Org.. (renamed by both)", name)
	}
}

func TestRetryable(t *testing.T) {
	for err, want := range map[error]bool{
		&pq.Error{Code: "40P01"}:                               true,
		fmt.Errorf("x: %w", &pq.Error{Code: "40001"}):          true,
		&pq.Error{Code: "23505"}:                               false,
		errors.New("deadlock detected"):                        false,
		fmt.Errorf("committing: %w", context.DeadlineExceeded): false,
	} {
		if got := database.Retryable(err); got != want {
			t.Errorf("Retryable(%v) = %v, want %v", err, got, want)
		}
	}
}

// InTx runs before-commit work in the transaction, once per key, just before it commits,
// and neither kind of work when it rolls back.
func TestInTxCommitHooks(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fixture) {
		org := f.org(t)
		var log []string
		work := func(fail bool) error {
			return database.InTx(f.ctx, f.db.Client, func(ctx context.Context, c *ent.Client) error {
				for i := range 3 {
					err := database.BeforeCommit(ctx, "k", func(ctx context.Context) error {
						// In the transaction: its events are there, and this counts with them.
						n, err := c.Event.Query().Where(event.OrganizationID(org)).Count(viewer.System(ctx, "test"))
						log = append(log, fmt.Sprintf("before %d (%d events)", i, n))
						return err
					})
					if err != nil {
						return err
					}
					if err := f.appendTo(org)(ctx, c); err != nil {
						return err
					}
					database.AfterCommitOnce(ctx, "k", func() { log = append(log, fmt.Sprintf("after %d", i)) })
				}
				if fail {
					return errors.New("failed")
				}
				return nil
			})
		}
		if err := work(true); err == nil {
			t.Fatal("no error")
		}
		if len(log) != 0 {
			t.Fatalf("a rolled-back transaction ran %v", log)
		}
		if err := work(false); err != nil {
			t.Fatal(err)
		}
		if want := []string{"before 2 (3 events)", "after 2"}; !slices.Equal(log, want) {
			t.Fatalf("ran %v, want %v", log, want)
		}
		// A failing before-commit function rolls the transaction back.
		err := database.InTx(f.ctx, f.db.Client, func(ctx context.Context, c *ent.Client) error {
			if err := f.appendTo(org)(ctx, c); err != nil {
				return err
			}
			return database.BeforeCommit(ctx, "k", func(context.Context) error { return errors.New("no") })
		})
		if err == nil {
			t.Fatal("a failing before-commit function was ignored")
		}
		if got := f.seqs(t, org); !slices.Equal(got, upTo(3)) {
			t.Errorf("seqs %v, want 1..3", got)
		}
	})
}

// fakeBulk is a BulkWriter that records its calls and fails as told.
type fakeBulk struct {
	mu    sync.Mutex
	calls [][]any
	fail  []error // what the next calls return (then nil)
	panic bool    // the next call panics
}

func (w *fakeBulk) WriteBulk(_ context.Context, _ *ent.Client, items []any) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, items)
	if w.panic {
		w.panic = false
		panic("bulk bug")
	}
	if len(w.fail) > 0 {
		err := w.fail[0]
		w.fail = w.fail[1:]
		return err
	}
	return nil
}

// Bulk units queued together are written by one call of their writer, outside any
// transaction. When the call fails, each unit runs its own function in the batch's
// transaction, so that only the one at fault fails; when it panics, likewise; when it lost a
// deadlock, the units are written in bulk again.
func TestGroupCommitBulk(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fixture) {
		org := f.org(t)
		g := database.NewGroupCommitter(f.db.Client, database.GroupCommitOptions{Log: slog.New(slog.DiscardHandler)})
		errBad := errors.New("a bad item")
		deadlock := &pq.Error{Code: "40P01", Message: "deadlock detected"}
		for _, c := range []struct {
			name       string
			w          *fakeBulk
			calls      int   // of the writer
			txs        int64 // transactions the units took
			seqs       int   // events their functions appended
			failedUnit bool  // the item "bad" fails
		}{
			{name: "written together", w: &fakeBulk{}, calls: 1},
			{name: "failed", w: &fakeBulk{fail: []error{errors.New("a constraint")}}, calls: 1, txs: 1, seqs: 2, failedUnit: true},
			{name: "panicked", w: &fakeBulk{panic: true}, calls: 1, txs: 1, seqs: 2, failedUnit: true},
			{name: "deadlocked", w: &fakeBulk{fail: []error{deadlock}}, calls: 2},
		} {
			t.Run(c.name, func(t *testing.T) {
				before := len(f.seqs(t, org))
				release := hold(t, f, g)
				txs := f.drv.txs.Load()
				items := []string{"a", "bad", "c"}
				results := make([]error, len(items))
				var wg sync.WaitGroup
				for i, item := range items {
					wg.Go(func() {
						results[i] = g.DoBulk(f.ctx, "", c.w, item, func(ctx context.Context, tx *ent.Client) error {
							if item == "bad" {
								return errBad
							}
							return f.appendTo(org)(ctx, tx)
						})
					})
					waitQueued(t, g, i+1)
				}
				release()
				wg.Wait()
				for i, err := range results {
					if wantErr := c.failedUnit && items[i] == "bad"; wantErr != errors.Is(err, errBad) || !wantErr && err != nil {
						t.Errorf("item %s: %v", items[i], err)
					}
				}
				if len(c.w.calls) != c.calls {
					t.Fatalf("%d calls of the writer, want %d", len(c.w.calls), c.calls)
				}
				for _, call := range c.w.calls {
					if !slices.Equal(call, []any{"a", "bad", "c"}) {
						t.Errorf("the writer got %v, want the three items in order", call)
					}
				}
				if n := f.drv.txs.Load() - txs; n != c.txs {
					t.Errorf("%d transactions, want %d", n, c.txs)
				}
				if n := len(f.seqs(t, org)) - before; n != c.seqs {
					t.Errorf("%d events appended by the units' functions, want %d", n, c.seqs)
				}
			})
		}
		// In a transaction, a unit's function runs in it; the writer has nothing to do.
		w := &fakeBulk{}
		err := database.InTx(f.ctx, f.db.Client, func(ctx context.Context, c *ent.Client) error {
			return g.DoBulk(ctx, "", w, "x", f.appendTo(org))
		})
		if err != nil || len(w.calls) != 0 {
			t.Fatalf("in a transaction: %v, %d calls of the writer", err, len(w.calls))
		}
	})
}
