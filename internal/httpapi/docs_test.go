package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
	"github.com/wagate/wagate/internal/webhook"
)

// The user guides in docs/ are executed here, so that what they tell dashboards, subscribers
// and integrators stays true: every ```graphql block in order, against one server, with the
// variables the text gives; the Node.js subscriber with resume; the Go webhook verifier.

var (
	fence      = regexp.MustCompile("(?ms)^```(\\w+)\\n(.*?)^```")
	opHeader   = regexp.MustCompile(`^(query|mutation|subscription)\s+(\w+)`)
	verifyLink = regexp.MustCompile(`verify-email\?token=(\S+)`)
)

// blocks returns the fenced blocks of a guide with the given language.
func blocks(t *testing.T, guide, lang string) []string {
	t.Helper()
	md, err := os.ReadFile(filepath.Join("..", "..", "docs", guide))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range fence.FindAllStringSubmatch(string(md), -1) {
		if m[1] == lang {
			out = append(out, m[2])
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no %s blocks", guide, lang)
	}
	return out
}

// guideRun carries what one document leaves for the next: the credential in use and the
// ids created.
type guideRun struct {
	s         *apitest.Server
	auth      string
	userToken string // the dashboard user's, while auth is an API key
	state     map[string]any
}

// step supplies an operation's variables (the examples in the guide's text) and records
// what later operations need.
type step struct {
	vars  func(st map[string]any) map[string]any
	after func(r *guideRun, data map[string]any)
}

func (r *guideRun) run(t *testing.T, guide string, steps map[string]step) {
	t.Helper()
	ran := map[string]bool{}
	for _, doc := range blocks(t, guide, "graphql") {
		m := opHeader.FindStringSubmatch(doc)
		if m == nil {
			t.Fatalf("%s: a graphql block without a named operation:\n%s", guide, doc)
		}
		kind, name := m[1], m[2]
		st := steps[name]
		vars := map[string]any{}
		for k, v := range r.state {
			vars[k] = v
		}
		if st.vars != nil {
			for k, v := range st.vars(r.state) {
				vars[k] = v
			}
		}
		var data map[string]any
		if kind == "subscription" {
			data = r.firstEvent(t, name, doc, vars)
		} else {
			resp := r.s.Do(t, apitest.Request{Token: r.auth, Query: doc, Vars: vars})
			if len(resp.Errors) > 0 {
				t.Fatalf("%s: %s: %+v", guide, name, resp.Errors)
			}
			resp.Decode(t, &data)
		}
		if st.after != nil {
			st.after(r, data)
		}
		ran[name] = true
	}
	for name := range steps {
		if !ran[name] {
			t.Errorf("%s: the test supplies %s, which the guide no longer has", guide, name)
		}
	}
}

// firstEvent subscribes over WebSocket and returns the first result.
func (r *guideRun) firstEvent(t *testing.T, name, doc string, vars map[string]any) map[string]any {
	t.Helper()
	c := dialWS(t, r.s, "graphql-transport-ws", nil)
	defer c.Close()
	send(t, c, wsMsg{Type: "connection_init", Payload: initPayload(r.auth, "")})
	if m, err := next(t, c); err != nil || m.Type != "connection_ack" {
		t.Fatalf("%s: init: %+v %v", name, m, err)
	}
	payload, _ := json.Marshal(map[string]any{"query": doc, "variables": vars})
	send(t, c, wsMsg{ID: "1", Type: "subscribe", Payload: payload})
	m, err := next(t, c)
	if err != nil || m.Type != "next" {
		t.Fatalf("%s: %+v %v", name, m, err)
	}
	var res struct {
		Data   map[string]any
		Errors []apitest.Error
	}
	if err := json.Unmarshal(m.Payload, &res); err != nil || len(res.Errors) > 0 {
		t.Fatalf("%s: %s %v", name, m.Payload, err)
	}
	return res.Data
}

// at reads a nested field of a GraphQL result.
func at(data map[string]any, path ...string) any {
	var v any = data
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	return v
}

func (r *guideRun) waitConnected(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var out struct{ Node struct{ Status string } }
		r.s.OK(t, apitest.Request{Token: r.auth, Query: `query($id: ID!) { node(id: $id) { ... on Session { status } } }`,
			Vars: map[string]any{"id": r.state["sessionID"]}}, &out)
		if out.Node.Status == "CONNECTED" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("session still %s", out.Node.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDocs(t *testing.T) {
	// Pairing takes a moment, so that the pairing subscription sees a QR code first.
	s := apitest.New(t, testdb.Open(t, "sqlite", database.Options{}),
		func(o *apitest.Options) { o.SandboxPairAfter = 300 * time.Millisecond })
	r := &guideRun{s: s, state: map[string]any{}}
	const email, password = "ann@example.com", "a long passphrase"
	token := func(key string) func(*guideRun, map[string]any) {
		return func(r *guideRun, data map[string]any) {
			r.auth = at(data, key, "token").(string)
			r.userToken = r.auth
		}
	}
	session := func(r *guideRun, data map[string]any) { r.state["sessionID"] = at(data, "createSession", "id") }
	input := func(in map[string]any) func(map[string]any) map[string]any {
		return func(map[string]any) map[string]any { return map[string]any{"input": in} }
	}

	t.Run("dashboard", func(t *testing.T) {
		r.run(t, "dashboard.md", map[string]step{
			"SignUp": {vars: input(map[string]any{"email": email, "password": password, "name": "Ann"}), after: token("signUp")},
			"VerifyEmail": {vars: func(map[string]any) map[string]any {
				for _, m := range s.Mail.To(email) {
					if tok := verifyLink.FindStringSubmatch(m.Body); tok != nil {
						return map[string]any{"token": tok[1]}
					}
				}
				t.Fatal("no verification e-mail")
				return nil
			}},
			"LogIn":              {vars: input(map[string]any{"email": email, "password": password}), after: token("logIn")},
			"CreateOrganization": {vars: input(map[string]any{"name": "Acme"}), after: func(r *guideRun, data map[string]any) { r.state["id"] = at(data, "createOrganization", "id") }},
			"SwitchOrganization": {after: func(r *guideRun, data map[string]any) {
				if at(data, "switchOrganization", "organization", "name") != "Acme" {
					t.Fatalf("switched to %v", data)
				}
			}},
			"CreateSession": {vars: input(map[string]any{"name": "Support", "engine": "SANDBOX"}), after: session},
			"SessionPairing": {after: func(r *guideRun, data map[string]any) {
				if typ := at(data, "sessionPairing", "type"); typ != "QR_CODE" && typ != "PAIRED" {
					t.Fatalf("first pairing update: %v", data)
				}
			}},
		})
	})

	t.Run("integrators", func(t *testing.T) {
		wait := func(map[string]any) map[string]any { r.waitConnected(t); return nil }
		r.run(t, "integrators.md", map[string]step{
			"CreateAPIKey": {vars: input(map[string]any{"name": "CRM", "role": "ADMIN"}), after: func(r *guideRun, data map[string]any) {
				r.auth = at(data, "createAPIKey", "secret").(string) // from here on, as the integrator
			}},
			"CreateSession": {vars: input(map[string]any{"name": "CRM line", "engine": "SANDBOX"}), after: session},
			"Sessions":      {vars: wait},
			"SendMessage": {vars: func(st map[string]any) map[string]any {
				return map[string]any{"input": map[string]any{"sessionID": st["sessionID"], "to": "+15550000002", "text": "Hello", "idempotencyKey": "order-1234"}}
			}},
			"SimulateIncomingMessage": {vars: func(st map[string]any) map[string]any {
				return map[string]any{"input": map[string]any{"sessionID": st["sessionID"], "from": "+4915112345678", "text": "Hi there"}}
			}},
			"SimulateIncomingMessages": {vars: func(st map[string]any) map[string]any {
				return map[string]any{"input": map[string]any{"sessionID": st["sessionID"], "messages": []map[string]any{
					{"from": "+4915112345678", "text": "Are you open?"}, {"from": "+4915112345679", "text": "Is my order on its way?"}}}}
			}},
			"Messages": {after: func(r *guideRun, data map[string]any) {
				if edges, _ := at(data, "node", "messages", "edges").([]any); len(edges) != 4 {
					t.Fatalf("messages: %v", data)
				}
			}},
			"CreateWebhook": {vars: input(map[string]any{"url": "https://example.com/wagate", "eventTypes": []string{"MESSAGE_RECEIVED", "MESSAGE_STATUS"}})},
		})
	})

	t.Run("subscribers", func(t *testing.T) {
		r.auth = r.userToken
		r.run(t, "subscribers.md", map[string]step{
			"Events": {vars: func(map[string]any) map[string]any { return map[string]any{"after": "0"} }},
			"EventLog": {vars: func(map[string]any) map[string]any { return map[string]any{"first": 10} }, after: func(r *guideRun, data map[string]any) {
				if edges, _ := at(data, "organization", "events", "edges").([]any); len(edges) == 0 {
					t.Fatalf("no events: %v", data)
				}
			}},
		})
		runSubscriberSnippet(t, s, r.userToken, r.state["sessionID"].(string))
	})

	t.Run("webhook verification", func(t *testing.T) { runVerifySnippet(t) })
}

// subscriberHarness drives the guide's subscribeToEvents: two messages arrive, the
// connection drops, a third arrives while it is away, a fourth after; each must be seen
// once, in order, and the client must really have reconnected.
const subscriberHarness = `
const env = (k) => process.env[k];
const seen = [];
let socket, connects = 0;
const client = subscribeToEvents({ url: env('WAGATE_WS_URL'), token: env('WAGATE_TOKEN'), after: env('WAGATE_AFTER'),
  onEvent: (e) => seen.push(e) });
client.on('connected', (s) => { socket = s; connects++; });
const texts = () => seen.filter((e) => e.type === 'MESSAGE_RECEIVED').map((e) => e.payload.text);
async function simulate(text) {
  const res = await fetch(env('WAGATE_HTTP_URL'), { method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer ' + env('WAGATE_TOKEN') },
    body: JSON.stringify({ query: 'mutation($in: SimulateIncomingMessageInput!) { simulateIncomingMessage(input: $in) { id } }',
      variables: { in: { sessionID: env('WAGATE_SESSION_ID'), from: '+4915112345678', text } } }) });
  const body = await res.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
}
async function until(cond, what) {
  const end = Date.now() + 20000;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + what + '; received ' + JSON.stringify(texts()));
    await new Promise((r) => setTimeout(r, 20));
  }
}
try {
  await until(() => socket, 'the connection');
  await simulate('one');
  await simulate('two');
  await until(() => texts().length >= 2, 'two messages');
  socket.terminate(); // the network drops
  await simulate('three');
  await until(() => connects >= 2, 'a reconnect');
  await until(() => texts().length >= 3, 'the message sent while away');
  await simulate('four');
  await until(() => texts().length >= 4, 'four messages');
  await new Promise((r) => setTimeout(r, 200)); // duplicates would arrive now
  const cursors = seen.map((e) => Number(e.cursor));
  if (JSON.stringify(texts()) !== JSON.stringify(['one', 'two', 'three', 'four'])) throw new Error('received ' + JSON.stringify(texts()));
  if (cursors.some((c, i) => i > 0 && c <= cursors[i - 1])) throw new Error('cursors out of order ' + cursors);
  console.log('ok');
  process.exit(0);
} catch (err) {
  console.error(err);
  process.exit(1);
}
`

func runSubscriberSnippet(t *testing.T, s *apitest.Server, token, sessionID string) {
	t.Helper()
	node := requireGraphQLWSClient(t)
	var last struct {
		Organization struct {
			Events struct {
				Edges []struct{ Node struct{ Cursor string } }
			}
		}
	}
	s.OK(t, apitest.Request{Token: token, Query: `{ organization { events(last: 1) { edges { node { cursor } } } } }`}, &last)
	if len(last.Organization.Events.Edges) != 1 {
		t.Fatal("no events to resume after")
	}
	code := blocks(t, "subscribers.md", "js")[0] + subscriberHarness
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// --input-type=module resolves the snippet's imports from the working directory, where
	// the conformance client's pinned packages are installed.
	cmd := exec.CommandContext(ctx, node, "--input-type=module", "-e", code)
	cmd.Dir = graphqlWSDir
	cmd.Env = append(os.Environ(), "WAGATE_WS_URL=ws"+strings.TrimPrefix(s.URL, "http")+"/query", "WAGATE_HTTP_URL="+s.URL+"/query",
		"WAGATE_TOKEN="+token, "WAGATE_SESSION_ID="+sessionID, "WAGATE_AFTER="+last.Organization.Events.Edges[0].Node.Cursor)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("the subscriber snippet of docs/subscribers.md: %v\n%s", err, out)
	}
}

// verifyMain feeds the guide's Verify one request per line and prints its verdicts.
const verifyMain = `package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"verifydoc/webhooks"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(nil, 1<<20)
	for in.Scan() {
		var c struct {
			Secret  string
			Headers map[string]string
			Body    string
			Now     int64
		}
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			panic(err)
		}
		h := http.Header{}
		for k, v := range c.Headers {
			h.Set(k, v)
		}
		fmt.Println(webhooks.Verify(c.Secret, h, []byte(c.Body), time.Unix(c.Now, 0)) == nil)
	}
}
`

func runVerifySnippet(t *testing.T) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to compile the guide's verifier")
	}
	dir := t.TempDir()
	for name, content := range map[string]string{
		"go.mod":             "module verifydoc\n\ngo 1.22\n",
		"main.go":            verifyMain,
		"webhooks/verify.go": blocks(t, "integrators.md", "go")[0],
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	oldKey, newKey := []byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210fedcba9876543210")
	now := time.Unix(1735689600, 0)
	body := []byte(`{"id":"evt_01jf3k2v8q9m7x0c4d5e6f7g8h","type":"MESSAGE_RECEIVED","data":{"text":"hi"}}`)
	request := func(secret []byte, keys [][]byte, ts time.Time, body []byte) string {
		b, _ := json.Marshal(map[string]any{"Secret": webhook.FormatSecret(secret), "Body": string(body), "Now": now.Unix(),
			"Headers": map[string]string{"webhook-id": "evt_01jf3k2v8q9m7x0c4d5e6f7g8h", "webhook-timestamp": fmt.Sprint(ts.Unix()),
				"webhook-signature": webhook.SignatureHeader(keys, "evt_01jf3k2v8q9m7x0c4d5e6f7g8h", ts, body)}})
		return string(b)
	}
	cases := []struct {
		name, line string
		want       bool
	}{
		{"signed", request(newKey, [][]byte{newKey}, now, body), true},
		{"during a rotation, new secret", request(newKey, [][]byte{newKey, oldKey}, now, body), true},
		{"during a rotation, old secret", request(oldKey, [][]byte{newKey, oldKey}, now, body), true},
		{"another secret", request(oldKey, [][]byte{newKey}, now, body), false},
		{"tampered body", strings.Replace(request(newKey, [][]byte{newKey}, now, body), "hi", "ho", 1), false},
		{"replayed an hour later", request(newKey, [][]byte{newKey}, now.Add(-time.Hour), body), false},
	}
	var stdin bytes.Buffer
	for _, c := range cases {
		stdin.WriteString(c.line + "\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "run", ".")
	cmd.Dir, cmd.Stdin = dir, &stdin
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off", "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the Go verifier of docs/integrators.md does not build or run: %v\n%s", err, out)
	}
	got := strings.Fields(string(out))
	if len(got) != len(cases) {
		t.Fatalf("verdicts %q", got)
	}
	for i, c := range cases {
		if got[i] != fmt.Sprint(c.want) {
			t.Errorf("%s: Verify accepted=%s, want %v", c.name, got[i], c.want)
		}
	}
}
