package httpapi_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
)

// An event committed on this replica reaches its subscribers without being read back from
// the table, and is executed once per cohort of identical subscriptions: adding eleven
// subscribers in two cohorts adds no read of the log and one execution (here: one load of
// the event's session, after the event's transaction has ended) per event.
func TestEventFanoutReadsOnceAndRendersOncePerCohort(t *testing.T) {
	for _, d := range testdb.Dialects {
		t.Run(d, func(t *testing.T) {
			db, rec := recordingDB(t, d)
			s := apitest.New(t, db)
			ann, bob := s.SignUp(t, "Ann"), s.SignUp(t, "Bob")
			s.AddMember(t, ann, ann.OrgID, bob, "MEMBER")
			a := connectedSandbox(t, s, ann, ann.OrgID, "A")
			const query = `subscription { events(types: [MESSAGE_RECEIVED]) { cursor payload session { name } } }`
			open := func(u *apitest.User) *websocket.Conn {
				c := dialWS(t, s, "graphql-transport-ws", nil)
				send(t, c, wsMsg{Type: "connection_init", Payload: initPayload(u.Token, ann.OrgID)})
				if m, err := next(t, c); err != nil || m.Type != "connection_ack" {
					t.Fatalf("want connection_ack, got %+v %v", m, err)
				}
				payload, _ := json.Marshal(map[string]any{"query": query})
				send(t, c, wsMsg{ID: "events", Type: "subscribe", Payload: payload})
				return c
			}
			const k = 4
			// measure delivers one event to everyone (so every subscription is live and has
			// replayed the log), then
			// counts the statements k more cost, reading each from every subscriber.
			measure := func(conns []*websocket.Conn) (logReads, sessionReads int) {
				deliver := func(text string) {
					simulate(t, s, ann, a.ID, text)
					for _, c := range conns {
						// New subscribers replay the earlier messages first.
						for e := nextEvent(t, c); e.Payload["text"] != text; e = nextEvent(t, c) {
						}
					}
				}
				deliver(fmt.Sprint("warm-up for ", len(conns))) // texts differ from the replayed ones
				rec.Reset()
				for i := range k {
					deliver(fmt.Sprint("m", i, " for ", len(conns)))
				}
				for _, stmt := range rec.Reset() {
					if !strings.HasPrefix(stmt, "SELECT") {
						continue
					}
					switch {
					case reads(stmt, "events"):
						logReads++
					case reads(stmt, "sessions") && strings.Contains(stmt, "events"): // Event.session
						sessionReads++
					}
				}
				return logReads, sessionReads
			}
			conns := []*websocket.Conn{open(ann)}
			logOne, sessionsOne := measure(conns)
			for range 7 {
				conns = append(conns, open(ann))
			}
			for range 4 {
				conns = append(conns, open(bob))
			}
			logMany, sessionsMany := measure(conns)
			// Events committed on this replica are handed to its feed at commit: none is read
			// back (one read may be a resync's).
			if logOne > 1 || logMany > 1 {
				t.Errorf("reads of the event log for %d events: %d with one subscriber, %d with %d", k, logOne, logMany, len(conns))
			}
			// Ann's eight subscriptions are one cohort, Bob's four another.
			if sessionsOne != k || sessionsMany != 2*k {
				t.Errorf("executions for %d events: %d with one subscriber, %d with two cohorts of %d subscribers; want %d and %d",
					k, sessionsOne, sessionsMany, len(conns), k, 2*k)
			}
		})
	}
}

// reads reports whether a statement selects rows of the table (quoted as PostgreSQL or
// SQLite quote it).
func reads(stmt, table string) bool {
	stmt = strings.TrimPrefix(strings.TrimPrefix(stmt, "SELECT "), "DISTINCT ")
	return strings.HasPrefix(stmt, `"`+table+`".`) || strings.HasPrefix(stmt, "`"+table+"`.")
}

// An event handed to subscribers at commit renders exactly as the same event read back from
// the table, by a replaying subscription and by the events query: same payload, same time to
// the microsecond in the same zone, and its session and message load after its transaction
// has ended.
func TestLiveEventsRenderAsTheStoredOnes(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann := s.SignUp(t, "Ann")
		a := connectedSandbox(t, s, ann, ann.OrgID, "A")
		const fields = `cursor id type payload occurredAt session { id name } message { id text direction }`
		sub := func(after any) *websocket.Conn {
			c := dialWS(t, s, "graphql-transport-ws", nil)
			send(t, c, wsMsg{Type: "connection_init", Payload: initPayload(ann.Token, "")})
			if m, err := next(t, c); err != nil || m.Type != "connection_ack" {
				t.Fatalf("want connection_ack, got %+v %v", m, err)
			}
			payload, _ := json.Marshal(map[string]any{"query": `subscription($after: String) { events(after: $after, types: [MESSAGE_RECEIVED]) { ` + fields + ` } }`,
				"variables": map[string]any{"after": after}})
			send(t, c, wsMsg{ID: "events", Type: "subscribe", Payload: payload})
			return c
		}
		raw := func(c *websocket.Conn) string {
			t.Helper()
			m, err := next(t, c)
			if err != nil || m.Type != "next" {
				t.Fatalf("want an event, got %+v %v", m, err)
			}
			var out struct {
				Data struct{ Events json.RawMessage }
			}
			if err := json.Unmarshal(m.Payload, &out); err != nil {
				t.Fatal(err)
			}
			return string(out.Data.Events)
		}
		live := sub(nil)
		simulate(t, s, ann, a.ID, "héllo 🌍, 12345678901234567890 and 0.1")
		got := raw(live)
		if replayed := raw(sub("")); replayed != got {
			t.Errorf("live and replayed renderings differ:\n live     %s\n replayed %s", got, replayed)
		}
		var list struct {
			Organization struct {
				Events struct {
					Edges []struct{ Node json.RawMessage }
				}
			}
		}
		s.OK(t, q(ann, "", `{ organization { events(types: [MESSAGE_RECEIVED]) { edges { node { `+fields+` } } } } }`, nil), &list)
		if e := list.Organization.Events.Edges; len(e) != 1 || string(e[0].Node) != got {
			t.Errorf("live and queried renderings differ:\n live    %s\n queried %v", got, e)
		}
		if !strings.Contains(got, `"session":{"id"`) || !strings.Contains(got, `"text":"héllo`) {
			t.Errorf("the live event lacks its session or message: %s", got)
		}
	})
}

// Subscribers of one cohort replaying the log together each get every event intact: the
// one rendering an event for the others may go on to render the next while they still
// send it.
func TestCohortReplayingTheLogGetsEveryEventIntact(t *testing.T) {
	db := testdb.Open(t, "sqlite", database.Options{})
	s := apitest.New(t, db)
	ann := s.SignUp(t, "Ann")
	a := connectedSandbox(t, s, ann, ann.OrgID, "A")
	const n = 30
	for i := range n {
		simulate(t, s, ann, a.ID, fmt.Sprint("m", i))
	}
	conns := make([]*websocket.Conn, 6)
	for i := range conns {
		conns[i] = subscribeEvents(t, s, ann, nil) // no filter: the replays share the feed's ring
	}
	for _, c := range conns {
		for i := 0; i < n; {
			if e := nextEvent(t, c); e.Type == "MESSAGE_RECEIVED" {
				if want := fmt.Sprint("m", i); e.Payload["text"] != want {
					t.Fatalf("message %d: %v, want %q", i, e.Payload, want)
				}
				i++
			}
		}
	}
}
