package httpapi_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
)

type wsMsg struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

func dialWS(t *testing.T, s *apitest.Server, protocol string, header http.Header) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{protocol}, HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/query", header)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { c.Close() })
	if c.Subprotocol() != protocol {
		t.Fatalf("negotiated %q, want %q", c.Subprotocol(), protocol)
	}
	return c
}

func send(t *testing.T, c *websocket.Conn, m wsMsg) {
	t.Helper()
	if err := c.WriteJSON(m); err != nil {
		t.Fatal(err)
	}
}

// next reads the next message that is not a keep-alive or ping.
func next(t *testing.T, c *websocket.Conn) (wsMsg, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var m wsMsg
		if err := c.ReadJSON(&m); err != nil {
			return m, err
		}
		switch m.Type {
		case "ka", "ping", "pong":
			continue
		}
		return m, nil
	}
}

func initPayload(token, org string) json.RawMessage {
	p := map[string]string{"authorization": "Bearer " + token}
	if org != "" {
		p["organizationId"] = org
	}
	b, _ := json.Marshal(p)
	return b
}

func TestWebsocketAuthentication(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann, bob := s.SignUp(t, "Ann"), s.SignUp(t, "Bob")
		key := s.CreateAPIKey(t, ann, ann.OrgID, "MEMBER")

		query := func(c *websocket.Conn, q string) map[string]any {
			t.Helper()
			payload, _ := json.Marshal(map[string]string{"query": q})
			send(t, c, wsMsg{ID: "1", Type: "subscribe", Payload: payload})
			m, err := next(t, c)
			if err != nil || m.Type != "next" {
				t.Fatalf("want next, got %+v %v", m, err)
			}
			var out struct {
				Data   map[string]any
				Errors []any
			}
			_ = json.Unmarshal(m.Payload, &out)
			if len(out.Errors) > 0 {
				t.Fatalf("errors: %s", m.Payload)
			}
			if m, err := next(t, c); err != nil || m.Type != "complete" {
				t.Fatalf("want complete, got %+v %v", m, err)
			}
			return out.Data
		}

		t.Run("API key ignores organizationId", func(t *testing.T) {
			c := dialWS(t, s, "graphql-transport-ws", nil)
			send(t, c, wsMsg{Type: "connection_init", Payload: initPayload(key.Secret, bob.OrgID)})
			if m, err := next(t, c); err != nil || m.Type != "connection_ack" {
				t.Fatalf("want connection_ack, got %+v %v", m, err)
			}
			data := query(c, `{ viewer { apiKey { id } organization { id } role } }`)
			v := data["viewer"].(map[string]any)
			if v["apiKey"].(map[string]any)["id"] != key.ID || v["organization"].(map[string]any)["id"] != ann.OrgID || v["role"] != "MEMBER" {
				t.Fatalf("viewer over WebSocket: %v", v)
			}
		})
		t.Run("user token with organizationId", func(t *testing.T) {
			s.AddMember(t, bob, bob.OrgID, ann, "MEMBER")
			c := dialWS(t, s, "graphql-transport-ws", nil)
			send(t, c, wsMsg{Type: "connection_init", Payload: json.RawMessage(`{"Authorization":"` + ann.Token + `","organizationId":"` + bob.OrgID + `"}`)})
			if m, err := next(t, c); err != nil || m.Type != "connection_ack" {
				t.Fatalf("want connection_ack, got %+v %v", m, err)
			}
			v := query(c, `{ viewer { organization { id } role } }`)["viewer"].(map[string]any)
			if v["organization"].(map[string]any)["id"] != bob.OrgID || v["role"] != "MEMBER" {
				t.Fatalf("viewer over WebSocket: %v", v)
			}
		})
		for _, tt := range []struct {
			name    string
			payload json.RawMessage
			code    int
		}{
			{"missing token", json.RawMessage(`{}`), 4401},
			{"bad token", initPayload("wst_forged", ""), 4401},
			{"revoked key", nil, 4401},
			{"foreign organization", initPayload(ann.Token, "org_01m841t6g2bdyba5pqsncf9c50"), 4403},
		} {
			t.Run(tt.name, func(t *testing.T) {
				if tt.payload == nil {
					k := s.CreateAPIKey(t, ann, ann.OrgID, "MEMBER")
					s.OK(t, q(ann, ann.OrgID, `mutation($id: ID!) { revokeAPIKey(id: $id) { id } }`, map[string]any{"id": k.ID}), nil)
					tt.payload = initPayload(k.Secret, "")
				}
				c := dialWS(t, s, "graphql-transport-ws", nil)
				send(t, c, wsMsg{Type: "connection_init", Payload: tt.payload})
				_, err := next(t, c)
				var ce *websocket.CloseError
				if !errors.As(err, &ce) || ce.Code != tt.code {
					t.Fatalf("want close %d, got %v", tt.code, err)
				}
			})
		}
		t.Run("an open connection loses a revoked key at once", func(t *testing.T) {
			k := s.CreateAPIKey(t, ann, ann.OrgID, "ADMIN")
			c := dialWS(t, s, "graphql-transport-ws", nil)
			send(t, c, wsMsg{Type: "connection_init", Payload: initPayload(k.Secret, "")})
			if m, err := next(t, c); err != nil || m.Type != "connection_ack" {
				t.Fatalf("want connection_ack, got %+v %v", m, err)
			}
			query(c, `{ viewer { role } }`)
			s.OK(t, q(ann, ann.OrgID, `mutation($id: ID!) { revokeAPIKey(id: $id) { id } }`, map[string]any{"id": k.ID}), nil)
			payload, _ := json.Marshal(map[string]string{"query": `mutation { createAPIKey(input: {name: "escape", role: ADMIN}) { secret } }`})
			send(t, c, wsMsg{ID: "2", Type: "subscribe", Payload: payload})
			m, err := next(t, c)
			if err != nil || m.Type != "next" || !strings.Contains(string(m.Payload), "UNAUTHENTICATED") || strings.Contains(string(m.Payload), "wag_") {
				t.Fatalf("a revoked key still works over an open connection: %+v %v", m, err)
			}
		})
		t.Run("mutations over one connection, concurrently", func(t *testing.T) {
			c := dialWS(t, s, "graphql-transport-ws", nil)
			send(t, c, wsMsg{Type: "connection_init", Payload: initPayload(ann.Token, "")})
			if m, err := next(t, c); err != nil || m.Type != "connection_ack" {
				t.Fatalf("want connection_ack, got %+v %v", m, err)
			}
			const n = 20
			for i := range n {
				q := `mutation { createOrganization(input: {name: "Concurrent"}) { id viewerRole } }`
				if i%2 == 1 {
					q = `{ organizations { totalCount } }`
				}
				payload, _ := json.Marshal(map[string]string{"query": q})
				send(t, c, wsMsg{ID: fmt.Sprint("op", i), Type: "subscribe", Payload: payload})
			}
			results, completes := 0, 0
			for results < n || completes < n {
				m, err := next(t, c)
				if err != nil {
					t.Fatalf("after %d results, %d completes: %v", results, completes, err)
				}
				switch m.Type {
				case "next":
					results++
					if strings.Contains(string(m.Payload), "errors") {
						t.Fatalf("operation failed: %s", m.Payload)
					}
				case "complete":
					completes++
				default:
					t.Fatalf("unexpected %+v", m)
				}
			}
		})
		t.Run("legacy graphql-ws answers connection_error", func(t *testing.T) {
			c := dialWS(t, s, "graphql-ws", nil)
			send(t, c, wsMsg{Type: "connection_init", Payload: initPayload("wst_forged", "")})
			m, err := next(t, c)
			if err != nil || m.Type != "connection_error" || !strings.Contains(string(m.Payload), "invalid or expired token") {
				t.Fatalf("want connection_error, got %+v %v", m, err)
			}
		})
		t.Run("foreign origin refused", func(t *testing.T) {
			d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}}
			_, resp, err := d.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/query", http.Header{"Origin": {"https://evil.example"}})
			if err == nil || resp == nil || resp.StatusCode == http.StatusSwitchingProtocols {
				t.Fatalf("a foreign origin opened a WebSocket: %v", err)
			}
		})
	})
}
