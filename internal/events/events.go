// Package events is each organization's durable event log: entries numbered by a per-
// organization sequence without gaps, written in the transaction of the change they
// describe, paged by the API and streamed to subscribers, who can resume after any entry
// with no gap and no duplicate.
package events

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
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
	// replica tells this process's notifications from the other replicas'.
	replica string
	// Resync is how often a subscriber re-reads the table without a notification; it
	// bounds how late an event can be when a notification is lost.
	Resync time.Duration
	// Recheck is how often a subscriber's access is checked again without a hint (see
	// WatchAccess): it bounds how late an expired credential, or a lost hint, ends a stream.
	Recheck time.Duration
	// Webhooks, when set, enqueues the webhook deliveries of appended events.
	Webhooks Enqueuer
	// Metrics counts events committed and delivered to subscribers; nil counts nothing.
	Metrics *metrics.Metrics
}

// New returns a Log.
func New(client *ent.Client, log *slog.Logger) *Log {
	if log == nil {
		log = slog.Default()
	}
	return &Log{client: client, log: log, replica: rand.Text(), Resync: 30 * time.Second, Recheck: 30 * time.Second}
}

// channel carries "org:seq:replica" after each append, to wake the subscribers of other replicas.
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
		org, rest, ok := strings.Cut(payload, ":")
		if !ok {
			return
		}
		seq, from, _ := strings.Cut(rest, ":")
		if from == l.replica {
			return // this replica handed the events to its feeds at commit, before this came
		}
		n, _ := strconv.ParseInt(seq, 10, 64) // 0, "not known", if malformed
		l.feeds.notify(gid.ID(org), n)
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
	payload, err := Canonical(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("writing an event: %w", err)
	}
	// Times as the database keeps them (UTC, microseconds), so the event handed to this
	// replica's subscribers below renders exactly as one read from the table.
	create := c.Event.Create().SetOrganizationID(e.Org).SetSeq(seq).SetType(e.Type).
		SetPayload(payload).SetOccurredAt(DBTime(e.OccurredAt)).SetCreatedAt(DBTime(time.Now()))
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
	if l.Webhooks != nil {
		if err := l.Webhooks.Enqueue(ctx, c, ev); err != nil {
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
		payload := fmt.Sprintf("%s:%d:%s", e.Org, ev.Seq, l.replica)
		err := database.BeforeCommit(ctx, key, func(ctx context.Context) error {
			return cluster.Notify(ctx, c, channel, payload)
		})
		if err != nil {
			return nil, err
		}
	}
	// This replica's subscribers get the event itself at commit, without reading it back
	// (when it does not follow what their feed has, the feed reads the table); when the
	// notification arrives, the feed is past it and skips it.
	if tx := ent.TxFromContext(ctx); tx != nil && tx.Client() == c {
		database.AfterCommit(ctx, func() { l.feeds.offer(e.Org, ev.Unwrap()) })
	} else {
		database.AfterCommitOnce(ctx, key, func() { l.feeds.notify(e.Org, ev.Seq) })
	}
	return ev, nil
}

// Enqueuer writes the webhook deliveries of events (the webhook service).
type Enqueuer interface {
	// Enqueue writes ev's deliveries with c, the client of ev's transaction, so that they
	// commit with the event or not at all. Append calls it for every event.
	Enqueue(ctx context.Context, c *ent.Client, ev *ent.Event) error
	// Targets returns the enabled webhooks of org and what they want, for a writer that
	// appends events and their deliveries in one statement (whatsapp's bulk ingest). The
	// list may be a little stale, so that statement checks each webhook again: a webhook
	// created on another replica a moment ago can be missing.
	Targets(ctx context.Context, org gid.ID) ([]Target, error)
	// Enqueued wakes the deliverers after such a writer committed deliveries.
	Enqueued()
}

// Target is an enabled webhook and the event types it wants.
type Target struct {
	Webhook gid.ID
	Types   []string
}

// Bulk is what a writer that appends events itself, in statements of its own, follows to
// write the log as Append does (see whatsapp's bulk ingest): events numbered by the
// organization's counter row, which the statement locks until it commits; payloads in
// Canonical form and times in DBTime form; after the commit, Committed.
type Bulk struct {
	// Channel and Sender make the notification that wakes other replicas: "org:seq:sender"
	// on Channel, with the highest seq the statement appended; no notification when Channel
	// is "" (one process).
	Channel, Sender string
}

// Bulk returns the conventions of this log for writers that append events themselves.
func (l *Log) Bulk() Bulk {
	if l.bus == nil {
		return Bulk{}
	}
	return Bulk{Channel: channel, Sender: l.replica}
}

// Committed does for events that a writer appended itself what Append does at commit:
// counts them, and hands them to this replica's subscribers. They must be in the order of
// their sequence numbers within each organization.
func (l *Log) Committed(evs []*ent.Event) {
	for _, ev := range evs {
		l.Metrics.EventIngested(string(ev.Type))
		l.feeds.offer(ev.OrganizationID, ev)
	}
}

// Canonical returns the payload as it reads back from its JSON column.
func Canonical(p map[string]any) (map[string]any, error) {
	if p == nil {
		return map[string]any{}, nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encoding the payload: %w", err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decoding the payload: %w", err)
	}
	return out, nil
}

// DBTime is t as the database stores it.
func DBTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

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

// ParseCursor reads an event's cursor (ent.Event.Cursor, its stable position in its
// organization's log); "" is the beginning of the log.
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
