package httpapi_test

import (
	"testing"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
)

// Credentials are cached, and every change to what they resolve to applies to the very next
// request: each case first makes the request it checks afterwards, so the credential is
// cached when the change commits.
func TestCachedCredentialsSeeChangesAtOnce(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		root := s.SignUp(t, "Root")
		s.MakeSuperAdmin(t, root)
		const role = `{ viewer { role } }`
		roleIn := func(u *apitest.User, org string) string {
			t.Helper()
			var out struct{ Viewer struct{ Role string } }
			s.OK(t, q(u, org, role, nil), &out)
			return out.Viewer.Role
		}
		// ann owns an organization in which bob is ADMIN.
		team := func(t *testing.T) (ann, bob *apitest.User, bobMembership string) {
			ann, bob = s.SignUp(t, "Ann"), s.SignUp(t, "Bob")
			return ann, bob, s.AddMember(t, ann, ann.OrgID, bob, "ADMIN")
		}

		t.Run("log-out", func(t *testing.T) {
			ann, _, _ := team(t)
			s.OK(t, q(ann, "", whoAmI, nil), nil)
			s.OK(t, q(ann, "", `mutation { logOut }`, nil), nil)
			wantCode(t, s.Do(t, q(ann, "", whoAmI, nil)), "UNAUTHENTICATED")
		})
		t.Run("member removed", func(t *testing.T) {
			ann, bob, m := team(t)
			if got := roleIn(bob, ann.OrgID); got != "ADMIN" {
				t.Fatalf("role %q", got)
			}
			s.OK(t, q(ann, ann.OrgID, `mutation($id: ID!) { removeMember(id: $id) }`, map[string]any{"id": m}), nil)
			wantCode(t, s.Do(t, q(bob, ann.OrgID, role, nil)), "NOT_FOUND")
		})
		t.Run("role demoted", func(t *testing.T) {
			ann, bob, m := team(t)
			newKey := `mutation { createAPIKey(input: {name: "k", role: MEMBER}) { secret } }`
			s.OK(t, q(bob, ann.OrgID, newKey, nil), nil)
			s.OK(t, q(ann, ann.OrgID, memberRoleQuery, map[string]any{"id": m, "role": "MEMBER"}), nil)
			wantCode(t, s.Do(t, q(bob, ann.OrgID, newKey, nil)), "FORBIDDEN")
		})
		t.Run("ownership transferred", func(t *testing.T) {
			ann, bob, m := team(t)
			if roleIn(ann, ann.OrgID) != "OWNER" || roleIn(bob, ann.OrgID) != "ADMIN" {
				t.Fatal("roles before the transfer")
			}
			s.OK(t, q(ann, ann.OrgID, `mutation($id: ID!) { transferOwnership(membershipID: $id) { id } }`, map[string]any{"id": m}), nil)
			if a, b := roleIn(ann, ann.OrgID), roleIn(bob, ann.OrgID); a != "ADMIN" || b != "OWNER" {
				t.Fatalf("after the transfer: ann %s, bob %s", a, b)
			}
		})
		t.Run("API key revoked", func(t *testing.T) {
			ann, _, _ := team(t)
			k := s.CreateAPIKey(t, ann, ann.OrgID, "ADMIN")
			key := &apitest.User{Token: k.Secret}
			s.OK(t, q(key, "", role, nil), nil)
			s.OK(t, q(ann, ann.OrgID, `mutation($id: ID!) { revokeAPIKey(id: $id) { id } }`, map[string]any{"id": k.ID}), nil)
			wantCode(t, s.Do(t, q(key, "", role, nil)), "UNAUTHENTICATED")
		})
		t.Run("user disabled", func(t *testing.T) {
			ann, _, _ := team(t)
			s.OK(t, q(ann, "", whoAmI, nil), nil)
			s.OK(t, q(root, "", `mutation($id: ID!) { adminSetUserDisabled(userID: $id, disabled: true) { id } }`,
				map[string]any{"id": ann.ID}), nil)
			wantCode(t, s.Do(t, q(ann, "", whoAmI, nil)), "UNAUTHENTICATED")
		})
		t.Run("organization switched", func(t *testing.T) {
			ann, bob, _ := team(t)
			current := func() string {
				var out struct {
					Viewer struct{ Organization struct{ ID string } }
				}
				s.OK(t, q(bob, "", `{ viewer { organization { id } } }`, nil), &out)
				return out.Viewer.Organization.ID
			}
			if got := current(); got != bob.OrgID {
				t.Fatalf("acting in %s, want the personal organization", got)
			}
			s.OK(t, q(bob, "", `mutation($id: ID!) { switchOrganization(id: $id) { role } }`, map[string]any{"id": ann.OrgID}), nil)
			if got := current(); got != ann.OrgID {
				t.Fatalf("after switching, acting in %s, want %s", got, ann.OrgID)
			}
		})
		t.Run("organization deleted", func(t *testing.T) {
			ann, bob, _ := team(t)
			var org struct{ CreateOrganization struct{ ID string } }
			s.OK(t, q(ann, "", `mutation { createOrganization(input: {name: "Doomed"}) { id } }`, nil), &org)
			id := org.CreateOrganization.ID
			s.AddMember(t, ann, id, bob, "MEMBER")
			if got := roleIn(bob, id); got != "MEMBER" {
				t.Fatalf("role %q", got)
			}
			s.OK(t, q(ann, id, `mutation($id: ID!) { deleteOrganization(id: $id) }`, map[string]any{"id": id}), nil)
			wantCode(t, s.Do(t, q(bob, id, role, nil)), "NOT_FOUND")
		})
		t.Run("super admin granted", func(t *testing.T) {
			ann, _, _ := team(t)
			isAdmin := func() bool {
				var out struct{ Viewer struct{ IsSuperAdmin bool } }
				s.OK(t, q(ann, "", `{ viewer { isSuperAdmin } }`, nil), &out)
				return out.Viewer.IsSuperAdmin
			}
			if isAdmin() {
				t.Fatal("a super admin already")
			}
			s.MakeSuperAdmin(t, ann) // a direct write, as the operator's command makes
			if !isAdmin() {
				t.Fatal("the grant did not apply to the next request")
			}
		})
	})
}
