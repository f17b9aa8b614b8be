package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
)

// The test binary doubles as the server, so the replicas below are real processes that
// can be killed, without building anything else.
func TestMain(m *testing.M) {
	if os.Getenv("WAGATE_TEST_RUN_SERVER") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type replica struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
}

func startReplica(t *testing.T, name, dsn string) *replica {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "WAGATE_TEST_RUN_SERVER=1", "DATABASE_URL="+dsn, "WAGATE_ADDR="+addr,
		"WAGATE_SECRET_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "WAGATE_DATA_DIR="+t.TempDir(),
		"WAGATE_WHATSAPP=false", "WAGATE_SANDBOX_PAIR_AFTER=0s", "WAGATE_LOG_LEVEL=warn")
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			t.Logf("%s: %s", name, s.Text())
		}
	}()
	r := &replica{t: t, cmd: cmd, addr: addr}
	t.Cleanup(func() { r.kill() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s never became ready", name)
		}
	}
}

func (r *replica) kill() {
	if r.cmd.ProcessState == nil {
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		_ = r.cmd.Wait()
	}
}

// try runs a GraphQL operation and reports whether it succeeded; only CONFLICT (the
// session is between replicas) is an acceptable failure.
func (r *replica) try(token, query string, vars map[string]any) bool {
	r.t.Helper()
	out := r.post(token, query, vars)
	if len(out.Errors) == 0 {
		return true
	}
	if out.Errors[0].Extensions.Code != "CONFLICT" {
		r.t.Fatalf("%s: %+v", query, out.Errors)
	}
	return false
}

type gqlResponse struct {
	Data   map[string]any
	Errors []struct {
		Message    string
		Extensions struct{ Code string }
	}
}

// do runs a GraphQL operation and returns its data, failing on errors.
func (r *replica) do(token, query string, vars map[string]any) map[string]any {
	r.t.Helper()
	out := r.post(token, query, vars)
	if out.Errors != nil {
		r.t.Fatalf("%s: %+v", query, out.Errors)
	}
	return out.Data
}

func (r *replica) post(token, query string, vars map[string]any) gqlResponse {
	r.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, "http://"+r.addr+"/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out gqlResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		r.t.Fatalf("%s: %v", query, err)
	}
	return out
}

// Two server processes on one PostgreSQL: requests go to either; when the one running a
// session is killed, the other takes the session over, and every event ingested and every
// message accepted meanwhile is delivered, once.
func TestReplicaProcessesFailover(t *testing.T) {
	db := testdb.Open(t, "postgres", database.Options{})
	a, b := startReplica(t, "A", db.DSN), startReplica(t, "B", db.DSN)

	data := a.do("", `mutation { signUp(input: {email: "ann@example.test", password: "a long passphrase", name: "Ann"}) { token } }`, nil)
	token := data["signUp"].(map[string]any)["token"].(string)
	data = a.do(token, `mutation { createSession(input: {name: "line", engine: SANDBOX}) { id } }`, nil)
	ses := data["createSession"].(map[string]any)["id"].(string)
	a.do(token, `mutation($id: ID!) { connectSession(id: $id) { id } }`, map[string]any{"id": ses})
	var phone string
	for deadline := time.Now().Add(10 * time.Second); phone == ""; time.Sleep(50 * time.Millisecond) {
		n := b.do(token, `query($id: ID!) { node(id: $id) { ... on Session { status phoneNumber } } }`, map[string]any{"id": ses})["node"].(map[string]any)
		if n["status"] == "CONNECTED" {
			phone, _ = n["phoneNumber"].(string)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session never connected: %v", n)
		}
	}

	// A subscriber on B.
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+b.addr+"/query", http.Header{"Sec-WebSocket-Protocol": {"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for _, m := range []string{
		`{"type":"connection_init","payload":{"authorization":"Bearer ` + token + `"}}`,
		`{"id":"1","type":"subscribe","payload":{"query":"subscription { events(types: [MESSAGE_RECEIVED, MESSAGE_SENT]) { type payload message { id } } }"}}`,
	} {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	type ev struct{ typ, message, text string }
	events := make(chan ev, 100)
	go func() {
		defer close(events)
		for {
			var m struct {
				Type    string
				Payload struct {
					Data struct {
						Events struct {
							Type    string
							Payload map[string]any
							Message struct{ ID string }
						}
					}
				}
			}
			if err := ws.ReadJSON(&m); err != nil {
				return
			}
			if m.Type == "next" {
				e := m.Payload.Data.Events
				text, _ := e.Payload["text"].(string)
				events <- ev{e.Type, e.Message.ID, text}
			}
		}
	}()

	simulate := func(r *replica, text string) {
		r.do(token, `mutation($s: ID!, $t: String!) { simulateIncomingMessage(input: {sessionID: $s, from: "+4915112345678", text: $t}) { id } }`,
			map[string]any{"s": ses, "t": text})
	}
	send := func(r *replica, text string) string {
		d := r.do(token, `mutation($in: SendMessageInput!) { sendMessage(input: $in) { id } }`,
			map[string]any{"in": map[string]any{"sessionID": ses, "to": phone, "text": text}})
		return d["sendMessage"].(map[string]any)["id"].(string)
	}
	received, sent := map[string]int{}, map[string]int{}
	await := func(what string, done func() bool) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for !done() {
			select {
			case e, ok := <-events:
				if !ok {
					t.Fatalf("%s: the subscription ended", what)
				}
				switch e.typ {
				case "MESSAGE_RECEIVED":
					received[e.text]++
				case "MESSAGE_SENT":
					sent[e.message]++
				}
			case <-timeout:
				t.Fatalf("%s: timed out; received %v, sent %v", what, received, sent)
			}
		}
	}

	// Through B, to the session A runs.
	simulate(b, "before")
	first := send(b, "sent before")
	await("before the failover", func() bool { return received["before"] == 1 && sent[first] == 1 })

	// Messages accepted by A just before it dies; they may or may not have left.
	var queued []string
	for i := range 3 {
		queued = append(queued, send(a, fmt.Sprint("before the crash ", i)))
	}
	// A dies. Messages accepted by B meanwhile wait in the outbox; inbound messages go to
	// whichever replica runs the session, once one does; B takes the session over.
	a.kill()
	for i := range 3 {
		queued = append(queued, send(b, fmt.Sprint("during ", i)))
	}
	var ingested []string
	for i := range 3 {
		text := fmt.Sprint("inbound during ", i)
		// Until the session is connected again a client is told CONFLICT and retries.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if ok := b.try(token, `mutation($s: ID!, $t: String!) { simulateIncomingMessage(input: {sessionID: $s, from: "+4915112345678", text: $t}) { id } }`,
				map[string]any{"s": ses, "t": text}); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%q was never accepted", text)
			}
		}
		ingested = append(ingested, text)
	}
	start := time.Now()
	await("the failover", func() bool {
		for _, text := range ingested {
			if received[text] == 0 {
				return false
			}
		}
		return sentAll(sent, queued)
	})
	t.Logf("B took the session over and sent the queued messages within %s", time.Since(start).Round(time.Millisecond))
	simulate(b, "after")
	await("after the failover", func() bool { return received["after"] == 1 && sentAll(sent, queued) })
	for id, n := range sent {
		if n != 1 {
			t.Fatalf("message %s sent %d times", id, n)
		}
	}
	if strings.Contains(fmt.Sprint(received), ":2") {
		t.Fatalf("an inbound message was delivered twice: %v", received)
	}
}

func sentAll(sent map[string]int, ids []string) bool {
	for _, id := range ids {
		if sent[id] == 0 {
			return false
		}
	}
	return true
}

// `wagate admin` writes to the database from another process: running replicas, which cached
// the account, hear of it from its notification (their cache would keep it for an hour).
func TestAdminCommandReachesRunningReplicas(t *testing.T) {
	db := testdb.Open(t, "postgres", database.Options{})
	t.Setenv("WAGATE_AUTH_CACHE_TTL", "1h")
	r := startReplica(t, "A", db.DSN)
	data := r.do("", `mutation { signUp(input: {email: "ann@example.test", password: "a long passphrase", name: "Ann"}) { token } }`, nil)
	token := data["signUp"].(map[string]any)["token"].(string)
	isAdmin := func() bool {
		return r.do(token, `{ viewer { isSuperAdmin } }`, nil)["viewer"].(map[string]any)["isSuperAdmin"] == true
	}
	if isAdmin() {
		t.Fatal("a super admin before the grant")
	}
	cfg, _, err := parseConfig([]string{"-database-url", db.DSN})
	if err != nil {
		t.Fatal(err)
	}
	if err := adminCommand(t.Context(), cfg, []string{"grant", "ann@example.test"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); !isAdmin(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the replica still does not see the grant 2 s after it")
		}
	}
}
