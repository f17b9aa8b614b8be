package graph

import "github.com/wagate/wagate/internal/viewer"

// optionalRole maps "no role" to null.
func optionalRole(r viewer.Role) *viewer.Role {
	if r == "" {
		return nil
	}
	return &r
}
