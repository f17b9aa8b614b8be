package httpapi_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/mail"
	"github.com/wagate/wagate/internal/testdb"
)

const (
	inviteQuery  = `mutation($e: String!, $r: Role!) { inviteMember(input: {email: $e, role: $r}) { id email role status expiresAt invitedBy { email } } }`
	acceptByTok  = `mutation($t: String!) { acceptInvitation(token: $t) { role organization { id name } user { email } } }`
	invitedRoles = `{ organization { invitations { email status } } }`
)

var tokenInLink = regexp.MustCompile(`https://app\.example\.test/accept\?token=(wiv_[A-Za-z0-9_-]{43})`)

// invitationMails returns the invitations e-mailed to addr, oldest first.
func invitationMails(s *apitest.Server, addr string) []mail.Message {
	var out []mail.Message
	for _, m := range s.Mail.To(addr) {
		if tokenInLink.MatchString(m.Body) {
			out = append(out, m)
		}
	}
	return out
}

// mailedToken returns the token of the newest invitation e-mailed to addr.
func mailedToken(t *testing.T, s *apitest.Server, addr string) string {
	t.Helper()
	msgs := invitationMails(s, addr)
	if len(msgs) == 0 {
		t.Fatalf("no invitation e-mailed to %s", addr)
	}
	return tokenInLink.FindStringSubmatch(msgs[len(msgs)-1].Body)[1]
}

func TestInvitationLifecycle(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann, bea, eve := s.SignUp(t, "Ann"), s.SignUpUnverified(t, "Bea"), s.SignUp(t, "Eve")
		org := ann.OrgID

		var inv struct {
			InviteMember struct {
				ID, Email, Role, Status string
				InvitedBy               struct{ Email string }
			}
		}
		s.OK(t, q(ann, org, inviteQuery, map[string]any{"e": strings.ToUpper(bea.Email), "r": "ADMIN"}), &inv)
		if i := inv.InviteMember; i.Email != bea.Email || i.Role != "ADMIN" || i.Status != "PENDING" || i.InvitedBy.Email != ann.Email {
			t.Fatalf("invitation: %+v", i)
		}
		msgs := invitationMails(s, bea.Email)
		if len(msgs) != 1 || !strings.Contains(msgs[0].Subject, "Ann's organization") || !strings.Contains(msgs[0].Body, ann.Email) {
			t.Fatalf("e-mail: %+v", msgs)
		}
		token := mailedToken(t, s, bea.Email)

		// Inviting again, or inviting a member, is a conflict.
		wantCode(t, s.Do(t, q(ann, org, inviteQuery, map[string]any{"e": bea.Email, "r": "MEMBER"})), "CONFLICT")
		wantCode(t, s.Do(t, q(ann, org, inviteQuery, map[string]any{"e": ann.Email, "r": "MEMBER"})), "CONFLICT")

		// Until Bea verifies her address, only the mailed link reaches the invitation: anyone
		// can sign up with any address.
		var none struct{ MyInvitations []struct{ ID string } }
		s.OK(t, q(bea, "", `{ myInvitations { id } }`, nil), &none)
		if len(none.MyInvitations) != 0 {
			t.Fatal("an unverified address sees invitations")
		}
		wantCode(t, s.Do(t, q(bea, "", `mutation($id: ID!) { acceptInvitation(id: $id) { id } }`,
			map[string]any{"id": inv.InviteMember.ID})), "FORBIDDEN")
		wantCode(t, s.Do(t, q(bea, "", `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": org})), "NOT_FOUND")
		s.VerifyEmail(t, bea)

		// Bea sees it, with the organization and the inviter although she is no member yet.
		var mine struct {
			MyInvitations []struct {
				ID           string
				Organization struct{ Name string }
				InvitedBy    struct{ Email string }
			}
		}
		s.OK(t, q(bea, "", `{ myInvitations { id organization { name } invitedBy { email } } }`, nil), &mine)
		if len(mine.MyInvitations) != 1 || mine.MyInvitations[0].Organization.Name != "Ann's organization" ||
			mine.MyInvitations[0].InvitedBy.Email != ann.Email {
			t.Fatalf("myInvitations: %+v", mine)
		}
		// Before accepting, the invitation does not make Ann's members or sessions visible to Bea.
		wantCode(t, s.Do(t, q(bea, org, `{ viewer { role } }`, nil)), "NOT_FOUND")

		// Only the invited address may use the link, and only when logged in.
		wantCode(t, s.Do(t, apitest.Request{Query: acceptByTok, Vars: map[string]any{"t": token}}), "UNAUTHENTICATED")
		wantCode(t, s.Do(t, q(eve, "", acceptByTok, map[string]any{"t": token})), "FORBIDDEN")
		wantCode(t, s.Do(t, q(eve, "", acceptByTok, map[string]any{"t": "wiv_forged"})), "NOT_FOUND")

		var acc struct {
			AcceptInvitation struct {
				Role         string
				Organization struct{ ID string }
			}
		}
		s.OK(t, q(bea, "", acceptByTok, map[string]any{"t": token}), &acc)
		if acc.AcceptInvitation.Role != "ADMIN" || acc.AcceptInvitation.Organization.ID != org {
			t.Fatalf("membership: %+v", acc)
		}
		var role struct{ Viewer struct{ Role string } }
		s.OK(t, q(bea, org, `{ viewer { role } }`, nil), &role)
		if role.Viewer.Role != "ADMIN" {
			t.Fatalf("Bea's role: %q", role.Viewer.Role)
		}
		wantCode(t, s.Do(t, q(bea, "", acceptByTok, map[string]any{"t": token})), "CONFLICT")
		var list struct {
			Organization struct {
				Invitations []struct{ Email, Status string }
			}
		}
		s.OK(t, q(ann, org, invitedRoles, nil), &list)
		if len(list.Organization.Invitations) != 1 || list.Organization.Invitations[0].Status != "ACCEPTED" {
			t.Fatalf("invitations: %+v", list)
		}
	})
}

func TestInvitationExpiryResendRevokeDecline(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann, bea, cid := s.SignUp(t, "Ann"), s.SignUp(t, "Bea"), s.SignUp(t, "Cid")
		org := ann.OrgID
		var inv struct{ InviteMember struct{ ID string } }
		s.OK(t, q(ann, org, inviteQuery, map[string]any{"e": bea.Email, "r": "MEMBER"}), &inv)
		first := mailedToken(t, s, bea.Email)

		s.Clock.Advance(8 * 24 * time.Hour)
		var list struct {
			Organization struct {
				Invitations []struct{ Email, Status string }
			}
		}
		s.OK(t, q(ann, org, `{ organization { invitations(status: EXPIRED) { email status } } }`, nil), &list)
		if len(list.Organization.Invitations) != 1 || list.Organization.Invitations[0].Status != "EXPIRED" {
			t.Fatalf("expired invitations: %+v", list)
		}
		r := s.Do(t, q(bea, "", acceptByTok, map[string]any{"t": first}))
		wantCode(t, r, "CONFLICT")
		if !strings.Contains(r.Errors[0].Message, "expired") {
			t.Fatalf("message %q does not say it expired", r.Errors[0].Message)
		}
		var mine struct{ MyInvitations []struct{ ID string } }
		s.OK(t, q(bea, "", `{ myInvitations { id } }`, nil), &mine)
		if len(mine.MyInvitations) != 0 {
			t.Fatal("an expired invitation is listed as pending")
		}

		// Resending revives it with a new token; the old link is dead.
		s.OK(t, q(ann, org, `mutation($id: ID!) { resendInvitation(id: $id) { status } }`, map[string]any{"id": inv.InviteMember.ID}), nil)
		second := mailedToken(t, s, bea.Email)
		if second == first || len(invitationMails(s, bea.Email)) != 2 {
			t.Fatal("resend did not mail a new token")
		}
		wantCode(t, s.Do(t, q(bea, "", acceptByTok, map[string]any{"t": first})), "NOT_FOUND")
		// Declining by id from myInvitations.
		s.OK(t, q(bea, "", `mutation($id: ID!) { declineInvitation(id: $id) { status } }`, map[string]any{"id": inv.InviteMember.ID}), nil)
		wantCode(t, s.Do(t, q(bea, "", acceptByTok, map[string]any{"t": second})), "CONFLICT")

		// Revocation.
		var inv2 struct{ InviteMember struct{ ID string } }
		s.OK(t, q(ann, org, inviteQuery, map[string]any{"e": cid.Email, "r": "MEMBER"}), &inv2)
		tok := mailedToken(t, s, cid.Email)
		s.OK(t, q(ann, org, `mutation($id: ID!) { revokeInvitation(id: $id) { status } }`, map[string]any{"id": inv2.InviteMember.ID}), nil)
		r = s.Do(t, q(cid, "", acceptByTok, map[string]any{"t": tok}))
		wantCode(t, r, "CONFLICT")
		if !strings.Contains(r.Errors[0].Message, "revoked") {
			t.Fatalf("message %q does not say it was revoked", r.Errors[0].Message)
		}
		wantCode(t, s.Do(t, q(ann, org, `mutation($id: ID!) { revokeInvitation(id: $id) { status } }`, map[string]any{"id": inv2.InviteMember.ID})), "CONFLICT")
		// Accepting needs exactly one of token and id.
		wantCode(t, s.Do(t, q(cid, "", `mutation { acceptInvitation { id } }`, nil)), "BAD_USER_INPUT")
	})
}

// Accepting through the mailed link proves the address: it becomes verified.
func TestAcceptingByLinkVerifiesTheAddress(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann, dan := s.SignUp(t, "Ann"), s.SignUpUnverified(t, "Dan")
		s.OK(t, q(ann, ann.OrgID, inviteQuery, map[string]any{"e": dan.Email, "r": "MEMBER"}), nil)
		verified := func() bool {
			var out struct {
				Viewer struct {
					User struct{ EmailVerifiedAt *string }
				}
			}
			s.OK(t, q(dan, "", `{ viewer { user { emailVerifiedAt } } }`, nil), &out)
			return out.Viewer.User.EmailVerifiedAt != nil
		}
		if verified() {
			t.Fatal("verified before following any link")
		}
		s.OK(t, q(dan, "", acceptByTok, map[string]any{"t": mailedToken(t, s, dan.Email)}), nil)
		if !verified() {
			t.Fatal("accepting by the mailed link did not verify the address")
		}
		wantCode(t, s.Do(t, q(dan, "", `mutation { resendVerificationEmail }`, nil)), "CONFLICT")
	})
}
