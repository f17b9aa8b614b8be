package viewer

import (
	"context"
	"maps"
	"testing"

	"github.com/wagate/wagate/internal/gid"
)

func TestAllows(t *testing.T) {
	tests := []struct {
		kind Kind
		role Role
		perm Permission
		want bool
	}{
		{KindUser, RoleMember, PermReadOrganization, true},
		{KindUser, RoleMember, PermSendMessages, true},
		{KindUser, RoleMember, PermManageSessions, false},
		{KindUser, RoleAdmin, PermManageSessions, true},
		{KindUser, RoleAdmin, PermInviteMembers, true},
		{KindUser, RoleAdmin, PermManageMembers, false},
		{KindUser, RoleOwner, PermManageMembers, true},
		{KindUser, RoleOwner, PermOwnOrganization, true},
		{KindAPIKey, RoleAdmin, PermManageWebhooks, true},
		{KindAPIKey, RoleAdmin, PermInviteMembers, false},
		{KindAPIKey, RoleOwner, PermManageMembers, false},
		{KindUser, Role("ROOT"), PermReadOrganization, false},
		{KindUser, "", PermReadOrganization, false},
		{KindUser, RoleOwner, Permission(999), false},
	}
	for _, tt := range tests {
		if got := Allows(tt.kind, tt.role, tt.perm); got != tt.want {
			t.Errorf("Allows(%v, %s, %d) = %v, want %v", tt.kind, tt.role, tt.perm, got, tt.want)
		}
	}
}

func TestOversightNeedsSuperAdmin(t *testing.T) {
	ctx := WithOversight(NewContext(context.Background(), &Viewer{Kind: KindUser}))
	if Oversight(ctx) {
		t.Fatal("a plain user got oversight")
	}
	ctx = WithOversight(NewContext(context.Background(), &Viewer{Kind: KindUser, SuperAdmin: true}))
	if !Oversight(ctx) {
		t.Fatal("a super admin did not get oversight")
	}
}

func TestRoleUnmarshal(t *testing.T) {
	var r Role
	if err := r.UnmarshalGQL("ROOT"); err == nil {
		t.Fatal("accepted ROOT")
	}
	if err := r.UnmarshalGQL("ADMIN"); err != nil || r != RoleAdmin {
		t.Fatalf("got %v %v", r, err)
	}
}

// The viewers of one credential share its Orgs map: what one request joins or leaves
// changes only its own viewer.
func TestJoinedAndLeftLeaveSharedOrgsAlone(t *testing.T) {
	shared := map[gid.ID]Role{"org_a": RoleOwner, "org_b": RoleMember}
	want := maps.Clone(shared)
	a := &Viewer{Kind: KindUser, OrgID: "org_b", Role: RoleMember, Orgs: shared}
	b := &Viewer{Kind: KindUser, OrgID: "org_b", Role: RoleMember, Orgs: shared}
	a.Joined("org_c", RoleOwner)
	a.Joined("org_a", RoleAdmin)
	a.Left("org_b")
	if got := map[gid.ID]Role{"org_a": RoleAdmin, "org_c": RoleOwner}; !maps.Equal(a.Orgs, got) || a.OrgID != "" {
		t.Fatalf("the changed viewer: %v in %q, want %v in none", a.Orgs, a.OrgID, got)
	}
	if !maps.Equal(shared, want) || !maps.Equal(b.Orgs, want) || b.OrgID != "org_b" || b.Role != RoleMember {
		t.Fatalf("another viewer of the credential changed: %v (%q, %q), want %v", b.Orgs, b.OrgID, b.Role, want)
	}
	var none Viewer
	none.Joined("org_a", RoleOwner)
	if none.Orgs["org_a"] != RoleOwner {
		t.Fatalf("joining without organizations: %v", none.Orgs)
	}
}
