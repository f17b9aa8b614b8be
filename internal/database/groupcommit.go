package database

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/lib/pq"

	"github.com/wagate/wagate/ent"
)

// DefaultMaxBatch is how many units a GroupCommitter puts in one transaction by default.
// Each unit that writes is a PostgreSQL subtransaction; beyond 64 of them in one transaction
// (PGPROC_MAX_CACHED_SUBXIDS) every other session's snapshots overflow to pg_subtrans
// lookups, so a batch stays within that.
const DefaultMaxBatch = 64

// retries is how often a unit that lost a deadlock or a serialization conflict is tried again
// in a later batch before its error is returned.
const retries = 5

// GroupCommitter commits the work of concurrent callers together: while one transaction
// commits, the units submitted meanwhile queue up, and the next transaction runs all of them
// (up to a cap), each after the first in its own savepoint, then commits once. A commit costs a disk flush
// and releases the row locks that order writers (an organization's event counter), so one
// commit for many units multiplies what those writers can commit per second. Nothing waits
// for a batch to fill: a unit submitted while nothing commits starts at once.
//
// A unit that fails is rolled back alone (to its savepoint; the first, which has none, with
// the transaction, the others then running in the next one) and gets its error; the others
// commit. A failed commit fails every unit of its batch. A unit that loses a deadlock or a
// serialization conflict (units of unrelated callers share a transaction, so they take row
// locks in no particular order) is run again in a later transaction.
//
// Units submitted with DoBulk are written by their BulkWriter, all of a batch's at once, in
// a statement of its own before the batch's transaction; only if that fails do they run in
// the transaction, one by one.
type GroupCommitter struct {
	client *ent.Client
	log    *slog.Logger
	max    int
	seed   maphash.Seed
	lanes  []*lane
}

// GroupCommitOptions tune a GroupCommitter.
type GroupCommitOptions struct {
	// MaxBatch caps the units of one transaction; 0 means DefaultMaxBatch.
	MaxBatch int
	// Lanes is how many transactions may run at once, each for its own share of the keys
	// units are submitted with; 0 means 1. Units with one key always share a lane, so work
	// that takes the same row locks should share a key: lanes then never wait for each
	// other, and cannot deadlock each other.
	Lanes int
	// Log reports bulk writes that failed (see DoBulk); nil means slog.Default().
	Log *slog.Logger
}

// lane is a queue of units and the batches run from it, one at a time.
type lane struct {
	g       *GroupCommitter
	mu      sync.Mutex
	queue   []*unit
	leading bool // a goroutine is running batches
}

// NewGroupCommitter returns a committer on client, which must not be transactional.
func NewGroupCommitter(client *ent.Client, opts GroupCommitOptions) *GroupCommitter {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	g := &GroupCommitter{client: client, log: opts.Log, max: opts.MaxBatch, seed: maphash.MakeSeed()}
	for range max(1, opts.Lanes) {
		g.lanes = append(g.lanes, &lane{g: g})
	}
	return g
}

const (
	queued int32 = iota
	started
	abandoned
)

type unit struct {
	ctx context.Context
	fn  func(context.Context, *ent.Client) error
	// bulk, when set, writes the unit's item together with the other items of its batch
	// (see DoBulk); fn is then the way to write it alone.
	bulk  BulkWriter
	item  any
	state atomic.Int32
	tries int
	done  chan result
}

// retry counts another try of u, false once it has had its retries.
func (u *unit) retry() bool {
	if u.tries >= retries {
		return false
	}
	u.tries++
	return true
}

// retryAll appends to again the units, whose work err undid through no fault of their own,
// that have retries left, and ends the others with err.
func retryAll(us []*unit, err error, again []*unit) []*unit {
	for _, u := range us {
		if u.retry() {
			again = append(again, u)
		} else {
			u.done <- result{err: err}
		}
	}
	return again
}

// BulkWriter writes the items of many units at once, in fewer statements than one by one.
type BulkWriter interface {
	// WriteBulk stores items, all or none, and commits them before it returns: it runs
	// outside any transaction, with client. Its work after the commit (notifications to
	// this process) is its own. An error means that nothing was stored.
	WriteBulk(ctx context.Context, client *ent.Client, items []any) error
}

type result struct {
	err      error
	panicked bool
	panicVal any
}

// Do runs fn in a transaction shared with other callers' units, and returns once that
// transaction has committed (nil) or fn's work was rolled back (its error, or the
// transaction's). fn must be ready to run again: after a deadlock its work is rolled back and
// retried. Its ctx carries the transaction as InTx's does; AfterCommit work registered in it
// runs after the shared commit, and only if fn's work is part of it. The transaction is not
// cancelled with ctx, but fn does not run when ctx ends before it starts. With a transaction
// in ctx already, fn runs in it, as with InTx.
func (g *GroupCommitter) Do(ctx context.Context, key string, fn func(ctx context.Context, tx *ent.Client) error) error {
	if ent.TxFromContext(ctx) != nil {
		return InTx(ctx, g.client, fn)
	}
	return g.submit(ctx, key, &unit{ctx: ctx, fn: fn})
}

// DoBulk is Do for work that w can do for many callers at once: the items of one batch's
// callers that share w are written by one call of w, before the batch's transaction and
// outside it (a statement that commits on its own holds its row locks for less time, and
// costs no BEGIN and COMMIT round trips). When that call fails, each of those callers' fn
// runs in the transaction instead, so that only the item at fault fails (fn must store
// item exactly as w would). With a transaction in ctx already, fn runs in it.
func (g *GroupCommitter) DoBulk(ctx context.Context, key string, w BulkWriter, item any, fn func(ctx context.Context, tx *ent.Client) error) error {
	if ent.TxFromContext(ctx) != nil {
		return InTx(ctx, g.client, fn)
	}
	return g.submit(ctx, key, &unit{ctx: ctx, fn: fn, bulk: w, item: item})
}

func (g *GroupCommitter) submit(ctx context.Context, key string, u *unit) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	u.done = make(chan result, 1)
	g.lanes[maphash.String(g.seed, key)%uint64(len(g.lanes))].push(u)
	var r result
	select {
	case r = <-u.done:
	case <-ctx.Done():
		if u.state.CompareAndSwap(queued, abandoned) {
			return ctx.Err()
		}
		r = <-u.done // it runs: its outcome decides
	}
	if r.panicked {
		panic(r.panicVal)
	}
	return r.err
}

// Pending returns how many units wait for a transaction.
func (g *GroupCommitter) Pending() int {
	n := 0
	for _, l := range g.lanes {
		l.mu.Lock()
		n += len(l.queue)
		l.mu.Unlock()
	}
	return n
}

func (l *lane) push(u *unit) {
	l.mu.Lock()
	l.queue = append(l.queue, u)
	start := !l.leading
	l.leading = true
	l.mu.Unlock()
	if start {
		go l.lead()
	}
}

// requeue puts units back at the head of the queue, for the next batch.
func (l *lane) requeue(units []*unit) {
	for _, u := range units {
		u.state.Store(queued)
	}
	l.mu.Lock()
	l.queue = append(slices.Clone(units), l.queue...)
	l.mu.Unlock()
}

// lead runs batches until the queue is empty.
func (l *lane) lead() {
	for {
		l.mu.Lock()
		if len(l.queue) == 0 {
			l.leading = false
			l.mu.Unlock()
			return
		}
		n := min(len(l.queue), l.g.max)
		batch := slices.Clone(l.queue[:n])
		l.queue = slices.Clone(l.queue[n:])
		l.mu.Unlock()
		l.run(batch)
	}
}

// run commits a batch.
func (l *lane) run(batch []*unit) {
	units := batch[:0]
	for _, u := range batch {
		if !u.state.CompareAndSwap(queued, started) {
			continue // its caller left
		}
		if err := u.ctx.Err(); err != nil {
			u.done <- result{err: err}
			continue
		}
		units = append(units, u)
	}
	var (
		again []*unit // to run in a later batch
		in    []*unit // units whose work the transaction holds
	)
	defer func() {
		if len(again) > 0 {
			l.requeue(again)
		}
	}()
	units, again = l.writeBulk(units)
	if len(units) == 0 {
		return
	}
	// settle ends a unit whose work was rolled back, or queues it again when its error is
	// worth a retry.
	settle := func(u *unit, r result) {
		if !r.panicked && Retryable(r.err) && u.retry() {
			again = append(again, u)
			return
		}
		u.done <- r
	}
	ctx := context.Background()
	tx, err := l.g.client.Tx(ctx)
	if err != nil {
		for _, u := range units {
			settle(u, result{err: fmt.Errorf("starting transaction: %w", err)})
		}
		return
	}
	c := tx.Client()
	exec := func(q string) error {
		_, err := c.ExecContext(ctx, q)
		return err
	}
	// lost ends a transaction that failed under the units it holds: they did nothing
	// wrong, so they run again (a few times at most), as do the units not started.
	lost := func(err error, rest []*unit) {
		_ = tx.Rollback()
		again = append(retryAll(in, err, again), rest...)
	}
	// The first unit runs without a savepoint: if it fails, the transaction holds nothing
	// else and is rolled back whole. Every later unit runs under a savepoint "unit", taken
	// after the previous unit's success (released and taken again, one round trip) and
	// kept after a failure (rolled back to). A batch of one — the common case at a low
	// rate — thus costs no savepoint at all, and no batch a trailing one.
	hooks := &commitHooks{tx: tx}
	saved, clean := false, false // a savepoint is open; it holds no work yet
	for i, u := range units {
		if i > 0 && !clean {
			q := "SAVEPOINT unit"
			if saved {
				q = "RELEASE SAVEPOINT unit; SAVEPOINT unit"
			}
			if err := exec(q); err != nil {
				lost(fmt.Errorf("taking a savepoint: %w", err), units[i:])
				return
			}
			saved = true
		}
		clean = false
		h := &commitHooks{tx: tx}
		r := call(withHooks(context.WithoutCancel(u.ctx), tx, h), c, u.fn)
		if r.err == nil && !r.panicked {
			hooks.merge(h)
			in = append(in, u)
			continue
		}
		if i == 0 {
			_ = tx.Rollback()
			settle(u, r)
			again = append(again, units[1:]...) // not started
			return
		}
		if err := exec("ROLLBACK TO SAVEPOINT unit"); err != nil {
			settle(u, r)
			lost(fmt.Errorf("rolling back to a savepoint: %w", err), units[i+1:])
			return
		}
		clean = true
		settle(u, r)
	}
	if len(in) == 0 {
		_ = tx.Rollback()
		return
	}
	if err := hooks.runBefore(ctx); err != nil {
		_ = tx.Rollback()
		for _, u := range in {
			settle(u, result{err: err})
		}
		return
	}
	if err := tx.Commit(); err != nil {
		_ = tx.Rollback()
		for _, u := range in {
			settle(u, result{err: fmt.Errorf("committing transaction: %w", err)})
		}
		return
	}
	hooks.runAfter()
	for _, u := range in {
		u.done <- result{}
	}
}

// writeBulk writes the bulk units among units, each writer's in one call, and returns the
// units left for the transaction (those of writers that failed among them) and those to
// retry later (those of writers that lost a deadlock).
func (l *lane) writeBulk(units []*unit) (rest, again []*unit) {
	var groups map[BulkWriter][]*unit
	var order []BulkWriter
	for _, u := range units {
		if u.bulk == nil {
			rest = append(rest, u)
			continue
		}
		if groups == nil {
			groups = map[BulkWriter][]*unit{}
		}
		if _, ok := groups[u.bulk]; !ok {
			order = append(order, u.bulk)
		}
		groups[u.bulk] = append(groups[u.bulk], u)
	}
	for _, w := range order {
		us := groups[w]
		items := make([]any, len(us))
		for i, u := range us {
			items[i] = u.item
		}
		err := callBulk(w, l.g.client, items)
		switch {
		case err == nil:
			for _, u := range us {
				u.done <- result{}
			}
		case Retryable(err):
			again = retryAll(us, err, again)
		default:
			// Each runs alone in the transaction, where the one at fault fails by itself.
			l.g.log.Warn("bulk write failed; writing its items one by one", "items", len(items), "err", err)
			for _, u := range us {
				u.bulk, u.item = nil, nil
			}
			rest = append(rest, us...)
		}
	}
	return rest, again
}

// callBulk calls w, turning a panic into an error: each item then runs alone, and the one
// at fault panics in its own caller.
func callBulk(w BulkWriter, c *ent.Client, items []any) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("bulk write panicked: %v", v)
		}
	}()
	return w.WriteBulk(context.Background(), c, items)
}

// call runs a unit's function, turning a panic into a result its caller re-panics with.
func call(ctx context.Context, c *ent.Client, fn func(context.Context, *ent.Client) error) (r result) {
	defer func() {
		if v := recover(); v != nil {
			r = result{panicked: true, panicVal: v}
		}
	}()
	return result{err: fn(ctx, c)}
}

// Retryable reports whether err is a deadlock or a serialization failure on PostgreSQL: the
// transaction was rolled back through no fault of its own and may succeed if run again.
func Retryable(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}
