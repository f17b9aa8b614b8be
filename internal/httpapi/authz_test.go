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
	mkey    = "MEMBER API key"
	akey    = "ADMIN API key"
	badIn   = "BAD_USER_INPUT"
)

var callers = []string{anon, other, member, admin, owner, super, disable, mkey, akey}

// fixture is organization A with an OWNER, an ADMIN, a MEMBER, a disabled MEMBER, a MEMBER
// and an ADMIN API key, and a pending invitation; another user with only their own
// organization; and a super admin who is no member of A.
type fixture struct {
	org                                               string
	owner, admin, member, other, super, disabled      *apitest.User
	adminMembership, memberMembership, disabledMember string
	memberKey, adminKey                               *apitest.Key
	invitation                                        string
	// session is a connected sandbox session of A; inbound a message it received in chat.
	session, inbound, chat string
	// webhook is a webhook of A; delivery its delivery of inbound's event.
	webhook, delivery string
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
	f.memberKey = s.CreateAPIKey(t, f.owner, f.org, "MEMBER")
	f.adminKey = s.CreateAPIKey(t, f.owner, f.org, "ADMIN")
	var inv struct{ InviteMember struct{ ID string } }
	s.OK(t, apitest.Request{Token: f.owner.Token, Org: f.org,
		Query: `mutation($e: String!) { inviteMember(input: {email: $e}) { id } }`,
		Vars:  map[string]any{"e": apitest.UniqueEmail(s, "invitee")}}, &inv)
	f.invitation = inv.InviteMember.ID
	ses := connectedSandbox(t, s, f.owner, f.org, "A's line")
	f.session = ses.ID
	f.webhook, _ = createWebhook(t, s, f.owner, "http://127.0.0.1:9/hook", "MESSAGE_RECEIVED")
	var sim struct{ SimulateIncomingMessage struct{ ID, ChatJID string } }
	s.OK(t, apitest.Request{Token: f.owner.Token, Org: f.org,
		Query: `mutation($s: ID!) { simulateIncomingMessage(input: {sessionID: $s, from: "+4915112345678", text: "hi"}) { id chatJID } }`,
		Vars:  map[string]any{"s": f.session}}, &sim)
	f.inbound, f.chat = sim.SimulateIncomingMessage.ID, sim.SimulateIncomingMessage.ChatJID
	f.delivery = getWebhook(t, s, f.owner, f.webhook).Deliveries.Edges[0].Node.ID
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
	case mkey:
		return f.memberKey.Secret, ""
	case akey:
		return f.adminKey.Secret, ""
	}
	return "", ""
}

// want lists the expected code per caller; a disabled user is always UNAUTHENTICATED.
type want struct{ anon, other, member, admin, owner, super, mkey, akey string }

func (w want) of(caller string) string {
	return map[string]string{anon: w.anon, other: w.other, member: w.member, admin: w.admin,
		owner: w.owner, super: w.super, disable: unauth, mkey: w.mkey, akey: w.akey}[caller]
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

var (
	readers   = want{anon: unauth, other: ok, member: ok, admin: ok, owner: ok, super: ok, mkey: ok, akey: ok}
	usersOnly = want{anon: unauth, other: ok, member: ok, admin: ok, owner: ok, super: ok, mkey: forbid, akey: forbid}
	anyone    = want{anon: ok, other: ok, member: ok, admin: ok, owner: ok, super: ok, mkey: forbid, akey: forbid}
	superOnly = want{anon: unauth, other: forbid, member: forbid, admin: forbid, owner: forbid, super: ok, mkey: forbid, akey: forbid}
	// adminsHere: ADMIN+ of A (and other and super admin in their own organization).
	adminsHere = want{anon: unauth, other: ok, member: forbid, admin: ok, owner: ok, super: ok, mkey: forbid, akey: ok}
	// humanAdmins: like adminsHere, but no API key may.
	humanAdmins = want{anon: unauth, other: ok, member: forbid, admin: ok, owner: ok, super: ok, mkey: forbid, akey: forbid}
	// ownerOnA: only A's OWNER; the others reach A's object by id and find nothing.
	ownerOnA = want{anon: unauth, other: nf, member: forbid, admin: forbid, owner: ok, super: nf, mkey: forbid, akey: forbid}
	// adminsOnA: ADMIN+ of A by id.
	adminsOnA = want{anon: unauth, other: nf, member: forbid, admin: ok, owner: ok, super: nf, mkey: forbid, akey: forbid}
	// membersOfA: anyone in A, keys included.
	membersOfA = want{anon: unauth, other: nf, member: ok, admin: ok, owner: ok, super: nf, mkey: ok, akey: ok}
)

// sessionAdminsOnA: ADMIN+ of A (keys included) on A's session by id.
var sessionAdminsOnA = want{anon: unauth, other: nf, member: forbid, admin: ok, owner: ok, super: nf, mkey: forbid, akey: ok}

func sessionVar(_ *testing.T, _ *apitest.Server, f *fixture) map[string]any {
	return map[string]any{"id": f.session}
}

func messageVars(_ *testing.T, _ *apitest.Server, f *fixture) map[string]any {
	return map[string]any{"s": f.session, "c": f.chat, "m": f.inbound}
}

func invitationVar(_ *testing.T, _ *apitest.Server, f *fixture) map[string]any {
	return map[string]any{"id": f.invitation}
}

func webhookVar(_ *testing.T, _ *apitest.Server, f *fixture) map[string]any {
	return map[string]any{"id": f.webhook}
}

func deliveryVar(_ *testing.T, _ *apitest.Server, f *fixture) map[string]any {
	return map[string]any{"id": f.delivery}
}

func memberKeyVar(_ *testing.T, _ *apitest.Server, f *fixture) map[string]any {
	return map[string]any{"id": f.memberKey.ID}
}

var operations = []operation{
	{name: "viewer", query: `{ viewer { isSuperAdmin user { id } organization { id } role apiKey { id } } }`,
		want: want{anon: ok, other: ok, member: ok, admin: ok, owner: ok, super: ok, mkey: ok, akey: ok}},
	{name: "organization", query: `{ organization { id name settings { timezone } viewerRole } }`, want: readers},
	{name: "organizations", query: `{ organizations { edges { node { id } } } }`, want: readers},
	{name: "node(organization)", query: `query($id: ID!) { node(id: $id) { id } }`, vars: orgVar, want: membersOfA},
	{name: "organization.members", query: `query($id: ID!) { node(id: $id) { ... on Organization {
		members(first: 10) { edges { node { role user { email } } } } } } }`, vars: orgVar, want: membersOfA},
	{name: "createOrganization", query: `mutation { createOrganization(input: {name: "New"}) { id } }`, want: usersOnly},
	{name: "updateOrganization", query: `mutation($id: ID!) { updateOrganization(input: {id: $id, name: "Renamed"}) { id } }`,
		vars: orgVar, want: want{anon: unauth, other: nf, member: forbid, admin: ok, owner: ok, super: nf, mkey: forbid, akey: ok}},
	{name: "deleteOrganization", query: `mutation($id: ID!) { deleteOrganization(id: $id) }`, vars: orgVar, mutates: true, want: ownerOnA},
	// other and super admin act in their own organization, where they are OWNER.
	{name: "addMember(MEMBER)", query: `mutation($in: AddMemberInput!) { addMember(input: $in) { id } }`,
		vars: newcomer("MEMBER"), want: humanAdmins},
	{name: "addMember(OWNER)", query: `mutation($in: AddMemberInput!) { addMember(input: $in) { id } }`,
		vars: newcomer("OWNER"), want: want{anon: unauth, other: ok, member: forbid, admin: forbid, owner: ok, super: ok, mkey: forbid, akey: forbid}},
	{name: "updateMemberRole", query: `mutation($id: ID!) { updateMemberRole(id: $id, role: ADMIN) { id role } }`,
		vars: memberVar, mutates: true, want: ownerOnA},
	{name: "removeMember", query: `mutation($id: ID!) { removeMember(id: $id) }`, vars: memberVar, mutates: true, want: ownerOnA},
	{name: "leaveOrganization", query: `mutation($id: ID!) { leaveOrganization(id: $id) }`, vars: orgVar, mutates: true,
		want: want{anon: unauth, other: nf, member: ok, admin: ok, owner: clash, super: nf, mkey: forbid, akey: forbid}},
	{name: "transferOwnership", query: `mutation($id: ID!) { transferOwnership(membershipID: $id) { id } }`,
		vars: memberVar, mutates: true, want: ownerOnA},
	{name: "switchOrganization", query: `mutation($id: ID!) { switchOrganization(id: $id) { organization { id } } }`,
		vars: orgVar, want: want{anon: unauth, other: nf, member: ok, admin: ok, owner: ok, super: nf, mkey: forbid, akey: forbid}},
	{name: "logOut", query: `mutation { logOut }`, mutates: true, want: usersOnly},
	{name: "User.memberships", query: `query($id: ID!) { node(id: $id) { ... on User { memberships { id } } } }`,
		vars: func(_ *testing.T, _ *apitest.Server, f *fixture) map[string]any {
			return map[string]any{"id": f.member.ID}
		},
		want: want{anon: unauth, other: nf, member: ok, admin: forbid, owner: forbid, super: nf, mkey: forbid, akey: forbid}},
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
		want: anyone},
	{name: "logIn", query: `mutation($in: LogInInput!) { logIn(input: $in) { token } }`,
		vars: func(_ *testing.T, _ *apitest.Server, f *fixture) map[string]any {
			return map[string]any{"in": map[string]any{"email": f.owner.Email, "password": apitest.Password}}
		},
		want: anyone},

	// Invitations.
	{name: "inviteMember(MEMBER)", query: `mutation($e: String!) { inviteMember(input: {email: $e}) { id status } }`,
		vars: func(_ *testing.T, s *apitest.Server, _ *fixture) map[string]any {
			return map[string]any{"e": apitest.UniqueEmail(s, "guest")}
		}, want: humanAdmins},
	{name: "inviteMember(OWNER)", query: `mutation($e: String!) { inviteMember(input: {email: $e, role: OWNER}) { id } }`,
		vars: func(_ *testing.T, s *apitest.Server, _ *fixture) map[string]any {
			return map[string]any{"e": apitest.UniqueEmail(s, "guest")}
		}, want: want{anon: unauth, other: ok, member: forbid, admin: forbid, owner: ok, super: ok, mkey: forbid, akey: forbid}},
	{name: "resendInvitation", query: `mutation($id: ID!) { resendInvitation(id: $id) { id } }`, vars: invitationVar,
		mutates: true, want: adminsOnA},
	{name: "revokeInvitation", query: `mutation($id: ID!) { revokeInvitation(id: $id) { status } }`, vars: invitationVar,
		mutates: true, want: adminsOnA},
	{name: "organization.invitations", query: `{ organization { invitations { id email status invitedBy { id } } } }`, want: humanAdmins},
	{name: "myInvitations", query: `{ myInvitations { id organization { name } } }`, want: readers},
	// Nobody in the fixture is the invitee: only the invitation's own address may answer it.
	{name: "acceptInvitation", query: `mutation($id: ID!) { acceptInvitation(id: $id) { id } }`, vars: invitationVar, mutates: true,
		want: want{anon: unauth, other: nf, member: nf, admin: forbid, owner: forbid, super: nf, mkey: forbid, akey: forbid}},
	{name: "declineInvitation", query: `mutation($id: ID!) { declineInvitation(id: $id) { id } }`, vars: invitationVar, mutates: true,
		want: want{anon: unauth, other: nf, member: nf, admin: forbid, owner: forbid, super: nf, mkey: forbid, akey: forbid}},

	{name: "verifyEmail(bad token)", query: `mutation { verifyEmail(token: "wev_nope") }`,
		want: want{anon: nf, other: nf, member: nf, admin: nf, owner: nf, super: nf, mkey: nf, akey: nf}},
	// Fixture users are verified already.
	{name: "resendVerificationEmail", query: `mutation { resendVerificationEmail }`,
		want: want{anon: unauth, other: clash, member: clash, admin: clash, owner: clash, super: clash, mkey: forbid, akey: forbid}},

	// API keys.
	{name: "createAPIKey(MEMBER)", query: `mutation { createAPIKey(input: {name: "ci", role: MEMBER}) { secret } }`, want: adminsHere},
	{name: "createAPIKey(ADMIN)", query: `mutation { createAPIKey(input: {name: "ci", role: ADMIN}) { secret } }`, want: adminsHere},
	{name: "createAPIKey(OWNER)", query: `mutation { createAPIKey(input: {name: "ci", role: OWNER}) { secret } }`,
		want: want{anon: unauth, other: badIn, member: forbid, admin: forbid, owner: badIn, super: badIn, mkey: forbid, akey: forbid}},
	{name: "revokeAPIKey", query: `mutation($id: ID!) { revokeAPIKey(id: $id) { revokedAt } }`, vars: memberKeyVar, mutates: true,
		want: want{anon: unauth, other: nf, member: forbid, admin: ok, owner: ok, super: nf, mkey: forbid, akey: ok}},
	{name: "organization.apiKeys", query: `{ organization { apiKeys { id name prefix role createdBy { id } lastUsedAt } } }`, want: adminsHere},

	// Sessions and messages.
	{name: "createSession", query: `mutation { createSession(input: {name: "new line", engine: SANDBOX}) { id } }`, want: adminsHere},
	{name: "connectSession", query: `mutation($id: ID!) { connectSession(id: $id) { id } }`, vars: sessionVar, want: sessionAdminsOnA},
	{name: "requestPairingCode(paired)", query: `mutation($id: ID!) { requestPairingCode(id: $id, phoneNumber: "+4915100000000") }`,
		vars: sessionVar, want: want{anon: unauth, other: nf, member: forbid, admin: clash, owner: clash, super: nf, mkey: forbid, akey: clash}},
	{name: "disconnectSession", query: `mutation($id: ID!) { disconnectSession(id: $id) { id } }`, vars: sessionVar, mutates: true, want: sessionAdminsOnA},
	{name: "logoutSession", query: `mutation($id: ID!) { logoutSession(id: $id) { id } }`, vars: sessionVar, mutates: true, want: sessionAdminsOnA},
	{name: "deleteSession", query: `mutation($id: ID!) { deleteSession(id: $id) }`, vars: sessionVar, mutates: true, want: sessionAdminsOnA},
	{name: "session.messages", query: `query($id: ID!) { node(id: $id) { ... on Session { messages { edges { node { id senderPhone media { url } } } } chats { totalCount } } } }`,
		vars: sessionVar, want: membersOfA},
	{name: "organization.events", query: `query($id: ID!) { node(id: $id) { ... on Organization { events(first: 5) { totalCount edges { node { cursor type } } } } } }`,
		vars: orgVar, want: membersOfA},
	{name: "node(message)", query: `query($id: ID!) { node(id: $id) { id } }`,
		vars: func(_ *testing.T, _ *apitest.Server, f *fixture) map[string]any {
			return map[string]any{"id": f.inbound}
		}, want: membersOfA},
	{name: "sendMessage", query: `mutation($s: ID!) { sendMessage(input: {sessionID: $s, to: "+15550000999", text: "hi"}) { id status } }`,
		vars: func(_ *testing.T, _ *apitest.Server, f *fixture) map[string]any {
			return map[string]any{"s": f.session}
		}, want: membersOfA},
	{name: "markRead", query: `mutation($s: ID!, $c: String!, $m: ID!) { markRead(input: {sessionID: $s, chatJID: $c, messageIDs: [$m]}) }`,
		vars: messageVars, want: membersOfA},
	{name: "react", query: `mutation($s: ID!, $c: String!, $m: ID!) { react(input: {sessionID: $s, chatJID: $c, messageID: $m, emoji: "👍"}) { id } }`,
		vars: messageVars, want: membersOfA},
	{name: "simulateIncomingMessage", query: `mutation($s: ID!) { simulateIncomingMessage(input: {sessionID: $s, from: "+4915112345678", text: "hey"}) { id } }`,
		vars: func(_ *testing.T, _ *apitest.Server, f *fixture) map[string]any {
			return map[string]any{"s": f.session}
		}, want: sessionAdminsOnA},
	{name: "simulateIncomingMessages", query: `mutation($s: ID!) { simulateIncomingMessages(input: {sessionID: $s, messages: [{from: "+4915112345678", text: "hey"}]}) { id } }`,
		vars: func(_ *testing.T, _ *apitest.Server, f *fixture) map[string]any {
			return map[string]any{"s": f.session}
		}, want: sessionAdminsOnA},

	// Webhooks: ADMIN+ (ADMIN keys included); other organizations find nothing.
	{name: "createWebhook", query: `mutation { createWebhook(input: {url: "http://127.0.0.1:9/new", eventTypes: [MESSAGE_RECEIVED]}) { secret webhook { id } } }`,
		want: adminsHere},
	{name: "organization.webhooks", query: `{ organization { webhooks { id url eventTypes enabled failingSince } } }`, want: adminsHere},
	{name: "node(webhook).deliveries", query: `query($id: ID!) { node(id: $id) { ... on Webhook { url deliveries(first: 5) { totalCount edges { node { status attempts event { id } } } } } } }`,
		vars: webhookVar, want: sessionAdminsOnA},
	{name: "node(webhookDelivery)", query: `query($id: ID!) { node(id: $id) { ... on WebhookDelivery { status } } }`,
		vars: deliveryVar, want: sessionAdminsOnA},
	{name: "updateWebhook", query: `mutation($id: ID!) { updateWebhook(input: {id: $id, eventTypes: [MESSAGE_RECEIVED, MESSAGE_SENT]}) { eventTypes } }`,
		vars: webhookVar, want: sessionAdminsOnA},
	{name: "rotateWebhookSecret", query: `mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }`,
		vars: webhookVar, want: sessionAdminsOnA},
	{name: "deleteWebhook", query: `mutation($id: ID!) { deleteWebhook(id: $id) }`, vars: webhookVar, mutates: true, want: sessionAdminsOnA},
	{name: "redeliverWebhookDelivery", query: `mutation($id: ID!) { redeliverWebhookDelivery(id: $id) { status } }`,
		vars: deliveryVar, want: sessionAdminsOnA},

	// Audit log.
	{name: "organization.auditLog", query: `{ organization { auditLog { edges { node { action actorUser { id } actorAPIKey { id } details } } } } }`,
		want: adminsHere},
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
