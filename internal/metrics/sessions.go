package metrics

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SessionCounter counts the sessions of every organization by status.
type SessionCounter func(ctx context.Context) (map[string]int, error)

// WatchSessions adds wagate_sessions{status}, read from the database at scrape time. All
// statuses are reported (0 when none is in it). The count is cached for a few seconds, so
// frequent or concurrent scrapes cost one query, and bounded by a timeout, so a slow
// database fails this metric rather than the scrape.
func (m *Metrics) WatchSessions(statuses []string, count SessionCounter) error {
	return m.Registry.Register(&sessionCollector{
		desc: prometheus.NewDesc(namespace+"_sessions", "WhatsApp sessions by status, across all organizations "+
			"(every replica reports the same database-wide numbers).", []string{"status"}, nil),
		statuses: statuses, count: count, ttl: 5 * time.Second, timeout: 2 * time.Second,
	})
}

type sessionCollector struct {
	desc     *prometheus.Desc
	statuses []string
	count    SessionCounter
	ttl      time.Duration
	timeout  time.Duration

	mu     sync.Mutex
	at     time.Time
	cached map[string]int
}

func (c *sessionCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *sessionCollector) Collect(ch chan<- prometheus.Metric) {
	counts, err := c.read()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, s := range c.statuses {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[s]), s)
	}
}

func (c *sessionCollector) read() (map[string]int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cached != nil && time.Since(c.at) < c.ttl {
		return c.cached, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	counts, err := c.count(ctx)
	if err != nil {
		return nil, fmt.Errorf("counting sessions: %w", err)
	}
	c.cached, c.at = counts, time.Now()
	return counts, nil
}
