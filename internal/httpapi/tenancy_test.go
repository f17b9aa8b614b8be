package httpapi_test

import (
	"sync"
	"testing"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
)

const memberRoleQuery = `mutation($id: ID!, $role: Role!) { updateMemberRole(id: $id, role: $role) { role } }`

func TestSignUpCreatesSelectedPersonalOrganization(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		u := s.SignUp(t, "Ann")
		var out struct {
			Viewer struct {
				Role         string
				Organization struct {
					ID, Name   string
					Personal   bool
					ViewerRole string
					Members    struct{ TotalCount int }
				}
			}
			Organizations struct{ TotalCount int }
		}
		s.OK(t, q(u, "", `{ viewer { role organization { id name personal viewerRole members(first: 5) { totalCount } } }
			organizations { totalCount } }`, nil), &out)
		o := out.Viewer.Organization
		if o.ID != u.OrgID || !o.Personal || o.ViewerRole != "OWNER" || out.Viewer.Role != "OWNER" ||
			o.Members.TotalCount != 1 || out.Organizations.TotalCount != 1 || o.Name != "Ann's organization" {
			t.Fatalf("unexpected viewer after sign-up: %+v", out)
		}
	})
}

func TestEmailsAreUniqueCaseInsensitively(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		signUp := `mutation($e: String!) { signUp(input: {email: $e, password: "` + apitest.Password + `", name: "X"}) { user { email } } }`
		var out struct {
			SignUp struct{ User struct{ Email string } }
		}
		s.OK(t, apitest.Request{Query: signUp, Vars: map[string]any{"e": "Mixed.Case@Example.COM"}}, &out)
		if out.SignUp.User.Email != "mixed.case@example.com" {
			t.Fatalf("stored e-mail %q, want lower case", out.SignUp.User.Email)
		}
		r := s.Do(t, apitest.Request{Query: signUp, Vars: map[string]any{"e": "mixed.case@example.com"}})
		wantCode(t, r, "CONFLICT")
		logIn := `mutation($e: String!) { logIn(input: {email: $e, password: "` + apitest.Password + `"}) { token } }`
		s.OK(t, apitest.Request{Query: logIn, Vars: map[string]any{"e": "MIXED.case@example.com"}}, nil)
	})
}

func TestLogInDoesNotTellWhichAddressesExist(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		u := s.SignUp(t, "Ann")
		logIn := `mutation($e: String!, $p: String!) { logIn(input: {email: $e, password: $p}) { token } }`
		wrong := s.Do(t, apitest.Request{Query: logIn, Vars: map[string]any{"e": u.Email, "p": "not the password"}})
		unknown := s.Do(t, apitest.Request{Query: logIn, Vars: map[string]any{"e": "nobody@example.test", "p": "not the password"}})
		wantCode(t, wrong, "UNAUTHENTICATED")
		wantCode(t, unknown, "UNAUTHENTICATED")
		if wrong.Errors[0].Message != unknown.Errors[0].Message {
			t.Fatalf("messages differ: %q vs %q", wrong.Errors[0].Message, unknown.Errors[0].Message)
		}
	})
}

func TestBadInputIsRejectedWithField(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		u := s.SignUp(t, "Ann")
		tests := []struct {
			name, query string
			vars        map[string]any
			field       string
		}{
			{"bad e-mail", `mutation { signUp(input: {email: "not-an-address", password: "long enough pw", name: "X"}) { token } }`, nil, "email"},
			{"short password", `mutation { signUp(input: {email: "short@example.test", password: "short", name: "X"}) { token } }`, nil, "password"},
			{"control characters", `mutation { createOrganization(input: {name: "a\u0007b"}) { id } }`, nil, "name"},
			{"empty name", `mutation { createOrganization(input: {name: "   "}) { id } }`, nil, "name"},
			{"bad time zone", `mutation { updateOrganization(input: {timezone: "Mars/Olympus"}) { id } }`, nil, "timezone"},
			{"bad date format", `mutation { updateOrganization(input: {dateFormat: "yy"}) { id } }`, nil, "dateFormat"},
			{"malformed id", `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": "x'; DROP TABLE users;--"}, ""},
			{"page too large", `{ organizations(first: 101) { totalCount } }`, nil, "first"},
			{"negative page", `{ organizations(last: -1) { totalCount } }`, nil, "last"},
			{"negative nested page", `{ organizations { edges { node { members(first: -1) { totalCount } } } } }`, nil, ""},
			{"first and last nested", `{ organizations { edges { node { sessions(first: 1, last: 1) { totalCount } } } } }`, nil, ""},
			{"too many node ids", `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": manyIDs(101)}, "ids"},
			{"unknown field", `{ nope }`, nil, ""},
			{"addMember without user", `mutation { addMember(input: {role: MEMBER}) { id } }`, nil, "email"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := s.Do(t, q(u, "", tt.query, tt.vars))
				wantCode(t, r, "BAD_USER_INPUT")
				if got, _ := r.Errors[0].Extensions["field"].(string); got != tt.field {
					t.Fatalf("field %q, want %q", got, tt.field)
				}
			})
		}
	})
}

func TestOrganizationAlwaysKeepsAnOwner(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann, bob := s.SignUp(t, "Ann"), s.SignUp(t, "Bob")
		org := ann.OrgID
		var me struct {
			Organization struct {
				Members struct {
					Edges []struct{ Node struct{ ID, Role string } }
				}
			}
		}
		s.OK(t, q(ann, org, `{ organization { members(first: 5) { edges { node { id role } } } } }`, nil), &me)
		annMembership := me.Organization.Members.Edges[0].Node.ID

		wantCode(t, s.Do(t, q(ann, org, memberRoleQuery, map[string]any{"id": annMembership, "role": "ADMIN"})), "CONFLICT")
		wantCode(t, s.Do(t, q(ann, org, `mutation($id: ID!) { leaveOrganization(id: $id) }`, map[string]any{"id": org})), "CONFLICT")
		wantCode(t, s.Do(t, q(ann, org, `mutation($id: ID!) { removeMember(id: $id) }`, map[string]any{"id": annMembership})), "CONFLICT")

		bobMembership := s.AddMember(t, ann, org, bob, "ADMIN")
		s.OK(t, q(ann, org, memberRoleQuery, map[string]any{"id": bobMembership, "role": "OWNER"}), nil)
		s.OK(t, q(ann, org, `mutation($id: ID!) { leaveOrganization(id: $id) }`, map[string]any{"id": org}), nil)
		// Bob is now the only owner again.
		wantCode(t, s.Do(t, q(bob, org, `mutation($id: ID!) { leaveOrganization(id: $id) }`, map[string]any{"id": org})), "CONFLICT")
	})
}

// Two owners demoting each other at the same moment must not leave the organization
// ownerless: the invariant check locks the organization.
func TestConcurrentDemotionsKeepAnOwner(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		for range 3 {
			ann, bob := s.SignUp(t, "Ann"), s.SignUp(t, "Bob")
			org := ann.OrgID
			bobMembership := s.AddMember(t, ann, org, bob, "OWNER")
			var me struct {
				Viewer struct {
					User struct{ Memberships []struct{ ID string } }
				}
			}
			s.OK(t, q(ann, org, `{ viewer { user { memberships { id } } } }`, nil), &me)
			annMembership := me.Viewer.User.Memberships[0].ID

			codes := make([]string, 2)
			var wg sync.WaitGroup
			for i, req := range []apitest.Request{
				q(ann, org, memberRoleQuery, map[string]any{"id": bobMembership, "role": "MEMBER"}),
				q(bob, org, memberRoleQuery, map[string]any{"id": annMembership, "role": "MEMBER"}),
			} {
				wg.Add(1)
				go func() { defer wg.Done(); codes[i] = s.Do(t, req).Code() }()
			}
			wg.Wait()
			var owners struct {
				Organization struct {
					Members struct {
						Edges []struct{ Node struct{ Role string } }
					}
				}
			}
			// Whoever kept OWNER can still read; count the owners left.
			token := ann
			if codes[0] != "" {
				token = bob
			}
			s.OK(t, q(token, org, `{ organization { members(first: 5) { edges { node { role } } } } }`, nil), &owners)
			n := 0
			for _, e := range owners.Organization.Members.Edges {
				if e.Node.Role == "OWNER" {
					n++
				}
			}
			if n != 1 || (codes[0] == "") == (codes[1] == "") {
				t.Fatalf("after concurrent demotions: %d owners, codes %q", n, codes)
			}
		}
	})
}

func TestTransferOwnership(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann, bob := s.SignUp(t, "Ann"), s.SignUp(t, "Bob")
		org := ann.OrgID
		bobMembership := s.AddMember(t, ann, org, bob, "MEMBER")
		var out struct{ TransferOwnership struct{ ViewerRole string } }
		s.OK(t, q(ann, org, `mutation($id: ID!) { transferOwnership(membershipID: $id) { viewerRole } }`,
			map[string]any{"id": bobMembership}), &out)
		if out.TransferOwnership.ViewerRole != "ADMIN" {
			t.Fatalf("previous owner's role %q, want ADMIN", out.TransferOwnership.ViewerRole)
		}
		var bobView struct{ Viewer struct{ Role string } }
		s.OK(t, q(bob, org, `{ viewer { role } }`, nil), &bobView)
		if bobView.Viewer.Role != "OWNER" {
			t.Fatalf("new owner's role %q", bobView.Viewer.Role)
		}
		del := `mutation($id: ID!) { deleteOrganization(id: $id) }`
		wantCode(t, s.Do(t, q(ann, org, del, map[string]any{"id": org})), "FORBIDDEN")
		s.OK(t, q(bob, org, del, map[string]any{"id": org}), nil)
		// The organization is gone for everyone; Ann's selection falls back to nothing.
		var annView struct {
			Viewer struct{ Organization *struct{ ID string } }
		}
		s.OK(t, q(ann, "", `{ viewer { organization { id } } }`, nil), &annView)
		if annView.Viewer.Organization != nil {
			t.Fatalf("deleted organization still selected: %+v", annView)
		}
	})
}

func TestRoleCeilingsAndMemberErrors(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann, adm, x := s.SignUp(t, "Ann"), s.SignUp(t, "Adm"), s.SignUp(t, "X")
		org := ann.OrgID
		s.AddMember(t, ann, org, adm, "ADMIN")
		add := `mutation($e: String!, $r: Role!) { addMember(input: {email: $e, role: $r}) { role user { email } } }`
		wantCode(t, s.Do(t, q(adm, org, add, map[string]any{"e": x.Email, "r": "OWNER"})), "FORBIDDEN")
		var out struct{ AddMember struct{ Role string } }
		s.OK(t, q(adm, org, add, map[string]any{"e": x.Email, "r": "ADMIN"}), &out)
		if out.AddMember.Role != "ADMIN" {
			t.Fatalf("role %q", out.AddMember.Role)
		}
		wantCode(t, s.Do(t, q(adm, org, add, map[string]any{"e": x.Email, "r": "MEMBER"})), "CONFLICT")
		wantCode(t, s.Do(t, q(adm, org, add, map[string]any{"e": "ghost@example.test", "r": "MEMBER"})), "NOT_FOUND")
		// addMember by id works too.
		y := s.SignUp(t, "Y")
		s.OK(t, q(adm, org, `mutation($id: ID!) { addMember(input: {userID: $id}) { role } }`, map[string]any{"id": y.ID}), nil)
	})
}

func TestSwitchOrganization(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann, bob := s.SignUp(t, "Ann"), s.SignUp(t, "Bob")
		s.AddMember(t, bob, bob.OrgID, ann, "MEMBER")
		current := func(org string) (string, string) {
			var out struct {
				Viewer struct {
					Role         string
					Organization struct{ ID string }
				}
			}
			s.OK(t, q(ann, org, `{ viewer { role organization { id } } }`, nil), &out)
			return out.Viewer.Organization.ID, out.Viewer.Role
		}
		if id, _ := current(""); id != ann.OrgID {
			t.Fatalf("selected %s, want the personal organization", id)
		}
		s.OK(t, q(ann, "", `mutation($id: ID!) { switchOrganization(id: $id) { role } }`, map[string]any{"id": bob.OrgID}), nil)
		if id, role := current(""); id != bob.OrgID || role != "MEMBER" {
			t.Fatalf("after switching: %s %s", id, role)
		}
		if id, role := current(ann.OrgID); id != ann.OrgID || role != "OWNER" {
			t.Fatalf("header override: %s %s", id, role)
		}
		// A new organization goes to the one created, not the selection; creating does not switch.
		var created struct {
			CreateOrganization struct{ ID, ViewerRole string }
		}
		s.OK(t, q(ann, "", `mutation { createOrganization(input: {name: "Third"}) { id viewerRole } }`, nil), &created)
		if created.CreateOrganization.ViewerRole != "OWNER" {
			t.Fatalf("creator role %q", created.CreateOrganization.ViewerRole)
		}
		// Leaving the selected organization falls back to the oldest membership.
		s.OK(t, q(ann, "", `mutation($id: ID!) { leaveOrganization(id: $id) }`, map[string]any{"id": bob.OrgID}), nil)
		if id, _ := current(""); id != ann.OrgID {
			t.Fatalf("after leaving the selected organization: %s", id)
		}
		r := s.Do(t, q(ann, bob.OrgID, `{ viewer { role } }`, nil))
		wantCode(t, r, "NOT_FOUND")
		if r.Status != 404 {
			t.Fatalf("status %d for a foreign X-Organization-ID", r.Status)
		}
	})
}

func TestMembersSearchAndPaging(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann := s.SignUp(t, "Ann")
		for _, n := range []string{"Bob", "Bea", "Carl"} {
			s.AddMember(t, ann, ann.OrgID, s.SignUp(t, n), "MEMBER")
		}
		var out struct {
			Organization struct {
				Members struct {
					TotalCount int
					Edges      []struct {
						Node struct{ User struct{ Name string } }
					}
				}
				Page struct {
					PageInfo struct {
						HasNextPage bool
						EndCursor   string
					}
					Edges []struct{ Node struct{ ID string } }
				}
			}
		}
		s.OK(t, q(ann, "", `{ organization { members(search: "b") { totalCount edges { node { user { name } } } }
			page: members(first: 2) { pageInfo { hasNextPage endCursor } edges { node { id } } } } }`, nil), &out)
		if out.Organization.Members.TotalCount != 2 {
			t.Fatalf("search matched %d members, want 2 (Bob, Bea): %+v", out.Organization.Members.TotalCount, out)
		}
		p := out.Organization.Page
		if len(p.Edges) != 2 || !p.PageInfo.HasNextPage {
			t.Fatalf("first page: %+v", p)
		}
		var next struct {
			Organization struct {
				Members struct {
					PageInfo struct{ HasNextPage bool }
					Edges    []struct{ Node struct{ ID string } }
				}
			}
		}
		s.OK(t, q(ann, "", `query($after: Cursor) { organization { members(first: 2, after: $after) { pageInfo { hasNextPage } edges { node { id } } } } }`,
			map[string]any{"after": p.PageInfo.EndCursor}), &next)
		if n := len(next.Organization.Members.Edges); n != 2 || next.Organization.Members.PageInfo.HasNextPage {
			t.Fatalf("second page: %+v", next)
		}
		if next.Organization.Members.Edges[0].Node.ID == p.Edges[0].Node.ID {
			t.Fatal("second page repeats the first")
		}
	})
}

func manyIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "org_01m841t6g2bdyba5pqsncf9c50"
	}
	return ids
}
