package httpapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/session"
	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/viewer"
)

// q is shorthand for a request.
func q(u *apitest.User, org, query string, vars map[string]any) apitest.Request {
	return apitest.Request{Token: u.Token, Org: org, Query: query, Vars: vars}
}

// wantCode fails t unless r carries code.
func wantCode(t *testing.T, r *apitest.Response, code string) {
	t.Helper()
	if r.Code() != code {
		t.Fatalf("code %q, want %q (errors %+v, data %s)", r.Code(), code, r.Errors, r.Data)
	}
}

// addSession inserts a WhatsApp session row the way an engine would, as a system task.
func addSession(t *testing.T, s *apitest.Server, org, name, phone string) *ent.Session {
	t.Helper()
	ses, err := s.DB.Client.Session.Create().
		SetOrganizationID(gid.ID(org)).SetName(name).SetEngine(session.EngineSANDBOX).
		SetPhoneNumber(phone).SetStatus(session.StatusCONNECTED).
		Save(viewer.System(context.Background(), "test-engine"))
	if err != nil {
		t.Fatalf("adding session: %v", err)
	}
	return ses
}

// userCtx returns a context acting as u in org, resolved like a real request.
func userCtx(t *testing.T, s *apitest.Server, u *apitest.User, org string) context.Context {
	t.Helper()
	ctx, v, err := s.Auth.Resolve(context.Background(), u.Token, org)
	if err != nil {
		t.Fatalf("resolving viewer: %v", err)
	}
	return viewer.NewContext(ctx, v)
}

func timeNowPlus(ms int) time.Time { return time.Now().Add(time.Duration(ms) * time.Millisecond) }
