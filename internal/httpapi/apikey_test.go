package httpapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/testdb"
	"github.com/wagate/wagate/internal/viewer"
)

func TestAPIKeys(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann, bob := s.SignUp(t, "Ann"), s.SignUp(t, "Bob")
		org := ann.OrgID
		key := s.CreateAPIKey(t, ann, org, "ADMIN")
		if !strings.HasPrefix(key.Secret, "wag_") {
			t.Fatalf("secret %q", key.Secret)
		}
		asKey := &apitest.User{Token: key.Secret}

		// The key acts in its own organization with its role, whatever header it sends.
		var who struct {
			Viewer struct {
				User         *struct{ ID string }
				APIKey       struct{ ID, Name, Role string }
				Organization struct{ ID string }
				Role         string
			}
		}
		s.OK(t, q(asKey, bob.OrgID, `{ viewer { user { id } apiKey { id name role } organization { id } role } }`, nil), &who)
		if who.Viewer.User != nil || who.Viewer.APIKey.ID != key.ID || who.Viewer.Organization.ID != org || who.Viewer.Role != "ADMIN" {
			t.Fatalf("viewer of a key: %+v", who)
		}
		wantCode(t, s.Do(t, q(asKey, "", `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": bob.OrgID})), "NOT_FOUND")

		// The secret is never shown again, and use is recorded without a write per request.
		var list struct {
			Organization struct {
				APIKeys []struct {
					ID, Name, Prefix, Role string
					LastUsedAt             *time.Time
					CreatedBy              struct{ Email string }
				}
			}
		}
		r := s.Do(t, q(ann, org, `{ organization { apiKeys { id name prefix role lastUsedAt createdBy { email } } } }`, nil))
		if strings.Contains(string(r.Data), key.Secret[len("wag_")+11:]) {
			t.Fatal("the list shows the secret")
		}
		r.Decode(t, &list)
		k := list.Organization.APIKeys[0]
		if len(list.Organization.APIKeys) != 1 || !strings.HasPrefix(key.Secret, "wag_"+k.Prefix+"_") || k.CreatedBy.Email != ann.Email || k.LastUsedAt == nil {
			t.Fatalf("keys: %+v", list)
		}
		stored, err := db.Client.APIKey.Get(viewer.System(context.Background(), "test"), gid.ID(key.ID))
		if err != nil || stored.LastUsedAt != nil {
			t.Fatalf("lastUsedAt was written per request: %v %v", stored.LastUsedAt, err)
		}
		if err := s.Auth.FlushKeyUsage(context.Background()); err != nil {
			t.Fatal(err)
		}
		stored, _ = db.Client.APIKey.Get(viewer.System(context.Background(), "test"), gid.ID(key.ID))
		if stored.LastUsedAt == nil || !stored.LastUsedAt.Equal(*k.LastUsedAt) {
			t.Fatalf("flushed lastUsedAt %v, shown %v", stored.LastUsedAt, k.LastUsedAt)
		}

		// Revocation takes effect on the next request.
		s.OK(t, q(ann, org, `mutation($id: ID!) { revokeAPIKey(id: $id) { revokedAt } }`, map[string]any{"id": key.ID}), nil)
		wantCode(t, s.Do(t, q(asKey, "", `{ viewer { role } }`, nil)), "UNAUTHENTICATED")

		// Expiry.
		soon := s.Clock.Now().Add(time.Hour).Format(time.RFC3339)
		var created struct{ CreateAPIKey struct{ Secret string } }
		s.OK(t, q(ann, org, `mutation($t: Time) { createAPIKey(input: {name: "short", expiresAt: $t}) { secret } }`, map[string]any{"t": soon}), &created)
		short := &apitest.User{Token: created.CreateAPIKey.Secret}
		s.OK(t, q(short, "", `{ viewer { role } }`, nil), nil)
		s.Clock.Advance(2 * time.Hour)
		wantCode(t, s.Do(t, q(short, "", `{ viewer { role } }`, nil)), "UNAUTHENTICATED")
		past := s.Clock.Now().Add(-time.Minute).Format(time.RFC3339)
		wantCode(t, s.Do(t, q(ann, org, `mutation($t: Time) { createAPIKey(input: {name: "old", expiresAt: $t}) { secret } }`, map[string]any{"t": past})), "BAD_USER_INPUT")

		// A key with a forged secret but a real prefix fails like any bad key.
		forged := "wag_" + k.Prefix + "_" + strings.Repeat("A", 43)
		wantCode(t, s.Do(t, apitest.Request{Token: forged, Query: `{ viewer { role } }`}), "UNAUTHENTICATED")
	})
}

// A MEMBER key can read and (later) send, but cannot manage anything.
func TestMemberKeyCannotEscalate(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann := s.SignUp(t, "Ann")
		key := &apitest.User{Token: s.CreateAPIKey(t, ann, ann.OrgID, "MEMBER").Secret}
		wantCode(t, s.Do(t, q(key, "", `mutation { createAPIKey(input: {name: "x", role: MEMBER}) { secret } }`, nil)), "FORBIDDEN")
		var list struct {
			Organization struct{ Members struct{ TotalCount int } }
		}
		s.OK(t, q(key, "", `{ organization { members { totalCount } } }`, nil), &list)
		if list.Organization.Members.TotalCount != 1 {
			t.Fatalf("members: %+v", list)
		}
	})
}

// A key never outlives its creator's access, nor keeps a role the creator lost; keys made
// by keys belong to the same person.
func TestAPIKeyFollowsItsCreator(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann, bob := s.SignUp(t, "Ann"), s.SignUp(t, "Bob")
		org := ann.OrgID
		bobMembership := s.AddMember(t, ann, org, bob, "ADMIN")
		key := &apitest.User{Token: s.CreateAPIKey(t, bob, org, "ADMIN").Secret}
		var made struct{ CreateAPIKey struct{ Secret string } }
		s.OK(t, q(key, "", `mutation { createAPIKey(input: {name: "child", role: MEMBER}) { secret } }`, nil), &made)
		child := &apitest.User{Token: made.CreateAPIKey.Secret}
		role := func(u *apitest.User) string {
			var out struct{ Viewer struct{ Role string } }
			s.OK(t, q(u, "", `{ viewer { role } }`, nil), &out)
			return out.Viewer.Role
		}
		if role(key) != "ADMIN" || role(child) != "MEMBER" {
			t.Fatal("keys do not act with their roles")
		}
		s.OK(t, q(ann, org, memberRoleQuery, map[string]any{"id": bobMembership, "role": "MEMBER"}), nil)
		if got := role(key); got != "MEMBER" {
			t.Fatalf("after Bob's demotion his ADMIN key acts as %s, want MEMBER", got)
		}
		wantCode(t, s.Do(t, q(key, "", `mutation { createAPIKey(input: {name: "x", role: MEMBER}) { secret } }`, nil)), "FORBIDDEN")
		s.OK(t, q(ann, org, `mutation($id: ID!) { removeMember(id: $id) }`, map[string]any{"id": bobMembership}), nil)
		wantCode(t, s.Do(t, q(key, "", `{ viewer { role } }`, nil)), "UNAUTHENTICATED")
		wantCode(t, s.Do(t, q(child, "", `{ viewer { role } }`, nil)), "UNAUTHENTICATED")
	})
}
