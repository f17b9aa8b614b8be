// Package ratelimit holds token buckets by key (an IP address, an account), in the memory of
// one process.
package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Rate is a budget: Burst events at once, refilled evenly over Per. The zero Rate is no
// limit.
type Rate struct {
	Burst int
	Per   time.Duration
}

// ParseRate reads "N/duration" (e.g. "20/1m"); "0" or "off" is no limit.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "0" || s == "off" {
		return Rate{}, nil
	}
	n, per, ok := strings.Cut(s, "/")
	burst, err := strconv.Atoi(n)
	if !ok || err != nil || burst <= 0 {
		return Rate{}, fmt.Errorf("rate %q: want N/duration, e.g. 20/1m, or off", s)
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return Rate{}, fmt.Errorf("rate %q: want N/duration, e.g. 20/1m, or off", s)
	}
	return Rate{Burst: burst, Per: d}, nil
}

func (r Rate) String() string {
	if r.Off() {
		return "off"
	}
	return fmt.Sprintf("%d/%s", r.Burst, r.Per)
}

// Off reports whether r limits nothing.
func (r Rate) Off() bool { return r.Burst <= 0 || r.Per <= 0 }

// MaxKeys bounds the buckets a Limiter remembers. The least recently used one goes first:
// a bucket left alone refills, so forgetting it loses nothing, and a key under attack is
// used constantly and stays.
const MaxKeys = 100_000

// Limiter is a token bucket per key.
type Limiter struct {
	rate    Rate
	now     func() time.Time
	mu      sync.Mutex
	buckets *simplelru.LRU[string, bucket]
}

type bucket struct {
	tokens float64
	at     time.Time
}

// New returns a Limiter; now is the clock (nil: time.Now).
func New(rate Rate, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	buckets, _ := simplelru.NewLRU[string, bucket](MaxKeys, nil) // errors only for size ≤ 0
	return &Limiter{rate: rate, now: now, buckets: buckets}
}

// refilled returns key's bucket as of now; l.mu is held.
func (l *Limiter) refilled(key string, now time.Time) bucket {
	b, ok := l.buckets.Get(key)
	full := float64(l.rate.Burst)
	if !ok {
		return bucket{tokens: full, at: now}
	}
	b.tokens = min(full, b.tokens+float64(now.Sub(b.at))/float64(l.rate.Per)*full)
	b.at = now
	return b
}

// Take spends one token of key's bucket. When the bucket is empty it spends nothing and
// returns how long until a token is back.
func (l *Limiter) Take(key string) (wait time.Duration) {
	return l.take(key, true)
}

// Wait returns how long until key's bucket has a token (0: it has one), spending nothing.
func (l *Limiter) Wait(key string) time.Duration {
	return l.take(key, false)
}

func (l *Limiter) take(key string, spend bool) time.Duration {
	if l == nil || l.rate.Off() {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.refilled(key, now)
	if b.tokens < 1 {
		l.buckets.Add(key, b)
		return time.Duration((1 - b.tokens) / float64(l.rate.Burst) * float64(l.rate.Per))
	}
	if spend {
		b.tokens--
		l.buckets.Add(key, b)
	}
	return 0
}

// Reset refills key's bucket.
func (l *Limiter) Reset(key string) {
	if l == nil || l.rate.Off() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buckets.Remove(key)
}
