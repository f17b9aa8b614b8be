package viewer

// Permission is one row of the role table in API.md ("Roles").
type Permission int

// Permissions inside one organization.
const (
	PermReadOrganization Permission = iota + 1 // the org, its members, sessions, chats, messages, events
	PermSendMessages                           // send, mark read, react
	PermManageSessions                         // create / connect / pair / disconnect / log out / delete
	PermManageAPIKeys                          // create / list / revoke
	PermManageWebhooks                         // create / update / delete, read deliveries, redeliver
	PermInviteMembers                          // invite, revoke invitations, add an existing user (role ≤ own)
	PermUpdateSettings                         // update organization settings
	PermReadAuditLog                           // read the audit log
	PermManageMembers                          // change a member's role, remove a member
	PermOwnOrganization                        // transfer ownership, delete the organization
)

var minRole = map[Permission]Role{
	PermReadOrganization: RoleMember,
	PermSendMessages:     RoleMember,
	PermManageSessions:   RoleAdmin,
	PermManageAPIKeys:    RoleAdmin,
	PermManageWebhooks:   RoleAdmin,
	PermInviteMembers:    RoleAdmin,
	PermUpdateSettings:   RoleAdmin,
	PermReadAuditLog:     RoleAdmin,
	PermManageMembers:    RoleOwner,
	PermOwnOrganization:  RoleOwner,
}

// humansOnly are the permissions an API key never has, whatever its role: keys automate an
// organization's WhatsApp traffic, they do not decide who belongs to it.
var humansOnly = map[Permission]bool{
	PermInviteMembers:   true,
	PermManageMembers:   true,
	PermOwnOrganization: true,
}

// Allows reports whether role r grants p to an actor of the given kind.
func Allows(kind Kind, r Role, p Permission) bool {
	min, ok := minRole[p]
	if !ok || !r.AtLeast(min) {
		return false
	}
	return !(kind == KindAPIKey && humansOnly[p])
}
