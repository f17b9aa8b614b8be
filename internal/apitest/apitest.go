// Package apitest runs wagate's HTTP API on a real database behind an httptest server and
// talks GraphQL to it, the way dashboards and integrators do.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"entgo.io/ent/dialect"

	"github.com/wagate/wagate/internal/auth"
	"github.com/wagate/wagate/internal/cluster"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/events"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/httpapi"
	"github.com/wagate/wagate/internal/mail"
	"github.com/wagate/wagate/internal/metrics"
	"github.com/wagate/wagate/internal/reqlog"
	"github.com/wagate/wagate/internal/sessions"
	"github.com/wagate/wagate/internal/tenancy"
	"github.com/wagate/wagate/internal/viewer"
	"github.com/wagate/wagate/internal/webhook"
	"github.com/wagate/wagate/internal/whatsapp"
	"github.com/wagate/wagate/internal/whatsapp/sandbox"
	"github.com/wagate/wagate/internal/wsgorilla"
)

// Server is a running API.
type Server struct {
	URL  string
	DB   *database.DB
	Auth *auth.Service
	// Clock is the time the services see; tests move it to expire tokens and invitations.
	Clock *Clock
	// Mail holds every e-mail the server sent.
	Mail *Mailbox
	// Manager runs the sessions; Sandbox is their virtual WhatsApp network.
	Manager *whatsapp.Manager
	Sandbox *sandbox.Network
	// Webhooks is the webhook service; no delivery worker runs until StartWebhookWorker.
	Webhooks *webhook.Service
	// Metrics is the server's own registry, served on /metrics.
	Metrics *metrics.Metrics
	seq     atomic.Int64
	stop    func()
}

// Stop shuts the server down before the test ends (a replica leaving).
func (s *Server) Stop() { s.stop() }

// Mailbox records e-mails instead of sending them.
type Mailbox struct {
	mu   sync.Mutex
	sent []mail.Message
}

// Send records m.
func (b *Mailbox) Send(_ context.Context, m mail.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent = append(b.sent, m)
	return nil
}

// To returns the messages sent to addr, oldest first.
func (b *Mailbox) To(addr string) []mail.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []mail.Message
	for _, m := range b.sent {
		if m.To == addr {
			out = append(out, m)
		}
	}
	return out
}

// Clock is a settable clock.
type Clock struct{ offset atomic.Int64 }

// Now returns the wall clock moved by the offset.
func (c *Clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// cheapHash keeps argon2id honest but fast enough for hundreds of sign-ups per test.
var cheapHash = auth.HashParams{MemoryKiB: 64, Time: 1, Threads: 1}

// Options change the server a test runs.
type Options struct {
	// SandboxPairAfter delays sandbox pairing (0: pair at once).
	SandboxPairAfter time.Duration
	// SendPerMinute paces sessions (0: the default).
	SendPerMinute int
	// WebhookSSRFGuard refuses private webhook targets, as production does; tests leave it
	// off by default so that webhooks can reach local receivers.
	WebhookSSRFGuard bool
	// WebhookResolver resolves webhook hosts (nil: the system's).
	WebhookResolver webhook.Resolver
	// WebSocketWriteTimeout disconnects slow subscribers (0: the default).
	WebSocketWriteTimeout time.Duration
	// Network is the sandbox network (nil: one of the server's own). Replicas share one,
	// as they share WhatsApp.
	Network *sandbox.Network
	// ClaimEvery is how often a replica looks for sessions nobody runs (0: the default).
	ClaimEvery time.Duration
	// SendBuffer shrinks the kernel send buffer of accepted connections (0: the
	// system's), so a peer that stops reading stalls the server after a few frames.
	SendBuffer int
	// LogTo receives the server's logs as JSON lines, debug level included (nil: none).
	LogTo io.Writer
	// Recheck is how often subscribers check their access without a hint (0: the default).
	Recheck time.Duration
	// Auth and HTTP change the configuration further (limits, proxies, origins).
	Auth func(*auth.Config)
	HTTP func(*httpapi.Config)
}

// New starts the API on db.
func New(t testing.TB, db *database.DB, options ...func(*Options)) *Server {
	var o Options
	for _, opt := range options {
		opt(&o)
	}
	t.Helper()
	clock := &Clock{}
	authCfg := auth.Config{Hash: cheapHash, Now: clock.Now}
	if o.Auth != nil {
		o.Auth(&authCfg)
	}
	authn, err := auth.New(db.Client, authCfg)
	if err != nil {
		t.Fatalf("auth: %v", err)
	}
	authn.WatchChanges(db.Client)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if o.LogTo != nil {
		log = slog.New(slog.NewJSONHandler(o.LogTo, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	log = slog.New(reqlog.Handler(log.Handler()))
	m := metrics.New()
	box := &Mailbox{}
	net := o.Network
	if net == nil {
		net = sandbox.New(sandbox.Options{PairAfter: o.SandboxPairAfter})
		t.Cleanup(net.Close)
	}
	keys, err := webhook.NewKeyring(testKey)
	if err != nil {
		t.Fatal(err)
	}
	hooks := webhook.New(db.Client, webhook.Options{Keys: keys, AllowPrivate: !o.WebhookSSRFGuard, Now: clock.Now,
		Resolver: o.WebhookResolver, Log: log, Metrics: m})
	eventLog := events.New(db.Client, log)
	if o.Recheck > 0 {
		eventLog.Recheck = o.Recheck
	}
	eventLog.WatchAccess(db.Client)
	eventLog.Webhooks = hooks
	eventLog.Metrics = m
	var node *cluster.Node
	var replicas *whatsapp.Cluster
	lanes := 1
	if db.Dialect == dialect.Postgres { // as in production: every server is a replica
		lanes = 2
		node = cluster.Join(db.DSN, db.SQL, log)
		if err := eventLog.Distribute(node.Bus); err != nil {
			t.Fatal(err)
		}
		if err := authn.Distribute(node.Bus); err != nil {
			t.Fatal(err)
		}
		if err := hooks.Distribute(node.Bus); err != nil {
			t.Fatal(err)
		}
		replicas = &whatsapp.Cluster{Bus: node.Bus, Locks: node.Locks, ClaimEvery: o.ClaimEvery}
	}
	manager := whatsapp.NewManager(db.Client, []whatsapp.Engine{net}, whatsapp.ManagerOptions{Log: log, Now: clock.Now,
		Events: eventLog, Cluster: replicas, IngestLanes: lanes, BulkInbound: db.Dialect == dialect.Postgres})
	if err := manager.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	httpCfg := httpapi.Config{
		Introspection:         true,
		WebSocketWriteTimeout: o.WebSocketWriteTimeout,
		Tenancy:               tenancy.Options{Mail: box, Log: log, Now: clock.Now, InvitationURL: "https://app.example.test/accept?token={token}"},
		Sessions:              sessions.Options{Now: clock.Now, SendPerMinute: o.SendPerMinute},
	}
	if o.HTTP != nil {
		o.HTTP(&httpCfg)
	}
	h := httpapi.New(httpCfg, httpapi.Deps{Client: db.Client, SQL: db.SQL, Auth: authn, Log: log, Manager: manager, Sandbox: net, Events: eventLog, Cluster: node,
		Webhooks: hooks, Metrics: m})
	ts := httptest.NewUnstartedServer(h)
	ts.Config.BaseContext = baseContext
	if o.SendBuffer > 0 {
		ts.Listener = smallSendBuffers{ts.Listener, o.SendBuffer}
	}
	ts.Start()
	stop := sync.OnceFunc(func() {
		ts.CloseClientConnections()
		ts.Close()
		manager.Stop()
		if node != nil {
			node.Close()
		}
	})
	t.Cleanup(stop)
	return &Server{URL: ts.URL, DB: db, Auth: authn, Clock: clock, Mail: box, Manager: manager, Sandbox: net,
		Webhooks: hooks, Metrics: m, stop: stop}
}

// baseContext lets WebSockets leave net/http's goroutines, as in production (see
// wsgorilla.Reap); they live until they close.
func baseContext(net.Listener) context.Context { return wsgorilla.Lifetime(context.Background()) }

type smallSendBuffers struct {
	net.Listener
	size int
}

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(l.size)
	}
	return c, err
}

// testKey encrypts webhook secrets in tests.
var testKey = []byte("0123456789abcdef0123456789abcdef")

// StartWebhookWorker runs a delivery worker until the test ends. Unless opts says
// otherwise it retries quickly: 50 ms, then 100 ms, 200 ms… (ten retries), without jitter.
func (s *Server) StartWebhookWorker(t testing.TB, opts webhook.WorkerOptions) *webhook.Worker {
	t.Helper()
	opts.Dialect = s.DB.Dialect
	if opts.Schedule == nil {
		for i := range 10 {
			opts.Schedule = append(opts.Schedule, 50*time.Millisecond<<i)
		}
	}
	if opts.Jitter == 0 {
		opts.Jitter = -1
	}
	if opts.Poll == 0 {
		opts.Poll = 50 * time.Millisecond
	}
	w := s.Webhooks.NewWorker(opts)
	w.Start()
	t.Cleanup(func() { w.Stop(context.Background()) })
	return w
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Request is one GraphQL request.
type Request struct {
	Token string
	// Org is sent as X-Organization-ID.
	Org   string
	Query string
	Vars  map[string]any
}

// Error is a GraphQL error.
type Error struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// Response is a decoded GraphQL response.
type Response struct {
	Status int
	Data   json.RawMessage `json:"data"`
	Errors []Error         `json:"errors"`
}

// Code returns the first error's extensions.code, or "" when there is no error.
func (r *Response) Code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// Decode unmarshals data into v.
func (r *Response) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Data, v); err != nil {
		t.Fatalf("decoding %s: %v", r.Data, err)
	}
}

// Do sends req and decodes the answer.
func (s *Server) Do(t testing.TB, req Request) *Response {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": req.Query, "variables": req.Vars})
	hreq, err := http.NewRequest(http.MethodPost, s.URL+"/query", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if req.Token != "" {
		hreq.Header.Set("Authorization", "Bearer "+req.Token)
	}
	if req.Org != "" {
		hreq.Header.Set("X-Organization-ID", req.Org)
	}
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatalf("POST /query: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := &Response{Status: resp.StatusCode}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("decoding response (%d) %s: %v", resp.StatusCode, raw, err)
	}
	if resp.StatusCode >= 500 {
		t.Fatalf("server error %d: %s", resp.StatusCode, raw)
	}
	for _, e := range out.Errors {
		if e.Extensions["code"] == "INTERNAL" {
			t.Fatalf("internal error: %s", raw)
		}
	}
	return out
}

// OK sends req and fails the test on any error.
func (s *Server) OK(t testing.TB, req Request, v any) {
	t.Helper()
	r := s.Do(t, req)
	if len(r.Errors) > 0 {
		t.Fatalf("unexpected errors for %s: %+v", req.Query, r.Errors)
	}
	if v != nil {
		r.Decode(t, v)
	}
}

// User is a signed-up account.
type User struct {
	ID, Email, Token string
	// OrgID is the user's personal organization.
	OrgID string
}

// Password is every test user's password.
const Password = "correct horse battery staple"

// UniqueEmail returns an address no other test user of s has.
func UniqueEmail(s *Server, name string) string {
	return fmt.Sprintf("%s-%d@example.test", strings.ToLower(name), s.seq.Add(1))
}

// SignUp creates a user with a unique e-mail derived from name, and verifies the address.
func (s *Server) SignUp(t testing.TB, name string) *User {
	t.Helper()
	u := s.SignUpUnverified(t, name)
	s.VerifyEmail(t, u)
	return u
}

// SignUpUnverified creates a user who has not followed the verification link.
func (s *Server) SignUpUnverified(t testing.TB, name string) *User {
	t.Helper()
	email := UniqueEmail(s, name)
	var out struct {
		SignUp struct {
			Token        string
			User         struct{ ID string }
			Organization struct{ ID string }
		}
	}
	s.OK(t, Request{
		Query: `mutation($in: SignUpInput!) { signUp(input: $in) { token user { id } organization { id } } }`,
		Vars:  map[string]any{"in": map[string]any{"email": email, "password": Password, "name": name}},
	}, &out)
	return &User{ID: out.SignUp.User.ID, Email: email, Token: out.SignUp.Token, OrgID: out.SignUp.Organization.ID}
}

// AddMember adds u to org with role, acting as by; it returns the membership id.
func (s *Server) AddMember(t testing.TB, by *User, org string, u *User, role string) string {
	t.Helper()
	var out struct{ AddMember struct{ ID string } }
	s.OK(t, Request{Token: by.Token, Org: org,
		Query: `mutation($in: AddMemberInput!) { addMember(input: $in) { id } }`,
		Vars:  map[string]any{"in": map[string]any{"email": u.Email, "role": role}},
	}, &out)
	return out.AddMember.ID
}

// MakeSuperAdmin sets the platform flag as the operator would.
func (s *Server) MakeSuperAdmin(t testing.TB, u *User) {
	t.Helper()
	err := s.DB.Client.User.UpdateOneID(gid.ID(u.ID)).SetIsSuperAdmin(true).
		Exec(viewer.System(context.Background(), "test-operator"))
	if err != nil {
		t.Fatalf("granting super admin: %v", err)
	}
}

// Key is an API key.
type Key struct{ ID, Secret string }

// CreateAPIKey creates a key with role in org, acting as by.
func (s *Server) CreateAPIKey(t testing.TB, by *User, org, role string) *Key {
	t.Helper()
	var out struct {
		CreateAPIKey struct {
			Secret string
			APIKey struct{ ID string }
		}
	}
	s.OK(t, Request{Token: by.Token, Org: org,
		Query: `mutation($r: Role!) { createAPIKey(input: {name: "test key", role: $r}) { secret apiKey { id } } }`,
		Vars:  map[string]any{"r": role}}, &out)
	return &Key{ID: out.CreateAPIKey.APIKey.ID, Secret: out.CreateAPIKey.Secret}
}

// MembershipOf returns the id of user's membership in org, as seen by by.
func (s *Server) MembershipOf(t testing.TB, by *User, org, user string) string {
	t.Helper()
	var out struct {
		Organization struct {
			Members struct {
				Edges []struct {
					Node struct {
						ID   string
						User struct{ ID string }
					}
				}
			}
		}
	}
	s.OK(t, Request{Token: by.Token, Org: org, Query: `{ organization { members { edges { node { id user { id } } } } } }`}, &out)
	for _, e := range out.Organization.Members.Edges {
		if e.Node.User.ID == user {
			return e.Node.ID
		}
	}
	t.Fatalf("%s is not a member of %s", user, org)
	return ""
}

var verificationLink = regexp.MustCompile(`token=(wev_[A-Za-z0-9_-]{43})`)

// VerifyEmail follows the verification link mailed to u at sign-up.
func (s *Server) VerifyEmail(t testing.TB, u *User) {
	t.Helper()
	for _, m := range s.Mail.To(u.Email) {
		if tok := verificationLink.FindStringSubmatch(m.Body); tok != nil {
			var out struct{ VerifyEmail bool }
			s.OK(t, Request{Query: `mutation($t: String!) { verifyEmail(token: $t) }`, Vars: map[string]any{"t": tok[1]}}, &out)
			if !out.VerifyEmail {
				t.Fatal("verifyEmail returned false")
			}
			return
		}
	}
	t.Fatalf("no verification e-mail to %s", u.Email)
}
