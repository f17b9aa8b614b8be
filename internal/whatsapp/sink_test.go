package whatsapp_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/chat"
	"github.com/wagate/wagate/ent/event"
	"github.com/wagate/wagate/ent/message"
	"github.com/wagate/wagate/ent/session"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
	"github.com/wagate/wagate/internal/viewer"
	"github.com/wagate/wagate/internal/whatsapp"
)

func inbound(id, from string) whatsapp.Inbound {
	jid := from + "@s.whatsapp.net"
	return whatsapp.Inbound{ID: id, Chat: jid, Sender: jid, Kind: whatsapp.KindText, Text: "hi " + id,
		PushName: "Bob", Timestamp: time.Now()}
}

// Sessions of several organizations deliver at once (their events share transactions, or
// bulk statements): everything is stored, each organization's log is numbered 1..n without a
// gap, each session's messages are logged in the order it delivered them, and a message
// delivered twice is stored and logged once.
func TestConcurrentDeliveries(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) { concurrentDeliveries(t, db, false) })
	t.Run("postgres/bulk", func(t *testing.T) {
		concurrentDeliveries(t, testdb.Open(t, "postgres", database.Options{}), true)
	})
}

func concurrentDeliveries(t *testing.T, db *database.DB, bulk bool) {
	ctx := viewer.System(context.Background(), "test")
	m := whatsapp.NewManager(db.Client, nil, whatsapp.ManagerOptions{Log: quiet, IngestLanes: 2, BulkInbound: bulk})
	defer m.Stop()
	var sessions []*ent.Session
	for i := range 3 {
		org := db.Client.Organization.Create().SetName("Org").SetSlug(fmt.Sprintf("org-%d", i)).SaveX(ctx)
		for range 2 {
			sessions = append(sessions, db.Client.Session.Create().SetOrganizationID(org.ID).SetName("s").
				SetEngine(session.EngineSANDBOX).SaveX(ctx))
		}
	}
	const each = 30 // per session, delivered one after the other, as a runtime does
	var wg sync.WaitGroup
	for _, s := range sessions {
		for w := range 3 { // three senders per session, each with its own chat
			wg.Go(func() {
				for i := range each {
					id := fmt.Sprintf("%s-%d-%d", s.ID, w, i)
					from := fmt.Sprintf("1555000000%d", w)
					if err := m.Deliver(context.Background(), string(s.ID), inbound(id, from)); err != nil {
						t.Error(err)
					}
					if i%10 == 0 { // WhatsApp delivers some twice
						if err := m.Deliver(context.Background(), string(s.ID), inbound(id, from)); err != nil {
							t.Error(err)
						}
					}
				}
			})
		}
	}
	wg.Wait()
	orgs := db.Client.Organization.Query().AllX(ctx)
	for _, org := range orgs {
		evs := db.Client.Event.Query().Where(event.OrganizationID(org.ID)).Order(event.BySeq()).AllX(ctx)
		if len(evs) != 2*3*each {
			t.Errorf("org %s: %d events, want %d", org.ID, len(evs), 2*3*each)
		}
		last := map[string]int{} // the index of each sender's last message, per session
		for i, ev := range evs {
			if ev.Seq != int64(i+1) {
				t.Fatalf("org %s: event %d has seq %d", org.ID, i, ev.Seq)
			}
			parts := strings.Split(ev.Payload["waMessageId"].(string), "-") // session-sender-i
			key := parts[0] + parts[1]
			n, _ := strconv.Atoi(parts[2])
			if prev, ok := last[key]; ok && n != prev+1 {
				t.Fatalf("org %s: %s's message %d logged after %d", org.ID, key, n, prev)
			}
			last[key] = n
		}
	}
	if n := db.Client.Message.Query().CountX(ctx); n != len(sessions)*3*each {
		t.Errorf("%d messages, want %d", n, len(sessions)*3*each)
	}
	for _, c := range db.Client.Chat.Query().AllX(ctx) {
		if c.UnreadCount != each {
			t.Errorf("chat %s of %s: %d unread, want %d", c.Jid, c.SessionID, c.UnreadCount, each)
		}
	}
	if n := db.Client.Chat.Query().Where(chat.NameEQ("Bob")).CountX(ctx); n != len(sessions)*3 {
		t.Errorf("%d chats, want %d", n, len(sessions)*3)
	}
}

// Delivering to a session that no longer exists stores nothing and is no error.
func TestDeliverToDeletedSession(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		ctx := viewer.System(context.Background(), "test")
		m := whatsapp.NewManager(db.Client, nil, whatsapp.ManagerOptions{Log: quiet})
		defer m.Stop()
		org := db.Client.Organization.Create().SetName("Org").SetSlug("org").SaveX(ctx)
		kept := db.Client.Session.Create().SetOrganizationID(org.ID).SetName("kept").SetEngine(session.EngineSANDBOX).SaveX(ctx)
		gone := db.Client.Session.Create().SetOrganizationID(org.ID).SetName("gone").SetEngine(session.EngineSANDBOX).SaveX(ctx)
		db.Client.Session.DeleteOneID(gone.ID).ExecX(ctx)
		if err := m.Deliver(context.Background(), string(gone.ID), inbound("A", "15550000001")); err != nil {
			t.Fatalf("a deleted session's event: %v", err)
		}
		if err := m.Deliver(context.Background(), string(kept.ID), inbound("B", "15550000001")); err != nil {
			t.Fatal(err)
		}
		ids := db.Client.Message.Query().Select(message.FieldWaMessageID).StringsX(ctx)
		if !slices.Equal(ids, []string{"B"}) {
			t.Errorf("messages %v, want [B]", ids)
		}
	})
}

// NUL characters, which PostgreSQL cannot store, reach wagate in anything another WhatsApp
// user writes: they are stored as U+FFFD, and the message is stored (not failed, to be
// delivered again and fail again).
func TestDeliverReplacesNUL(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		ctx := viewer.System(context.Background(), "test")
		modes := []bool{false}
		if db.Dialect == dialect.Postgres {
			modes = append(modes, true)
		}
		for _, bulk := range modes {
			m := whatsapp.NewManager(db.Client, nil, whatsapp.ManagerOptions{Log: quiet, BulkInbound: bulk})
			org := db.Client.Organization.Create().SetName("Org").SetSlug(fmt.Sprint("org-", bulk)).SaveX(ctx)
			s := db.Client.Session.Create().SetOrganizationID(org.ID).SetName("s").SetEngine(session.EngineSANDBOX).SaveX(ctx)
			in := inbound("ID\x00", "15550000001")
			in.Text, in.PushName, in.Kind, in.Options = "a\x00b", "Bob\x00", whatsapp.KindPoll, []string{"x\x00"}
			if err := m.Deliver(context.Background(), string(s.ID), in); err != nil {
				t.Fatal(err)
			}
			if in.ID != "ID\x00" || in.Options[0] != "x\x00" {
				t.Fatalf("bulk=%v: the caller's event was changed: %+v", bulk, in)
			}
			err := m.Deliver(context.Background(), string(s.ID), whatsapp.GroupUpdate{Group: "120363000000000001@g.us",
				Changes: map[string]any{"subject": "new\x00name"}})
			if err != nil {
				t.Fatal(err)
			}
			m.Stop()
			msg := db.Client.Message.Query().Where(message.SessionID(s.ID)).OnlyX(ctx)
			c := db.Client.Chat.Query().Where(chat.SessionID(s.ID)).OnlyX(ctx)
			if msg.WaMessageID != "ID\uFFFD" || *msg.Text != "a\uFFFDb" || msg.PushName != "Bob\uFFFD" ||
				fmt.Sprint(msg.Extra["options"]) != "[x\uFFFD]" || c.Name != "Bob\uFFFD" {
				t.Fatalf("bulk=%v: message %+v, chat %+v", bulk, msg, c)
			}
			ev := db.Client.Event.Query().Where(event.OrganizationID(org.ID), event.TypeEQ(event.TypeGROUP_UPDATE)).OnlyX(ctx)
			if changes, _ := ev.Payload["changes"].(map[string]any); changes["subject"] != "new\uFFFDname" {
				t.Fatalf("bulk=%v: group update %v", bulk, ev.Payload)
			}
		}
	})
}
