package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"entgo.io/contrib/entgql"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/event"
	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/page"
	"github.com/wagate/wagate/internal/rule"
	"github.com/wagate/wagate/internal/viewer"
)

// batch is how many events one query reads, a feed's or a subscriber's.
const batch = 100

// Tap is how the GraphQL layer pulls a subscription's events: on the transport's own
// goroutine, one at a time, so a subscriber costs no goroutine of its own and the layer can
// serve an event it already rendered for an identical subscription without executing it
// again. The layer puts a Tap in the operation's context (WithTap) before the resolver runs.
type Tap struct {
	stream *stream
	out    chan *ent.Event
}

type tapKey struct{}

// WithTap returns ctx carrying a Tap for the subscription about to be resolved.
func WithTap(ctx context.Context) (context.Context, *Tap) {
	t := &Tap{}
	return context.WithValue(ctx, tapKey{}, t), t
}

// Attached reports whether a subscription's events flow through t.
func (t *Tap) Attached() bool { return t.stream != nil }

// Next waits for the subscription's next event. false means the stream has ended — its
// context is done, or the caller lost access (the reason is added to the subscription's
// errors) — and the channel the resolver returned is closed, so executing the operation
// once more ends it.
func (t *Tap) Next(ctx context.Context) (Delivery, bool) {
	d, err := t.stream.next(ctx)
	if err != nil {
		if ctx.Err() == nil {
			endWith(ctx, err)
		}
		close(t.out)
		return Delivery{}, false
	}
	return d, true
}

// Hand passes an event Next returned to the resolver's channel, for the execution that
// follows to render it.
func (t *Tap) Hand(ctx context.Context, d Delivery) {
	select {
	case t.out <- d.Event:
	case <-ctx.Done():
	}
}

// Subscribe streams the caller's current organization's events after the cursor (all of
// them without one), in order: first those already in the table, then each new one. Events
// come from the organization's feed, read once per replica; a subscriber that falls behind
// it reads the table on its own, so it lags alone without holding up writers or other
// subscribers. The stream ends when ctx does. The caller's context must carry a Tap.
func (l *Log) Subscribe(ctx context.Context, cursor *string, f Filter) (<-chan *ent.Event, error) {
	v := viewer.FromContext(ctx)
	if err := rule.Require(v, viewer.PermReadOrganization); err != nil {
		return nil, err
	}
	tap, _ := ctx.Value(tapKey{}).(*Tap)
	if tap == nil {
		return nil, errors.New("events: subscribing needs a Tap in the context")
	}
	var after int64
	if cursor != nil {
		var err error
		if after, err = ParseCursor(*cursor); err != nil {
			return nil, err
		}
	}
	fd, err := l.join(v.OrgID)
	if err != nil {
		return nil, fmt.Errorf("starting the event feed: %w", err)
	}
	s := &stream{l: l, feed: fd, filter: f, last: after, recheck: time.NewTicker(l.Recheck)}
	s.accessChanged, s.unwatch = l.access.register()
	context.AfterFunc(ctx, s.close)
	tap.stream, tap.out = s, make(chan *ent.Event, 1)
	return tap.out, nil
}

// stream is one subscriber's position in its organization's log.
type stream struct {
	l       *Log
	feed    *feed
	filter  Filter
	last    int64      // the subscriber has seen (or skipped) every event up to here
	pending []Delivery // read, not yet handed over
	// accessChanged wakes the subscriber to check its access again (see WatchAccess).
	accessChanged <-chan struct{}
	unwatch       func()
	recheck       *time.Ticker
	closeOnce     sync.Once
}

func (s *stream) close() {
	s.closeOnce.Do(func() {
		s.recheck.Stop()
		s.unwatch()
		s.feed.leave()
	})
}

func (s *stream) next(ctx context.Context) (Delivery, error) {
	for {
		for len(s.pending) > 0 {
			d := s.pending[0]
			s.pending[0] = Delivery{}
			s.pending = s.pending[1:]
			if s.filter.matches(d.Event) {
				s.l.Metrics.EventDelivered(string(d.Event.Type))
				return d, nil
			}
		}
		ds, head, advanced, ok := s.feed.since(s.last, batch)
		switch {
		case !ok:
			if err := s.readTable(ctx, head); err != nil {
				return Delivery{}, err
			}
		case len(ds) > 0:
			s.pending, s.last = ds, ds[len(ds)-1].Event.Seq
		default:
			if err := s.wait(ctx, advanced); err != nil {
				return Delivery{}, err
			}
		}
	}
}

// readTable reads the next events matching the filter from the table, for a subscriber
// the feed's ring no longer covers (replaying, or fallen behind). head is the feed's head
// before the query: every event up to it was committed, so the query saw all of them.
func (s *stream) readTable(ctx context.Context, head int64) error {
	evs, err := s.filter.apply(s.l.client.Event.Query().
		Where(event.OrganizationID(s.feed.org), event.SeqGT(s.last))).
		Order(ent.Asc(event.FieldSeq)).Limit(batch).All(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.l.log.ErrorContext(ctx, "reading the event log", "org", s.feed.org, "err", err)
		}
		return err
	}
	if len(s.filter.Sessions) == 0 && len(s.filter.Types) == 0 {
		s.pending = s.feed.backfill(evs) // all of them: what the feed itself would read
	} else {
		for _, e := range evs {
			s.pending = append(s.pending, Delivery{Event: e})
		}
	}
	if len(evs) > 0 {
		s.last = evs[len(evs)-1].Seq
	}
	if len(evs) < batch && head > s.last {
		s.last = head // the events between were filtered out
	}
	return nil
}

// wait blocks until the feed advances, checking the subscriber's access again when a hint
// or the Recheck period says it may have changed.
func (s *stream) wait(ctx context.Context, advanced <-chan struct{}) error {
	for {
		fresh := false
		select {
		case <-advanced:
			return nil
		case <-s.accessChanged:
			fresh = true
		case <-s.recheck.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := stillAllowed(ctx, s.feed.org, fresh); err != nil {
			return err
		}
	}
}

// head is the organization's last sequence number already committed.
func (l *Log) head(ctx context.Context, org gid.ID) (int64, error) {
	c, err := l.client.EventCounter.Get(viewer.System(ctx, "event-log"), org)
	if ent.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return c.LastSeq, nil
}

// Page lists an organization's events, oldest first, for the API.
func (l *Log) Page(ctx context.Context, org *ent.Organization, p page.Args, f Filter) (*ent.EventConnection, error) {
	p, err := p.BoundedBy(page.BySeq)
	if err != nil {
		return nil, err
	}
	bySeq := &ent.EventOrder{Field: ent.EventOrderFieldSeq, Direction: entgql.OrderDirectionAsc}
	// Unique(false): a foreign-key edge lists no row twice, and the DISTINCT ent adds to
	// edge queries makes PostgreSQL sort every matching row before applying the LIMIT.
	q := f.apply(org.QueryEvents().Unique(false))
	return q.Paginate(ctx, p.After, p.First, p.Before, p.Last, ent.WithEventOrder(bySeq))
}

// stillAllowed authenticates the subscriber again: a removed member, a revoked key or a
// disabled user loses the stream.
func stillAllowed(ctx context.Context, org gid.ID, fresh bool) error {
	v, err := viewer.Recheck(ctx, fresh)
	if err != nil {
		return err
	}
	if !v.CanIn(org, viewer.PermReadOrganization) {
		return apperr.New(apperr.Forbidden, "you no longer have access to this organization")
	}
	return nil
}

// endWith reports why a subscription ends before closing it.
func endWith(ctx context.Context, err error) {
	code := apperr.CodeOf(err)
	msg := err.Error()
	if code == "" {
		code, msg = apperr.Internal, "internal error"
	}
	if e, ok := err.(*apperr.Error); ok {
		msg = e.Message
	}
	transport.AddSubscriptionError(ctx, &gqlerror.Error{Message: "subscription ended: " + msg,
		Extensions: map[string]any{"code": code}})
}
