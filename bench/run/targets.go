package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wagate/wagate/bench/loadgen"
)

// target is one server the fan-out and memory scenarios measure.
type target struct {
	name     string
	proc     *proc
	base     string // http://127.0.0.1:port
	wsURL    string
	statsURL string
	init     func(org int) map[string]any
	inject   func(ctx context.Context, org int, text string) error
	cpu      cpuSet
	sink     *loadgen.Sink
	pool     *loadgen.Pool
}

// org is a seeded organization of the SUT: an owner's token and a connected sandbox session.
type org struct {
	Token, OrgID, UserID, SessionID string
}

type targets struct {
	b         *bench
	sut, bare *target
	node      *target // nil without Node
	orgs      []org   // subscribed organizations
	ingestOrg org     // C's organization: no subscribers
	client    *http.Client
}

const subscription = `subscription { events { cursor type payload } }`

func (b *bench) startAll(ctx context.Context) (*targets, error) {
	e := &targets{b: b, client: loadgen.Client(64)}
	ports := make([]int, 5)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	dataDir := filepath.Join(b.out, "data")
	_ = os.RemoveAll(dataDir)
	sut, err := b.start("wagate", []string{
		"WAGATE_ADDR=" + addr(ports[0]), "DATABASE_URL=" + withApp(b.dbURL, "wagate-sut"),
		"WAGATE_DATA_DIR=" + dataDir, "WAGATE_SANDBOX_PAIR_AFTER=100ms", "WAGATE_WHATSAPP=false",
		"WAGATE_LOG_LEVEL=warn", "WAGATE_INTROSPECTION=false", "WAGATE_SECRET_KEY=" + randomKey(),
		"WAGATE_LOGIN_RATE_IP=off", // the driver signs up every organization from one address
		"WAGATE_BENCH_STATS_ADDR=" + addr(ports[1]), "GOMAXPROCS=1",
	}, filepath.Join(b.out, "bin", "wagate"))
	if err != nil {
		return nil, err
	}
	e.sut = &target{name: "wagate", proc: sut, base: "http://" + addr(ports[0]),
		wsURL: "ws://" + addr(ports[0]) + "/query", statsURL: "http://" + addr(ports[1]) + "/stats",
		cpu: cpuSet{pid: sut.pid(), admin: b.admin, db: b.dbName, app: "wagate-sut"}, sink: loadgen.NewSink()}
	bare, err := b.start("ref-bare", []string{"GOMAXPROCS=1"}, filepath.Join(b.out, "bin", "ref-bare"), "-addr", addr(ports[2]))
	if err != nil {
		return nil, err
	}
	e.bare = &target{name: "bare-gqlgen", proc: bare, base: "http://" + addr(ports[2]),
		wsURL: "ws://" + addr(ports[2]) + "/query", statsURL: "http://" + addr(ports[2]) + "/stats",
		cpu: cpuSet{pid: bare.pid()}, sink: loadgen.NewSink()}
	e.bare.init = func(o int) map[string]any { return map[string]any{"org": "o" + strconv.Itoa(o)} }
	e.bare.inject = e.refInject(e.bare)
	if _, err := exec.LookPath("node"); err == nil {
		node, err := b.start("ref-node", []string{"PORT=" + strconv.Itoa(ports[3])}, "node", filepath.Join(b.root, "bench", "ref-node", "server.mjs"))
		if err != nil {
			return nil, err
		}
		e.node = &target{name: "node-graphql-ws", proc: node, base: "http://" + addr(ports[3]),
			wsURL: "ws://" + addr(ports[3]) + "/query", statsURL: "http://" + addr(ports[3]) + "/stats",
			cpu: cpuSet{pid: node.pid()}, sink: loadgen.NewSink(), init: e.bare.init}
		e.node.inject = e.refInject(e.node)
	} else {
		log.Printf("node not found: the Node reference is skipped")
	}
	if err := waitHTTP(ctx, e.sut.base+"/readyz", 60*time.Second); err != nil {
		return nil, fmt.Errorf("wagate: %w (see bench/out/wagate.log)", err)
	}
	for _, t := range []*target{e.bare, e.node} {
		if t != nil {
			if err := waitHTTP(ctx, t.statsURL, 20*time.Second); err != nil {
				return nil, fmt.Errorf("%s: %w", t.name, err)
			}
		}
	}
	return e, nil
}

// refInject posts an event to a reference server's in-memory broker.
func (e *targets) refInject(t *target) func(ctx context.Context, o int, text string) error {
	return func(ctx context.Context, o int, text string) error {
		body, _ := json.Marshal(map[string]string{"org": "o" + strconv.Itoa(o), "text": text})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, t.base+"/inject", bytes.NewReader(body))
		resp, err := e.client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%w: %d", loadgen.ErrStatus, resp.StatusCode)
		}
		return nil
	}
}

// gql runs one GraphQL operation over HTTP; any error in the answer is an error.
func (e *targets) gql(ctx context.Context, base, token, query string, vars map[string]any, out any) error {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var r struct {
		Data   json.RawMessage
		Errors []struct{ Message string }
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, raw)
	}
	if len(r.Errors) > 0 {
		return fmt.Errorf("%s", r.Errors[0].Message)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%w: %d", loadgen.ErrStatus, resp.StatusCode)
	}
	if out != nil {
		return json.Unmarshal(r.Data, out)
	}
	return nil
}

const simulate = `mutation($s: ID!, $t: String!) { simulateIncomingMessage(input: {sessionID: $s, from: "+4915112345678", text: $t}) { id } }`

// simulateMany makes a session receive a backlog; backlogSize is its length in scenario C,
// the most one call takes.
const (
	simulateMany = `mutation($s: ID!, $m: [SimulatedMessageInput!]!) { simulateIncomingMessages(input: {sessionID: $s, messages: $m}) { id } }`
	backlogSize  = 100
)

// backlog makes o's session receive backlogSize text messages in one call, their texts
// label and their position.
func (e *targets) backlog(ctx context.Context, o org, label string) error {
	msgs := make([]map[string]string, backlogSize)
	for i := range msgs {
		msgs[i] = map[string]string{"from": "+4915112345678", "text": fmt.Sprintf("%s/%d", label, i)}
	}
	return e.gql(ctx, e.sut.base, o.Token, simulateMany, map[string]any{"s": o.SessionID, "m": msgs}, nil)
}

// seed signs up one owner per organization (plus C's), each with a connected sandbox
// session, through the public API.
func (e *targets) seed(ctx context.Context) error {
	n := e.b.cfg.orgs + 1
	all := make([]org, n)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			o, err := e.seedOrg(ctx, i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("seeding organization %d: %w", i, err)
			}
			all[i] = o
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	e.orgs, e.ingestOrg = all[:n-1], all[n-1]
	e.sut.init = func(o int) map[string]any { return map[string]any{"authorization": "Bearer " + e.orgs[o].Token} }
	e.sut.inject = func(ctx context.Context, o int, text string) error {
		return e.gql(ctx, e.sut.base, e.orgs[o].Token, simulate, map[string]any{"s": e.orgs[o].SessionID, "t": text}, nil)
	}
	return nil
}

func (e *targets) seedOrg(ctx context.Context, i int) (org, error) {
	var o org
	var up struct {
		SignUp struct {
			Token        string
			User         struct{ ID string }
			Organization struct{ ID string }
		}
	}
	err := e.gql(ctx, e.sut.base, "", `mutation($e: String!) { signUp(input: {email: $e, password: "bench passphrase", name: "Bench"}) { token user { id } organization { id } } }`,
		map[string]any{"e": fmt.Sprintf("bench%d@example.com", i)}, &up)
	if err != nil {
		return o, err
	}
	o.Token, o.UserID, o.OrgID = up.SignUp.Token, up.SignUp.User.ID, up.SignUp.Organization.ID
	var cs struct{ CreateSession struct{ ID string } }
	if err := e.gql(ctx, e.sut.base, o.Token, `mutation { createSession(input: {name: "bench", engine: SANDBOX}) { id } }`, nil, &cs); err != nil {
		return o, err
	}
	o.SessionID = cs.CreateSession.ID
	if err := e.gql(ctx, e.sut.base, o.Token, `mutation($s: ID!) { connectSession(id: $s) { status } }`, map[string]any{"s": o.SessionID}, nil); err != nil {
		return o, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var st struct{ Node struct{ Status string } }
		if err := e.gql(ctx, e.sut.base, o.Token, `query($s: ID!) { node(id: $s) { ... on Session { status } } }`, map[string]any{"s": o.SessionID}, &st); err != nil {
			return o, err
		}
		if st.Node.Status == "CONNECTED" {
			return o, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return o, errors.New("the sandbox session did not connect within 30 s")
}

// list is the targets present in this run, the SUT first.
func (e *targets) list() []*target {
	ts := []*target{e.sut, e.bare}
	if e.node != nil {
		ts = append(ts, e.node)
	}
	return ts
}

// short names a target in tables.
func short(name string) string {
	name, _, _ = strings.Cut(name, "-")
	return name
}
