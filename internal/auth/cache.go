package auth

import (
	"context"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/apikey"
	"github.com/wagate/wagate/internal/changecache"
	"github.com/wagate/wagate/internal/cluster"
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
	*changecache.Cache[string, any]
	// flights makes concurrent misses for one credential share one lookup.
	flights singleflight.Group
}

// newCache returns a cache, which keeps nothing (though its hooks still tell the other
// replicas) when ttl or size is negative.
func newCache(ttl time.Duration, size int, now func() time.Time) *cache {
	if ttl == 0 {
		ttl = DefaultCacheTTL
	}
	if size == 0 {
		size = DefaultCacheSize
	}
	return &cache{Cache: changecache.New[string, any](changesChannel, ttl, size, now)}
}

// cachedLookup returns what load says about the credential hashed to hash, from c when it
// can. Errors are not cached: an unknown or refused credential costs its queries every time,
// as it did without a cache. fresh skips the cache but refreshes it, for a check that must
// not trust an entry a pending flush is about to remove.
func cachedLookup[V any](ctx context.Context, c *cache, hash []byte, fresh bool, load func(context.Context) (V, error)) (V, error) {
	if !c.On() {
		return load(ctx)
	}
	key := string(hash)
	e, ok, ticket := c.Get(key)
	if v, isV := e.(V); ok && isV && !fresh {
		return v, nil
	}
	lookup := func(ctx context.Context) (V, error) {
		v, err := load(ctx)
		if err == nil {
			c.Put(key, ticket, v)
		}
		return v, err
	}
	if fresh {
		return lookup(ctx)
	}
	// Keyed by the flushes too: a request after a flush never waits for a lookup that began
	// before it. The lookup outlives its first caller, whose cancellation must not fail
	// the others.
	v, err, _ := c.flights.Do(ticket.String()+":"+key, func() (any, error) {
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
	client.Membership.Use(s.cache.Hook(all))
	client.User.Use(s.cache.Hook(notCreate))
	client.AuthToken.Use(s.cache.Hook(notCreate))
	client.APIKey.Use(s.cache.Hook(func(m ent.Mutation) bool { return notCreate(m) && !recordsUse(m) }))
	client.Organization.Use(s.cache.Hook(func(m ent.Mutation) bool { return m.Op().Is(ent.OpDelete | ent.OpDeleteOne) }))
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

// Distribute keeps the cache in step with the other replicas on the bus's database (see
// changecache.Cache.Distribute).
func (s *Service) Distribute(b *cluster.Bus) error { return s.cache.Distribute(b) }
