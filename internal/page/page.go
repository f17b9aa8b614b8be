// Package page bounds Relay pagination arguments.
package page

import (
	"entgo.io/contrib/entgql"

	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/gid"
)

// Max is the largest page a connection returns, and the default size.
const Max = 100

// Args are a connection's pagination arguments.
type Args struct {
	After  *entgql.Cursor[gid.ID]
	First  *int
	Before *entgql.Cursor[gid.ID]
	Last   *int
}

// Check validates first and last.
func Check(first, last *int) error {
	for name, n := range map[string]*int{"first": first, "last": last} {
		if n != nil && (*n < 0 || *n > Max) {
			return apperr.Invalid(name, "%s must be between 0 and %d", name, Max)
		}
	}
	if first != nil && last != nil {
		return apperr.Invalid("last", "pass first or last, not both")
	}
	return nil
}

// Bounded validates the arguments and fills in the default page size (first: Max) when
// neither first nor last is given.
func (a Args) Bounded() (Args, error) {
	if err := Check(a.First, a.Last); err != nil {
		return a, err
	}
	if a.First == nil && a.Last == nil {
		n := Max
		a.First = &n
	}
	return a, nil
}
