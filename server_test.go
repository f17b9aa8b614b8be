package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wagate/wagate/ent/user"
	"github.com/wagate/wagate/internal/viewer"
)

func TestParseConfig(t *testing.T) {
	t.Setenv("WAGATE_ADDR", "127.0.0.1:9999")
	t.Setenv("WAGATE_TOKEN_TTL", "2h")
	cfg, args, err := parseConfig([]string{"-data-dir", "/tmp/x", "admin", "grant", "a@b.c"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.addr != "127.0.0.1:9999" || cfg.tokenTTL != 2*time.Hour || cfg.dataDir != "/tmp/x" || !cfg.introspection {
		t.Fatalf("config: %+v", cfg)
	}
	if len(args) != 3 || args[0] != "admin" {
		t.Fatalf("args: %q", args)
	}
	if cfg.dsn() != "file:/tmp/x/wagate.db?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_txlock=immediate" {
		t.Fatalf("dsn: %s", cfg.dsn())
	}
	if _, _, err := parseConfig([]string{"-token-ttl", "-1h"}); err == nil {
		t.Fatal("accepted a negative token TTL")
	}
	if cfg.webhookPrivate || cfg.webhookWorkers != 4 || cfg.webhookTimeout != 10*time.Second || cfg.secretKey != "" {
		t.Fatalf("webhook defaults: %+v", cfg)
	}
	t.Setenv("WAGATE_WEBHOOK_ALLOW_PRIVATE", "true")
	t.Setenv("WAGATE_SECRET_KEY", "k")
	if cfg, _, err := parseConfig(nil); err != nil || !cfg.webhookPrivate || cfg.secretKey != "k" {
		t.Fatalf("webhook settings from the environment: %+v %v", cfg, err)
	}
	if _, _, err := parseConfig([]string{"-webhook-workers", "-1"}); err == nil {
		t.Fatal("accepted negative webhook workers")
	}
}

// The operator appoints super admins with the admin subcommand or WAGATE_SUPER_ADMINS,
// and only for accounts that exist.
func TestSuperAdminAppointment(t *testing.T) {
	ctx := context.Background()
	cfg, _, err := parseConfig([]string{"-data-dir", t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	db, err := openDB(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sys := viewer.System(ctx, "test")
	for _, email := range []string{"ann@example.test", "bob@example.test"} {
		if err := db.Client.User.Create().SetEmail(email).SetPasswordHash("x").Exec(sys); err != nil {
			t.Fatal(err)
		}
	}
	isAdmin := func(email string) bool {
		return db.Client.User.Query().Where(user.Email(email)).OnlyX(sys).IsSuperAdmin
	}

	if err := adminCommand(ctx, cfg, []string{"grant", "ANN@example.test"}); err != nil || !isAdmin("ann@example.test") {
		t.Fatalf("grant: %v", err)
	}
	if err := adminCommand(ctx, cfg, []string{"revoke", "ann@example.test"}); err != nil || isAdmin("ann@example.test") {
		t.Fatalf("revoke: %v", err)
	}
	if err := adminCommand(ctx, cfg, []string{"grant", "nobody@example.test"}); err == nil {
		t.Fatal("granted a missing account")
	}
	if err := adminCommand(ctx, cfg, []string{"promote", "ann@example.test"}); err == nil {
		t.Fatal("accepted an unknown subcommand")
	}

	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if err := grantConfiguredSuperAdmins(ctx, db, " bob@example.test, carl@example.test ,", log); err != nil {
		t.Fatal(err)
	}
	if !isAdmin("bob@example.test") {
		t.Fatal("WAGATE_SUPER_ADMINS did not grant bob")
	}
	if !bytes.Contains(logs.Bytes(), []byte("carl@example.test")) {
		t.Fatalf("missing account not reported: %s", logs.String())
	}
	if n := db.Client.User.Query().CountX(sys); n != 2 {
		t.Fatalf("%d users: the setting must not create accounts", n)
	}
}

// On PostgreSQL each replica would generate its own key and fail to sign the others'
// webhooks: serve refuses to start without WAGATE_SECRET_KEY, before touching the database.
func TestServeOnPostgresNeedsASecretKey(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://wagate@127.0.0.1:1/none?sslmode=disable&connect_timeout=1")
	t.Setenv("WAGATE_SECRET_KEY", "")
	cfg, _, err := parseConfig([]string{"-data-dir", t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	err = serve(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "WAGATE_SECRET_KEY is required") || !strings.Contains(err.Error(), "every replica") {
		t.Fatalf("serve: %v", err)
	}
}

// serve answers requests, and returns cleanly once its context is cancelled (SIGINT/SIGTERM).
func TestServeShutsDownGracefully(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	metricsAddr := ln.Addr().String()
	ln.Close()
	cfg, _, err := parseConfig([]string{"-data-dir", t.TempDir(), "-addr", addr, "-metrics-addr", metricsAddr, "-metrics-token", "scrape"})
	if err != nil {
		t.Fatal(err)
	}
	goroutines := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()

	var resp *http.Response
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, err = http.Get("http://" + addr + "/readyz"); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("server never answered: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz: %d", resp.StatusCode)
	}
	// With WAGATE_METRICS_ADDR, /metrics is served there only, behind its token.
	for _, c := range []struct {
		url, token string
		want       int
	}{{"http://" + addr + "/metrics", "scrape", 404}, {"http://" + metricsAddr + "/metrics", "", 401}, {"http://" + metricsAddr + "/metrics", "scrape", 200}} {
		req, _ := http.NewRequest(http.MethodGet, c.url, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want || c.want == 200 && !strings.Contains(string(body), `wagate_http_requests_total{method="GET",route="/readyz",status="200"}`) {
			t.Fatalf("%s with token %q: %d, want %d\n%s", c.url, c.token, resp.StatusCode, c.want, body)
		}
	}
	// Both engines are on by default: a WHATSAPP session can be created (connecting it
	// needs WhatsApp's servers, which tests cannot reach).
	post := func(token, query string) map[string]any {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/query", strings.NewReader(query))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out["errors"] != nil {
			t.Fatalf("%s: %v %v", query, out, err)
		}
		return out["data"].(map[string]any)
	}
	data := post("", `{"query":"mutation { signUp(input: {email: \"op@example.test\", password: \"a long passphrase\", name: \"Op\"}) { token } }"}`)
	token := data["signUp"].(map[string]any)["token"].(string)
	data = post(token, `{"query":"mutation { createSession(input: {name: \"phone\", engine: WHATSAPP}) { engine status } }"}`)
	if ses := data["createSession"].(map[string]any); ses["engine"] != "WHATSAPP" || ses["status"] != "NEW" {
		t.Fatalf("createSession: %v", ses)
	}
	// An open subscription is closed cleanly, with a close frame, by the shutdown.
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/query", http.Header{"Sec-WebSocket-Protocol": {"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for _, m := range []string{
		`{"type":"connection_init","payload":{"authorization":"Bearer ` + token + `"}}`,
		`{"id":"1","type":"subscribe","payload":{"query":"subscription { events { cursor } }"}}`,
	} {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if _, ack, err := ws.ReadMessage(); err != nil || !strings.Contains(string(ack), "connection_ack") {
		t.Fatalf("want connection_ack, got %s %v", ack, err)
	}

	cancel()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, m, err := ws.ReadMessage()
		if err == nil {
			t.Logf("before closing: %s", m)
			continue
		}
		if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
			t.Fatalf("want a normal close frame at shutdown, got %v", err)
		}
		break
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not return after cancellation")
	}
	// Everything serve started has stopped: a few runtime goroutines (the HTTP client's idle
	// connections, the test's own) are all that may remain.
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > goroutines+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after serve returned, %d before:\n%s", runtime.NumGoroutine(), goroutines, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
