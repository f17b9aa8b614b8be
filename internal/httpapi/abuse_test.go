package httpapi_test

import (
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/auth"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/httpapi"
	"github.com/wagate/wagate/internal/ratelimit"
	"github.com/wagate/wagate/internal/testdb"
)

const logInMutation = `mutation($e: String!, $p: String!) { logIn(input: {email: $e, password: $p}) { token } }`

// rateLimitedServer limits log-ins to perIP per minute from one address and perAccount
// per 15 minutes at one address, and trusts the loopback proxy (the test) to name the
// client in X-Forwarded-For.
func rateLimitedServer(t *testing.T, perIP, perAccount int, trust string) *apitest.Server {
	t.Helper()
	return apitest.New(t, testdb.Open(t, "sqlite", database.Options{}), func(o *apitest.Options) {
		o.Auth = func(c *auth.Config) {
			c.LoginLimits = auth.LoginLimits{PerIP: ratelimit.Rate{Burst: perIP, Per: time.Minute},
				PerAccount: ratelimit.Rate{Burst: perAccount, Per: 15 * time.Minute}}
		}
		o.HTTP = func(c *httpapi.Config) {
			for _, p := range strings.Split(trust, ",") {
				c.TrustedProxies = append(c.TrustedProxies, netip.MustParsePrefix(p))
			}
		}
	})
}

func logIn(t *testing.T, s *apitest.Server, from, email, password string) *apitest.Response {
	t.Helper()
	_, r := postJSON(t, s, map[string]any{"query": logInMutation, "variables": map[string]any{"e": email, "p": password}},
		http.Header{"X-Forwarded-For": {from}})
	return r
}

// wantRateLimited fails t unless r is RATE_LIMITED with a wait in extensions.retryAfter.
func wantRateLimited(t *testing.T, r *apitest.Response) {
	t.Helper()
	wantCode(t, r, "RATE_LIMITED")
	if wait, _ := r.Errors[0].Extensions["retryAfter"].(float64); wait < 1 {
		t.Fatalf("retryAfter %v", r.Errors[0].Extensions["retryAfter"])
	}
}

func TestLogInRateLimits(t *testing.T) {
	t.Run("per account, whatever the address and the case", func(t *testing.T) {
		s := rateLimitedServer(t, 100, 3, "127.0.0.0/8")
		ann := s.SignUp(t, "Ann")
		for i, email := range []string{ann.Email, strings.ToUpper(ann.Email), " " + ann.Email} {
			wantCode(t, logIn(t, s, "198.51.100."+string(rune('1'+i)), email, "wrong password!"), "UNAUTHENTICATED")
		}
		// Spent: even the right password waits now, or guessing could go on.
		wantRateLimited(t, logIn(t, s, "198.51.100.9", strings.ToUpper(ann.Email), apitest.Password))
		wantRateLimited(t, logIn(t, s, "203.0.113.1", ann.Email, apitest.Password))
		s.Clock.Advance(5 * time.Minute) // one attempt back
		var out struct{ LogIn struct{ Token string } }
		r := logIn(t, s, "198.51.100.9", ann.Email, apitest.Password)
		if r.Decode(t, &out); len(r.Errors) > 0 || out.LogIn.Token == "" {
			t.Fatalf("log-in after the wait: %+v", r.Errors)
		}
		// A success forgives the failures before it.
		for range 3 {
			wantCode(t, logIn(t, s, "198.51.100.9", ann.Email, "wrong password!"), "UNAUTHENTICATED")
		}
		wantRateLimited(t, logIn(t, s, "198.51.100.9", ann.Email, "wrong password!"))

		// An address without an account answers exactly the same: the limit does not
		// tell which addresses have one.
		for range 3 {
			r := logIn(t, s, "198.51.100.10", "nobody@example.test", "wrong password!")
			wantCode(t, r, "UNAUTHENTICATED")
			if r.Errors[0].Message != "wrong e-mail or password" {
				t.Fatalf("message %q", r.Errors[0].Message)
			}
		}
		wantRateLimited(t, logIn(t, s, "198.51.100.10", "NOBODY@example.test", "wrong password!"))
		wantCode(t, logIn(t, s, "198.51.100.10", "somebody@example.test", "wrong password!"), "UNAUTHENTICATED")
	})

	t.Run("per address, log-ins and sign-ups together", func(t *testing.T) {
		s := rateLimitedServer(t, 4, 100, "127.0.0.0/8,::1/128")
		signUp := func(from string) *apitest.Response {
			_, r := postJSON(t, s, map[string]any{
				"query":     `mutation($e: String!) { signUp(input: {email: $e, password: "a long passphrase", name: "X"}) { token } }`,
				"variables": map[string]any{"e": apitest.UniqueEmail(s, "x")},
			}, http.Header{"X-Forwarded-For": {from}})
			return r
		}
		for _, tt := range []struct {
			name, from  string
			rateLimited bool
			signUp      bool
		}{
			{name: "1", from: "203.0.113.1", signUp: true},
			{name: "2", from: "203.0.113.1"},
			{name: "3", from: "203.0.113.1", signUp: true},
			{name: "4", from: "203.0.113.1"},
			{name: "5: log-in over the limit", from: "203.0.113.1", rateLimited: true},
			{name: "6: sign-up over the limit", from: "203.0.113.1", rateLimited: true, signUp: true},
			{name: "another address", from: "203.0.113.2"},
			{name: "a forged hop left of the real client does not help", from: "203.0.113.2, 203.0.113.1", rateLimited: true},
			{name: "IPv6: 1", from: "2001:db8::1"},
			{name: "IPv6: 2", from: "2001:db8::2"},
			{name: "IPv6: 3", from: "2001:db8::3"},
			{name: "IPv6: 4", from: "2001:db8::4"},
			{name: "IPv6: the same /64", from: "2001:db8::ffff", rateLimited: true},
			{name: "IPv6: another /64", from: "2001:db8:0:1::1"},
		} {
			var r *apitest.Response
			if tt.signUp {
				r = signUp(tt.from)
			} else {
				r = logIn(t, s, tt.from, "nobody@example.test", "wrong password!")
			}
			if tt.rateLimited {
				wantRateLimited(t, r)
			} else if r.Code() == "RATE_LIMITED" {
				t.Fatalf("%s: %+v", tt.name, r.Errors)
			}
		}
		s.Clock.Advance(15 * time.Second) // a fifth of a minute: one attempt back
		wantCode(t, logIn(t, s, "203.0.113.1", "nobody@example.test", "wrong password!"), "UNAUTHENTICATED")
		wantRateLimited(t, logIn(t, s, "203.0.113.1", "nobody@example.test", "wrong password!"))
	})

	t.Run("X-Forwarded-For from an untrusted peer is ignored", func(t *testing.T) {
		s := rateLimitedServer(t, 2, 100, "10.0.0.0/8") // the test's loopback is not trusted
		for i, from := range []string{"203.0.113.1", "203.0.113.2", "203.0.113.3"} {
			r := logIn(t, s, from, "nobody@example.test", "wrong password!")
			if limited := r.Code() == "RATE_LIMITED"; limited != (i == 2) {
				t.Fatalf("attempt %d: %+v", i+1, r.Errors)
			}
		}
	})

	t.Run("over WebSocket", func(t *testing.T) {
		s := rateLimitedServer(t, 2, 100, "10.0.0.0/8")
		ann := s.SignUp(t, "Ann") // the first attempt
		wantCode(t, logIn(t, s, "", "nobody@example.test", "wrong password!"), "UNAUTHENTICATED")
		c := dialWS(t, s, "graphql-transport-ws", nil)
		send(t, c, wsMsg{Type: "connection_init", Payload: initPayload(ann.Token, "")})
		if m, err := next(t, c); err != nil || m.Type != "connection_ack" {
			t.Fatalf("want connection_ack, got %+v %v", m, err)
		}
		send(t, c, wsMsg{ID: "1", Type: "subscribe", Payload: []byte(`{"query":` +
			`"mutation { logIn(input: {email: \"nobody@example.test\", password: \"wrong password!\"}) { token } }"}`)})
		m, err := next(t, c)
		if err != nil || !strings.Contains(string(m.Payload), "RATE_LIMITED") {
			t.Fatalf("want RATE_LIMITED, got %+v %s %v", m, m.Payload, err)
		}
	})
}

func TestNoUserEnumeration(t *testing.T) {
	s := apitest.New(t, testdb.Open(t, "sqlite", database.Options{}))
	ann, bob := s.SignUp(t, "Ann"), s.SignUp(t, "Bob")

	t.Run("log-in", func(t *testing.T) {
		unknown := logIn(t, s, "", "nobody@example.test", apitest.Password)
		wrong := logIn(t, s, "", ann.Email, "wrong password!")
		if unknown.Code() != "UNAUTHENTICATED" || len(unknown.Errors) != 1 || len(wrong.Errors) != 1 ||
			unknown.Errors[0].Message != wrong.Errors[0].Message || unknown.Status != wrong.Status {
			t.Fatalf("unknown address %d %+v, wrong password %d %+v", unknown.Status, unknown.Errors, wrong.Status, wrong.Errors)
		}
	})
	t.Run("invitations", func(t *testing.T) {
		// Inviting an address with an account and one without answer alike, and both mail.
		invite := func(email string) map[string]any {
			var out struct{ InviteMember map[string]any }
			s.OK(t, q(ann, ann.OrgID, `mutation($e: String!) { inviteMember(input: {email: $e, role: MEMBER}) {
				email role status invitedBy { id } expiresAt } }`, map[string]any{"e": email}), &out)
			delete(out.InviteMember, "email")
			delete(out.InviteMember, "expiresAt")
			if len(s.Mail.To(email)) == 0 {
				t.Fatalf("no invitation mailed to %s", email)
			}
			return out.InviteMember
		}
		withAccount, without := invite(bob.Email), invite("nobody@example.test")
		if len(withAccount) == 0 || !reflect.DeepEqual(withAccount, without) {
			t.Fatalf("with an account %v, without %v", withAccount, without)
		}
	})
}

func TestCORS(t *testing.T) {
	const app = "https://app.example.com"
	open := limitsServer(t, func(c *httpapi.Config) { c.AllowedOrigins = []string{app + "/"} })
	closed := limitsServer(t, nil)
	for _, tt := range []struct {
		name           string
		s              *apitest.Server
		method, origin string
		wantStatus     int
		wantOrigin     string
	}{
		{"preflight from a listed origin", open, http.MethodOptions, app, http.StatusNoContent, app},
		{"preflight from another origin", open, http.MethodOptions, "https://evil.example", http.StatusOK, ""},
		{"request from a listed origin", open, http.MethodPost, app, http.StatusOK, app},
		{"request from another origin", open, http.MethodPost, "https://evil.example", http.StatusOK, ""},
		{"by default, same origin only", closed, http.MethodOptions, app, http.StatusOK, ""},
		{"by default, same origin only (request)", closed, http.MethodPost, app, http.StatusOK, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, tt.s.URL+"/query", strings.NewReader(`{"query":"{ viewer { role } }"}`))
			req.Header.Set("Origin", tt.origin)
			req.Header.Set("Content-Type", "application/json")
			if tt.method == http.MethodOptions {
				req.Header.Set("Access-Control-Request-Method", "POST")
				req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, x-organization-id")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			h := resp.Header
			if resp.StatusCode != tt.wantStatus || h.Get("Access-Control-Allow-Origin") != tt.wantOrigin ||
				h.Get("Access-Control-Allow-Credentials") != "" {
				t.Fatalf("%d, headers %v", resp.StatusCode, h)
			}
			if tt.wantStatus == http.StatusNoContent && (!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
				!strings.Contains(h.Get("Access-Control-Allow-Headers"), "authorization")) {
				t.Fatalf("preflight headers %v", h)
			}
		})
	}
	t.Run("WebSocket origins follow the same setting", func(t *testing.T) {
		c := dialWS(t, open, "graphql-transport-ws", http.Header{"Origin": {app}})
		c.Close()
	})
}
