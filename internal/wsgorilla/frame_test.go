package wsgorilla

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/testserver"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/gorilla/websocket"
)

// encoded is v as encoding/json's Encoder writes it, which gorilla's WriteJSON uses.
func encoded(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A message of gqlgen's shape is written byte for byte as encoding/json writes it.
func TestAppendDataWritesWhatEncodingJSONWrites(t *testing.T) {
	type message struct { // gqlgen's graphqltransportwsMessage and graphqlwsMessage
		Payload json.RawMessage `json:"payload,omitempty"`
		ID      string          `json:"id,omitempty"`
		Type    string          `json:"type"`
		noOp    bool
	}
	for _, m := range []message{
		{Payload: json.RawMessage(`{"data":{"events":{"cursor":"1","payload":{"text":"\u003cb\u003e \"hi\" ü"}}}}`), ID: "1", Type: "next"},
		{Payload: json.RawMessage(`{"data":null,"errors":[{"message":"no"}]}`), ID: `a"<&>\ü` + "\x01", Type: "data"},
	} {
		got, ok := appendData(nil, &m)
		if want := encoded(t, &m); !ok || !bytes.Equal(got, want) {
			t.Errorf("appendData: %q (%v), encoding/json: %q", got, ok, want)
		}
	}
	// Anything else is left to encoding/json.
	for _, v := range []any{
		&message{Type: "pong", Payload: json.RawMessage(`{ "spaced": 1 }`), ID: "1"},
		&message{Type: "next", ID: "1"},
		&message{Type: "complete", ID: "1"},
		&struct {
			Payload json.RawMessage `json:"payload,omitempty"`
			ID      string          `json:"id,omitempty"`
			Type    string          `json:"type"`
			Extra   int             `json:"extra"`
		}{Payload: json.RawMessage(`{}`), ID: "1", Type: "next"},
		map[string]any{"type": "next"},
		nil,
	} {
		if b, ok := appendData(nil, v); ok {
			t.Errorf("appendData(%#v) = %q, want it left to encoding/json", v, b)
		}
	}
}

// checking wraps the connections it accepts to check every message gqlgen writes.
type checking struct {
	Implementation
	t    *testing.T
	mu   sync.Mutex
	fast int // messages appendData wrote
}

func (c *checking) Accept(w http.ResponseWriter, r *http.Request, o transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	conn, err := c.Implementation.Accept(w, r, o)
	if err != nil {
		return nil, err
	}
	return checkedConn{WebsocketConn: conn, c: c}, nil
}

type checkedConn struct {
	transport.WebsocketConn
	c *checking
}

func (cc checkedConn) WriteJSON(v any) error {
	if got, ok := appendData(nil, v); ok {
		if want := encoded(cc.c.t, v); !bytes.Equal(got, want) {
			cc.c.t.Errorf("appendData: %q, encoding/json: %q", got, want)
		}
		cc.c.mu.Lock()
		cc.c.fast++
		cc.c.mu.Unlock()
	}
	return cc.WebsocketConn.WriteJSON(v)
}

// gqlgen's own messages carrying results, in both protocols, take appendData's way and come
// out as encoding/json would write them.
func TestGQLGenResultsAreWrittenDirectly(t *testing.T) {
	for _, c := range []struct{ protocol, subscribe, result string }{
		{"graphql-transport-ws", "subscribe", "next"},
		{"graphql-ws", "start", "data"},
	} {
		t.Run(c.protocol, func(t *testing.T) {
			gql := testserver.New()
			impl := &checking{Implementation: New(func(*http.Request) bool { return true }, time.Second), t: t}
			gql.AddTransport(transport.Websocket{Implementation: impl})
			srv := httptest.NewServer(gql)
			defer srv.Close()
			d := websocket.Dialer{Subprotocols: []string{c.protocol}}
			ws, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			send := func(m string) {
				if err := ws.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
					t.Fatal(err)
				}
			}
			read := func() map[string]any {
				_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
				var m map[string]any
				if err := ws.ReadJSON(&m); err != nil {
					t.Fatal(err)
				}
				return m
			}
			send(`{"type":"connection_init"}`)
			if m := read(); m["type"] != "connection_ack" {
				t.Fatalf("got %v", m)
			}
			send(`{"type":"` + c.subscribe + `","id":"s1","payload":{"query":"subscription { name }"}}`)
			for range 3 {
				gql.SendNextSubscriptionMessage()
				for m := read(); m["type"] != c.result; m = read() {
					if m["type"] != "ka" {
						t.Fatalf("got %v", m)
					}
				}
			}
			impl.mu.Lock()
			defer impl.mu.Unlock()
			if impl.fast != 3 {
				t.Errorf("%d results written directly, want 3", impl.fast)
			}
		})
	}
}
