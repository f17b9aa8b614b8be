package httpapi_test

import (
	"testing"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
)

// The authorization matrix: API.md's role table in code. Every operation is called by every
// kind of caller, through GraphQL over HTTP, and must answer exactly the expected code.
// Every later operation adds a row here.

const (
	ok      = ""
	unauth  = "UNAUTHENTICATED"
	forbid  = "FORBIDDEN"
	nf      = "NOT_FOUND"
	clash   = "CONFLICT"
	anon    = "anonymous"
	other   = "other org's member"
	member  = "MEMBER"
	admin   = "ADMIN"
	owner   = "OWNER"
	super   = "super admin"
	disable = "disabled user"
)

var callers = []string{anon, other, member, admin, owner, super, disable}

// fixture is organization A with an OWNER, an ADMIN, a MEMBER and a disabled MEMBER; another
// user with only their own organization; and a super admin who is no member of A.
type fixture struct {
	org                                               string
	owner, admin, member, other, super, disabled      *apitest.User
	adminMembership, memberMembership, disabledMember string
}

func newFixture(t *testing.T, s *apitest.Server) *fixture {
	t.Helper()
	f := &fixture{
		owner: s.SignUp(t, "Owner"), admin: s.SignUp(t, "Admin"), member: s.SignUp(t, "Member"),
		other: s.SignUp(t, "Other"), super: s.SignUp(t, "Super"), disabled: s.SignUp(t, "Disabled"),
	}
	f.org = f.owner.OrgID
	f.adminMembership = s.AddMember(t, f.owner, f.org, f.admin, "ADMIN")
	f.memberMembership = s.AddMember(t, f.owner, f.org, f.member, "MEMBER")
	f.disabledMember = s.AddMember(t, f.owner, f.org, f.disabled, "MEMBER")
	s.MakeSuperAdmin(t, f.super)
	s.OK(t, apitest.Request{Token: f.super.Token,
		Query: `mutation($id: ID!) { adminSetUserDisabled(userID: $id, disabled: true) { id } }`,
		Vars:  map[string]any{"id": f.disabled.ID}}, nil)
	return f
}

// as returns the credentials a caller sends: members act in organization A, the others in
// their own organization.
func (f *fixture) as(caller string) (token, org string) {
	switch caller {
	case other:
		return f.other.Token, ""
	case member:
		return f.member.Token, f.org
	case admin:
		return f.admin.Token, f.org
	case owner:
		return f.owner.Token, f.org
	case super:
		return f.super.Token, ""
	case disable:
		return f.disabled.Token, f.org
	}
	return "", ""
}

// want lists the expected code per caller; a disabled user is always UNAUTHENTICATED.
type want struct{ anon, other, member, admin, owner, super string }

func (w want) of(caller string) string {
	return map[string]string{anon: w.anon, other: w.other, member: w.member, admin: w.admin,
		owner: w.owner, super: w.super, disable: unauth}[caller]
}

type operation struct {
	name  string
	query string
	vars  func(t *testing.T, s *apitest.Server, f *fixture) map[string]any
	want  want
	// mutates marks operations that change the fixture: they get a fresh one per caller.
	mutates bool
}

func orgVar(_ *testing.T, _ *apitest.Server, f *fixture) map[string]any {
	return map[string]any{"id": f.org}
}

func memberVar(_ *testing.T, _ *apitest.Server, f *fixture) map[string]any {
	return map[string]any{"id": f.memberMembership}
}

func newcomer(role string) func(*testing.T, *apitest.Server, *fixture) map[string]any {
	return func(t *testing.T, s *apitest.Server, _ *fixture) map[string]any {
		u := s.SignUp(t, "Newcomer")
		return map[string]any{"in": map[string]any{"email": u.Email, "role": role}}
	}
}

var readers = want{anon: unauth, other: ok, member: ok, admin: ok, owner: ok, super: ok}
var superOnly = want{anon: unauth, other: forbid, member: forbid, admin: forbid, owner: forbid, super: ok}

var operations = []operation{
	{name: "viewer", query: `{ viewer { isSuperAdmin user { id } organization { id } role } }`,
		want: want{anon: ok, other: ok, member: ok, admin: ok, owner: ok, super: ok}},
	{name: "organization", query: `{ organization { id name settings { timezone } viewerRole } }`, want: readers},
	{name: "organizations", query: `{ organizations { edges { node { id } } } }`, want: readers},
	{name: "node(organization)", query: `query($id: ID!) { node(id: $id) { id } }`, vars: orgVar,
		want: want{anon: unauth, other: nf, member: ok, admin: ok, owner: ok, super: nf}},
	{name: "organization.members", query: `query($id: ID!) { node(id: $id) { ... on Organization {
		members(first: 10) { edges { node { role user { email } } } } } } }`, vars: orgVar,
		want: want{anon: unauth, other: nf, member: ok, admin: ok, owner: ok, super: nf}},
	{name: "createOrganization", query: `mutation { createOrganization(input: {name: "New"}) { id } }`, want: readers},
	{name: "updateOrganization", query: `mutation($id: ID!) { updateOrganization(input: {id: $id, name: "Renamed"}) { id } }`,
		vars: orgVar, want: want{anon: unauth, other: nf, member: forbid, admin: ok, owner: ok, super: nf}},
	{name: "deleteOrganization", query: `mutation($id: ID!) { deleteOrganization(id: $id) }`, vars: orgVar, mutates: true,
		want: want{anon: unauth, other: nf, member: forbid, admin: forbid, owner: ok, super: nf}},
	// other and super admin act in their own organization, where they are OWNER.
	{name: "addMember(MEMBER)", query: `mutation($in: AddMemberInput!) { addMember(input: $in) { id } }`,
		vars: newcomer("MEMBER"), want: want{anon: unauth, other: ok, member: forbid, admin: ok, owner: ok, super: ok}},
	{name: "addMember(OWNER)", query: `mutation($in: AddMemberInput!) { addMember(input: $in) { id } }`,
		vars: newcomer("OWNER"), want: want{anon: unauth, other: ok, member: forbid, admin: forbid, owner: ok, super: ok}},
	{name: "updateMemberRole", query: `mutation($id: ID!) { updateMemberRole(id: $id, role: ADMIN) { id role } }`,
		vars: memberVar, mutates: true, want: want{anon: unauth, other: nf, member: forbid, admin: forbid, owner: ok, super: nf}},
	{name: "removeMember", query: `mutation($id: ID!) { removeMember(id: $id) }`,
		vars: memberVar, mutates: true, want: want{anon: unauth, other: nf, member: forbid, admin: forbid, owner: ok, super: nf}},
	{name: "leaveOrganization", query: `mutation($id: ID!) { leaveOrganization(id: $id) }`,
		vars: orgVar, mutates: true, want: want{anon: unauth, other: nf, member: ok, admin: ok, owner: clash, super: nf}},
	{name: "transferOwnership", query: `mutation($id: ID!) { transferOwnership(membershipID: $id) { id } }`,
		vars: memberVar, mutates: true, want: want{anon: unauth, other: nf, member: forbid, admin: forbid, owner: ok, super: nf}},
	{name: "switchOrganization", query: `mutation($id: ID!) { switchOrganization(id: $id) { organization { id } } }`,
		vars: orgVar, want: want{anon: unauth, other: nf, member: ok, admin: ok, owner: ok, super: nf}},
	{name: "logOut", query: `mutation { logOut }`, mutates: true, want: readers},
	{name: "User.memberships", query: `query($id: ID!) { node(id: $id) { ... on User { memberships { id } } } }`,
		vars: func(_ *testing.T, _ *apitest.Server, f *fixture) map[string]any {
			return map[string]any{"id": f.member.ID}
		},
		want: want{anon: unauth, other: nf, member: ok, admin: forbid, owner: forbid, super: nf}},
	{name: "admin.users", query: `{ admin { users { totalCount edges { node { email memberships { id } } } } } }`, want: superOnly},
	{name: "admin.organizations", query: `{ admin { organizations(search: "") { totalCount } } }`, want: superOnly},
	{name: "admin.sessions", query: `{ admin { sessions(status: CONNECTED) { totalCount } } }`, want: superOnly},
	{name: "adminSetUserDisabled", query: `mutation($id: ID!) { adminSetUserDisabled(userID: $id, disabled: true) { disabled } }`,
		vars: func(_ *testing.T, _ *apitest.Server, f *fixture) map[string]any {
			return map[string]any{"id": f.member.ID}
		},
		mutates: true, want: superOnly},
	{name: "signUp", query: `mutation($in: SignUpInput!) { signUp(input: $in) { token } }`,
		vars: func(_ *testing.T, s *apitest.Server, _ *fixture) map[string]any {
			return map[string]any{"in": map[string]any{"email": apitest.UniqueEmail(s, "fresh"), "password": apitest.Password, "name": "Fresh"}}
		},
		want: want{anon: ok, other: ok, member: ok, admin: ok, owner: ok, super: ok}},
	{name: "logIn", query: `mutation($in: LogInInput!) { logIn(input: $in) { token } }`,
		vars: func(_ *testing.T, _ *apitest.Server, f *fixture) map[string]any {
			return map[string]any{"in": map[string]any{"email": f.owner.Email, "password": apitest.Password}}
		},
		want: want{anon: ok, other: ok, member: ok, admin: ok, owner: ok, super: ok}},
}

func TestAuthorizationMatrix(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		shared := newFixture(t, s)
		for _, op := range operations {
			t.Run(op.name, func(t *testing.T) {
				for _, caller := range callers {
					f := shared
					if op.mutates {
						f = newFixture(t, s)
					}
					var vars map[string]any
					if op.vars != nil {
						vars = op.vars(t, s, f)
					}
					token, org := f.as(caller)
					r := s.Do(t, apitest.Request{Token: token, Org: org, Query: op.query, Vars: vars})
					if got, want := r.Code(), op.want.of(caller); got != want {
						t.Errorf("%s as %s: code %q, want %q (errors: %+v)", op.name, caller, got, want, r.Errors)
					}
				}
			})
		}
	})
}
