// Package cluster lets several wagate replicas share one PostgreSQL database: a bus of
// notifications between processes (LISTEN/NOTIFY) and exclusive ownership of WhatsApp
// sessions (advisory locks). Notifications are hints that something changed in a table;
// the tables stay the truth, so a lost one delays work and never loses it.
package cluster

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lib/pq"
)

// Execer runs a statement: an ent client or transaction, or a *sql.DB.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Notify sends payload on channel through x. Inside a transaction PostgreSQL delivers it
// at commit, and not at all on rollback, so listeners never hear of an uncommitted change.
func Notify(ctx context.Context, x Execer, channel, payload string) error {
	if _, err := x.ExecContext(ctx, "SELECT pg_notify($1, $2)", channel, payload); err != nil {
		return fmt.Errorf("notifying %s: %w", channel, err)
	}
	return nil
}

// Bus is a process's one listening connection. Handlers run on the bus's goroutine, one at
// a time, so they must be quick (wake something up, never query).
type Bus struct {
	l   *pq.Listener
	log *slog.Logger

	mu       sync.Mutex
	handlers map[string][]func(payload string)
	resync   []func()

	connected atomic.Bool
	done      chan struct{}
}

// Listen opens the listening connection to dsn. It reconnects by itself; after each
// reconnect every resync function runs, since notifications sent meanwhile are lost.
func Listen(dsn string, log *slog.Logger) *Bus {
	b := &Bus{log: log, handlers: map[string][]func(string){}, done: make(chan struct{})}
	b.l = pq.NewListener(dsn, 100*time.Millisecond, 5*time.Second, func(ev pq.ListenerEventType, err error) {
		switch ev {
		case pq.ListenerEventConnected, pq.ListenerEventReconnected:
			b.connected.Store(true)
		case pq.ListenerEventDisconnected:
			b.connected.Store(false)
			log.Warn("notification listener disconnected; reconnecting", "err", err)
		case pq.ListenerEventConnectionAttemptFailed:
			log.Warn("notification listener cannot connect", "err", err)
		}
	})
	return b
}

// Handle calls fn with the payload of every notification on channel.
func (b *Bus) Handle(channel string, fn func(payload string)) error {
	b.mu.Lock()
	first := len(b.handlers[channel]) == 0
	b.handlers[channel] = append(b.handlers[channel], fn)
	b.mu.Unlock()
	if first {
		if err := b.l.Listen(channel); err != nil && err != pq.ErrChannelAlreadyOpen {
			return fmt.Errorf("listening on %s: %w", channel, err)
		}
	}
	return nil
}

// OnResync calls fn whenever notifications may have been lost.
func (b *Bus) OnResync(fn func()) {
	b.mu.Lock()
	b.resync = append(b.resync, fn)
	b.mu.Unlock()
}

// Ready reports whether the listening connection is up.
func (b *Bus) Ready() bool { return b.connected.Load() }

// Run dispatches notifications until ctx ends, then closes the connection.
func (b *Bus) Run(ctx context.Context) {
	defer close(b.done)
	defer b.l.Close()
	// A quiet connection can die unnoticed; pinging it makes the listener find out and
	// reconnect (and resync).
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-b.l.Notify:
			b.dispatch(n)
		case <-ping.C:
			if err := b.l.Ping(); err != nil {
				b.log.Warn("notification listener ping failed", "err", err)
			}
		}
	}
}

// Wait blocks until Run has returned.
func (b *Bus) Wait() { <-b.done }

func (b *Bus) dispatch(n *pq.Notification) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n == nil { // reconnected: anything may have been missed
		for _, fn := range b.resync {
			fn()
		}
		return
	}
	for _, fn := range b.handlers[n.Channel] {
		fn(n.Extra)
	}
}

// Node is this process's membership of the cluster: its listening connection and its
// lock connection, both watched until Close.
type Node struct {
	Bus    *Bus
	Locks  *Locks
	cancel context.CancelFunc
	done   chan struct{}
}

// Join connects this process to the other replicas on the database at dsn (pool db).
func Join(dsn string, db *sql.DB, log *slog.Logger) *Node {
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{Bus: Listen(dsn, log), Locks: NewLocks(db, "wagate-session", log), cancel: cancel, done: make(chan struct{})}
	go n.Bus.Run(ctx)
	go func() {
		defer close(n.done)
		// Often: until it notices, a replica cut off from the database may still run
		// sessions that another one is taking over.
		n.Locks.Watch(ctx, time.Second)
	}()
	return n
}

// Close leaves the cluster: every lock is released and the listener closed.
func (n *Node) Close() {
	n.cancel()
	n.Bus.Wait()
	<-n.done
}
