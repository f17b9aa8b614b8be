package schema

import (
	"context"
	"fmt"
	"time"

	"entgo.io/ent"

	gen "github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/hook"
	"github.com/wagate/wagate/ent/membership"
	"github.com/wagate/wagate/ent/organization"
	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/viewer"
)

// ErrLastOwner is returned when a change would leave an organization without an OWNER.
var ErrLastOwner = apperr.New(apperr.Conflict, "an organization must keep at least one OWNER: make someone else OWNER first")

// keepAnOwner makes "every organization keeps at least one OWNER" hold for every membership
// change, whichever code path makes it. It runs inside the change's transaction: it locks
// the organizations concerned (so two concurrent demotions cannot both see "another owner"),
// applies the change, then counts the owners left and fails the change if one has none.
func keepAnOwner() ent.Hook {
	return hook.On(func(next ent.Mutator) ent.Mutator {
		return hook.MembershipFunc(func(ctx context.Context, m *gen.MembershipMutation) (ent.Value, error) {
			if role, ok := m.Role(); ok && role == viewer.RoleOwner {
				return next.Mutate(ctx, m) // promotions never remove an owner
			}
			tx, err := m.Tx()
			if err != nil {
				return nil, fmt.Errorf("membership changes must run in a transaction: %w", err)
			}
			sys := viewer.System(ctx, "owner-invariant")
			ids, err := m.IDs(sys)
			if err != nil {
				return nil, fmt.Errorf("finding the memberships to change: %w", err)
			}
			var orgs []gid.ID
			if len(ids) > 0 {
				err = tx.Membership.Query().Where(membership.IDIn(ids...)).
					Unique(true).Select(membership.FieldOrganizationID).Scan(sys, &orgs)
				if err != nil {
					return nil, fmt.Errorf("finding the organizations concerned: %w", err)
				}
			}
			if len(orgs) > 0 {
				// A no-op write takes the row locks on PostgreSQL; SQLite already holds the
				// database's write lock for the whole transaction.
				err = tx.Organization.Update().Where(organization.IDIn(orgs...)).
					SetUpdatedAt(time.Now()).Exec(sys)
				if err != nil {
					return nil, fmt.Errorf("locking the organizations concerned: %w", err)
				}
			}
			v, err := next.Mutate(ctx, m)
			if err != nil {
				return nil, err
			}
			for _, org := range orgs {
				n, err := tx.Membership.Query().
					Where(membership.OrganizationID(org), membership.RoleEQ(viewer.RoleOwner)).Count(sys)
				if err != nil {
					return nil, fmt.Errorf("counting owners: %w", err)
				}
				if n == 0 {
					return nil, ErrLastOwner
				}
			}
			return v, nil
		})
	}, ent.OpUpdate|ent.OpUpdateOne|ent.OpDelete|ent.OpDeleteOne)
}
