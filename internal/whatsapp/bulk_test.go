package whatsapp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/chat"
	"github.com/wagate/wagate/ent/event"
	"github.com/wagate/wagate/ent/message"
	"github.com/wagate/wagate/ent/session"
	"github.com/wagate/wagate/ent/webhookdelivery"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/events"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/testdb"
	"github.com/wagate/wagate/internal/viewer"
	"github.com/wagate/wagate/internal/webhook"
)

// receivedMessages are messages of every shape store handles, in the order a session
// receives them; some go to the same chat, one comes twice, and stored is stored before.
func receivedMessages() (stored Inbound, batch []Inbound) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 123456789, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	bob, group := "15550000001@s.whatsapp.net", "120363000000000001@g.us"
	stored = Inbound{ID: "M0", Chat: bob, Sender: bob, PushName: "Bob", Timestamp: at(0), Kind: KindText, Text: "before"}
	batch = []Inbound{
		stored, // stored before: skipped
		{ID: "M1", Chat: bob, Sender: bob, PushName: "Bob B.", Timestamp: at(1), Kind: KindText, Text: "hello"},
		{ID: "M2", Chat: bob, Sender: bob, Timestamp: at(2), Kind: KindText, Text: "no push name"},
		{ID: "M3", Chat: group, Sender: "15550000002@s.whatsapp.net", IsGroup: true, PushName: "Carol", Timestamp: at(3),
			Kind: KindText, Text: "in a group", ReplyTo: "M0"},
		{ID: "M4", Chat: bob, Sender: "15550000000@s.whatsapp.net", FromMe: true, Timestamp: at(4), Kind: KindText,
			Text: "from the phone"},
		{ID: "M5", Chat: "15550000003@s.whatsapp.net", Sender: "1234567890@lid", SenderAlt: "15550000003@s.whatsapp.net",
			ChatAlt: "1234567890@lid", PushName: "Dan", Timestamp: at(5), Kind: KindImage, Text: "a caption",
			Media: &MediaRef{Descriptor: []byte{0, 1, 2, 250}, MimeType: "image/jpeg", FileName: "a.jpg", Size: 4}},
		{ID: "M6", Chat: bob, Sender: bob, Timestamp: at(6), Kind: KindLocation, Latitude: 52.5, Longitude: 13.4, Name: "Berlin"},
		{ID: "M7", Chat: bob, Sender: bob, Timestamp: at(7), Kind: KindReaction, Text: "👍", TargetID: "M1"},
		{ID: "M1", Chat: bob, Sender: bob, PushName: "Bob B.", Timestamp: at(1), Kind: KindText, Text: "hello"}, // twice
		{ID: "M8", Chat: group, Sender: "15550000002@s.whatsapp.net", IsGroup: true, Timestamp: at(8), Kind: KindOther,
			Raw: []byte(`{"unknown":true}`)},
		{ID: "M9", Chat: bob, Sender: bob, Timestamp: at(9), Kind: KindPoll, Text: "Lunch?", Options: []string{"yes", "no"}},
	}
	return stored, batch
}

// line is an organization with a session and webhooks: one wants received messages, one
// sent ones, one is disabled.
type line struct {
	org, session gid.ID
	hooks        []gid.ID
}

func newLine(t *testing.T, ctx context.Context, c *ent.Client, name string) line {
	t.Helper()
	org := c.Organization.Create().SetName(name).SetSlug(name).SaveX(ctx)
	ses := c.Session.Create().SetOrganizationID(org.ID).SetName(name).SetEngine(session.EngineSANDBOX).SaveX(ctx)
	l := line{org: org.ID, session: ses.ID}
	for i, types := range [][]string{{"MESSAGE_RECEIVED"}, {"MESSAGE_SENT", "SESSION_STATUS"}, {"MESSAGE_RECEIVED", "MESSAGE_SENT"}} {
		w := c.Webhook.Create().SetOrganizationID(org.ID).SetURL("https://example.com/" + name).SetEventTypes(types).
			SetSecretEncrypted([]byte("x")).SetEnabled(i < 2).SaveX(ctx)
		l.hooks = append(l.hooks, w.ID)
	}
	return l
}

// One bulk statement stores a batch exactly as store and Append store its messages one
// after the other: the same messages, chats, events (numbers, payloads, times) and webhook
// deliveries, and nothing for a message stored before or received twice.
func TestBulkInboundWritesWhatStoreWrites(t *testing.T) {
	db := testdb.Open(t, "postgres", database.Options{})
	ctx := viewer.System(context.Background(), "test")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	keys, err := webhook.NewKeyring(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	log := events.New(db.Client, quiet)
	log.Webhooks = webhook.New(db.Client, webhook.Options{Keys: keys, Log: quiet})
	one, bulk := newLine(t, ctx, db.Client, "one"), newLine(t, ctx, db.Client, "bulk")
	storeOne := func(l line, in Inbound) {
		t.Helper()
		err := database.InTx(ctx, db.Client, func(ctx context.Context, c *ent.Client) error {
			entry, err := newReceived(l.org, l.session, in).store(ctx, c)
			if err != nil || entry == nil {
				return err
			}
			_, err = log.Append(ctx, c, *entry)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	stored, batch := receivedMessages()
	storeOne(one, stored)
	storeOne(bulk, stored)
	// The first messages as one burst (a session's backlog), the others one by one.
	slot := &storedSlot{}
	var burst []received
	var items []any
	for i, in := range batch {
		storeOne(one, in)
		r := newReceived(bulk.org, bulk.session, in)
		r.stored = slot
		if i < 5 {
			burst = append(burst, r)
		} else {
			items = append(items, []received{r})
		}
	}
	items = append([]any{burst}, items...)
	if err := (&bulkInbound{log: log}).WriteBulk(context.Background(), db.Client, items); err != nil {
		t.Fatal(err)
	}
	// Each message the statement stored is handed back as it reads back; one received
	// twice, once.
	for _, m := range db.Client.Message.Query().Where(message.SessionID(bulk.session)).AllX(ctx) {
		got := slot.msgs[m.WaMessageID]
		if m.WaMessageID == stored.ID {
			if got != nil {
				t.Errorf("%s, stored before, was handed back", m.WaMessageID)
			}
			continue
		}
		if got == nil {
			t.Errorf("%s was not handed back", m.WaMessageID)
			continue
		}
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(m)
		if !bytes.Equal(a, b) || fmt.Sprint(got.MediaDescriptor, got.MediaData) != fmt.Sprint(m.MediaDescriptor, m.MediaData) {
			t.Errorf("%s handed back as\n%s\nreads back as\n%s", m.WaMessageID, a, b)
		}
		if _, err := got.QuerySession().Only(ctx); err != nil { // bound to the client
			t.Errorf("%s: its session: %v", m.WaMessageID, err)
		}
	}
	if len(slot.msgs) != 9 { // M1..M9
		t.Errorf("%d messages handed back, want 9", len(slot.msgs))
	}

	// Rows as comparable values: IDs of the line's own rows replaced by what they stand for.
	messages := func(l line) map[string]string {
		out := map[string]string{}
		for _, m := range db.Client.Message.Query().Where(message.SessionID(l.session)).AllX(ctx) {
			m.ID, m.SessionID, m.OrganizationID, m.CreatedAt, m.UpdatedAt = "", "", "", time.Time{}, time.Time{}
			m.Timestamp = m.Timestamp.UTC()
			row, err := json.Marshal(m) // values, not pointers; the sensitive fields are left out
			if err != nil {
				t.Fatal(err)
			}
			out[m.WaMessageID] = fmt.Sprintf("%s descriptor=%v data=%v", row, m.MediaDescriptor, m.MediaData)
		}
		return out
	}
	chats := func(l line) map[string]string {
		out := map[string]string{}
		for _, c := range db.Client.Chat.Query().Where(chat.SessionID(l.session)).AllX(ctx) {
			out[c.Jid] = fmt.Sprintf("name=%q group=%v last=%v unread=%d", c.Name, c.IsGroup, c.LastMessageAt.UTC(), c.UnreadCount)
		}
		return out
	}
	evs := func(l line) []string {
		var out []string
		for _, e := range db.Client.Event.Query().Where(event.OrganizationID(l.org)).Order(event.BySeq()).
			WithMessage().AllX(ctx) {
			payload := maps.Clone(e.Payload)
			if payload["messageId"] != string(e.Edges.Message.ID) {
				t.Errorf("event %d: messageId %v, message %s", e.Seq, payload["messageId"], e.Edges.Message.ID)
			}
			delete(payload, "messageId")
			p, _ := json.Marshal(payload)
			var hooks []int
			for _, d := range db.Client.WebhookDelivery.Query().Where(webhookdelivery.EventID(e.ID)).AllX(ctx) {
				hooks = append(hooks, slices.Index(l.hooks, d.WebhookID))
				if d.Status != webhookdelivery.StatusPENDING || d.NextAttemptAt == nil || d.OrganizationID != l.org {
					t.Errorf("delivery %+v", d)
				}
			}
			slices.Sort(hooks)
			out = append(out, fmt.Sprintf("%d %s at=%v session=%v message=%s payload=%s hooks=%v", e.Seq, e.Type,
				e.OccurredAt.UTC(), *e.SessionID == l.session, e.Edges.Message.WaMessageID, p, hooks))
		}
		return out
	}
	if got, want := messages(bulk), messages(one); !maps.Equal(got, want) {
		t.Errorf("messages:\nbulk %v\none  %v", got, want)
	}
	if got, want := chats(bulk), chats(one); !maps.Equal(got, want) {
		t.Errorf("chats:\nbulk %v\none  %v", got, want)
	}
	got, want := evs(bulk), evs(one)
	if !slices.Equal(got, want) {
		t.Errorf("events:\nbulk %v\none  %v", got, want)
	}
	if len(want) != 10 { // M0..M9, each once
		t.Errorf("%d events, want 10: %v", len(want), want)
	}
}

// staleTargets lists webhooks as a cache might after changes it has not heard of yet.
type staleTargets struct {
	targets  []events.Target
	enqueued int
}

func (s *staleTargets) Enqueue(context.Context, *ent.Client, *ent.Event) error { return nil }
func (s *staleTargets) Targets(context.Context, gid.ID) ([]events.Target, error) {
	return s.targets, nil
}
func (s *staleTargets) Enqueued() { s.enqueued++ }

// The webhooks a writer is given may be out of date: the statement writes deliveries only
// for those that still exist, are enabled and want the event, and a webhook deleted
// meanwhile is no error.
func TestBulkInboundChecksTheWebhooksItIsGiven(t *testing.T) {
	db := testdb.Open(t, "postgres", database.Options{})
	ctx := viewer.System(context.Background(), "test")
	l := newLine(t, ctx, db.Client, "line") // hooks: received, sent, received+sent but disabled
	both := []string{"MESSAGE_RECEIVED", "MESSAGE_SENT"}
	stale := &staleTargets{targets: []events.Target{
		{Webhook: l.hooks[0], Types: both},
		{Webhook: l.hooks[1], Types: both},                       // no longer wants received messages
		{Webhook: l.hooks[2], Types: both},                       // disabled since
		{Webhook: "whk_00000000000000000000000000", Types: both}, // deleted since
	}}
	log := events.New(db.Client, nil)
	log.Webhooks = stale
	_, batch := receivedMessages()
	err := (&bulkInbound{log: log}).WriteBulk(context.Background(), db.Client, []any{[]received{newReceived(l.org, l.session, batch[1])}})
	if err != nil {
		t.Fatal(err)
	}
	var got []gid.ID
	for _, d := range db.Client.WebhookDelivery.Query().AllX(ctx) {
		got = append(got, d.WebhookID)
	}
	if !slices.Equal(got, l.hooks[:1]) || stale.enqueued != 1 {
		t.Fatalf("deliveries for %v (deliverers woken %d times), want %v once", got, stale.enqueued, l.hooks[:1])
	}
}

// The statement's input arrays read back in PostgreSQL as the texts that went in, NULL as
// NULL, whatever the texts hold: quotes, backslashes, the array syntax's own characters.
func TestBulkColumnsReadBackAsWritten(t *testing.T) {
	db := testdb.Open(t, "postgres", database.Options{})
	texts := []*string{ptr(`plain`), ptr(``), nil, ptr(`"quoted"`), ptr(`back\slash\`), ptr(`{a,b}`), ptr(`NULL`),
		ptr(` spaced `), ptr("line\nbreak\ttab"), ptr(`ünïcødé 👍`), ptr(`\"`), nil}
	var a pgArray
	for _, s := range texts {
		a.addOrNull(s)
	}
	rows, err := db.SQL.QueryContext(t.Context(), `SELECT x FROM unnest($1::text[]) WITH ORDINALITY AS u(x, i) ORDER BY i`, a.literal())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []*string
	for rows.Next() {
		var x *string
		if err := rows.Scan(&x); err != nil {
			t.Fatal(err)
		}
		got = append(got, x)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(texts) {
		t.Fatalf("%d elements read back, want %d", len(got), len(texts))
	}
	for i := range texts {
		if (got[i] == nil) != (texts[i] == nil) || got[i] != nil && *got[i] != *texts[i] {
			t.Errorf("element %d: %v, want %v", i, deref(got[i]), deref(texts[i]))
		}
	}
	var empty pgArray
	var n int
	if err := db.SQL.QueryRowContext(t.Context(), `SELECT cardinality($1::text[])`, empty.literal()).Scan(&n); err != nil || n != 0 {
		t.Fatalf("an empty column: %d elements, %v", n, err)
	}
}

func ptr(s string) *string { return &s }

func deref(s *string) string {
	if s == nil {
		return "NULL"
	}
	return strconv.Quote(*s)
}
