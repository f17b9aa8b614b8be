package viewer

import (
	"fmt"
	"io"
	"strconv"
)

// Role is a member's (or an API key's) role inside one organization.
type Role string

// Roles, from most to least privileged.
const (
	RoleOwner  Role = "OWNER"
	RoleAdmin  Role = "ADMIN"
	RoleMember Role = "MEMBER"
)

func (r Role) rank() int {
	switch r {
	case RoleOwner:
		return 3
	case RoleAdmin:
		return 2
	case RoleMember:
		return 1
	}
	return 0
}

// AtLeast reports whether r is min or above. An invalid role is below everything.
func (r Role) AtLeast(min Role) bool { return r.rank() > 0 && r.rank() >= min.rank() }

// Valid reports whether r is one of the three roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// Values lets ent store Role as an enum column.
func (Role) Values() []string {
	return []string{string(RoleOwner), string(RoleAdmin), string(RoleMember)}
}

// String implements fmt.Stringer.
func (r Role) String() string { return string(r) }

// MarshalGQL implements graphql.Marshaler.
func (r Role) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(string(r))) }

// UnmarshalGQL implements graphql.Unmarshaler.
func (r *Role) UnmarshalGQL(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("role must be a string, got %T", v)
	}
	if !Role(s).Valid() {
		return fmt.Errorf("%q is not a valid Role", s)
	}
	*r = Role(s)
	return nil
}
