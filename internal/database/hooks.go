package database

import (
	"context"
	"sync"

	"github.com/wagate/wagate/ent"
)

// commitHooks is the work waiting for a transaction's commit: before it, in the transaction
// (BeforeCommit), and after it (AfterCommit). A group commit gives each unit its own, merged
// into the transaction's when the unit succeeds and dropped when its work is rolled back, so
// a unit that did not commit leaves nothing behind.
type commitHooks struct {
	tx     *ent.Tx
	mu     sync.Mutex
	before hookList[func(context.Context) error]
	after  hookList[func()]
}

// hookList keeps functions in the order they were first added; one with a key replaces the
// function added earlier under the same key, in its place.
type hookList[F any] struct {
	keys map[any]int
	list []keyedHook[F]
}

type keyedHook[F any] struct {
	key any
	fn  F
}

func (l *hookList[F]) add(key any, fn F) {
	if key != nil {
		if i, ok := l.keys[key]; ok {
			l.list[i].fn = fn
			return
		}
		if l.keys == nil {
			l.keys = map[any]int{}
		}
		l.keys[key] = len(l.list)
	}
	l.list = append(l.list, keyedHook[F]{key, fn})
}

func (l *hookList[F]) merge(o *hookList[F]) {
	for _, h := range o.list {
		l.add(h.key, h.fn)
	}
}

type hooksKey struct{}

// hooksOf returns the hooks of the transaction in ctx, if it has any.
func hooksOf(ctx context.Context) *commitHooks {
	h, _ := ctx.Value(hooksKey{}).(*commitHooks)
	if h == nil || h.tx == nil || h.tx != ent.TxFromContext(ctx) {
		return nil // Outside, or a transaction put in ctx by other means
	}
	return h
}

func withHooks(ctx context.Context, tx *ent.Tx, h *commitHooks) context.Context {
	ctx = ent.NewContext(ent.NewTxContext(ctx, tx), tx.Client())
	return context.WithValue(ctx, hooksKey{}, h)
}

// WithTx returns ctx carrying tx, for the work of an operation that commits it with
// tx.Commit: its queries use tx, InTx joins it, and BeforeCommit and AfterCommit work runs
// around its commit.
func WithTx(ctx context.Context, tx *ent.Tx) context.Context {
	h := &commitHooks{tx: tx}
	tx.OnCommit(func(next ent.Committer) ent.Committer {
		return ent.CommitFunc(func(ctx context.Context, tx *ent.Tx) error {
			if err := h.runBefore(ctx); err != nil {
				return err
			}
			if err := next.Commit(ctx, tx); err != nil {
				return err
			}
			h.runAfter()
			return nil
		})
	})
	return withHooks(ctx, tx, h)
}

func (h *commitHooks) runBefore(ctx context.Context) error {
	h.mu.Lock()
	list := h.before.list
	h.before = hookList[func(context.Context) error]{}
	h.mu.Unlock()
	for _, b := range list {
		if err := b.fn(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (h *commitHooks) runAfter() {
	h.mu.Lock()
	list := h.after.list
	h.after = hookList[func()]{}
	h.mu.Unlock()
	for _, a := range list {
		a.fn()
	}
}

// merge adds a committed unit's hooks to the transaction's.
func (h *commitHooks) merge(u *commitHooks) {
	u.mu.Lock()
	defer u.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.before.merge(&u.before)
	h.after.merge(&u.after)
}

// AfterCommit runs fn once the transaction in ctx has committed (never if it rolls back), or
// at once outside a transaction. Side effects that must not outlive a rolled-back change —
// e-mails, waking a session's sender — go through it. In a group commit, fn runs after the
// shared commit, and never if the caller's unit was rolled back.
func AfterCommit(ctx context.Context, fn func()) {
	afterCommit(ctx, nil, fn)
}

// AfterCommitOnce is AfterCommit once per transaction for each key (comparable, and of a type
// of the caller's own): a later call with the same key replaces fn. Waking the subscribers of
// an organization once per transaction, when its events cannot be handed to them, goes
// through it.
func AfterCommitOnce(ctx context.Context, key any, fn func()) {
	afterCommit(ctx, key, fn)
}

func afterCommit(ctx context.Context, key any, fn func()) {
	if h := hooksOf(ctx); h != nil {
		h.mu.Lock()
		h.after.add(key, fn)
		h.mu.Unlock()
		return
	}
	tx := ent.TxFromContext(ctx)
	if tx == nil {
		fn()
		return
	}
	tx.OnCommit(func(next ent.Committer) ent.Committer {
		return ent.CommitFunc(func(ctx context.Context, tx *ent.Tx) error {
			err := next.Commit(ctx, tx)
			if err == nil {
				fn()
			}
			return err
		})
	})
}

// BeforeCommit runs fn in the transaction in ctx just before it commits, once per key
// (comparable, and of a type of the caller's own): a later call with the same key replaces
// fn. fn's error rolls the transaction back. A NOTIFY per organization and transaction,
// however many events it appends, goes through it. fn must use the transaction it was
// registered in, and ctx gives it no viewer. Without a transaction started by InTx, WithTx
// or a GroupCommitter in ctx, fn runs at once, with ctx, and its error is returned.
func BeforeCommit(ctx context.Context, key any, fn func(ctx context.Context) error) error {
	h := hooksOf(ctx)
	if h == nil {
		return fn(ctx)
	}
	h.mu.Lock()
	h.before.add(key, fn)
	h.mu.Unlock()
	return nil
}

// ChangeHook is the ent hook of something that must hear of changes to some rows (a cache, a
// watcher): after each mutation relevant accepts, it calls notify with the mutation's client,
// in the mutation's transaction, so what notify sends other replicas arrives at commit and
// never for a rollback; and it runs local once that transaction commits (at once for a
// mutation outside one), never before, or a reader in between would see the old rows as
// current. It goes by the mutation's own transaction, which only usually is the one in ctx.
func ChangeHook(relevant func(ent.Mutation) bool, local func(), notify func(context.Context, *ent.Client) error) ent.Hook {
	return func(next ent.Mutator) ent.Mutator {
		return ent.MutateFunc(func(ctx context.Context, m ent.Mutation) (ent.Value, error) {
			v, err := next.Mutate(ctx, m)
			if err != nil || !relevant(m) {
				return v, err
			}
			if tx, err := m.(interface{ Tx() (*ent.Tx, error) }).Tx(); err == nil {
				AfterCommit(ent.NewTxContext(ctx, tx), local)
			} else {
				local()
			}
			return v, notify(ctx, m.(interface{ Client() *ent.Client }).Client())
		})
	}
}
