package httpapi

import (
	"context"
	"fmt"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/migrate"
	"github.com/wagate/wagate/ent/session"
	"github.com/wagate/wagate/internal/metrics"
	"github.com/wagate/wagate/internal/viewer"
)

// watchSessions reports the sessions of all organizations by status: one GROUP BY per
// scrape (at most, the collector caches it), as the system.
func watchSessions(m *metrics.Metrics, client *ent.Client) error {
	var statuses []string
	if col, ok := migrate.SessionsTable.Column(session.FieldStatus); ok {
		statuses = col.Enums // the schema's values, so that every status reads 0 or more
	}
	return m.WatchSessions(statuses, func(ctx context.Context) (map[string]int, error) {
		var rows []struct {
			Status string `json:"status"`
			Count  int    `json:"count"`
		}
		err := client.Session.Query().GroupBy(session.FieldStatus).Aggregate(ent.Count()).
			Scan(viewer.System(ctx, "metrics"), &rows)
		if err != nil {
			return nil, fmt.Errorf("grouping sessions by status: %w", err)
		}
		out := make(map[string]int, len(rows))
		for _, r := range rows {
			out[r.Status] = r.Count
		}
		return out, nil
	})
}
