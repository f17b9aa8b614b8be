package whatsapp_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/session"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/testdb"
	"github.com/wagate/wagate/internal/viewer"
	"github.com/wagate/wagate/internal/whatsapp"
	"github.com/wagate/wagate/internal/whatsapp/sandbox"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func waitStatus(t testing.TB, c *ent.Client, id string, want session.Status) *ent.Session {
	t.Helper()
	ctx := viewer.System(context.Background(), "test")
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := c.Session.Query().Where(session.ID(gid.ID(id))).Only(ctx)
		if err == nil && s.Status == want {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s: status %v (%v), want %s", id, s, err, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A restart reconnects the sessions that were connected, and leaves the others alone.
func TestManagerRestartsConnectedSessions(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		ctx := viewer.System(context.Background(), "test")
		org := db.Client.Organization.Create().SetName("Org").SetSlug("org").SaveX(ctx)
		mk := func(name string) *ent.Session {
			return db.Client.Session.Create().SetOrganizationID(org.ID).SetName(name).
				SetEngine(session.EngineSANDBOX).SetAutoconnect(true).SaveX(ctx)
		}
		kept, stopped := mk("kept"), mk("stopped")

		net := sandbox.New(sandbox.Options{})
		m := whatsapp.NewManager(db.Client, []whatsapp.Engine{net}, whatsapp.ManagerOptions{Log: quiet})
		for _, s := range []*ent.Session{kept, stopped} {
			if err := m.Connect(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		waitStatus(t, db.Client, string(kept.ID), session.StatusCONNECTED)
		s := waitStatus(t, db.Client, string(stopped.ID), session.StatusCONNECTED)
		if err := m.Logout(ctx, s); err != nil {
			t.Fatal(err)
		}
		s = waitStatus(t, db.Client, string(stopped.ID), session.StatusLOGGED_OUT)
		if s.DeviceJid != nil || s.Autoconnect {
			t.Fatalf("a logged-out session keeps its device or autoconnect: %+v", s)
		}
		m.Stop()

		m2 := whatsapp.NewManager(db.Client, []whatsapp.Engine{net}, whatsapp.ManagerOptions{Log: quiet, StartJitter: 10 * time.Millisecond})
		defer m2.Stop()
		// Mark it disconnected, as a crash would leave it, and see the restart bring it back.
		db.Client.Session.UpdateOneID(kept.ID).SetStatus(session.StatusDISCONNECTED).ExecX(ctx)
		if err := m2.Start(ctx); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, db.Client, string(kept.ID), session.StatusCONNECTED)
		time.Sleep(50 * time.Millisecond)
		if s := waitStatus(t, db.Client, string(stopped.ID), session.StatusLOGGED_OUT); s.Status != session.StatusLOGGED_OUT {
			t.Fatal("a terminal session was restarted")
		}
		net.Close()
	})
}
