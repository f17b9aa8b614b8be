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
