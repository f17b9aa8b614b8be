package httpapi_test

import (
	"testing"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/session"
	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/testdb"
	"github.com/wagate/wagate/internal/viewer"
)

// Cross-tenant probes: whatever the path (node, nodes, connections, search, direct ent
// writes), organization B never sees or writes organization A's rows.
func TestCrossTenantIsolation(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann, bob := s.SignUp(t, "Ann"), s.SignUp(t, "Bob")
		sesA := addSession(t, s, ann.OrgID, "A line", "+4915100000001")
		sesB := addSession(t, s, bob.OrgID, "B line", "+4915100000002")
		var annMembers struct {
			Organization struct {
				Members struct {
					Edges []struct{ Node struct{ ID string } }
				}
			}
		}
		s.OK(t, q(ann, "", `{ organization { members(first: 1) { edges { node { id } } } } }`, nil), &annMembers)
		memA := annMembers.Organization.Members.Edges[0].Node.ID

		for _, id := range []string{ann.OrgID, string(sesA.ID), memA, ann.ID} {
			r := s.Do(t, q(bob, "", `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": id}))
			wantCode(t, r, "NOT_FOUND")
		}
		var nodes struct{ Nodes []*struct{ ID string } }
		r := s.Do(t, q(bob, "", `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`,
			map[string]any{"ids": []string{ann.OrgID, string(sesA.ID), string(sesB.ID)}}))
		r.Decode(t, &nodes)
		if len(nodes.Nodes) != 3 || nodes.Nodes[0] != nil || nodes.Nodes[1] != nil || nodes.Nodes[2] == nil {
			t.Fatalf("nodes leaked or lost: %s", r.Data)
		}

		var lists struct {
			Organizations struct {
				Edges []struct{ Node struct{ ID string } }
			}
			Organization struct {
				Sessions struct {
					Edges []struct{ Node struct{ ID string } }
				}
				Members struct{ TotalCount int }
			}
		}
		s.OK(t, q(bob, "", `query($e: String) { organizations { edges { node { id } } }
			organization { sessions(first: 10) { edges { node { id } } } members(search: $e) { totalCount } } }`,
			map[string]any{"e": ann.Email}), &lists)
		if len(lists.Organizations.Edges) != 1 || lists.Organizations.Edges[0].Node.ID != bob.OrgID {
			t.Fatalf("organizations: %+v", lists.Organizations)
		}
		if e := lists.Organization.Sessions.Edges; len(e) != 1 || e[0].Node.ID != string(sesB.ID) {
			t.Fatalf("sessions: %+v", e)
		}
		if lists.Organization.Members.TotalCount != 0 {
			t.Fatal("member search found a user of another organization")
		}

		// Below the API: even code that forgets every check cannot write into A.
		ctx := userCtx(t, s, bob, "")
		_, err := db.Client.Session.Create().SetOrganizationID(gid.ID(ann.OrgID)).SetName("sneaky").
			SetEngine(session.EngineSANDBOX).Save(ctx)
		if err == nil {
			t.Fatal("created a session in a foreign organization")
		}
		err = db.Client.Membership.Create().SetOrganizationID(gid.ID(ann.OrgID)).SetUserID(gid.ID(bob.ID)).
			SetRole(viewer.RoleOwner).Exec(ctx)
		if err == nil {
			t.Fatal("joined a foreign organization")
		}
		if err := db.Client.Session.UpdateOneID(sesA.ID).SetName("renamed").Exec(ctx); !ent.IsNotFound(err) {
			t.Fatalf("updating a foreign session: %v, want not found", err)
		}
		if n, err := db.Client.Session.Delete().Exec(ctx); err != nil || n != 1 {
			t.Fatalf("bulk delete reached %d sessions (%v), want only B's one", n, err)
		}
		if _, err := db.Client.Session.Get(userCtx(t, s, ann, ""), sesA.ID); err != nil {
			t.Fatalf("A's session was touched: %v", err)
		}
		// A new row without an organization lands in the caller's current one.
		ses, err := db.Client.Session.Create().SetName("mine").SetEngine(session.EngineSANDBOX).Save(ctx)
		if err != nil || ses.OrganizationID != gid.ID(bob.OrgID) {
			t.Fatalf("create in own organization: %v, %+v", err, ses)
		}
	})
}

// A user in two organizations sees the sessions of the organization it acts in only.
func TestSessionsFollowTheSelectedOrganization(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann, bob := s.SignUp(t, "Ann"), s.SignUp(t, "Bob")
		s.AddMember(t, bob, bob.OrgID, ann, "MEMBER")
		addSession(t, s, ann.OrgID, "A", "+4915100000001")
		sesB := addSession(t, s, bob.OrgID, "B", "+4915100000002")
		r := s.Do(t, q(ann, ann.OrgID, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": string(sesB.ID)}))
		wantCode(t, r, "NOT_FOUND")
		s.OK(t, q(ann, bob.OrgID, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": string(sesB.ID)}), nil)
	})
}

func TestPhoneNumbersMaskedForMembers(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann, mia := s.SignUp(t, "Ann"), s.SignUp(t, "Mia")
		s.AddMember(t, ann, ann.OrgID, mia, "MEMBER")
		addSession(t, s, ann.OrgID, "Line", "+4915112345678")
		phone := func(u *apitest.User) string {
			var out struct {
				Organization struct {
					Sessions struct {
						Edges []struct{ Node struct{ PhoneNumber string } }
					}
				}
			}
			s.OK(t, q(u, ann.OrgID, `{ organization { sessions(first: 1) { edges { node { phoneNumber } } } } }`, nil), &out)
			return out.Organization.Sessions.Edges[0].Node.PhoneNumber
		}
		if got := phone(mia); got != "+4915112345678" {
			t.Fatalf("unmasked by default: got %q", got)
		}
		s.OK(t, q(ann, ann.OrgID, `mutation { updateOrganization(input: {maskPhoneNumbers: true}) { settings { maskPhoneNumbers } } }`, nil), nil)
		if got := phone(mia); got != "+49*********78" {
			t.Fatalf("MEMBER sees %q, want masked", got)
		}
		if got := phone(ann); got != "+4915112345678" {
			t.Fatalf("OWNER sees %q, want the number", got)
		}
	})
}

func TestSuperAdminOversightIsReadOnlyAndNarrow(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		root, ann := s.SignUp(t, "Root"), s.SignUp(t, "Ann")
		s.MakeSuperAdmin(t, root)
		sesA := addSession(t, s, ann.OrgID, "A", "+4915100000001")
		var out struct {
			Admin struct {
				Users         struct{ TotalCount int }
				Organizations struct {
					Edges []struct {
						Node struct {
							ID         string
							ViewerRole *string
							Members    struct{ TotalCount int }
							Sessions   struct{ TotalCount int }
						}
					}
				}
				Sessions struct {
					Edges []struct{ Node struct{ ID string } }
				}
			}
		}
		s.OK(t, q(root, "", `query($s: String) { admin {
			users { totalCount }
			organizations(search: $s) { edges { node { id viewerRole members(first: 10) { totalCount } sessions(first: 10) { totalCount } } } }
			sessions(status: CONNECTED) { edges { node { id } } } } }`, map[string]any{"s": "ann"}), &out)
		a := out.Admin
		if a.Users.TotalCount != 2 || len(a.Organizations.Edges) != 1 || len(a.Sessions.Edges) != 1 || a.Sessions.Edges[0].Node.ID != string(sesA.ID) {
			t.Fatalf("oversight lists: %+v", a)
		}
		o := a.Organizations.Edges[0].Node
		if o.ID != ann.OrgID || o.ViewerRole != nil || o.Members.TotalCount != 0 || o.Sessions.TotalCount != 1 {
			t.Fatalf("oversight of Ann's organization: %+v (members must stay hidden, sessions visible)", o)
		}
		// Oversight does not reach outside the admin namespace, nor write.
		wantCode(t, s.Do(t, q(root, "", `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": ann.OrgID})), "NOT_FOUND")
		wantCode(t, s.Do(t, q(root, "", `mutation($id: ID!) { updateOrganization(input: {id: $id, name: "Mine"}) { id } }`,
			map[string]any{"id": ann.OrgID})), "NOT_FOUND")
		var mine struct{ Organizations struct{ TotalCount int } }
		s.OK(t, q(root, "", `{ organizations { totalCount } }`, nil), &mine)
		if mine.Organizations.TotalCount != 1 {
			t.Fatalf("the organization switcher of a super admin lists %d organizations, want only their own", mine.Organizations.TotalCount)
		}
		var memberships struct {
			Admin struct {
				Users struct {
					Edges []struct {
						Node struct {
							Email       string
							Memberships []struct{ Role string }
						}
					}
				}
			}
		}
		s.OK(t, q(root, "", `query($e: String) { admin { users(search: $e) { edges { node { email memberships { role } } } } } }`,
			map[string]any{"e": ann.Email}), &memberships)
		if e := memberships.Admin.Users.Edges; len(e) != 1 || len(e[0].Node.Memberships) != 1 {
			t.Fatalf("a super admin sees a user's memberships: %+v", e)
		}
	})
}
