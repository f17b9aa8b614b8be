package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
)

// graphqlWSDir holds the reference client's conformance script and its pinned npm
// dependencies (graphql-ws, ws, graphql).
var graphqlWSDir = filepath.Join("testdata", "graphql-ws")

// graphqlWSChecks are the checks client.mjs must report, all passing.
var graphqlWSChecks = []string{
	"invalid token closes with 4401",
	"missing credentials close with 4401",
	"a foreign organizationId closes with 4403",
	"token in connectionParams gets connection_ack",
	"subscription receives live events in order",
	"live events carry increasing cursors",
	"complete (unsubscribe) ends the subscription without error",
	"an idle client closes the socket normally (1000)",
	"resume with after replays exactly the events after the cursor",
	"replayed cursors continue after the resume cursor",
	"after the replay the stream goes on live with no duplicate",
	"API key in connectionParams gets connection_ack",
	"API key acts as itself in its own organization",
	"API key subscription receives events",
	"keepAlive pings are answered with pongs",
	"complete ends one subscription cleanly",
	"the other subscription on the socket goes on",
	"no next or error for a completed subscription",
	"the socket closes normally (1000) once the last subscription completes",
	"a query over the WebSocket",
	"a mutation over the WebSocket",
	"the mutation's event reaches a subscription on the same socket",
	"no client saw a protocol error or an abnormal close",
}

// TestGraphQLWSConformance runs the reference JavaScript client of graphql-transport-ws
// (npm graphql-ws) against the real server: authentication and its close codes, live and
// resumed event subscriptions, API keys, keep-alive, complete, and queries and mutations over
// the socket. It needs Node.js ≥ 20 and the npm dependencies of testdata/graphql-ws
// (`make test` installs them with npm ci). Without them the test is skipped, except with
// CI=true, where it fails. When only node_modules is missing and npm is on PATH, the test
// runs npm ci itself, so a plain `go test` works too.
func TestGraphQLWSConformance(t *testing.T) {
	node := requireGraphQLWSClient(t)

	// SQLite only: the subject is the WebSocket protocol, not storage (the events tests run
	// both databases).
	s := apitest.New(t, testdb.Open(t, "sqlite", database.Options{}))
	ann, bob := s.SignUp(t, "Ann"), s.SignUp(t, "Bob")
	line := connectedSandbox(t, s, ann, ann.OrgID, "graphql-ws")
	key := s.CreateAPIKey(t, ann, ann.OrgID, "MEMBER")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client.mjs")
	cmd.Dir = graphqlWSDir
	cmd.Env = append(os.Environ(),
		"WAGATE_WS_URL=ws"+strings.TrimPrefix(s.URL, "http")+"/query",
		"WAGATE_TOKEN="+ann.Token,
		"WAGATE_USER_ID="+ann.ID,
		"WAGATE_ORG_ID="+ann.OrgID,
		"WAGATE_API_KEY="+key.Secret,
		"WAGATE_API_KEY_ID="+key.ID,
		"WAGATE_SESSION_ID="+line.ID,
		"WAGATE_FOREIGN_ORG="+bob.OrgID,
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting node: %v", err)
	}
	waited := false
	t.Cleanup(func() { // also after a t.Fatal below: never leave node running
		if !waited {
			cancel()
			_ = cmd.Wait()
		}
	})

	type report struct {
		Need     string          `json:"need"`
		Texts    []string        `json:"texts"`
		Check    string          `json:"check"`
		OK       bool            `json:"ok"`
		Detail   json.RawMessage `json:"detail"`
		Note     string          `json:"note"`
		Done     bool            `json:"done"`
		Failures int             `json:"failures"`
	}
	results := map[string]bool{}
	done := false
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var r report
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Logf("node: %s", sc.Bytes())
			continue
		}
		switch {
		case r.Need == "simulate":
			reply := map[string]any{}
			if ids, err := simulateForNode(t, s, ann, line.ID, r.Texts); err != nil {
				reply["error"] = err.Error()
			} else {
				reply["ids"] = ids
			}
			b, _ := json.Marshal(reply)
			if _, err := stdin.Write(append(b, '\n')); err != nil {
				t.Errorf("answering node: %v", err)
			}
		case r.Check != "":
			if _, dup := results[r.Check]; dup {
				t.Errorf("check %q reported twice", r.Check)
			}
			results[r.Check] = r.OK
			if r.OK {
				t.Logf("ok   %s", r.Check)
			} else {
				t.Errorf("FAIL %s: %s", r.Check, r.Detail)
			}
		case r.Note != "":
			t.Logf("note: %s", r.Note)
		case r.Done:
			done = true
		default:
			t.Logf("node: %s", sc.Bytes())
		}
	}
	_ = stdin.Close()
	err = cmd.Wait()
	waited = true
	if ctx.Err() != nil {
		t.Fatalf("node did not finish within the time limit; stderr:\n%s", stderr.String())
	}
	if err != nil {
		t.Errorf("node client: %v; stderr:\n%s", err, stderr.String())
	}
	if !done {
		t.Errorf("node client did not report its end; stderr:\n%s", stderr.String())
	}
	for _, name := range graphqlWSChecks {
		if _, ok := results[name]; !ok {
			t.Errorf("check %q was not reported", name)
		}
	}
	if len(results) != len(graphqlWSChecks) {
		t.Errorf("%d checks reported, want %d: %v", len(results), len(graphqlWSChecks), results)
	}
}

// simulateForNode delivers incoming messages on session over HTTP, as u, and returns the
// message ids; errors go back to the node client instead of ending the test.
func simulateForNode(t *testing.T, s *apitest.Server, u *apitest.User, session string, texts []string) ([]string, error) {
	t.Helper()
	var ids []string
	for _, text := range texts {
		r := s.Do(t, q(u, u.OrgID, `mutation($s: ID!, $t: String!) { simulateIncomingMessage(input: {sessionID: $s, from: "+4915112345678", text: $t}) { id } }`,
			map[string]any{"s": session, "t": text}))
		if len(r.Errors) > 0 {
			return nil, fmt.Errorf("simulateIncomingMessage %q: %+v", text, r.Errors)
		}
		var out struct{ SimulateIncomingMessage struct{ ID string } }
		if err := json.Unmarshal(r.Data, &out); err != nil {
			return nil, err
		}
		ids = append(ids, out.SimulateIncomingMessage.ID)
	}
	return ids, nil
}

// requireGraphQLWSClient returns the node binary once the conformance client can run: Node.js
// ≥ 20 on PATH and the npm dependencies installed (with npm ci when they are missing). It
// skips the test otherwise, or fails it when CI=true.
func requireGraphQLWSClient(t *testing.T) string {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CI") == "true" {
			t.Fatalf("the graphql-ws conformance test is required in CI: %s", msg)
		}
		t.Skipf("%s; install Node.js ≥ 20 and run `make test-deps` to run this test", msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		unavailable("node is not on PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := exec.CommandContext(ctx, node, "--version").Output()
	if err != nil {
		unavailable("node --version: %v", err)
	}
	major, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(strings.TrimSpace(string(v)), "v"), ".", 2)[0])
	if major < 20 {
		unavailable("node %s is too old: graphql-ws needs Node.js 20 or later", strings.TrimSpace(string(v)))
	}
	installed := func() bool {
		_, err := os.Stat(filepath.Join(graphqlWSDir, "node_modules", "graphql-ws", "package.json"))
		return err == nil
	}
	if installed() {
		return node
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		unavailable("%s/node_modules is missing and npm is not on PATH", graphqlWSDir)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = graphqlWSDir
	var outErr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &outErr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timed out: %w", err)
		}
		unavailable("npm ci in %s: %v\n%s", graphqlWSDir, err, outErr.String())
	}
	if !installed() {
		unavailable("npm ci in %s did not install graphql-ws", graphqlWSDir)
	}
	return node
}
