package viewer

import (
	"maps"
	"testing"

	"github.com/wagate/wagate/internal/gid"
)

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
