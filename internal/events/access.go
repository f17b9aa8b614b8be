package events

import (
	"context"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/apikey"
	"github.com/wagate/wagate/ent/user"
	"github.com/wagate/wagate/internal/cluster"
	"github.com/wagate/wagate/internal/database"
)

// accessChannel carries a hint that some caller may have lost access.
const accessChannel = "wagate_access"

// WatchAccess makes subscribers check their access again as soon as a change that can take
// it away commits — a membership changed or removed, an API key revoked or deleted, a user
// disabled, a session token deleted, an organization deleted — on any replica. Checking
// every subscriber every second instead would cost a few queries per subscriber per second
// to catch changes that are rare; the Recheck period stays as the net for expiries and lost
// hints.
func (l *Log) WatchAccess(client *ent.Client) {
	always := func(ent.Mutation) bool { return true }
	deletes := func(m ent.Mutation) bool { return m.Op().Is(ent.OpDelete | ent.OpDeleteOne) }
	touches := func(field string) func(ent.Mutation) bool {
		return func(m ent.Mutation) bool {
			if deletes(m) {
				return true
			}
			_, set := m.Field(field)
			return set && !m.Op().Is(ent.OpCreate)
		}
	}
	client.Membership.Use(l.accessHook(always))
	client.APIKey.Use(l.accessHook(touches(apikey.FieldRevokedAt)))
	client.User.Use(l.accessHook(touches(user.FieldDisabled)))
	client.AuthToken.Use(l.accessHook(deletes))
	client.Organization.Use(l.accessHook(deletes))
}

func (l *Log) accessHook(relevant func(ent.Mutation) bool) ent.Hook {
	return database.ChangeHook(relevant, func() {
		if l.bus == nil { // with a bus, the notification wakes this replica too
			l.access.notify()
		}
	}, func(ctx context.Context, c *ent.Client) error {
		if l.bus == nil {
			return nil
		}
		return cluster.Notify(ctx, c, accessChannel, "") // delivered to every replica at commit
	})
}
