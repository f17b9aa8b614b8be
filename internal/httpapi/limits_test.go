package httpapi_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/wagate/wagate/graph"
	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/httpapi"
	"github.com/wagate/wagate/internal/testdb"
)

// The limits are the same on every database: these tests run on SQLite only.
func limitsServer(t *testing.T, configure func(*httpapi.Config)) *apitest.Server {
	t.Helper()
	return apitest.New(t, testdb.Open(t, "sqlite", database.Options{}), func(o *apitest.Options) { o.HTTP = configure })
}

// raw sends a request as is and decodes the GraphQL answer.
func raw(t *testing.T, req *http.Request) (*http.Response, *apitest.Response) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := &apitest.Response{Status: resp.StatusCode}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("%s %s answered %d %q, not a GraphQL response", req.Method, req.URL.Path, resp.StatusCode, body)
	}
	return resp, out
}

func postJSON(t *testing.T, s *apitest.Server, body any, header http.Header) (*http.Response, *apitest.Response) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/query", bytes.NewReader(b))
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Content-Type", "application/json")
	return raw(t, req)
}

// wantRefused fails t unless r is one error with code and reason.
func wantRefused(t *testing.T, r *apitest.Response, code, reason string) {
	t.Helper()
	if len(r.Errors) != 1 || r.Code() != code || r.Errors[0].Extensions["reason"] != reason {
		t.Fatalf("want %s (%s), got %d %+v", code, reason, r.Status, r.Errors)
	}
}

// deep nests selections levels deep (at least 3): viewer, then user → memberships →
// organization → members → edges → node → user …, then a scalar of the last one.
func deep(levels int) string {
	path := []struct{ field, scalar string }{{"user", "id"}, {"memberships", "id"}, {"organization", "id"},
		{"members(first: 1)", "totalCount"}, {"edges", "cursor"}, {"node", "id"}}
	var b strings.Builder
	b.WriteString("{ viewer {")
	for i := 0; i < levels-2; i++ {
		b.WriteString(" " + path[i%len(path)].field + " {")
	}
	b.WriteString(" __typename " + path[(levels-3)%len(path)].scalar + strings.Repeat(" }", levels))
	return b.String()
}

func TestQueryLimits(t *testing.T) {
	s := limitsServer(t, nil) // the defaults
	ann := s.SignUp(t, "Ann")
	introspection, err := os.ReadFile("testdata/introspection.graphql")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name          string
		query         string
		vars          map[string]any
		code, reason  string // empty: no error
		field, status any
	}{
		{name: "the README's organization switcher", query: `{ organizations { edges { node { id name viewerRole
			members(first: 20) { edges { node { role user { email } } } } } } } }`},
		{name: "50 × 50 nested", query: `{ organization { sessions(first: 50) { edges { node { id
			messages(first: 50) { edges { node { id text } } } } } } } }`},
		{name: "50 × 50 nested, with an object each", query: `{ organization { sessions(first: 50) { edges { node { id
			messages(first: 50) { edges { node { id text sentBy { name } } } } } } } } }`,
			code: "BAD_USER_INPUT", reason: "COMPLEXITY_LIMIT_EXCEEDED"},
		{name: "100 × 100 nested", query: `{ organizations(first: 100) { edges { node { id
			members(first: 100) { edges { node { role } } } } } } }`, code: "BAD_USER_INPUT", reason: "COMPLEXITY_LIMIT_EXCEEDED"},
		{name: "a connection without first costs a full page", query: `{ organizations { edges { node { id
			members { edges { node { role } } } } } } }`, code: "BAD_USER_INPUT", reason: "COMPLEXITY_LIMIT_EXCEEDED"},
		{name: "page sizes from variables count", query: `query($n: Int) { organizations(first: $n) { edges { node { id
			members(first: $n) { edges { node { role } } } } } } }`, vars: map[string]any{"n": 100},
			code: "BAD_USER_INPUT", reason: "COMPLEXITY_LIMIT_EXCEEDED"},
		{name: "small pages from variables", query: `query($n: Int) { organizations(first: $n) { edges { node { id
			members(first: $n) { edges { node { role } } } } } } }`, vars: map[string]any{"n": 10}},
		{name: "aliases add up", query: `{ a: organizations(first: 100) { edges { node { members(first: 20) { edges { node { user { id } } } } } } }
			b: organizations(first: 100) { edges { node { members(first: 20) { edges { node { user { id } } } } } } } }`,
			code: "BAD_USER_INPUT", reason: "COMPLEXITY_LIMIT_EXCEEDED"},
		{name: "nodes(ids:) counts its ids", query: `query($ids: [ID!]!) { nodes(ids: $ids) { ... on Organization {
			members(first: 100) { edges { node { user { memberships { id } } } } } } } }`,
			vars: map[string]any{"ids": []string{ann.OrgID, ann.OrgID, ann.OrgID, ann.OrgID, ann.OrgID, ann.OrgID, ann.OrgID, ann.OrgID, ann.OrgID, ann.OrgID, ann.OrgID, ann.OrgID, ann.OrgID, ann.OrgID, ann.OrgID, ann.OrgID, ann.OrgID}},
			code: "BAD_USER_INPUT", reason: "COMPLEXITY_LIMIT_EXCEEDED"},
		{name: "depth 12", query: deep(12)},
		{name: "depth 13", query: deep(13), code: "BAD_USER_INPUT", reason: "DEPTH_LIMIT_EXCEEDED"},
		{name: "depth through fragments", query: `{ viewer { ...V } } fragment V on Viewer { user { ...U } }
			fragment U on User { memberships { organization { members(first: 1) { edges { node { user { ...U2 } } } } } } }
			fragment U2 on User { memberships { organization { members(first: 1) { edges { node { id } } } } } }`,
			code: "BAD_USER_INPUT", reason: "DEPTH_LIMIT_EXCEEDED"},
		{name: "GraphiQL's introspection query", query: string(introspection)},
		{name: "first above 100", query: `{ organizations(first: 101) { edges { node { id } } } }`,
			code: "BAD_USER_INPUT", field: "first"},
		{name: "last above 100", query: `{ organization { members(last: 1000) { edges { node { id } } } } }`,
			code: "BAD_USER_INPUT", field: "last"},
		{name: "a nested connection needs first or last", query: `{ organization { sessions { edges { node { id } } } } }`,
			code: "BAD_USER_INPUT", field: "first"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := s.Do(t, apitest.Request{Token: ann.Token, Query: tt.query, Vars: tt.vars})
			if tt.code == "" {
				if len(r.Errors) > 0 {
					t.Fatalf("errors: %+v", r.Errors)
				}
				return
			}
			wantCode(t, r, tt.code)
			if tt.reason != "" {
				wantRefused(t, r, tt.code, tt.reason)
				if string(r.Data) != "" && string(r.Data) != "null" {
					t.Fatalf("refused before running: want no data, got %s", r.Data)
				}
			}
			if tt.field != nil && r.Errors[0].Extensions["field"] != tt.field {
				t.Fatalf("field %v, want %v", r.Errors[0].Extensions["field"], tt.field)
			}
		})
	}

	t.Run("settings", func(t *testing.T) {
		s := limitsServer(t, func(c *httpapi.Config) { c.Limits = graph.Limits{MaxComplexity: 50, MaxDepth: 4} })
		ann := s.SignUp(t, "Ann")
		for query, reason := range map[string]string{
			`{ organizations(first: 40) { edges { node { id } } } }`: "",
			`{ organizations(first: 60) { edges { node { id } } } }`: "COMPLEXITY_LIMIT_EXCEEDED",
			deep(4): "",
			deep(5): "DEPTH_LIMIT_EXCEEDED",
			`{ __schema { types { fields { type { ofType { ofType { name } } } } } } }`: "",
		} {
			r := s.Do(t, q(ann, "", query, nil))
			if reason == "" && len(r.Errors) > 0 {
				t.Fatalf("%s: %+v", query, r.Errors)
			}
			if reason != "" {
				wantRefused(t, r, "BAD_USER_INPUT", reason)
			}
		}
		off := limitsServer(t, func(c *httpapi.Config) { c.Limits = graph.Limits{MaxComplexity: -1, MaxDepth: -1} })
		bob := off.SignUp(t, "Bob")
		off.OK(t, q(bob, "", `{ organizations(first: 100) { edges { node { members(first: 100) { edges { node { id } } } } } } }`, nil), nil)
		off.OK(t, q(bob, "", deep(20), nil), nil)
	})

	t.Run("over WebSocket", func(t *testing.T) {
		c := dialWS(t, s, "graphql-transport-ws", nil)
		send(t, c, wsMsg{Type: "connection_init", Payload: initPayload(ann.Token, "")})
		if m, err := next(t, c); err != nil || m.Type != "connection_ack" {
			t.Fatalf("want connection_ack, got %+v %v", m, err)
		}
		nest := func(fields ...string) string { // the last one is a scalar
			return "subscription { " + strings.Join(fields, " { ") + strings.Repeat(" }", len(fields)) // and subscription's
		}
		for i, tt := range []struct{ query, reason string }{
			{nest("events", "session", "organization", "members(first: 1)", "edges", "node", "user", "memberships",
				"organization", "members(first: 1)", "edges", "node", "id"), "DEPTH_LIMIT_EXCEEDED"},
			{nest("events", "session", "organization", "members(first: 100)", "edges", "node", "organization",
				"members(first: 100)", "edges", "node", "id"), "COMPLEXITY_LIMIT_EXCEEDED"},
		} {
			id := string(rune('1' + i))
			payload, _ := json.Marshal(map[string]string{"query": tt.query})
			send(t, c, wsMsg{ID: id, Type: "subscribe", Payload: payload})
			// gqlgen answers with a result that has only errors, then completes.
			m, err := next(t, c)
			var r apitest.Response
			_ = json.Unmarshal(m.Payload, &r)
			if err != nil || m.Type != "next" || m.ID != id {
				t.Fatalf("want a result, got %+v %v", m, err)
			}
			wantRefused(t, &r, "BAD_USER_INPUT", tt.reason)
			if m, err := next(t, c); err != nil || m.Type != "complete" {
				t.Fatalf("want complete, got %+v %v", m, err)
			}
		}
		// The connection stays usable.
		payload, _ := json.Marshal(map[string]string{"query": `{ viewer { user { id } } }`})
		send(t, c, wsMsg{ID: "3", Type: "subscribe", Payload: payload})
		if m, err := next(t, c); err != nil || m.Type != "next" {
			t.Fatalf("want next, got %+v %v", m, err)
		}
		_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	})
}

func TestIntrospectionToggle(t *testing.T) {
	const schemaQuery = `{ __schema { queryType { name } } }`
	t.Run("on", func(t *testing.T) {
		s := limitsServer(t, nil)
		var out struct {
			Schema struct{ QueryType struct{ Name string } } `json:"__schema"`
		}
		s.OK(t, apitest.Request{Query: schemaQuery}, &out)
		if out.Schema.QueryType.Name != "Query" {
			t.Fatalf("introspection: %+v", out)
		}
	})
	t.Run("off", func(t *testing.T) {
		s := limitsServer(t, func(c *httpapi.Config) { c.Introspection = false })
		for _, query := range []string{schemaQuery, `{ __type(name: "Query") { name } }`} {
			r := s.Do(t, apitest.Request{Query: query})
			wantRefused(t, r, "FORBIDDEN", "INTROSPECTION_DISABLED")
			if !strings.Contains(r.Errors[0].Message, "introspection is disabled") {
				t.Fatalf("message %q", r.Errors[0].Message)
			}
		}
		s.OK(t, apitest.Request{Query: `{ __typename viewer { __typename } }`}, nil) // not introspection
		resp, err := http.Get(s.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GraphiQL answered %d with introspection off", resp.StatusCode)
		}
	})
}

func TestRequestBodyLimits(t *testing.T) {
	const maxBody, maxMedia = 4 << 10, 8 << 10
	s := limitsServer(t, func(c *httpapi.Config) {
		c.MaxBodyBytes = maxBody
		c.Sessions.MaxMediaBytes = maxMedia
	})
	ann := s.SignUp(t, "Ann")
	ses := addSession(t, s, ann.OrgID, "A", "+15550000001")
	padded := func(n int) []byte {
		b, _ := json.Marshal(map[string]any{"query": "{ viewer { __typename } }" + strings.Repeat(" ", n)})
		return b
	}
	multipartBody := func(fileSize int) (*bytes.Buffer, string) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("operations", `{"query":"mutation($s: ID!, $f: Upload!) { sendMessage(input: {sessionID: $s, to: \"+15550000002\", media: $f}) { id } }",
			"variables":{"s":"`+ses.ID.String()+`","f":null}}`)
		_ = mw.WriteField("map", `{"0":["variables.f"]}`)
		fw, _ := mw.CreateFormFile("0", "a.bin")
		_, _ = fw.Write(bytes.Repeat([]byte{'x'}, fileSize))
		_ = mw.Close()
		return &buf, mw.FormDataContentType()
	}
	for _, tt := range []struct {
		name    string
		request func() *http.Request
		status  int
		code    string
		reason  string
	}{
		{"a body within the limit", func() *http.Request {
			return jsonRequest(s, bytes.NewReader(padded(maxBody/2)))
		}, http.StatusOK, "", ""},
		{"a body over the limit, announced", func() *http.Request {
			return jsonRequest(s, bytes.NewReader(padded(maxBody)))
		}, http.StatusRequestEntityTooLarge, "BAD_USER_INPUT", "REQUEST_TOO_LARGE"},
		{"a body over the limit, chunked", func() *http.Request {
			r := jsonRequest(s, io.MultiReader(bytes.NewReader(padded(maxBody)))) // unknown length
			r.ContentLength = -1
			return r
		}, http.StatusRequestEntityTooLarge, "BAD_USER_INPUT", "REQUEST_TOO_LARGE"},
		{"a body that is not JSON", func() *http.Request {
			return jsonRequest(s, strings.NewReader(`{"query": `))
		}, http.StatusBadRequest, "BAD_USER_INPUT", ""},
		{"an upload over attachment plus body, announced", func() *http.Request {
			body, ct := multipartBody(maxMedia + maxBody)
			r, _ := http.NewRequest(http.MethodPost, s.URL+"/query", body)
			r.Header.Set("Content-Type", ct)
			return r
		}, http.StatusRequestEntityTooLarge, "BAD_USER_INPUT", "REQUEST_TOO_LARGE"},
		{"an upload over attachment plus body, chunked", func() *http.Request {
			body, ct := multipartBody(maxMedia + maxBody)
			r, _ := http.NewRequest(http.MethodPost, s.URL+"/query", io.MultiReader(body))
			r.Header.Set("Content-Type", ct)
			r.ContentLength = -1
			return r
		}, http.StatusRequestEntityTooLarge, "BAD_USER_INPUT", "REQUEST_TOO_LARGE"},
		{"an attachment over its own limit", func() *http.Request {
			body, ct := multipartBody(maxMedia + 1)
			r, _ := http.NewRequest(http.MethodPost, s.URL+"/query", body)
			r.Header.Set("Content-Type", ct)
			r.Header.Set("Authorization", "Bearer "+ann.Token)
			return r
		}, http.StatusOK, "BAD_USER_INPUT", ""}, // read in full, then refused by sendMessage
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, r := raw(t, tt.request())
			if resp.StatusCode != tt.status || r.Code() != tt.code {
				t.Fatalf("got %d %q, want %d %q: %+v", resp.StatusCode, r.Code(), tt.status, tt.code, r.Errors)
			}
			if tt.reason != "" {
				wantRefused(t, r, tt.code, tt.reason)
			}
		})
	}
}

func jsonRequest(s *apitest.Server, body io.Reader) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, s.URL+"/query", body)
	r.Header.Set("Content-Type", "application/json")
	return r
}

func TestAutomaticPersistedQueries(t *testing.T) {
	s := limitsServer(t, nil)
	ann := s.SignUp(t, "Ann")
	auth := http.Header{"Authorization": {"Bearer " + ann.Token}}
	persisted := func(query string) map[string]any {
		sum := sha256.Sum256([]byte(query))
		return map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}
	}
	wantEmail := func(t *testing.T, r *apitest.Response) {
		t.Helper()
		var out struct {
			Viewer struct{ User struct{ Email string } }
		}
		if len(r.Errors) > 0 {
			t.Fatalf("errors: %+v", r.Errors)
		}
		r.Decode(t, &out)
		if out.Viewer.User.Email != ann.Email {
			t.Fatalf("data %s", r.Data)
		}
	}
	wantNotFound := func(t *testing.T, r *apitest.Response) {
		t.Helper()
		wantRefused(t, r, "BAD_USER_INPUT", "PERSISTED_QUERY_NOT_FOUND")
		if r.Errors[0].Message != "PersistedQueryNotFound" { // what Apollo and urql clients look for
			t.Fatalf("message %q", r.Errors[0].Message)
		}
	}
	get := func(t *testing.T, query string, withQuery bool) *apitest.Response {
		t.Helper()
		e, _ := json.Marshal(persisted(query))
		v := url.Values{"extensions": {string(e)}}
		if withQuery {
			v.Set("query", query)
		}
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/query?"+v.Encode(), nil)
		req.Header = auth.Clone()
		_, r := raw(t, req)
		return r
	}
	post := func(t *testing.T, query string, withQuery bool) *apitest.Response {
		t.Helper()
		body := map[string]any{"extensions": persisted(query)}
		if withQuery {
			body["query"] = query
		}
		_, r := postJSON(t, s, body, auth)
		return r
	}

	for _, tt := range []struct {
		name string
		send func(t *testing.T, query string, withQuery bool) *apitest.Response
	}{{"GET", get}, {"POST", post}} {
		t.Run(tt.name, func(t *testing.T) {
			query := `query ` + tt.name + ` { viewer { user { email } } }` // a hash of its own
			wantNotFound(t, tt.send(t, query, false))                      // the first try: the hash alone
			wantEmail(t, tt.send(t, query, true))                          // the retry with the query stores it
			wantEmail(t, tt.send(t, query, false))                         // later the hash alone suffices
		})
	}
	t.Run("a hash that does not match its query", func(t *testing.T) {
		_, r := postJSON(t, s, map[string]any{"query": `{ viewer { role } }`, "extensions": persisted("{ x }")}, auth)
		wantCode(t, r, "BAD_USER_INPUT")
	})
	t.Run("off", func(t *testing.T) {
		off := limitsServer(t, func(c *httpapi.Config) { c.Limits.APQCacheSize = -1 })
		_, r := postJSON(t, off, map[string]any{"extensions": persisted("{ viewer { role } }")}, nil)
		wantCode(t, r, "BAD_USER_INPUT") // the hash is not looked at: there is no query
	})
}

// Text with a NUL character, which PostgreSQL cannot store, is refused as bad input wherever
// it is written: in a variable, nested in an input object, or in the document itself.
func TestInputWithNULIsRefused(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann := s.SignUp(t, "Ann")
		a := connectedSandbox(t, s, ann, ann.OrgID, "A")
		for _, c := range []struct {
			name, query, field string
			vars               map[string]any
		}{
			{"variable", `mutation($s: ID!, $t: String!) { simulateIncomingMessage(input: {sessionID: $s, from: "+4915112345678", text: $t}) { id } }`,
				"t", map[string]any{"s": a.ID, "t": "a\x00b"}},
			{"input object", `mutation($in: SendMessageInput!) { sendMessage(input: $in) { id } }`,
				"in", map[string]any{"in": map[string]any{"sessionID": a.ID, "to": "+4915112345678", "text": "a\x00b"}}},
			{"list", `mutation($in: SimulateIncomingMessagesInput!) { simulateIncomingMessages(input: $in) { id } }`,
				"in", map[string]any{"in": map[string]any{"sessionID": a.ID, "messages": []map[string]any{{"from": "+4915112345678", "text": "a\x00b"}}}}},
			{"document", `mutation { createOrganization(input: {name: "a\u0000b"}) { id } }`, "input", nil},
		} {
			r := s.Do(t, q(ann, ann.OrgID, c.query, c.vars))
			wantCode(t, r, "BAD_USER_INPUT")
			if f := r.Errors[0].Extensions["field"]; f != c.field {
				t.Errorf("%s: field %v, want %s", c.name, f, c.field)
			}
		}
		if n := len(messagesOf(t, s, ann, ann.OrgID, a.ID)); n != 0 {
			t.Errorf("%d messages stored", n)
		}
	})
}
