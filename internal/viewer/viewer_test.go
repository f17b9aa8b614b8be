package viewer

import (
	"context"
	"testing"
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
