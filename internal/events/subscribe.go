package events

import (
	"context"

	"entgo.io/contrib/entgql"
	"time"

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

// batch is how many events a subscriber reads per query.
const batch = 100

// Subscribe streams the caller's current organization's events after the cursor (all of
// them without one), in order: first those already in the table, then each new one. The
// stream reads the table, so a subscriber that falls behind lags on its own without holding
// up writers or other subscribers, and it ends when ctx does.
func (l *Log) Subscribe(ctx context.Context, cursor *string, f Filter) (<-chan *ent.Event, error) {
	v := viewer.FromContext(ctx)
	if err := rule.Require(v, viewer.PermReadOrganization); err != nil {
		return nil, err
	}
	var after int64
	if cursor != nil {
		var err error
		if after, err = ParseCursor(*cursor); err != nil {
			return nil, err
		}
	}
	org := v.OrgID
	wake, unregister := l.hub.register(org) // before the first read, so nothing slips between
	accessChanged, unwatch := l.access.register("")
	out := make(chan *ent.Event)
	go func() {
		defer close(out)
		defer unregister()
		defer unwatch()
		last := after
		resync := time.NewTicker(l.Resync)
		defer resync.Stop()
		recheck := time.NewTicker(l.Recheck)
		defer recheck.Stop()
		for {
			// The head is read before the rows: every event up to it is committed, so the
			// query below sees all of them, and filtered ones need not be read again.
			head, err := l.head(ctx, org)
			if err != nil {
				if ctx.Err() == nil {
					l.log.ErrorContext(ctx, "reading the event log head", "org", org, "err", err)
				}
				return
			}
			evs, err := f.apply(l.client.Event.Query().
				Where(event.OrganizationID(org), event.SeqGT(last))).
				Order(ent.Asc(event.FieldSeq)).Limit(batch).All(ctx)
			if err != nil {
				if ctx.Err() == nil {
					l.log.ErrorContext(ctx, "reading the event log", "org", org, "err", err)
				}
				return
			}
			for _, e := range evs {
				select {
				case out <- e:
					l.Metrics.EventDelivered(string(e.Type))
				case <-ctx.Done():
					return
				}
				last = e.Seq
			}
			if len(evs) == batch {
				continue
			}
			if head > last {
				last = head
			}
			for waiting := true; waiting; {
				check := false
				select {
				case <-wake:
					waiting = false
				case <-resync.C:
					waiting = false
				case <-accessChanged:
					check = true
				case <-recheck.C:
					check = true
				case <-ctx.Done():
					return
				}
				if !check {
					continue
				}
				if err := stillAllowed(ctx, org); err != nil {
					if ctx.Err() == nil {
						endWith(ctx, err)
					}
					return
				}
			}
		}
	}()
	return out, nil
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
	q := f.apply(org.QueryEvents())
	return q.Paginate(ctx, p.After, p.First, p.Before, p.Last, ent.WithEventOrder(bySeq))
}

// stillAllowed authenticates the subscriber again: a removed member, a revoked key or a
// disabled user loses the stream.
func stillAllowed(ctx context.Context, org gid.ID) error {
	v, err := viewer.Recheck(ctx)
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
