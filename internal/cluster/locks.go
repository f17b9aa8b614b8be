package cluster

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Locks holds session-level advisory locks on one dedicated connection. PostgreSQL releases
// them when that connection ends, so a replica that dies (or is cut off from the database)
// loses everything it owned, and another can take over. The holder must therefore stop
// using what it owned as soon as the connection fails: Lost tells it.
type Locks struct {
	db  *sql.DB
	log *slog.Logger
	// Namespace separates these locks from other advisory locks (the migration lock).
	namespace string

	mu   sync.Mutex
	conn *sql.Conn
	held map[string]bool
	lost chan struct{}
}

// NewLocks returns locks named within namespace, held on connections taken from db.
func NewLocks(db *sql.DB, namespace string, log *slog.Logger) *Locks {
	return &Locks{db: db, log: log, namespace: namespace, held: map[string]bool{}, lost: make(chan struct{})}
}

// TryAcquire takes the lock on name if nobody holds it; it reports whether this process
// now holds it.
func (l *Locks) TryAcquire(ctx context.Context, name string) (bool, error) {
	// A request that goes away must not cancel the query midway: that could cost the
	// connection, and with it every lock.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[name] {
		return true, nil
	}
	if l.conn == nil {
		c, err := l.db.Conn(ctx)
		if err != nil {
			return false, fmt.Errorf("opening the lock connection: %w", err)
		}
		// PostgreSQL frees the locks of a replica whose host died or was cut off only when
		// it notices the connection is gone: TCP keepalives make that seconds, not hours.
		if _, err := c.ExecContext(ctx, "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3"); err != nil {
			discard(c)
			return false, fmt.Errorf("configuring the lock connection: %w", err)
		}
		l.conn = c
	}
	var ok bool
	err := l.conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", l.namespace+":"+name).Scan(&ok)
	if err != nil {
		l.failLocked(err)
		return false, fmt.Errorf("taking lock %s: %w", name, err)
	}
	if ok {
		l.held[name] = true
	}
	return ok, nil
}

// Held reports whether this process holds the lock on name.
func (l *Locks) Held(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[name]
}

// Release gives the lock on name up.
func (l *Locks) Release(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held[name] || l.conn == nil {
		return
	}
	delete(l.held, name)
	if _, err := l.conn.ExecContext(ctx, "SELECT pg_advisory_unlock(hashtextextended($1, 0))", l.namespace+":"+name); err != nil {
		l.failLocked(err)
	}
}

// Lost is closed when the connection holding the locks fails: every lock is gone. Later
// acquisitions use a new connection and a new Lost channel.
func (l *Locks) Lost() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// Watch checks the connection every interval until ctx ends, so a broken one is noticed
// even when nothing is being acquired; then it releases every lock.
func (l *Locks) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.Close()
			return
		case <-t.C:
		}
		l.mu.Lock()
		if l.conn != nil {
			// A slow answer is not a lost connection: dropping every session on a short
			// stall would make them hop between replicas.
			pctx, cancel := context.WithTimeout(ctx, pingTimeout)
			if err := l.conn.PingContext(pctx); err != nil && ctx.Err() == nil {
				l.failLocked(err)
			}
			cancel()
		}
		l.mu.Unlock()
	}
}

// pingTimeout is how long the lock connection may take to answer a ping.
const pingTimeout = 5 * time.Second

// Close releases every lock by ending the connection.
func (l *Locks) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		discard(l.conn)
		l.conn = nil
	}
	l.held = map[string]bool{}
}

// failLocked forgets a broken connection and everything held on it.
func (l *Locks) failLocked(err error) {
	if l.conn == nil {
		return
	}
	l.log.Error("lost the session lock connection; every session of this replica stops", "err", err, "held", len(l.held))
	discard(l.conn)
	l.conn = nil
	l.held = map[string]bool{}
	close(l.lost)
	l.lost = make(chan struct{})
}

// discard closes c for good: returned to the pool, it would keep holding its locks.
func discard(c *sql.Conn) {
	_ = c.Raw(func(any) error { return driver.ErrBadConn }) // a bad connection is closed, not pooled
	_ = c.Close()
}
