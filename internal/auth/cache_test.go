package auth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testClock is a clock the test moves.
type testClock struct{ t atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Unix(0, c.t.Load()) }
func (c *testClock) advance(d time.Duration) { c.t.Add(int64(d)) }

// counting returns a load function that counts its calls.
func counting(value string, err error) (func(context.Context) (string, error), *atomic.Int32) {
	var n atomic.Int32
	return func(context.Context) (string, error) {
		n.Add(1)
		return value, err
	}, &n
}

func TestCacheEntriesExpire(t *testing.T) {
	clock := &testClock{}
	c := newCache(10*time.Second, 0, clock.now)
	load, loads := counting("ann", nil)
	lookup := func() {
		t.Helper()
		if v, err := cachedLookup(t.Context(), c, []byte("hash"), false, load); v != "ann" || err != nil {
			t.Fatalf("lookup: %q, %v", v, err)
		}
	}
	lookup()
	clock.advance(10*time.Second - time.Nanosecond)
	lookup()
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d loads within the TTL, want 1", n)
	}
	clock.advance(time.Nanosecond)
	lookup()
	if n := loads.Load(); n != 2 {
		t.Fatalf("%d loads once the TTL passed, want 2", n)
	}
}

func TestCacheStoresNoErrors(t *testing.T) {
	c := newCache(0, 0, time.Now)
	load, loads := counting("", errInvalidToken)
	for range 2 {
		if _, err := cachedLookup(t.Context(), c, []byte("hash"), false, load); !errors.Is(err, errInvalidToken) {
			t.Fatalf("err %v", err)
		}
	}
	if n := loads.Load(); n != 2 {
		t.Fatalf("%d loads, want 2: a refusal must not be cached", n)
	}
}

// A lookup that began before a flush may have read what the flush is for: its result is
// returned to its caller, never kept.
func TestCacheKeepsNoLookupThatBeganBeforeAFlush(t *testing.T) {
	c := newCache(0, 0, time.Now)
	var loads atomic.Int32
	load := func(context.Context) (string, error) {
		if loads.Add(1) == 1 {
			c.Flush() // a change commits while the first lookup reads
		}
		return "ann", nil
	}
	for range 3 {
		if _, err := cachedLookup(t.Context(), c, []byte("hash"), false, load); err != nil {
			t.Fatal(err)
		}
	}
	if n := loads.Load(); n != 2 {
		t.Fatalf("%d loads, want 2: the first result must not be kept, the second must", n)
	}
}

func TestCacheFresh(t *testing.T) {
	c := newCache(0, 0, time.Now)
	load, loads := counting("ann", nil)
	for _, fresh := range []bool{false, true, false} {
		if _, err := cachedLookup(t.Context(), c, []byte("hash"), fresh, load); err != nil {
			t.Fatal(err)
		}
	}
	if n := loads.Load(); n != 2 {
		t.Fatalf("%d loads, want 2: a fresh lookup reads, then refreshes the cache", n)
	}
}

// Run with -race: lookups, flushes and evictions from many goroutines.
func TestCacheConcurrency(t *testing.T) {
	c := newCache(0, 4, time.Now)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				key := []byte{byte((g + i) % 6)}
				v, err := cachedLookup(t.Context(), c, key, i%50 == 0, func(context.Context) ([]byte, error) {
					return key, nil
				})
				if err != nil || v[0] != key[0] {
					t.Errorf("lookup of %v: %v, %v", key, v, err)
					return
				}
				if i%20 == 0 {
					c.Flush()
				}
			}
		})
	}
	wg.Wait()
}

func TestCacheOff(t *testing.T) {
	for _, c := range []*cache{newCache(-1, 0, time.Now), newCache(0, -1, time.Now)} {
		if c.On() {
			t.Fatal("a negative TTL or size must turn the cache off")
		}
		c.Flush() // the hooks flush whether or not this replica caches
		load, loads := counting("ann", nil)
		for range 2 {
			_, _ = cachedLookup(t.Context(), c, []byte("hash"), false, load)
		}
		if n := loads.Load(); n != 2 {
			t.Fatalf("%d loads without a cache, want 2", n)
		}
	}
}
