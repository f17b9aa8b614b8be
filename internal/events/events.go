// Package events is each organization's durable event log: entries numbered by a per-
// organization sequence without gaps, written in the transaction of the change they
// describe, paged by the API and streamed to subscribers, who can resume after any entry
// with no gap and no duplicate.
package events

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/event"
	"github.com/wagate/wagate/ent/eventcounter"
	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/cluster"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/metrics"
	"github.com/wagate/wagate/internal/viewer"
)

// Log writes and reads the event log.
type Log struct {
	client *ent.Client
	log    *slog.Logger
	feeds  feeds   // woken when an organization's log grows
	access waiters // subscribers to wake when someone may have lost access
	// bus carries wake-ups between replicas; nil when this process is alone.
	bus *cluster.Bus
	// Resync is how often a subscriber re-reads the table without a notification; it
	// bounds how late an event can be when a notification is lost.
	Resync time.Duration
	// Recheck is how often a subscriber's access is checked again without a hint (see
	// WatchAccess): it bounds how late an expired credential, or a lost hint, ends a stream.
	Recheck time.Duration
	// OnAppend, when set, runs in the transaction of every appended event; its error rolls
	// the change back. The server sets it to enqueue webhook deliveries.
	OnAppend func(ctx context.Context, c *ent.Client, ev *ent.Event) error
	// Metrics counts events committed and delivered to subscribers; nil counts nothing.
	Metrics *metrics.Metrics
}

// New returns a Log.
func New(client *ent.Client, log *slog.Logger) *Log {
	if log == nil {
		log = slog.Default()
	}
	return &Log{client: client, log: log, Resync: 30 * time.Second, Recheck: 30 * time.Second}
}

// channel carries "org:seq" after each append, to wake the subscribers of other replicas.
const channel = "wagate_events"

// Distribute makes the log wake subscribers on every replica sharing the database: each
// append notifies the bus at commit, and a notification wakes this replica's subscribers
// of that organization. After the bus reconnects, every subscriber re-reads the table.
func (l *Log) Distribute(b *cluster.Bus) error {
	l.bus = b
	b.OnResync(l.feeds.notifyAll)
	b.OnResync(l.access.notify)
	if err := b.Handle(accessChannel, func(string) { l.access.notify() }); err != nil {
		return err
	}
	return b.Handle(channel, func(payload string) {
		if org, seq, ok := strings.Cut(payload, ":"); ok {
			n, _ := strconv.ParseInt(seq, 10, 64) // 0, "not known", if malformed
			l.feeds.notify(gid.ID(org), n)
		}
	})
}

// Entry is an event to append.
type Entry struct {
	Org        gid.ID
	Type       event.Type
	Session    gid.ID // "" when the event concerns no session
	Message    gid.ID // "" when it concerns no message
	Payload    map[string]any
	OccurredAt time.Time
}

// Append writes e with the next sequence number of its organization. c must be the client
// of the transaction of the change e describes: the counter row it locks orders the
// writers, so sequence numbers commit in order. Subscribers hear of it after the commit.
func (l *Log) Append(ctx context.Context, c *ent.Client, e Entry) (*ent.Event, error) {
	sys := viewer.System(ctx, "event-log")
	seq, err := nextSeq(sys, c, e.Org)
	if err != nil {
		return nil, fmt.Errorf("numbering an event: %w", err)
	}
	if e.Payload == nil {
		e.Payload = map[string]any{}
	}
	create := c.Event.Create().SetOrganizationID(e.Org).SetSeq(seq).SetType(e.Type).
		SetPayload(e.Payload).SetOccurredAt(e.OccurredAt)
	if e.Session != "" {
		create.SetSessionID(e.Session)
	}
	if e.Message != "" {
		create.SetMessageID(e.Message)
	}
	ev, err := create.Save(sys)
	if err != nil {
		return nil, fmt.Errorf("writing an event: %w", err)
	}
	if l.OnAppend != nil {
		if err := l.OnAppend(ctx, c, ev); err != nil {
			return nil, err
		}
	}
	database.AfterCommit(ctx, func() { l.Metrics.EventIngested(string(e.Type)) })
	// One wake-up per organization and transaction, however many events it appends (a group
	// commit appends many): a NOTIFY costs every committer a turn on a server-wide lock.
	key := wakeKey{l, e.Org}
	if l.bus != nil {
		// Delivered at commit to every replica, this one included; the latest call's payload
		// (the highest seq) replaces the earlier ones'.
		payload := fmt.Sprintf("%s:%d", e.Org, ev.Seq)
		err := database.BeforeCommit(ctx, key, func(ctx context.Context) error {
			return cluster.Notify(ctx, c, channel, payload)
		})
		if err != nil {
			return nil, err
		}
	}
	// This replica's subscribers need not wait for the notification's round trip through
	// PostgreSQL; when it arrives, the feed has read that far and skips it.
	database.AfterCommitOnce(ctx, key, func() { l.feeds.notify(e.Org, ev.Seq) })
	return ev, nil
}

// wakeKey names an organization's wake-up in a transaction.
type wakeKey struct {
	log *Log
	org gid.ID
}

// nextSeq counts an event of org and returns its number: one statement, which locks the
// counter row until the transaction ends (PostgreSQL; SQLite has one writer at a time).
// Both dialects read "$1" as the first argument.
func nextSeq(ctx context.Context, c *ent.Client, org gid.ID) (int64, error) {
	rows, err := c.QueryContext(ctx, `INSERT INTO `+eventcounter.Table+` (`+eventcounter.FieldID+`, `+eventcounter.FieldLastSeq+`)
		VALUES ($1, 1) ON CONFLICT (`+eventcounter.FieldID+`) DO UPDATE SET `+eventcounter.FieldLastSeq+` = `+
		eventcounter.Table+`.`+eventcounter.FieldLastSeq+` + 1 RETURNING `+eventcounter.FieldLastSeq, string(org))
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var seq int64
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return 0, err
		}
		return 0, sql.ErrNoRows
	}
	if err := rows.Scan(&seq); err != nil {
		return 0, err
	}
	return seq, rows.Close()
}

// Cursor is an event's stable position in its organization's log.
func Cursor(e *ent.Event) string { return strconv.FormatInt(e.Seq, 10) }

// ParseCursor reads a Cursor; "" is the beginning of the log.
func ParseCursor(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, apperr.Invalid("after", "%q is not an event cursor", s)
	}
	return n, nil
}

// Filter selects events by session and type; empty lists select all.
type Filter struct {
	Sessions []gid.ID
	Types    []event.Type
}

func (f Filter) apply(q *ent.EventQuery) *ent.EventQuery {
	if len(f.Sessions) > 0 {
		q.Where(event.SessionIDIn(f.Sessions...))
	}
	if len(f.Types) > 0 {
		q.Where(event.TypeIn(f.Types...))
	}
	return q
}

// matches is apply for an event already read.
func (f Filter) matches(e *ent.Event) bool {
	if len(f.Sessions) > 0 && (e.SessionID == nil || !slices.Contains(f.Sessions, *e.SessionID)) {
		return false
	}
	return len(f.Types) == 0 || slices.Contains(f.Types, e.Type)
}

// waiters are channels to wake. A wake-up is a hint (at most one pending per waiter): the
// database is the truth.
type waiters struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

func (w *waiters) register() (chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	if w.subs == nil {
		w.subs = map[chan struct{}]struct{}{}
	}
	w.subs[ch] = struct{}{}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(w.subs, ch)
		w.mu.Unlock()
	}
}

func (w *waiters) notify() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.subs {
		select {
		case ch <- struct{}{}:
		default: // already pending
		}
	}
}
