package httpapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
)

func createSession(t *testing.T, s *apitest.Server, u *apitest.User, name string) string {
	t.Helper()
	var out struct{ CreateSession struct{ ID string } }
	s.OK(t, q(u, "", `mutation($n: String!) { createSession(input: {name: $n, engine: SANDBOX}) { id } }`, map[string]any{"n": name}), &out)
	return out.CreateSession.ID
}

func TestSessionPairingSubscription(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db, func(o *apitest.Options) { o.SandboxPairAfter = 300 * time.Millisecond })
		ann := s.SignUp(t, "Ann")
		id := createSession(t, s, ann, "line")

		c := dialWS(t, s, "graphql-transport-ws", nil)
		send(t, c, wsMsg{Type: "connection_init", Payload: initPayload(ann.Token, "")})
		if m, err := next(t, c); err != nil || m.Type != "connection_ack" {
			t.Fatalf("want connection_ack, got %+v %v", m, err)
		}
		payload, _ := json.Marshal(map[string]any{"query": `subscription($id: ID!) { sessionPairing(sessionID: $id) { type code expiresAt } }`,
			"variables": map[string]any{"id": id}})
		send(t, c, wsMsg{ID: "pair", Type: "subscribe", Payload: payload})
		time.Sleep(50 * time.Millisecond) // let the subscription register before pairing starts
		s.OK(t, q(ann, "", `mutation($id: ID!) { connectSession(id: $id) { id } }`, map[string]any{"id": id}), nil)

		var types []string
		for {
			m, err := next(t, c)
			if err != nil {
				t.Fatalf("after %v: %v", types, err)
			}
			if m.Type == "complete" {
				break
			}
			var u struct {
				Data struct {
					SessionPairing struct {
						Type, Code string
						ExpiresAt  *time.Time
					}
				}
			}
			_ = json.Unmarshal(m.Payload, &u)
			p := u.Data.SessionPairing
			if p.Type == "QR_CODE" && (p.Code == "" || p.ExpiresAt == nil) {
				t.Fatalf("QR update without code or expiry: %s", m.Payload)
			}
			types = append(types, p.Type)
		}
		if len(types) < 2 || types[0] != "QR_CODE" || types[len(types)-1] != "PAIRED" {
			t.Fatalf("pairing updates %v, want QR codes then PAIRED", types)
		}
		eventually(t, "CONNECTED", func() bool {
			var out struct{ Node struct{ Status string } }
			s.OK(t, q(ann, "", `query($id: ID!) { node(id: $id) { ... on Session { status } } }`, map[string]any{"id": id}), &out)
			return out.Node.Status == "CONNECTED"
		})
		// The event log records that codes were shown, never the codes: it is readable by
		// MEMBERs and sent to webhooks, while pairing is for ADMINs.
		var log struct {
			Organization struct {
				Events struct {
					Edges []struct {
						Node struct{ Payload map[string]any }
					}
				}
			}
		}
		s.OK(t, q(ann, "", `{ organization { events(first: 10, types: [QR_CODE]) { edges { node { payload } } } } }`, nil), &log)
		if len(log.Organization.Events.Edges) == 0 {
			t.Fatal("no QR_CODE event")
		}
		for _, e := range log.Organization.Events.Edges {
			if _, ok := e.Node.Payload["code"]; ok || e.Node.Payload["expiresAt"] == nil {
				t.Fatalf("QR_CODE event payload %v", e.Node.Payload)
			}
		}
		// Subscribing to a paired session answers PAIRED at once and completes.
		send(t, c, wsMsg{ID: "again", Type: "subscribe", Payload: payload})
		if m, err := next(t, c); err != nil || m.Type != "next" || !strings.Contains(string(m.Payload), "PAIRED") {
			t.Fatalf("want PAIRED, got %+v %v", m, err)
		}
		if m, err := next(t, c); err != nil || m.Type != "complete" {
			t.Fatalf("want complete, got %+v %v", m, err)
		}
	})
}

func TestPairingCode(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		// Long enough for the code to be asked for before the virtual phone scans a QR code.
		s := apitest.New(t, db, func(o *apitest.Options) { o.SandboxPairAfter = 5 * time.Second })
		ann := s.SignUp(t, "Ann")
		id := createSession(t, s, ann, "line")
		pair := `mutation($id: ID!, $p: String!) { requestPairingCode(id: $id, phoneNumber: $p) }`
		wantCode(t, s.Do(t, q(ann, "", pair, map[string]any{"id": id, "p": "+4915100001234"})), "CONFLICT") // not connecting yet
		s.OK(t, q(ann, "", `mutation($id: ID!) { connectSession(id: $id) { id } }`, map[string]any{"id": id}), nil)
		wantCode(t, s.Do(t, q(ann, "", pair, map[string]any{"id": id, "p": "12"})), "BAD_USER_INPUT")
		var out struct{ RequestPairingCode string }
		s.OK(t, q(ann, "", pair, map[string]any{"id": id, "p": "+49 151 0000-1234"}), &out)
		if !regexp.MustCompile(`^[A-Z0-9]{4}-[A-Z0-9]{4}$`).MatchString(out.RequestPairingCode) {
			t.Fatalf("pairing code %q", out.RequestPairingCode)
		}
		eventually(t, "pairing with the number", func() bool {
			var ses struct{ Node sessionView }
			s.OK(t, q(ann, "", `query($id: ID!) { node(id: $id) { ... on Session { id status phoneNumber } } }`, map[string]any{"id": id}), &ses)
			return ses.Node.Status == "CONNECTED" && ses.Node.PhoneNumber != nil && *ses.Node.PhoneNumber == "+4915100001234"
		})
		// Disconnect keeps the pairing; logout ends it.
		s.OK(t, q(ann, "", `mutation($id: ID!) { disconnectSession(id: $id) { id } }`, map[string]any{"id": id}), nil)
		status := func() string {
			var ses struct {
				Node struct{ Status, StatusReason string }
			}
			s.OK(t, q(ann, "", `query($id: ID!) { node(id: $id) { ... on Session { status statusReason } } }`, map[string]any{"id": id}), &ses)
			return ses.Node.Status
		}
		eventually(t, "DISCONNECTED", func() bool { return status() == "DISCONNECTED" })
		s.OK(t, q(ann, "", `mutation($id: ID!) { connectSession(id: $id) { id } }`, map[string]any{"id": id}), nil)
		eventually(t, "CONNECTED again", func() bool { return status() == "CONNECTED" })
		s.OK(t, q(ann, "", `mutation($id: ID!) { logoutSession(id: $id) { id } }`, map[string]any{"id": id}), nil)
		eventually(t, "LOGGED_OUT", func() bool { return status() == "LOGGED_OUT" })
		wantCode(t, s.Do(t, q(ann, "", `mutation($id: ID!) { logoutSession(id: $id) { id } }`, map[string]any{"id": id})), "CONFLICT")
	})
}

// multipart sends a GraphQL multipart request (the graphql-multipart-request spec).
func multipartSend(t *testing.T, s *apitest.Server, u *apitest.User, vars map[string]any, file []byte, name, mime string) *http.Response {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	vars["media"] = nil
	ops, _ := json.Marshal(map[string]any{
		"query":     `mutation($in: SendMessageInput!) { sendMessage(input: $in) { id kind status media { mimeType fileName size url } } }`,
		"variables": map[string]any{"in": vars},
	})
	_ = w.WriteField("operations", string(ops))
	_ = w.WriteField("map", `{"0": ["variables.in.media"]}`)
	h := make(map[string][]string)
	h["Content-Disposition"] = []string{`form-data; name="0"; filename="` + name + `"`}
	h["Content-Type"] = []string{mime}
	part, _ := w.CreatePart(h)
	_, _ = part.Write(file)
	_ = w.Close()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/query", &body)
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+u.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func download(t *testing.T, s *apitest.Server, u *apitest.User, url string) (int, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+url, nil)
	if u != nil {
		req.Header.Set("Authorization", "Bearer "+u.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func TestMediaUploadAndDownload(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann, bob := s.SignUp(t, "Ann"), s.SignUp(t, "Bob")
		a := connectedSandbox(t, s, ann, ann.OrgID, "A")
		b := connectedSandbox(t, s, bob, bob.OrgID, "B")
		png := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, 2048)...)
		resp := multipartSend(t, s, ann, map[string]any{"sessionID": a.ID, "to": *b.PhoneNumber, "caption": "a picture"}, png, "pic.png", "image/png")
		defer resp.Body.Close()
		var out struct {
			Data struct {
				SendMessage struct {
					ID, Kind string
					Media    struct {
						MimeType, FileName, URL string
						Size                    int
					}
				}
			}
			Errors []any
		}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		m := out.Data.SendMessage
		if len(out.Errors) > 0 || m.Kind != "IMAGE" || m.Media.MimeType != "image/png" || m.Media.Size != len(png) || m.Media.FileName != "pic.png" {
			t.Fatalf("sent: %+v", out)
		}
		var got messageView
		eventually(t, "Bob to receive the image", func() bool {
			for _, msg := range messagesOf(t, s, bob, bob.OrgID, b.ID) {
				if msg.Kind == "IMAGE" {
					got = msg
					return true
				}
			}
			return false
		})
		if got.Text == nil || *got.Text != "a picture" {
			t.Fatalf("caption lost: %+v", got)
		}
		code, data, h := download(t, s, bob, "/media/"+got.ID)
		if code != 200 || !bytes.Equal(data, png) || h.Get("Content-Type") != "image/png" {
			t.Fatalf("download: %d %s, %d bytes", code, h.Get("Content-Type"), len(data))
		}
		// Only members of the message's organization may download it.
		if code, _, _ := download(t, s, ann, "/media/"+got.ID); code != 404 {
			t.Fatalf("another organization downloaded the media: %d", code)
		}
		if code, _, _ := download(t, s, nil, "/media/"+got.ID); code != 401 {
			t.Fatalf("anonymous download: %d", code)
		}
		if code, _, _ := download(t, s, bob, "/media/not-an-id"); code != 400 {
			t.Fatalf("malformed id: %d", code)
		}
	})
}

func TestSendPacing(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db, func(o *apitest.Options) { o.SendPerMinute = 3 })
		ann := s.SignUp(t, "Ann")
		a := connectedSandbox(t, s, ann, ann.OrgID, "A")
		send := `mutation($s: ID!) { sendMessage(input: {sessionID: $s, to: "+15550000999", text: "hi"}) { id } }`
		for range 3 {
			s.OK(t, q(ann, "", send, map[string]any{"s": a.ID}), nil)
		}
		wantCode(t, s.Do(t, q(ann, "", send, map[string]any{"s": a.ID})), "RATE_LIMITED")
		s.Clock.Advance(time.Minute)
		s.OK(t, q(ann, "", send, map[string]any{"s": a.ID}), nil)
	})
}
