package graph

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/wagate/wagate/internal/events"
	"github.com/wagate/wagate/internal/viewer"
)

// eventFanout runs event subscriptions on the transport's goroutine and renders each event
// once per cohort: subscribers whose operation, variables and viewer are identical get the
// same response, so with twenty dashboards open on one organization an event is executed
// and marshalled once, not twenty times. It must be the innermost operation interceptor,
// so the others still see every response.
type eventFanout struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
} = eventFanout{}

func (eventFanout) ExtensionName() string                          { return "EventFanout" }
func (eventFanout) Validate(schema graphql.ExecutableSchema) error { return nil }

func (eventFanout) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	if oc.Operation == nil || oc.Operation.Operation != ast.Subscription {
		return next(ctx)
	}
	ctx, tap := events.WithTap(ctx)
	responses := next(ctx) // resolves the root field, which attaches its stream to tap
	if !tap.Attached() {
		return responses
	}
	s := &subscription{tap: tap, key: cohort(oc, viewer.FromContext(ctx)), responses: responses}
	return s.next
}

// subscription is an event subscription eventFanout runs.
type subscription struct {
	tap       *events.Tap
	key       string // its cohort
	responses graphql.ResponseHandler
}

// next is the subscription's response handler. Kept small: an idle subscription's
// goroutine waits in it for the next event, and keeps a stack as deep as that wait.
func (s *subscription) next(ctx context.Context) *graphql.Response {
	d, ok := s.tap.Next(ctx)
	if !ok {
		return s.responses(ctx) // the resolver's channel is closed: this ends the stream
	}
	return s.render(ctx, d)
}

// render returns the response to d: the one its cohort rendered, or one executed here.
func (s *subscription) render(ctx context.Context, d events.Delivery) *graphql.Response {
	resp, _ := d.Render(s.key, func() (any, bool) {
		s.tap.Hand(ctx, d)
		resp := s.responses(ctx)
		share := resp != nil && len(resp.Errors) == 0 && len(resp.Extensions) == 0
		if share {
			// The generated executor renders each of a subscription's responses into the same
			// buffer: the next event would overwrite this one under the cohort still sending it.
			resp.Data = bytes.Clone(resp.Data)
		}
		return resp, share
	}).(*graphql.Response)
	if resp == nil {
		return nil
	}
	// Each subscriber gets its own copy of the envelope; the rendered data is shared.
	own := *resp
	return &own
}

// cohort names what a subscription's response to an event depends on besides the event:
// the document, the operation and its variables, and everything known about the viewer
// (privacy rules and masking read it). Subscribers with equal keys get equal responses.
func cohort(oc *graphql.OperationContext, v *viewer.Viewer) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	// Maps encode with sorted keys, so equal variables and viewers encode alike.
	_ = enc.Encode([]any{oc.RawQuery, oc.OperationName, oc.Variables, v})
	return string(h.Sum(nil))
}
