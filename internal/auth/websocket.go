package auth

import (
	"context"
	"errors"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/viewer"
)

// WebSocket close codes of graphql-transport-ws for refused connections.
const (
	CloseUnauthorized = 4401
	CloseForbidden    = 4403
)

// WebsocketInit authenticates a WebSocket connection from its connection_init payload:
// {"authorization": "Bearer <token or API key>", "organizationId": "<id>"} (the key
// "Authorization" works too). Every subscription needs a caller, so a missing or bad
// credential closes the connection with 4401, an organization the caller cannot act in with
// 4403. A connection whose upgrade request already carried an Authorization header keeps
// that caller when the payload names none.
func (s *Service) WebsocketInit(ctx context.Context, p transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	raw := strings.TrimSpace(p.Authorization())
	credential, ok := bearer(raw)
	if !ok {
		credential = raw // a bare token is accepted too
	}
	if credential == "" {
		if c, ok := ctx.Value(upgradeCredentialKey{}).(wsCredential); ok {
			// Authenticated by the upgrade request's header: its operations are checked
			// again with it, as with a credential sent in connection_init.
			return context.WithValue(ctx, wsCredentialKey{}, c), nil, nil
		}
		return refuse(ctx, CloseUnauthorized, errors.New("authentication required: send {\"authorization\": \"Bearer <token>\"} in connection_init"))
	}
	org := p.GetString("organizationId")
	ctx, v, err := s.Resolve(ctx, credential, org)
	if err != nil {
		switch apperr.CodeOf(err) {
		case apperr.Unauthenticated:
			return refuse(ctx, CloseUnauthorized, err)
		case apperr.NotFound:
			return refuse(ctx, CloseForbidden, err)
		}
		return ctx, nil, err
	}
	ctx = context.WithValue(ctx, wsCredentialKey{}, wsCredential{credential, org})
	return viewer.NewContext(ctx, v), nil, nil
}

type (
	wsCredentialKey      struct{}
	upgradeCredentialKey struct{}
	wsCredential         struct{ credential, org string }
)

// PerOperation re-authenticates the credential of a WebSocket connection for each of its
// operations, and gives each its own viewer: a connection outlives revocations, removals
// and role changes, and its operations run concurrently.
func (s *Service) PerOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	c, ok := ctx.Value(wsCredentialKey{}).(wsCredential)
	if !ok {
		return next(ctx)
	}
	ctx, v, err := s.reauthenticate(ctx, c, false)
	if err != nil {
		code, msg := apperr.CodeOf(err), "the connection's credentials are no longer valid: "+err.Error()
		if code == "" {
			code, msg = apperr.Internal, "internal error"
			if ctx.Err() == nil {
				s.log(ctx).ErrorContext(ctx, "re-authenticating a WebSocket operation", "err", err)
			}
		}
		return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{{Message: msg, Extensions: map[string]any{"code": code}}}})
	}
	// A subscription rechecks fresh when told that someone may have lost access, possibly
	// before this replica's cache has heard of the change; its periodic recheck (expiries,
	// lost hints) may use the cache, which the TTL keeps recent.
	ctx = viewer.WithRecheck(ctx, func(ctx context.Context, fresh bool) (*viewer.Viewer, error) {
		_, v, err := s.reauthenticate(ctx, c, fresh)
		return v, err
	})
	return next(viewer.NewContext(ctx, v))
}

// reauthenticate resolves a connection's credential again, fresh from the database or not.
// The organization it was opened for is then hidden from a caller who left it, which is a
// loss of access, not a lookup.
func (s *Service) reauthenticate(ctx context.Context, c wsCredential, fresh bool) (context.Context, *viewer.Viewer, error) {
	ctx, v, err := s.resolve(ctx, c.credential, c.org, fresh)
	if apperr.CodeOf(err) == apperr.NotFound {
		err = apperr.New(apperr.Forbidden, "you no longer have access to this organization")
	}
	return ctx, v, err
}

func refuse(ctx context.Context, code int, err error) (context.Context, *transport.InitPayload, error) {
	ctx = transport.WithWebsocketCloseCode(ctx, code)
	reason := "Unauthorized"
	if code == CloseForbidden {
		reason = "Forbidden"
	}
	return transport.AppendCloseReason(ctx, reason), nil, err
}
