package httpapi_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
	"github.com/wagate/wagate/internal/whatsapp"
)

type sessionView struct {
	ID, Status  string
	PhoneNumber *string
}

// eventually polls fn until it reports true, or fails after a few seconds.
func eventually(t *testing.T, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// connectedSandbox creates a sandbox session in u's current organization, connects it and
// waits until it is paired and CONNECTED.
func connectedSandbox(t *testing.T, s *apitest.Server, u *apitest.User, org, name string) sessionView {
	t.Helper()
	var created struct{ CreateSession sessionView }
	s.OK(t, q(u, org, `mutation($n: String!) { createSession(input: {name: $n, engine: SANDBOX}) { id status } }`,
		map[string]any{"n": name}), &created)
	id := created.CreateSession.ID
	if created.CreateSession.Status != "NEW" {
		t.Fatalf("new session status %q", created.CreateSession.Status)
	}
	s.OK(t, q(u, org, `mutation($id: ID!) { connectSession(id: $id) { id } }`, map[string]any{"id": id}), nil)
	var ses sessionView
	eventually(t, name+" to connect", func() bool {
		var out struct{ Node sessionView }
		s.OK(t, q(u, org, `query($id: ID!) { node(id: $id) { ... on Session { id status phoneNumber } } }`, map[string]any{"id": id}), &out)
		ses = out.Node
		return ses.Status == "CONNECTED" && ses.PhoneNumber != nil
	})
	return ses
}

type messageView struct {
	ID, Status, Kind, Direction, ChatJID, WaMessageID string
	Text                                              *string
	FromMe                                            bool
	SentBy                                            *struct{ ID string }
}

const messageFields = `id status kind direction chatJID waMessageID text fromMe sentBy { id }`

func messagesOf(t *testing.T, s *apitest.Server, u *apitest.User, org, session string) []messageView {
	t.Helper()
	var out struct {
		Node struct {
			Messages struct{ Edges []struct{ Node messageView } }
		}
	}
	s.OK(t, q(u, org, `query($id: ID!) { node(id: $id) { ... on Session { messages(first: 50) { edges { node { `+messageFields+` } } } } } }`,
		map[string]any{"id": session}), &out)
	var msgs []messageView
	for _, e := range out.Node.Messages.Edges {
		msgs = append(msgs, e.Node)
	}
	return msgs
}

func TestSandboxDemo(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann, bob := s.SignUp(t, "Ann"), s.SignUp(t, "Bob")
		a := connectedSandbox(t, s, ann, ann.OrgID, "Ann's line")
		b := connectedSandbox(t, s, bob, bob.OrgID, "Bob's line")

		send := `mutation($in: SendMessageInput!) { sendMessage(input: $in) { ` + messageFields + ` } }`
		var sent struct{ SendMessage messageView }
		s.OK(t, q(ann, ann.OrgID, send, map[string]any{"in": map[string]any{
			"sessionID": a.ID, "to": *b.PhoneNumber, "text": "Hello Bob", "idempotencyKey": "order-42"}}), &sent)
		m := sent.SendMessage
		if m.Status != "PENDING" || m.Direction != "OUTBOUND" || !m.FromMe || m.SentBy == nil || m.SentBy.ID != ann.ID {
			t.Fatalf("queued message: %+v", m)
		}
		// A retry with the same key is the same message.
		var again struct{ SendMessage messageView }
		s.OK(t, q(ann, ann.OrgID, send, map[string]any{"in": map[string]any{
			"sessionID": a.ID, "to": *b.PhoneNumber, "text": "Hello Bob", "idempotencyKey": "order-42"}}), &again)
		if again.SendMessage.ID != m.ID {
			t.Fatalf("a retry created a second message: %s vs %s", again.SendMessage.ID, m.ID)
		}

		var received messageView
		eventually(t, "Bob to receive the message", func() bool {
			for _, msg := range messagesOf(t, s, bob, bob.OrgID, b.ID) {
				if msg.WaMessageID == m.WaMessageID {
					received = msg
					return true
				}
			}
			return false
		})
		if received.Direction != "INBOUND" || received.Text == nil || *received.Text != "Hello Bob" || received.FromMe {
			t.Fatalf("received: %+v", received)
		}
		eventually(t, "the delivered receipt", func() bool {
			return messagesOf(t, s, ann, ann.OrgID, a.ID)[0].Status == "DELIVERED"
		})
		s.OK(t, q(bob, bob.OrgID, `mutation($in: MarkReadInput!) { markRead(input: $in) }`, map[string]any{"in": map[string]any{
			"sessionID": b.ID, "chatJID": received.ChatJID, "messageIDs": []string{received.ID}}}), nil)
		eventually(t, "the read receipt", func() bool {
			return messagesOf(t, s, ann, ann.OrgID, a.ID)[0].Status == "READ"
		})
		if n := len(messagesOf(t, s, ann, ann.OrgID, a.ID)); n != 1 {
			t.Fatalf("Ann's session has %d messages, want 1", n)
		}

		// Bob's chats list Ann's number, read.
		var chats struct {
			Node struct {
				Chats struct {
					Edges []struct {
						Node struct {
							Jid         string
							UnreadCount int
						}
					}
				}
			}
		}
		s.OK(t, q(bob, bob.OrgID, `query($id: ID!) { node(id: $id) { ... on Session { chats { edges { node { jid unreadCount } } } } } }`,
			map[string]any{"id": b.ID}), &chats)
		if e := chats.Node.Chats.Edges; len(e) != 1 || e[0].Node.Jid != received.ChatJID || e[0].Node.UnreadCount != 0 {
			t.Fatalf("chats: %+v", chats)
		}

		// simulateIncomingMessage returns the stored message at once.
		var sim struct{ SimulateIncomingMessage messageView }
		s.OK(t, q(ann, ann.OrgID, `mutation($in: SimulateIncomingMessageInput!) { simulateIncomingMessage(input: $in) { `+messageFields+` } }`,
			map[string]any{"in": map[string]any{"sessionID": a.ID, "from": "+4915112345678", "text": "Hi from a customer"}}), &sim)
		if sim.SimulateIncomingMessage.Direction != "INBOUND" || sim.SimulateIncomingMessage.ChatJID != "4915112345678@s.whatsapp.net" {
			t.Fatalf("simulated: %+v", sim)
		}
		// A reaction to it goes out like a message.
		var react struct{ React messageView }
		s.OK(t, q(ann, ann.OrgID, `mutation($in: ReactInput!) { react(input: $in) { `+messageFields+` } }`,
			map[string]any{"in": map[string]any{"sessionID": a.ID, "chatJID": sim.SimulateIncomingMessage.ChatJID,
				"messageID": sim.SimulateIncomingMessage.ID, "emoji": "👍"}}), &react)
		if react.React.Kind != "REACTION" || react.React.Status != "PENDING" {
			t.Fatalf("reaction: %+v", react)
		}
		// The customer is no sandbox number: the reaction fails, clearly.
		eventually(t, "the reaction to fail", func() bool {
			for _, msg := range messagesOf(t, s, ann, ann.OrgID, a.ID) {
				if msg.ID == react.React.ID {
					return msg.Status == "FAILED"
				}
			}
			return false
		})
	})
}

// What engines report beyond the columns (LID ↔ phone alternates, kind details) reaches the API.
func TestInboundAlternatesAndDetails(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann := s.SignUp(t, "Ann")
		id := createSession(t, s, ann, "line")
		err := s.Manager.Deliver(context.Background(), id, whatsapp.Inbound{
			ID: "3EB0LOC", Chat: "123456789012345@lid", ChatAlt: "4915112345678@s.whatsapp.net",
			Sender: "123456789012345@lid", SenderAlt: "4915112345678@s.whatsapp.net", Timestamp: time.Now(),
			Kind: whatsapp.KindLocation, Latitude: 52.52, Longitude: 13.405, Name: "Berlin",
		})
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Node struct {
				Messages struct {
					Edges []struct {
						Node struct {
							Kind, ChatJID, ChatJIDAlt, SenderJIDAlt string
							SenderPhone                             *string
							Details                                 map[string]any
						}
					}
				}
			}
		}
		s.OK(t, q(ann, "", `query($id: ID!) { node(id: $id) { ... on Session { messages { edges { node {
			kind chatJID chatJIDAlt senderJIDAlt senderPhone details } } } } } }`, map[string]any{"id": id}), &out)
		m := out.Node.Messages.Edges[0].Node
		if m.Kind != "LOCATION" || m.ChatJIDAlt != "4915112345678@s.whatsapp.net" || m.SenderJIDAlt != "4915112345678@s.whatsapp.net" ||
			m.SenderPhone == nil || *m.SenderPhone != "+4915112345678" || m.Details["name"] != "Berlin" || m.Details["latitude"] != 52.52 {
			t.Fatalf("message: %+v", m)
		}
	})
}

// simulateIncomingMessages stores a backlog whole, in order: the messages come back in the
// order given, and their events are numbered in that order. Bad input anywhere stores
// nothing and names the field at fault.
func TestSimulateIncomingMessages(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann := s.SignUp(t, "Ann")
		a := connectedSandbox(t, s, ann, ann.OrgID, "A")
		const mutation = `mutation($in: SimulateIncomingMessagesInput!) { simulateIncomingMessages(input: $in) { ` + messageFields + ` } }`
		input := func(msgs ...map[string]any) map[string]any {
			return map[string]any{"in": map[string]any{"sessionID": a.ID, "messages": msgs}}
		}
		msg := func(from, text string) map[string]any { return map[string]any{"from": from, "text": text} }
		var texts []string
		var msgs []map[string]any
		for i := range 30 {
			texts = append(texts, fmt.Sprintf("backlog %02d", i))
			msgs = append(msgs, msg([]string{"+4915112345678", "+4915112345679"}[i%2], texts[i]))
		}
		var out struct{ SimulateIncomingMessages []messageView }
		s.OK(t, q(ann, ann.OrgID, mutation, input(msgs...)), &out)
		var got []string
		for _, m := range out.SimulateIncomingMessages {
			got = append(got, *m.Text)
			if m.Direction != "INBOUND" || m.ID == "" {
				t.Fatalf("message %+v", m)
			}
		}
		if !slices.Equal(got, texts) {
			t.Fatalf("messages %v, want %v", got, texts)
		}
		var evs struct {
			Organization struct {
				Events struct {
					Edges []struct {
						Node struct {
							Cursor  string
							Message struct{ ID string }
						}
					}
				}
			}
		}
		s.OK(t, q(ann, "", `{ organization { events(first: 100, types: [MESSAGE_RECEIVED]) { edges { node { cursor message { id } } } } } }`, nil), &evs)
		if e := evs.Organization.Events.Edges; len(e) != len(texts) {
			t.Fatalf("%d events, want %d", len(e), len(texts))
		}
		for i, e := range evs.Organization.Events.Edges {
			if e.Node.Message.ID != out.SimulateIncomingMessages[i].ID {
				t.Fatalf("event %d (cursor %s) is of message %s, want %s", i, e.Node.Cursor, e.Node.Message.ID,
					out.SimulateIncomingMessages[i].ID)
			}
		}

		tooMany := make([]map[string]any, 101)
		for i := range tooMany {
			tooMany[i] = msg("+4915112345678", "x")
		}
		for _, c := range []struct {
			msgs  []map[string]any
			field string
		}{
			{[]map[string]any{}, "messages"},
			{tooMany, "messages"},
			{[]map[string]any{msg("+4915112345678", "ok"), msg("not a number", "hi")}, "messages[1].from"},
			{[]map[string]any{msg("+4915112345678", "ok"), msg("+4915112345678", "ok"), msg("+4915112345678", " ")}, "messages[2].text"},
		} {
			r := s.Do(t, q(ann, ann.OrgID, mutation, input(c.msgs...)))
			wantCode(t, r, "BAD_USER_INPUT")
			if f := r.Errors[0].Extensions["field"]; f != c.field {
				t.Errorf("field %v, want %s: %+v", f, c.field, r.Errors)
			}
		}
		if n := len(messagesOf(t, s, ann, ann.OrgID, a.ID)); n != len(texts) {
			t.Fatalf("%d messages stored, want %d: refused input stored something", n, len(texts))
		}
	})
}
