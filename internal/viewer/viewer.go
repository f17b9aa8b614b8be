// Package viewer describes who is calling: a user, an API key, or a named system task.
//
// The viewer is resolved once per HTTP request or WebSocket connection and read by the ent
// privacy rules; nothing here touches the database, so a rule evaluated many times per
// request costs nothing.
package viewer

import (
	"context"
	"maps"

	"github.com/wagate/wagate/internal/gid"
)

// Kind tells what sort of actor a viewer is.
type Kind uint8

// Kinds of viewer.
const (
	KindAnonymous Kind = iota
	KindUser
	KindAPIKey
	KindSystem
)

// Viewer is the caller of one request or connection.
type Viewer struct {
	Kind Kind
	// UserID is the signed-in user (KindUser only).
	UserID gid.ID
	// APIKeyID is set for KindAPIKey.
	APIKeyID gid.ID
	// KeyCreatorID is the person who created the API key (KindAPIKey).
	KeyCreatorID gid.ID
	// OrgID is the organization the request acts in; empty when the user has none.
	OrgID gid.ID
	// Role is the viewer's role in OrgID.
	Role Role
	// Orgs are every organization the viewer belongs to, with its role there.
	// For an API key this is only the key's organization. Viewers of one credential share
	// the map: it is never written in place (Joined and Left replace it).
	Orgs map[gid.ID]Role
	// SuperAdmin is the platform flag set by the operator.
	SuperAdmin bool
	// Task names the background job for KindSystem, so its writes are attributable.
	Task string
	// Email is the user's e-mail address (used to match invitations).
	Email string
	// EmailVerified tells whether the user proved Email is theirs; only then do invitations
	// to it show up outside their mailed link.
	EmailVerified bool
}

// Can reports whether the viewer has permission p in its current organization.
func (v *Viewer) Can(p Permission) bool {
	return v != nil && v.OrgID != "" && Allows(v.Kind, v.Role, p)
}

// CanIn reports whether the viewer has permission p in organization org.
func (v *Viewer) CanIn(org gid.ID, p Permission) bool {
	if v == nil {
		return false
	}
	r, ok := v.Orgs[org]
	return ok && Allows(v.Kind, r, p)
}

// RoleIn returns the viewer's role in org, or "" when it is not a member.
func (v *Viewer) RoleIn(org gid.ID) Role {
	if v == nil {
		return ""
	}
	return v.Orgs[org]
}

// IsUser reports whether a person (not a key or a task) is calling.
func (v *Viewer) IsUser() bool { return v != nil && v.Kind == KindUser }

// OrgIDs returns the viewer's organizations as a slice (order unspecified).
func (v *Viewer) OrgIDs() []gid.ID {
	if v == nil {
		return nil
	}
	ids := make([]gid.ID, 0, len(v.Orgs))
	for id := range v.Orgs {
		ids = append(ids, id)
	}
	return ids
}

type ctxKey struct{}

// NewContext returns ctx carrying v.
func NewContext(ctx context.Context, v *Viewer) context.Context {
	return context.WithValue(ctx, ctxKey{}, v)
}

// FromContext returns the viewer in ctx, or an anonymous viewer when there is none.
func FromContext(ctx context.Context) *Viewer {
	if v, ok := ctx.Value(ctxKey{}).(*Viewer); ok && v != nil {
		return v
	}
	return &Viewer{}
}

// System returns ctx acting as the named background task. Privacy rules let system viewers
// through, so use it only where the task itself is the authority (sign-up, token checks,
// engines), and name the task so the write is attributable.
func System(ctx context.Context, task string) context.Context {
	return NewContext(ctx, &Viewer{Kind: KindSystem, Task: task})
}

// Joined records a role the viewer gained (or changed to) during this request, so the rest
// of the request sees it: e.g. the organization a createOrganization returns.
func (v *Viewer) Joined(org gid.ID, r Role) {
	orgs := maps.Clone(v.Orgs)
	if orgs == nil {
		orgs = map[gid.ID]Role{}
	}
	orgs[org] = r
	v.Orgs = orgs
	if v.OrgID == org {
		v.Role = r
	}
}

// Left records that the viewer left org (or deleted it) during this request.
func (v *Viewer) Left(org gid.ID) {
	v.Orgs = maps.Clone(v.Orgs)
	delete(v.Orgs, org)
	if v.OrgID == org {
		v.OrgID, v.Role = "", ""
	}
}
