package tenancy

import (
	"context"
	"sync"
	"time"

	"github.com/wagate/wagate/internal/gid"
)

// memo caches a per-organization setting for a few seconds, so a page of 100 messages reads
// it once instead of 100 times. A change shows within memoTTL.
type memo struct {
	mu      sync.Mutex
	entries map[gid.ID]memoEntry
}

type memoEntry struct {
	value bool
	at    time.Time
}

const (
	memoTTL = 5 * time.Second
	memoMax = 10000
)

func (m *memo) get(ctx context.Context, org gid.ID, load func(context.Context) (bool, error)) (bool, error) {
	now := time.Now()
	m.mu.Lock()
	e, ok := m.entries[org]
	m.mu.Unlock()
	if ok && now.Sub(e.at) < memoTTL {
		return e.value, nil
	}
	v, err := load(ctx)
	if err != nil {
		return false, err
	}
	m.mu.Lock()
	if m.entries == nil || len(m.entries) >= memoMax {
		m.entries = map[gid.ID]memoEntry{}
	}
	m.entries[org] = memoEntry{value: v, at: now}
	m.mu.Unlock()
	return v, nil
}

func (m *memo) forget(org gid.ID) {
	m.mu.Lock()
	delete(m.entries, org)
	m.mu.Unlock()
}
