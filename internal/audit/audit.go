// Package audit records who changed what in an organization. Entries are written in the
// transaction of the change they describe, so a change and its entry commit together.
package audit

import (
	"context"
	"entgo.io/contrib/entgql"
	"fmt"
	"github.com/wagate/wagate/internal/page"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/viewer"
)

// Entry describes one change. Details must never hold a secret (tokens, keys, passwords):
// they are shown to the organization's admins.
type Entry struct {
	// OrgID is the organization changed; empty means the caller's current one.
	OrgID      gid.ID
	Action     string
	TargetType string
	TargetID   gid.ID
	Details    map[string]any
}

// Record writes e with the caller as actor. c must be the client of the change's
// transaction.
func Record(ctx context.Context, c *ent.Client, e Entry) error {
	v := viewer.FromContext(ctx)
	org := e.OrgID
	if org == "" {
		org = v.OrgID
	}
	create := c.AuditEntry.Create().
		SetOrganizationID(org).
		SetAction(e.Action).
		SetTargetType(e.TargetType).
		SetTargetID(e.TargetID).
		SetDetails(e.Details)
	switch v.Kind {
	case viewer.KindUser:
		create.SetActorUserID(v.UserID)
	case viewer.KindAPIKey:
		create.SetActorAPIKeyID(v.APIKeyID)
	case viewer.KindSystem:
		if e.Details == nil {
			e.Details = map[string]any{}
		}
		e.Details["task"] = v.Task
		create.SetDetails(e.Details)
	}
	if err := create.Exec(viewer.System(ctx, "audit")); err != nil {
		return fmt.Errorf("recording %s: %w", e.Action, err)
	}
	return nil
}

// Log pages an organization's entries, newest first. Privacy limits it to the caller's
// current organization and to those allowed to read the audit log.
func Log(ctx context.Context, org *ent.Organization, p page.Args) (*ent.AuditEntryConnection, error) {
	p, err := p.BoundedBy(page.ByTime)
	if err != nil {
		return nil, err
	}
	newestFirst := &ent.AuditEntryOrder{Field: ent.AuditEntryOrderFieldCreatedAt, Direction: entgql.OrderDirectionDesc}
	// Unique(false): a foreign-key edge lists no row twice, and the DISTINCT ent adds to
	// edge queries makes PostgreSQL sort every matching row before applying the LIMIT.
	return org.QueryAuditEntries().Unique(false).Paginate(ctx, p.After, p.First, p.Before, p.Last, ent.WithAuditEntryOrder(newestFirst))
}
