package httpapi_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
)

func TestAuditLogRecordsEveryChangeWithoutSecrets(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann, bob, cid := s.SignUp(t, "Ann"), s.SignUp(t, "Bob"), s.SignUp(t, "Cid")
		org := ann.OrgID
		secrets := []string{ann.Token, bob.Token, cid.Token, apitest.Password}

		s.OK(t, q(ann, org, `mutation { updateOrganization(input: {timezone: "Europe/Berlin"}) { id } }`, nil), nil)
		bobMembership := s.AddMember(t, ann, org, bob, "MEMBER")
		s.OK(t, q(ann, org, memberRoleQuery, map[string]any{"id": bobMembership, "role": "ADMIN"}), nil)
		key := s.CreateAPIKey(t, ann, org, "ADMIN")
		secrets = append(secrets, key.Secret)
		s.OK(t, q(&apitest.User{Token: key.Secret}, "", `mutation { updateOrganization(input: {dateFormat: "DD.MM.YYYY"}) { id } }`, nil), nil)
		s.OK(t, q(ann, org, `mutation($id: ID!) { revokeAPIKey(id: $id) { id } }`, map[string]any{"id": key.ID}), nil)
		var inv struct{ InviteMember struct{ ID string } }
		s.OK(t, q(ann, org, inviteQuery, map[string]any{"e": cid.Email, "r": "MEMBER"}), &inv)
		s.OK(t, q(ann, org, `mutation($id: ID!) { resendInvitation(id: $id) { id } }`, map[string]any{"id": inv.InviteMember.ID}), nil)
		for _, m := range invitationMails(s, cid.Email) {
			secrets = append(secrets, tokenInLink.FindStringSubmatch(m.Body)[1])
		}
		s.OK(t, q(cid, "", acceptByTok, map[string]any{"t": mailedToken(t, s, cid.Email)}), nil)
		s.OK(t, q(cid, org, `mutation($id: ID!) { leaveOrganization(id: $id) }`, map[string]any{"id": org}), nil)
		s.OK(t, q(ann, org, `mutation($id: ID!) { transferOwnership(membershipID: $id) { id } }`, map[string]any{"id": bobMembership}), nil)
		s.OK(t, q(bob, org, `mutation($id: ID!) { removeMember(id: $id) }`, map[string]any{"id": s.MembershipOf(t, bob, org, ann.ID)}), nil)
		line := connectedSandbox(t, s, bob, org, "line")
		s.OK(t, q(bob, org, `mutation($s: ID!) { sendMessage(input: {sessionID: $s, to: "+15550000999", text: "hi"}) { id } }`,
			map[string]any{"s": line.ID}), nil)
		s.OK(t, q(bob, org, `mutation($id: ID!) { deleteSession(id: $id) }`, map[string]any{"id": line.ID}), nil)

		var out struct {
			Organization struct {
				AuditLog struct {
					Edges []struct {
						Node struct {
							Action      string
							TargetType  string
							TargetID    string
							ActorUser   *struct{ ID string }
							ActorAPIKey *struct{ ID string }
							Details     map[string]any
						}
					}
				}
			}
		}
		r := s.Do(t, q(bob, org, `{ organization { auditLog(first: 100) { edges { node { action targetType targetID
			actorUser { id } actorAPIKey { id } details } } } } }`, nil))
		for _, secret := range secrets {
			if strings.Contains(string(r.Data), secret) {
				t.Fatalf("the audit log contains a secret: %s", r.Data)
			}
		}
		r.Decode(t, &out)
		var actions []string
		for _, e := range out.Organization.AuditLog.Edges {
			actions = append(actions, e.Node.Action)
		}
		want := []string{"session.delete", "message.send", "session.connect", "session.create", "member.remove", "organization.transfer_ownership", "member.leave", "invitation.accept",
			"invitation.resend", "invitation.create", "api_key.revoke", "organization.update", "api_key.create",
			"member.update_role", "member.add", "organization.update", "organization.create"}
		if !slices.Equal(actions, want) {
			t.Fatalf("actions, newest first:\n got %q\nwant %q", actions, want)
		}
		byKey := out.Organization.AuditLog.Edges[11].Node
		if byKey.ActorAPIKey == nil || byKey.ActorAPIKey.ID != key.ID || byKey.ActorUser != nil {
			t.Fatalf("the key's change is not attributed to the key: %+v", byKey)
		}
		upd := out.Organization.AuditLog.Edges[15].Node
		if b, _ := json.Marshal(upd.Details); string(b) != `{"timezone":"Europe/Berlin"}` || upd.TargetID != org {
			t.Fatalf("settings entry: %+v", upd)
		}
		// Ann has left, so she is no longer visible to the organization: her entries keep
		// their action, the actor reads as null. Bob's are attributed.
		if upd.ActorUser != nil {
			t.Fatalf("a former member is visible through the audit log: %+v", upd)
		}
		if rm := out.Organization.AuditLog.Edges[4].Node; rm.ActorUser == nil || rm.ActorUser.ID != bob.ID {
			t.Fatalf("removal entry: %+v", rm)
		}
	})
}
