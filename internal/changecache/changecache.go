// Package changecache keeps what the database said about some rows and forgets it when they
// change: on this replica when the change commits, on the other replicas when the change's
// notification reaches them, on every replica when its notification bus reconnects (what
// was sent meanwhile is lost), and after a TTL for changes made where no hook sees them.
package changecache

import (
	"context"
	"crypto/rand"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/internal/cluster"
	"github.com/wagate/wagate/internal/database"
)

// Cache maps keys to what a look-up in the database found.
type Cache[K comparable, V any] struct {
	ttl     time.Duration
	size    int
	now     func() time.Time
	on      bool   // false: it keeps nothing, but its hooks still tell the other replicas
	channel string // carries its changes to the other replicas
	replica string // tells this process's notifications from the others'
	// notifyReplicas is set by Distribute: the hooks then tell the other replicas.
	notifyReplicas atomic.Bool

	mu sync.Mutex
	// gen counts flushes: a look-up that began before one may have read what the flush was
	// for, so it must not store its result.
	gen     uint64
	entries *simplelru.LRU[K, entry[V]]
}

type entry[V any] struct {
	value V
	at    time.Time // when the look-up that found it began
}

// Ticket is what a look-up shows to store its result: when it began, and how many flushes
// had happened then.
type Ticket struct {
	gen uint64
	at  time.Time
}

// String names the ticket's generation: look-ups that share it may share one read.
func (t Ticket) String() string { return strconv.FormatUint(t.gen, 10) }

// New returns a cache whose changes travel on channel, keeping entries for ttl and at most
// size of them; with a negative ttl or size it keeps nothing (see On).
func New[K comparable, V any](channel string, ttl time.Duration, size int, now func() time.Time) *Cache[K, V] {
	c := &Cache[K, V]{ttl: ttl, size: size, now: now, on: ttl >= 0 && size >= 0, channel: channel, replica: rand.Text()}
	if c.on {
		c.entries = c.newLRU()
	}
	return c
}

func (c *Cache[K, V]) newLRU() *simplelru.LRU[K, entry[V]] {
	l, _ := simplelru.NewLRU[K, entry[V]](c.size, nil) // errors only for a size ≤ 0
	return l
}

// On reports whether the cache keeps anything.
func (c *Cache[K, V]) On() bool { return c.on }

// Get returns the live entry for key, if any, and the ticket of a look-up starting now.
func (c *Cache[K, V]) Get(key K) (v V, ok bool, t Ticket) {
	if !c.on {
		return v, false, t
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t = Ticket{gen: c.gen, at: c.now()}
	e, ok := c.entries.Get(key)
	if ok && t.at.Sub(e.at) >= c.ttl {
		c.entries.Remove(key)
		return v, false, t
	}
	return e.value, ok, t
}

// Put stores what the look-up holding t found for key, unless the cache was flushed since
// that look-up began.
func (c *Cache[K, V]) Put(key K, t Ticket, v V) {
	if !c.on {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.gen == c.gen {
		c.entries.Add(key, entry[V]{value: v, at: t.at})
	}
}

// Flush forgets every entry.
func (c *Cache[K, V]) Flush() {
	if !c.on {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.entries = c.newLRU() // cheaper than removing every entry while the bus waits
}

// Hook is the ent hook of the rows the cache depends on: after each mutation relevant
// accepts, this replica forgets at the mutation's commit, and the other replicas (once
// Distribute was called) when the notification sent in that transaction reaches them.
func (c *Cache[K, V]) Hook(relevant func(ent.Mutation) bool) ent.Hook {
	return database.ChangeHook(relevant, c.Flush, func(ctx context.Context, client *ent.Client) error {
		if !c.notifyReplicas.Load() {
			return nil
		}
		return cluster.Notify(ctx, client, c.channel, c.replica) // delivered at commit
	})
}

// Distribute keeps the cache in step with the other replicas on the bus's database: its
// hooks notify them, their notifications empty this cache, and so does a reconnection of the
// bus.
func (c *Cache[K, V]) Distribute(b *cluster.Bus) error {
	c.notifyReplicas.Store(true)
	b.OnResync(c.Flush)
	return b.Handle(c.channel, func(from string) {
		// This replica's own notifications come back too, later than its commits: it forgot
		// then, and forgetting again would drop what it has cached since.
		if from != c.replica {
			c.Flush()
		}
	})
}
