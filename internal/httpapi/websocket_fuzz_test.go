package httpapi_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
)

// FuzzWebSocketInit sends arbitrary connection_init frames to a real server, in both
// protocols: the connection is acknowledged or refused with a protocol close code (4400 bad
// message, 4401 no valid credential, 4403 organization not allowed, 1002 not JSON; the
// legacy protocol answers connection_error first), never left hanging, dropped by a panic
// or answered with an internal error.
func FuzzWebSocketInit(f *testing.F) {
	s := apitest.New(f, testdb.Open(f, "sqlite", database.Options{}))
	ann := s.SignUp(f, "ann")
	key := s.CreateAPIKey(f, ann, ann.OrgID, "MEMBER")
	for _, p := range []string{
		string(initPayload(ann.Token, "")), string(initPayload(ann.Token, ann.OrgID)), string(initPayload(key.Secret, ann.OrgID)),
		string(initPayload(ann.Token, "org_01jf3k2v8q9m7x0c4d5e6f7g8h")), string(initPayload(ann.Token, "nonsense")),
		fmt.Sprintf(`{"Authorization": %q}`, ann.Token), `{"authorization": "Basic abc"}`, `{"authorization": 42}`,
		`{"authorization": ["Bearer x"], "organizationId": {"a": 1}}`, `{}`, `null`, `[]`, `"Bearer x"`, `{"authorization": "Bearer wag_0123456789_` + strings.Repeat("a", 43) + `"}`,
		`{"authorization": "Bearer wst_` + strings.Repeat(`\u0000`, 3) + `"}`, `{`,
	} {
		f.Add(p, false)
		f.Add(p, true)
	}
	f.Fuzz(func(t *testing.T, payload string, legacy bool) {
		protocol := "graphql-transport-ws"
		if legacy {
			protocol = "graphql-ws"
		}
		c := dialWS(t, s, protocol, nil)
		frame := []byte(`{"type":"connection_init","payload":` + payload + `}`)
		if err := c.WriteMessage(websocket.TextMessage, frame); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			_, raw, err := c.ReadMessage()
			var closed *websocket.CloseError
			switch {
			case errors.As(err, &closed):
				switch closed.Code {
				case 4400, 4401, 4403:
					return
				case websocket.CloseProtocolError:
					if !json.Valid(frame) {
						return // gqlgen's answer to a frame that is not JSON
					}
				case websocket.CloseNormalClosure:
					if legacy {
						return // after connection_error
					}
				}
				t.Fatalf("payload %q: closed with %d %q", payload, closed.Code, closed.Text)
			case err != nil:
				t.Fatalf("payload %q: %v", payload, err)
			}
			var m wsMsg
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("payload %q: answered %q", payload, raw)
			}
			switch m.Type {
			case "ka":
				continue
			case "connection_ack":
				return
			case "connection_error":
				if legacy && !strings.Contains(string(m.Payload), "internal") {
					continue // the close frame follows
				}
			}
			t.Fatalf("payload %q: answered %s", payload, raw)
		}
	})
}
