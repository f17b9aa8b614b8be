package sessions

import (
	"sync"
	"time"

	"github.com/wagate/wagate/internal/gid"
)

// pacer is a token bucket per session: a burst of up to perMinute messages, refilled evenly
// over the minute. Pacing protects numbers from WhatsApp's spam detection.
type pacer struct {
	mu        sync.Mutex
	perMinute float64
	now       func() time.Time
	buckets   map[gid.ID]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newPacer(perMinute int, now func() time.Time) *pacer {
	return &pacer{perMinute: float64(perMinute), now: now, buckets: map[gid.ID]*bucket{}}
}

// take spends a token of the session's bucket; when empty it returns how long until the
// next token, and spends nothing.
func (p *pacer) take(id gid.ID) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	b, ok := p.buckets[id]
	if !ok {
		b = &bucket{tokens: p.perMinute, at: now}
		p.buckets[id] = b
	}
	b.tokens = min(p.perMinute, b.tokens+now.Sub(b.at).Minutes()*p.perMinute)
	b.at = now
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) / p.perMinute * float64(time.Minute))
	}
	b.tokens--
	return 0
}
