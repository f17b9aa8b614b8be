package changecache

import (
	"testing"
	"time"
)

func TestCacheIsBounded(t *testing.T) {
	c := New[string, string]("test", time.Hour, 2, time.Now)
	for _, k := range []string{"a", "b", "a", "c"} { // "b" is the least recently used
		_, _, ticket := c.Get(k)
		c.Put(k, ticket, k)
		c.Get(k)
	}
	for k, want := range map[string]bool{"a": true, "b": false, "c": true} {
		if _, ok, _ := c.Get(k); ok != want {
			t.Errorf("%s cached: %v, want %v", k, ok, want)
		}
	}
}

// An entry lives for the TTL from when the look-up that found it began; a look-up that
// began before a flush stores nothing.
func TestCacheTicket(t *testing.T) {
	now := time.Unix(0, 0)
	c := New[string, string]("test", 10*time.Second, 10, func() time.Time { return now })
	_, _, ticket := c.Get("k")
	now = now.Add(time.Second) // the look-up takes a second
	c.Put("k", ticket, "v")
	now = now.Add(9*time.Second - time.Nanosecond)
	if v, ok, _ := c.Get("k"); !ok || v != "v" {
		t.Fatalf("within the TTL: %q %v", v, ok)
	}
	now = now.Add(time.Nanosecond)
	if _, ok, _ := c.Get("k"); ok {
		t.Fatal("kept 10 s after its look-up began")
	}
	_, _, ticket = c.Get("k")
	c.Flush()
	c.Put("k", ticket, "v")
	if _, ok, _ := c.Get("k"); ok {
		t.Fatal("kept what a look-up begun before a flush found")
	}
}

func TestCacheOff(t *testing.T) {
	c := New[string, string]("test", -1, 10, time.Now)
	_, _, ticket := c.Get("k")
	c.Put("k", ticket, "v")
	c.Flush()
	if _, ok, _ := c.Get("k"); ok || c.On() {
		t.Fatal("a cache that is off keeps nothing")
	}
}
