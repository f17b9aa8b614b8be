package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
)

type eventView struct {
	Cursor, Type string
	Payload      map[string]any
	Message      *struct{ ID string }
}

// subscribeEvents opens a WebSocket as u and subscribes to its organization's events.
func subscribeEvents(t *testing.T, s *apitest.Server, u *apitest.User, vars map[string]any) *websocket.Conn {
	t.Helper()
	c := dialWS(t, s, "graphql-transport-ws", nil)
	send(t, c, wsMsg{Type: "connection_init", Payload: initPayload(u.Token, "")})
	if m, err := next(t, c); err != nil || m.Type != "connection_ack" {
		t.Fatalf("want connection_ack, got %+v %v", m, err)
	}
	payload, _ := json.Marshal(map[string]any{
		"query": `subscription($after: String, $types: [EventType!]) { events(after: $after, types: $types) {
			cursor type payload message { id } } }`,
		"variables": vars,
	})
	send(t, c, wsMsg{ID: "events", Type: "subscribe", Payload: payload})
	return c
}

func nextEvent(t *testing.T, c *websocket.Conn) eventView {
	t.Helper()
	m, err := next(t, c)
	if err != nil || m.Type != "next" {
		t.Fatalf("want an event, got %+v %v", m, err)
	}
	var out struct {
		Data struct{ Events eventView }
	}
	if err := json.Unmarshal(m.Payload, &out); err != nil {
		t.Fatal(err)
	}
	return out.Data.Events
}

func simulate(t *testing.T, s *apitest.Server, u *apitest.User, session, text string) string {
	t.Helper()
	var out struct{ SimulateIncomingMessage struct{ ID string } }
	s.OK(t, q(u, "", `mutation($s: ID!, $t: String!) { simulateIncomingMessage(input: {sessionID: $s, from: "+4915112345678", text: $t}) { id } }`,
		map[string]any{"s": session, "t": text}), &out)
	return out.SimulateIncomingMessage.ID
}

func TestEventsSubscriptionOrderResumeAndIsolation(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann, bob := s.SignUp(t, "Ann"), s.SignUp(t, "Bob")
		a := connectedSandbox(t, s, ann, ann.OrgID, "A")
		connectedSandbox(t, s, bob, bob.OrgID, "B")
		received := map[string]any{"types": []string{"MESSAGE_RECEIVED"}}

		live := subscribeEvents(t, s, ann, received)
		bobs := subscribeEvents(t, s, bob, received)
		var ids []string
		for i := range 3 {
			ids = append(ids, simulate(t, s, ann, a.ID, fmt.Sprint("m", i)))
		}
		var cursors []string
		for i := range 3 {
			e := nextEvent(t, live)
			if e.Type != "MESSAGE_RECEIVED" || e.Message == nil || e.Message.ID != ids[i] || e.Payload["text"] != fmt.Sprint("m", i) {
				t.Fatalf("event %d: %+v", i, e)
			}
			cursors = append(cursors, e.Cursor)
		}
		live.Close()

		// While nobody listens, two more arrive; resuming after the second event replays the
		// third and the two new ones, then goes on live.
		ids = append(ids, simulate(t, s, ann, a.ID, "m3"), simulate(t, s, ann, a.ID, "m4"))
		resumed := subscribeEvents(t, s, ann, map[string]any{"after": cursors[1], "types": []string{"MESSAGE_RECEIVED"}})
		for i := 2; i < 5; i++ {
			if e := nextEvent(t, resumed); e.Message.ID != ids[i] {
				t.Fatalf("resumed event for %s, want %s", e.Message.ID, ids[i])
			}
		}
		ids = append(ids, simulate(t, s, ann, a.ID, "m5"))
		if e := nextEvent(t, resumed); e.Message.ID != ids[5] {
			t.Fatalf("live after replay: %s, want %s", e.Message.ID, ids[5])
		}

		// Bob's subscriber saw none of it.
		_ = bobs.SetReadDeadline(timeNowPlus(300))
		var m wsMsg
		if err := bobs.ReadJSON(&m); err == nil && m.Type == "next" {
			t.Fatalf("another organization's subscriber got %s", m.Payload)
		}

		// The log itself: every event of the organization, numbered 1, 2, 3… without a gap.
		var log struct {
			Organization struct {
				Events struct {
					Edges []struct{ Node eventView }
				}
			}
		}
		s.OK(t, q(ann, "", `{ organization { events(first: 100) { edges { node { cursor type } } } } }`, nil), &log)
		for i, e := range log.Organization.Events.Edges {
			if e.Node.Cursor != strconv.Itoa(i+1) {
				t.Fatalf("event %d has cursor %s: %+v", i, e.Node.Cursor, log)
			}
		}
		if n := len(log.Organization.Events.Edges); n < 8 { // statuses, pairing, six messages
			t.Fatalf("%d events in the log", n)
		}
		var only struct {
			Organization struct{ Events struct{ TotalCount int } }
		}
		s.OK(t, q(ann, "", `{ organization { events(types: [MESSAGE_RECEIVED]) { totalCount } } }`, nil), &only)
		if only.Organization.Events.TotalCount != 6 {
			t.Fatalf("%d MESSAGE_RECEIVED events, want 6", only.Organization.Events.TotalCount)
		}
		wantCode(t, s.Do(t, q(ann, "", `{ organization { events(first: 101) { totalCount } } }`, nil)), "BAD_USER_INPUT")
	})
}

// Concurrent writers still number an organization's events 1, 2, 3… with no gap and no
// repeat: the counter row orders them.
func TestEventSequenceUnderConcurrentWriters(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann := s.SignUp(t, "Ann")
		a := connectedSandbox(t, s, ann, ann.OrgID, "A")
		const n = 20
		done := make(chan struct{}, n)
		for i := range n {
			go func() {
				defer func() { done <- struct{}{} }()
				r := s.Do(t, q(ann, "", `mutation($s: ID!, $t: String!) { simulateIncomingMessage(input: {sessionID: $s, from: "+4915112345678", text: $t}) { id } }`,
					map[string]any{"s": a.ID, "t": fmt.Sprint("c", i)}))
				if r.Code() != "" {
					t.Errorf("simulate %d: %+v", i, r.Errors)
				}
			}()
		}
		for range n {
			<-done
		}
		var log struct {
			Organization struct {
				Events struct{ Edges []struct{ Node eventView } }
			}
		}
		s.OK(t, q(ann, "", `{ organization { events(first: 100) { edges { node { cursor type } } } } }`, nil), &log)
		got := 0
		for i, e := range log.Organization.Events.Edges {
			if e.Node.Cursor != strconv.Itoa(i+1) {
				t.Fatalf("position %d holds cursor %s", i, e.Node.Cursor)
			}
			if e.Node.Type == "MESSAGE_RECEIVED" {
				got++
			}
		}
		if got != n {
			t.Fatalf("%d MESSAGE_RECEIVED events, want %d", got, n)
		}
	})
}

// A subscription ends as soon as its caller loses access, on a hint from the change itself
// (the periodic re-check is 30 s, far beyond the read deadline below).
func TestEventsSubscriptionEndsWhenAccessIsLost(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann, bob, carol, root := s.SignUp(t, "Ann"), s.SignUp(t, "Bob"), s.SignUp(t, "Carol"), s.SignUp(t, "Root")
		bobMembership := s.AddMember(t, ann, ann.OrgID, bob, "MEMBER")
		s.AddMember(t, ann, ann.OrgID, carol, "MEMBER")
		s.MakeSuperAdmin(t, root)
		key := s.CreateAPIKey(t, ann, ann.OrgID, "MEMBER")
		headerKey := s.CreateAPIKey(t, ann, ann.OrgID, "MEMBER")

		open := func(token, org string) *websocket.Conn {
			var header http.Header
			init := initPayload(token, org)
			if token == headerKey.Secret { // authenticated by the upgrade request instead
				header, init = http.Header{"Authorization": {"Bearer " + token}}, json.RawMessage(`{}`)
			}
			c := dialWS(t, s, "graphql-transport-ws", header)
			send(t, c, wsMsg{Type: "connection_init", Payload: init})
			if m, err := next(t, c); err != nil || m.Type != "connection_ack" {
				t.Fatalf("want connection_ack, got %+v %v", m, err)
			}
			payload, _ := json.Marshal(map[string]any{"query": `subscription { events { cursor } }`})
			send(t, c, wsMsg{ID: "events", Type: "subscribe", Payload: payload})
			return c
		}
		asBob := open(bob.Token, ann.OrgID)
		asKey := open(key.Secret, "")
		asHeader := open(headerKey.Secret, "")
		asCarol := open(carol.Token, ann.OrgID)
		s.OK(t, q(ann, ann.OrgID, `mutation($id: ID!) { removeMember(id: $id) }`, map[string]any{"id": bobMembership}), nil)
		s.OK(t, q(root, "", `mutation($id: ID!) { adminSetUserDisabled(userID: $id, disabled: true) { id } }`, map[string]any{"id": carol.ID}), nil)
		for _, k := range []string{key.ID, headerKey.ID} {
			s.OK(t, q(ann, ann.OrgID, `mutation($id: ID!) { revokeAPIKey(id: $id) { id } }`, map[string]any{"id": k}), nil)
		}
		for name, c := range map[string]*websocket.Conn{"removed member": asBob, "revoked key": asKey, "revoked key in the upgrade header": asHeader, "disabled user": asCarol} {
			_ = c.SetReadDeadline(timeNowPlus(3000))
			var m wsMsg
			if err := c.ReadJSON(&m); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for m.Type == "ping" || m.Type == "pong" {
				_ = c.ReadJSON(&m)
			}
			if m.Type != "error" && m.Type != "next" {
				t.Fatalf("%s: want the stream to end with an error, got %+v", name, m)
			}
			if !json.Valid(m.Payload) || !containsAny(string(m.Payload), "UNAUTHENTICATED", "FORBIDDEN") {
				t.Fatalf("%s: %s", name, m.Payload)
			}
		}
	})
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// With no change to hint at it, the periodic recheck still ends a stream whose session
// token has expired (it may answer from the credential cache, which checks expiry).
func TestEventsSubscriptionEndsWhenItsTokenExpires(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db, func(o *apitest.Options) { o.Recheck = 50 * time.Millisecond })
		ann := s.SignUp(t, "Ann")
		a := connectedSandbox(t, s, ann, ann.OrgID, "A")
		c := subscribeEvents(t, s, ann, map[string]any{"types": []string{"MESSAGE_RECEIVED"}})
		simulate(t, s, ann, a.ID, "live")
		if e := nextEvent(t, c); e.Payload["text"] != "live" {
			t.Fatalf("event: %+v", e)
		}
		s.Clock.Advance(400 * 24 * time.Hour)
		_ = c.SetReadDeadline(timeNowPlus(3000))
		var m wsMsg
		for m.Type == "" || m.Type == "ping" || m.Type == "pong" {
			if err := c.ReadJSON(&m); err != nil {
				t.Fatalf("the stream did not end: %v", err)
			}
		}
		if m.Type != "error" || !strings.Contains(string(m.Payload), "UNAUTHENTICATED") {
			t.Fatalf("want an UNAUTHENTICATED error, got %+v", m)
		}
	})
}
