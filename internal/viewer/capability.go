package viewer

import (
	"context"

	"github.com/wagate/wagate/internal/gid"
)

// Capabilities are narrow, single-purpose grants that a service puts in the context for one
// call, instead of a blanket privacy bypass. Privacy rules check for exactly the capability
// they accept, so a capability cannot leak into unrelated reads or writes.

type oversightKey struct{}

// WithOversight marks ctx as a super admin's platform oversight read (the `admin` namespace).
// It only takes effect for a viewer who really is a super admin.
func WithOversight(ctx context.Context) context.Context {
	return context.WithValue(ctx, oversightKey{}, true)
}

// Oversight reports whether ctx is a super admin's oversight read.
func Oversight(ctx context.Context) bool {
	on, _ := ctx.Value(oversightKey{}).(bool)
	return on && FromContext(ctx).SuperAdmin
}

type founderKey struct{}

// WithFounder lets the viewer become the first OWNER of the organization it just created.
func WithFounder(ctx context.Context, org gid.ID) context.Context {
	return context.WithValue(ctx, founderKey{}, org)
}

// Founder returns the organization ctx may found, if any.
func Founder(ctx context.Context) (gid.ID, bool) {
	org, ok := ctx.Value(founderKey{}).(gid.ID)
	return org, ok && org != ""
}

// Invitee is what an invitation grants the person it was sent to.
type Invitee struct {
	InvitationID gid.ID
	OrgID        gid.ID
	Role         Role
}

type inviteeKey struct{}

// WithInvitee lets the viewer answer one invitation (mark it accepted or declined) and, when
// accepting, join its organization with its role. The tenancy service sets it only after
// checking the invitation is pending, unexpired and addressed to the viewer's e-mail.
func WithInvitee(ctx context.Context, inv Invitee) context.Context {
	return context.WithValue(ctx, inviteeKey{}, inv)
}

// InviteeOf returns the invitation ctx may answer, if any.
func InviteeOf(ctx context.Context) (Invitee, bool) {
	inv, ok := ctx.Value(inviteeKey{}).(Invitee)
	return inv, ok && inv.InvitationID != ""
}

type invitationTokenKey struct{}

// WithInvitationToken lets the viewer read the one invitation whose token hashes to hash, so
// an e-mailed link works for someone who is not a member yet.
func WithInvitationToken(ctx context.Context, hash []byte) context.Context {
	return context.WithValue(ctx, invitationTokenKey{}, hash)
}

// InvitationToken returns the token hash ctx may read an invitation by.
func InvitationToken(ctx context.Context) ([]byte, bool) {
	h, ok := ctx.Value(invitationTokenKey{}).([]byte)
	return h, ok && len(h) > 0
}

type recheckKey struct{}

// WithRecheck attaches a way to authenticate the caller again, for long-lived operations
// (subscriptions) that must end when the caller loses access. fresh asks for the database's
// word rather than what this process remembers of it.
func WithRecheck(ctx context.Context, fn func(ctx context.Context, fresh bool) (*Viewer, error)) context.Context {
	return context.WithValue(ctx, recheckKey{}, fn)
}

// Recheck authenticates the caller of ctx again; without a way to, it returns the viewer
// of ctx unchanged.
func Recheck(ctx context.Context, fresh bool) (*Viewer, error) {
	if fn, ok := ctx.Value(recheckKey{}).(func(context.Context, bool) (*Viewer, error)); ok {
		return fn(ctx, fresh)
	}
	return FromContext(ctx), nil
}
