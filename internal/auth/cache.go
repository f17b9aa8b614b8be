package auth

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/sync/singleflight"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/apikey"
	"github.com/wagate/wagate/internal/cluster"
	"github.com/wagate/wagate/internal/database"
)

// Defaults of Config.CacheTTL and Config.CacheSize.
const (
	DefaultCacheTTL  = 10 * time.Second
	DefaultCacheSize = 10_000
)

// cache remembers what the database said about credentials, so that a request repeating one
// authenticates without a query. Entries are keyed by the credential's hash, never the
// secret, and hold plain data rather than viewers, since requests change their viewer.
// Any change that can alter a resolution empties the cache on commit (see WatchChanges);
// the TTL bounds how long it can miss one made where no hook sees it.
type cache struct {
	ttl time.Duration
	now func() time.Time
	// flights makes concurrent misses for one credential share one lookup.
	flights singleflight.Group

	mu sync.Mutex
	// gen counts flushes: a lookup that began before one may have read what the flush was
	// for, so it must not store its result.
	gen     uint64
	size    int
	entries *simplelru.LRU[string, cached]
}

type cached struct {
	value  any
	stored time.Time
}

// newCache returns a cache, or nil (no caching) when ttl or size is negative.
func newCache(ttl time.Duration, size int, now func() time.Time) *cache {
	if ttl == 0 {
		ttl = DefaultCacheTTL
	}
	if size == 0 {
		size = DefaultCacheSize
	}
	if ttl < 0 || size < 0 {
		return nil
	}
	c := &cache{ttl: ttl, now: now, size: size}
	c.entries = c.newLRU()
	return c
}

func (c *cache) newLRU() *simplelru.LRU[string, cached] {
	l, _ := simplelru.NewLRU[string, cached](c.size, nil) // errors only for a size ≤ 0
	return l
}

// get returns the live entry for key, and the generation to store a new one under.
func (c *cache) get(key string) (any, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries.Get(key)
	if ok && c.now().Sub(e.stored) >= c.ttl {
		c.entries.Remove(key)
		ok = false
	}
	return e.value, c.gen, ok
}

// put stores value for key, unless the cache was flushed since generation gen.
func (c *cache) put(key string, gen uint64, value any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen == c.gen {
		c.entries.Add(key, cached{value: value, stored: c.now()})
	}
}

// flush forgets every entry. A nil cache has none.
func (c *cache) flush() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.entries = c.newLRU() // cheaper than removing 10 000 entries while the bus waits
}

// cachedLookup returns what load says about the credential hashed to hash, from c when it
// can. Errors are not cached: an unknown or refused credential costs its queries every time,
// as it did without a cache. fresh skips the cache but refreshes it, for a check that must
// not trust an entry a pending flush is about to remove.
func cachedLookup[V any](ctx context.Context, c *cache, hash []byte, fresh bool, load func(context.Context) (V, error)) (V, error) {
	if c == nil {
		return load(ctx)
	}
	key := string(hash)
	e, gen, ok := c.get(key)
	if v, isV := e.(V); ok && isV && !fresh {
		return v, nil
	}
	lookup := func(ctx context.Context) (V, error) {
		v, err := load(ctx)
		if err == nil {
			c.put(key, gen, v)
		}
		return v, err
	}
	if fresh {
		return lookup(ctx)
	}
	// Keyed by generation too: a request after a flush never waits for a lookup that began
	// before it. The lookup outlives its first caller, whose cancellation must not fail
	// the others.
	v, err, _ := c.flights.Do(strconv.FormatUint(gen, 10)+":"+key, func() (any, error) {
		return lookup(context.WithoutCancel(ctx))
	})
	if err != nil {
		var zero V
		return zero, err
	}
	return v.(V), nil
}

// changesChannel carries a hint that credentials cached by any replica may resolve
// differently now.
const changesChannel = "wagate_auth"

// NotifyChanged tells every replica listening on the database (see Distribute) to forget the
// credentials it cached. Through a transaction, the replicas hear it at commit, and not at
// all on rollback. For writes made without this package's hooks: `wagate admin`.
func NotifyChanged(ctx context.Context, x cluster.Execer) error {
	return cluster.Notify(ctx, x, changesChannel, "")
}

// notifyOthers is NotifyChanged from this replica, which forgets by itself (see Distribute).
func (s *Service) notifyOthers(ctx context.Context, x cluster.Execer) error {
	return cluster.Notify(ctx, x, changesChannel, s.replica)
}

// WatchChanges empties the cache when a change that can alter how a credential resolves
// commits through client: a membership written, a user, token or key changed or deleted,
// an organization deleted (its memberships and keys go with it, unseen by hooks). This
// replica forgets at commit, before the change's own request answers; the others when the
// notification sent in the change's transaction reaches them (see Distribute). New tokens,
// keys, users and organizations are not cached yet, and a key's last use, written in bulk
// every 30 s (FlushKeyUsage), is not cached at all: those changes keep the cache.
//
// The hooks are installed even when this replica caches nothing, since others may.
func (s *Service) WatchChanges(client *ent.Client) {
	all := func(ent.Mutation) bool { return true }
	notCreate := func(m ent.Mutation) bool { return !m.Op().Is(ent.OpCreate) }
	client.Membership.Use(s.changeHook(all))
	client.User.Use(s.changeHook(notCreate))
	client.AuthToken.Use(s.changeHook(notCreate))
	client.APIKey.Use(s.changeHook(func(m ent.Mutation) bool { return notCreate(m) && !recordsUse(m) }))
	client.Organization.Use(s.changeHook(func(m ent.Mutation) bool { return m.Op().Is(ent.OpDelete | ent.OpDeleteOne) }))
}

// recordsUse tells FlushKeyUsage's writes, which set nothing but a key's last use.
func recordsUse(m ent.Mutation) bool {
	if !m.Op().Is(ent.OpUpdate|ent.OpUpdateOne) || len(m.ClearedFields()) > 0 {
		return false
	}
	for _, f := range m.Fields() {
		if f != apikey.FieldLastUsedAt && f != apikey.FieldUpdatedAt {
			return false
		}
	}
	return true
}

func (s *Service) changeHook(relevant func(ent.Mutation) bool) ent.Hook {
	return database.ChangeHook(relevant, s.cache.flush, func(ctx context.Context, c *ent.Client) error {
		if !s.notifyReplicas {
			return nil
		}
		return s.notifyOthers(ctx, c) // delivered to every replica at commit
	})
}

// Distribute keeps the cache in step with the other replicas on the bus's database: the
// hooks of WatchChanges notify them, their notifications empty this cache, and so does a
// reconnection of the bus, since notifications sent meanwhile are lost.
func (s *Service) Distribute(b *cluster.Bus) error {
	s.notifyReplicas = true
	b.OnResync(s.cache.flush)
	return b.Handle(changesChannel, func(from string) {
		// This replica's own notifications come back too, later than its commits: it forgot
		// then, and forgetting again would drop what it has cached since.
		if from != s.replica {
			s.cache.flush()
		}
	})
}
