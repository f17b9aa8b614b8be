package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"entgo.io/ent/privacy"

	"github.com/wagate/wagate/bench/loadgen"
	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/event"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/viewer"
)

// memRow is scenario D for one target.
type memRow struct {
	Target                         string
	N                              int
	RSSBeforeKB, RSSAfterKB        int64
	RSSPerSubKB                    float64
	GoroutinesBefore, GoroutinesAt float64
	GoroutinesPerSub               float64
	HeapPerSubKB                   float64 // Go: heap objects; Node: heapUsed
	InUsePerSubKB                  float64 // Go only: runtime memory in use (see rtstats.Stats.InUse)
	IdleCPUPerSec                  float64 // CPU seconds per second with every subscriber idle
}

// window is one measured fan-out window of scenario A.
type window struct {
	Round                               int
	Target                              string
	Injected, InjectErrors              int64
	Expected, Delivered                 int64
	Late, Leaks, Disorder, StreamErrors int64
	P50, P99, P999, MaxMs               float64
	CPUSeconds, Seconds                 float64
	ServerCPUSeconds                    float64 // the server process's part of CPUSeconds
	PerCPUSecond                        float64
	FirstError                          string `json:",omitempty"`
}

// memoryAndFanout runs D (connect every target's subscribers, measure them idle) then A.
func (e *targets) memoryAndFanout(ctx context.Context) error {
	cfg := e.b.cfg
	for _, t := range e.list() {
		log.Printf("D: %d idle subscribers on %s", cfg.subs, t.name)
		m, err := e.connect(ctx, t)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		e.b.res.Memory = append(e.b.res.Memory, m)
	}
	defer func() {
		for _, t := range e.list() {
			if t.pool != nil {
				t.pool.Close()
			}
		}
	}()
	// A: every round measures each target, the SUT twice (an A/A pair that shows the noise),
	// in an order that rotates so none always runs first.
	order := []*target{e.sut, e.bare}
	if e.node != nil {
		order = append(order, e.node)
	}
	order = append(order, e.sut)
	w := 0
	// One unmeasured window per target first, as every query case of B runs unmeasured
	// first: no measured window pays for a server's first events (PostgreSQL plans a
	// prepared statement afresh for its first five executions on each connection).
	for _, t := range order[:len(order)-1] {
		w++
		if win := e.fanoutWindow(ctx, t, -1, w); win.Delivered != win.Expected || win.InjectErrors > 0 {
			return fmt.Errorf("A warm-up of %s: delivered %d/%d, inject errors %d (%s)", t.name, win.Delivered,
				win.Expected, win.InjectErrors, win.FirstError)
		}
	}
	for r := range cfg.rounds {
		suts := 0
		for k := range order {
			t := order[(k+r)%len(order)]
			w++
			win := e.fanoutWindow(ctx, t, r, w)
			if t == e.sut {
				if suts++; suts == 2 {
					win.Target = aaName
				}
			}
			e.b.res.Windows = append(e.b.res.Windows, win)
			log.Printf("A round %d %-16s delivered %d/%d p50 %.1f ms p99 %.1f ms, %.0f deliveries/CPU-s, inject errors %d",
				r+1, win.Target, win.Delivered, win.Expected, win.P50, win.P99, win.PerCPUSecond, win.InjectErrors)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	return nil
}

// aaName marks the second SUT window of a round, the A/A calibration pair.
const aaName = "wagate#2"

// connect opens t's subscribers and measures what they cost while idle.
func (e *targets) connect(ctx context.Context, t *target) (memRow, error) {
	cfg := e.b.cfg
	row := memRow{Target: t.name, N: cfg.subs}
	g := func(s map[string]float64) float64 { return s["goroutines"] }
	heap := func(s map[string]float64) float64 {
		if v, ok := s["heapObjectsBytes"]; ok {
			return v
		}
		return s["heapUsed"]
	}
	before := runtimeStats(t.statsURL)
	row.RSSBeforeKB = rssKB(t.proc.pid())
	pool, err := loadgen.Dial(ctx, loadgen.DialConfig{URL: t.wsURL, N: cfg.subs, Orgs: cfg.orgs, Init: t.init,
		Query: subscription, Rate: 500, InFlight: 50, Timeout: 2 * time.Minute}, t.sink)
	if err != nil {
		return row, err
	}
	t.pool = pool
	time.Sleep(cfg.settle)
	after := runtimeStats(t.statsURL)
	row.RSSAfterKB = rssKB(t.proc.pid())
	n := float64(cfg.subs)
	row.RSSPerSubKB = float64(row.RSSAfterKB-row.RSSBeforeKB) / n
	row.GoroutinesBefore, row.GoroutinesAt = g(before), g(after)
	row.GoroutinesPerSub = (g(after) - g(before)) / n
	row.HeapPerSubKB = (heap(after) - heap(before)) / n / 1024
	row.InUsePerSubKB = (after["inUseBytes"] - before["inUseBytes"]) / n / 1024
	m := t.cpu.mark(ctx)
	start := time.Now()
	time.Sleep(cfg.settle)
	row.IdleCPUPerSec = t.cpu.since(ctx, m) / time.Since(start).Seconds()
	return row, nil
}

// fanoutWindow injects rate×window events spread over the organizations on a fixed
// schedule, waits for them to arrive (at most the drain time), and tallies.
func (e *targets) fanoutWindow(ctx context.Context, t *target, round, w int) window {
	cfg := e.b.cfg
	n := int(cfg.rate * cfg.window.Seconds())
	var expected int64
	for i := range n {
		expected += int64(t.pool.PerOrg[i%cfg.orgs])
	}
	t.sink.Begin(w)
	if round == 0 && t.name == "wagate" {
		defer e.profile(ctx, t, "fanout", cfg.window)()
	}
	m := t.cpu.mark(ctx)
	start := time.Now()
	ictx, cancel := context.WithTimeout(ctx, cfg.window+10*time.Second)
	inj := loadgen.Inject(ictx, n, cfg.rate, 128, func(ctx context.Context, i int, at time.Time) error {
		o := i % cfg.orgs
		return t.inject(ctx, o, loadgen.Marker(w, o, i/cfg.orgs+1, at))
	})
	cancel()
	deadline := time.Now().Add(cfg.drain)
	for t.sink.Delivered() < expected && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cpu, serverCPU := t.cpu.split(ctx, m)
	c := t.sink.Snapshot()
	win := window{Round: round, Target: t.name, Injected: inj.Sent, InjectErrors: inj.Errors,
		Expected: expected, Delivered: c.Delivered, Late: c.Late, Leaks: c.Leaks, Disorder: c.Disorder,
		StreamErrors: c.Errors, P50: c.P50, P99: c.P99, P999: c.P999, MaxMs: c.Max,
		CPUSeconds: cpu, ServerCPUSeconds: serverCPU, Seconds: time.Since(start).Seconds()}
	if cpu > 0 {
		win.PerCPUSecond = float64(c.Delivered) / cpu
	}
	if inj.FirstErr != nil {
		win.FirstError = inj.FirstErr.Error()
	}
	return win
}

// queryRun is one closed-loop window of scenario B.
type queryRun struct {
	Round          int
	Case           string
	OK, Errors     int64
	PerSecond      float64
	PerCPUSecond   float64
	P50, P99       float64
	CPUSeconds     float64
	FirstError     string `json:",omitempty"`
	InProcess      bool
	Concurrency    int
	SecondsElapsed float64
}

const (
	qTrivial    = `{ viewer { role } }`
	qTenantList = `{ organization { events(first: 20) { edges { node { cursor type } } } } }`
)

// queries runs B: HTTP throughput of a trivial query (SUT through its whole middleware vs
// bare gqlgen {hello}), of a tenant-scoped list over HTTP, and, inside this process, the
// same list through ent with privacy on vs bypassed (identical SQL).
func (e *targets) queries(ctx context.Context) error {
	cfg := e.b.cfg
	db, err := database.Open(ctx, withApp(e.b.dbURL, "bench-inproc"), database.Options{MaxOpenConns: 16})
	if err != nil {
		return err
	}
	defer db.Close()
	o, other := e.orgs[0], e.orgs[1%len(e.orgs)]
	// The lists read a full page whatever ran before (A's events, or none): the organization
	// gets a log of 100 received messages first, as the plan seeds 100 events per organization.
	if err := e.backlog(ctx, o, "history"); err != nil {
		return fmt.Errorf("seeding B's event log: %w", err)
	}
	member := viewer.NewContext(context.Background(), &viewer.Viewer{Kind: viewer.KindUser, UserID: gid.ID(o.UserID),
		OrgID: gid.ID(o.OrgID), Role: viewer.RoleMember, Orgs: map[gid.ID]viewer.Role{gid.ID(o.OrgID): viewer.RoleMember}})
	bypass := privacy.DecisionContext(context.Background(), privacy.Allow)
	if err := e.privacyGate(member, db.Client, o, other); err != nil {
		return err
	}
	self := cpuSet{pid: os.Getpid(), admin: e.b.admin, db: e.b.dbName, app: "bench-inproc"}
	type qcase struct {
		name   string
		cpu    cpuSet
		inproc bool
		do     func(ctx context.Context) error
	}
	cases := []qcase{
		{"bare {hello}", e.bare.cpu, false, func(ctx context.Context) error {
			return e.gql(ctx, e.bare.base, "", `{ hello }`, nil, nil)
		}},
		{"wagate trivial", e.sut.cpu, false, func(ctx context.Context) error {
			return e.gql(ctx, e.sut.base, o.Token, qTrivial, nil, nil)
		}},
		{"wagate tenant list", e.sut.cpu, false, func(ctx context.Context) error {
			return e.gql(ctx, e.sut.base, o.Token, qTenantList, nil, nil)
		}},
		{"ent list privacy on", self, true, func(context.Context) error {
			_, err := db.Client.Event.Query().Order(ent.Desc(event.FieldSeq)).Limit(20).All(member)
			return err
		}},
		{"ent list privacy off", self, true, func(context.Context) error {
			_, err := db.Client.Event.Query().Where(event.OrganizationID(gid.ID(o.OrgID))).
				Order(ent.Desc(event.FieldSeq)).Limit(20).All(bypass)
			return err
		}},
	}
	const conc = 16
	// Every case first runs unmeasured for a moment: the first one measured would
	// otherwise pay for opening the in-process pool's connections and preparing their
	// statements, and the servers' pools warm up the same way.
	for _, c := range cases {
		loadgen.Load(ctx, conc, 200*time.Millisecond, c.do)
	}
	for r := range cfg.rounds {
		for k := range cases {
			c := cases[(k+r)%len(cases)]
			profiled := func() {}
			if r == 0 && (c.name == "wagate trivial" || c.name == "wagate tenant list") {
				profiled = e.profile(ctx, e.sut, "query-"+strings.ReplaceAll(strings.TrimPrefix(c.name, "wagate "), " ", "-"), cfg.query)
			}
			m := c.cpu.mark(ctx)
			res := loadgen.Load(ctx, conc, cfg.query, c.do)
			cpu := c.cpu.since(ctx, m)
			profiled()
			q := queryRun{Round: r, Case: c.name, OK: res.OK, Errors: res.Errors, InProcess: c.inproc, Concurrency: conc,
				PerSecond: float64(res.OK) / res.Elapsed.Seconds(), CPUSeconds: cpu, SecondsElapsed: res.Elapsed.Seconds(),
				P50: float64(res.Hist.ValueAtQuantile(50)) / 1000, P99: float64(res.Hist.ValueAtQuantile(99)) / 1000}
			if cpu > 0 {
				q.PerCPUSecond = float64(res.OK) / cpu
			}
			if res.FirstErr != nil {
				q.FirstError = res.FirstErr.Error()
			}
			e.b.res.Queries = append(e.b.res.Queries, q)
			log.Printf("B round %d %-22s %7.0f req/s, %7.0f req/CPU-s, p99 %.1f ms, errors %d", r+1, c.name, q.PerSecond, q.PerCPUSecond, q.P99, q.Errors)
		}
	}
	return ctx.Err()
}

// privacyGate checks that the privacy-on list returns only the member's organization and
// that asking for another organization's rows returns none.
func (e *targets) privacyGate(member context.Context, c *ent.Client, o, other org) error {
	evs, err := c.Event.Query().Limit(200).All(member)
	if err != nil {
		return fmt.Errorf("B gate: %w", err)
	}
	foreign := 0
	for _, ev := range evs {
		if string(ev.OrganizationID) != o.OrgID {
			foreign++
		}
	}
	probe, err := c.Event.Query().Where(event.OrganizationID(gid.ID(other.OrgID))).Count(member)
	gate := gateResult{Name: "B-gate", Pass: err == nil && foreign == 0 && probe == 0 && len(evs) > 0,
		Detail: fmt.Sprintf("privacy-on list: %d rows, %d of another org; cross-org probe: %d rows (err %v)", len(evs), foreign, probe, err)}
	e.b.res.Gates = append(e.b.res.Gates, gate)
	return nil
}

// ingestRun is one window of scenario C.
type ingestRun struct {
	Round        int
	Case         string
	Rows         int64
	Acked        int64 `json:",omitempty"`
	Errors       int64 `json:",omitempty"`
	RowsPerSec   float64
	PerCPUSecond float64 `json:",omitempty"`
	// CPUSeconds is wagate's and its PostgreSQL backends'; ServerCPUSeconds wagate's alone.
	CPUSeconds, ServerCPUSeconds float64 `json:",omitempty"`
	P50, P99                     float64 `json:",omitempty"`
	Clients                      int
	FirstError                   string `json:",omitempty"`
}

const pgbenchSeqStart = 1_000_000_000_000 // pgbench's rows never collide with the event log's own numbers

// ingest runs C: inbound messages through simulateIncomingMessage (closed loop, 16 at once;
// each persists the message, its chat and its event in one transaction) vs pgbench inserting
// event rows into the same table, one per transaction (P1) and 100 per transaction (P100).
func (e *targets) ingest(ctx context.Context) error {
	cfg := e.b.cfg
	sdb, err := database.Open(ctx, e.b.dbURL, database.Options{MaxOpenConns: 2})
	if err != nil {
		return err
	}
	defer sdb.Close()
	if _, err := sdb.SQL.ExecContext(ctx, fmt.Sprintf(`CREATE SEQUENCE IF NOT EXISTS bench_seq START %d`, pgbenchSeqStart)); err != nil {
		return err
	}
	cols := `INSERT INTO events (id, organization_id, seq, type, payload, occurred_at, created_at) `
	vals := `'evt_pgb' || nextval('bench_seq'), :org, nextval('bench_seq'), 'MESSAGE_RECEIVED', '{"text":"pgbench"}', now(), now()`
	scripts := map[string]string{
		"P1":   cols + `VALUES (` + vals + `);`,
		"P100": cols + `SELECT ` + vals + ` FROM generate_series(1, 100);`,
	}
	for name, s := range scripts {
		if err := os.WriteFile(filepath.Join(e.b.out, "pgbench-"+name+".sql"), []byte(s+"\n"), 0o644); err != nil {
			return err
		}
	}
	if _, err := exec.LookPath("pgbench"); err != nil {
		log.Printf("pgbench not found: C runs the SUT only")
	}
	count := func() (int64, error) {
		var n int64
		err := sdb.SQL.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE type = 'MESSAGE_RECEIVED' AND seq < $1`,
			pgbenchSeqStart).Scan(&n)
		return n, err
	}
	// "wagate" sends every message to one session (one organization: its event counter row
	// orders them); "wagate-spread" sends them round-robin to the sessions of all the
	// subscribed organizations (their subscribers have left by now), one message per
	// mutation; "wagate-backlog" as well, backlogs of backlogSize messages per mutation
	// (simulateIncomingMessages), as engines hand over what sessions receive together.
	var seq atomic.Int64
	sendTo := func(ctx context.Context, o org) error {
		n := seq.Add(1)
		return e.gql(ctx, e.sut.base, o.Token, simulate, map[string]any{"s": o.SessionID, "t": "ingest " + strconv.FormatInt(n, 10)}, nil)
	}
	send := func(ctx context.Context) error { return sendTo(ctx, e.ingestOrg) }
	spread := func(ctx context.Context) error { return sendTo(ctx, e.orgs[int(seq.Load())%len(e.orgs)]) }
	backlog := func(ctx context.Context) error {
		n := seq.Add(1)
		return e.backlog(ctx, e.orgs[int(n)%len(e.orgs)], "backlog "+strconv.FormatInt(n, 10))
	}
	// Unmeasured first, as A's and B's cases run: PostgreSQL plans a prepared statement afresh
	// for its first five executions on each pooled connection, several milliseconds each
	// for the bulk statement that stores received messages.
	for _, do := range []func(context.Context) error{send, spread, backlog} {
		if res := loadgen.Load(ctx, 16, cfg.ingest/3, do); res.FirstErr != nil {
			return fmt.Errorf("C warm-up: %w", res.FirstErr)
		}
	}
	secs := int(cfg.ingest.Seconds())
	cases := []string{"P1", "wagate", "P100", "wagate-spread", "wagate-backlog"}
	for r := range cfg.rounds {
		for k := range cases {
			c := cases[(k+r)%len(cases)]
			var run ingestRun
			if strings.HasPrefix(c, "wagate") {
				do, per := send, 1
				switch c {
				case "wagate-spread":
					do = spread
				case "wagate-backlog":
					do, per = backlog, backlogSize
				}
				before, err := count()
				if err != nil {
					return err
				}
				profiled := func() {}
				if r == 0 {
					profiled = e.profile(ctx, e.sut, "ingest-"+c, cfg.ingest)
				}
				m := e.sut.cpu.mark(ctx)
				res := loadgen.Load(ctx, 16, cfg.ingest, do)
				profiled()
				cpu, serverCPU := e.sut.cpu.split(ctx, m)
				after, err := count()
				if err != nil {
					return err
				}
				run = ingestRun{Case: c, Rows: after - before, Acked: res.OK * int64(per), Errors: res.Errors, Clients: 16,
					CPUSeconds: cpu, ServerCPUSeconds: serverCPU,
					RowsPerSec: float64(after-before) / res.Elapsed.Seconds(),
					P50:        float64(res.Hist.ValueAtQuantile(50)) / 1000, P99: float64(res.Hist.ValueAtQuantile(99)) / 1000}
				if cpu > 0 {
					run.PerCPUSecond = float64(after-before) / cpu
				}
				if res.FirstErr != nil {
					run.FirstError = res.FirstErr.Error()
				}
			} else {
				if _, err := exec.LookPath("pgbench"); err != nil {
					continue
				}
				run, err = e.pgbench(ctx, c, secs)
				if err != nil {
					return err
				}
			}
			run.Round = r
			e.b.res.Ingest = append(e.b.res.Ingest, run)
			log.Printf("C round %d %-7s %7.0f rows/s (acked %d, rows %d, errors %d)", r+1, c, run.RowsPerSec, run.Acked, run.Rows, run.Errors)
		}
	}
	// C-L1: ack latency in an open loop at half the SUT's measured maximum.
	var rates []float64
	for _, run := range e.b.res.Ingest {
		if run.Case == "wagate" {
			rates = append(rates, run.RowsPerSec)
		}
	}
	if half := median(rates) / 2; half >= 1 {
		n := int(half * cfg.ingest.Seconds())
		res := loadgen.Inject(ctx, n, half, 64, func(ctx context.Context, _ int, _ time.Time) error { return send(ctx) })
		e.b.res.IngestHalfRate = &ingestRun{Case: "wagate at 50% of max (open loop)", Acked: res.Sent - res.Errors,
			Errors: res.Errors, RowsPerSec: half, P50: float64(res.Ack.ValueAtQuantile(50)) / 1000,
			P99: float64(res.Ack.ValueAtQuantile(99)) / 1000}
		log.Printf("C at %.0f/s (open loop): ack p50 %.1f ms, p99 %.1f ms", half, e.b.res.IngestHalfRate.P50, e.b.res.IngestHalfRate.P99)
	}
	return ctx.Err()
}

// profile records t's CPU profile and what it allocates (a delta: /debug/pprof/allocs with
// seconds) for d when BENCH_PROFILE=1, and returns a function that waits for both and saves
// them as bench/out/profile-<name>.pprof and profile-<name>-allocs.pprof.
func (e *targets) profile(ctx context.Context, t *target, name string, d time.Duration) func() {
	if !e.b.cfg.profile {
		return func() {}
	}
	base := strings.TrimSuffix(t.statsURL, "/stats") + "/debug/pprof/"
	secs := "?seconds=" + strconv.Itoa(max(1, int(d.Seconds())))
	var wg sync.WaitGroup
	for kind, file := range map[string]string{"profile": name, "allocs": name + "-allocs"} {
		wg.Go(func() {
			path := filepath.Join(e.b.out, "profile-"+file+".pprof")
			if err := fetchTo(ctx, base+kind+secs, path); err != nil {
				log.Printf("profile %s: %v", file, err)
				return
			}
			log.Printf("%s profile of %s: %s", kind, name, path)
		})
	}
	return wg.Wait
}

// fetchTo saves what a GET of url answers at path.
func fetchTo(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

var tpsRE = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// pgbench runs one pgbench script against the bench database from CPU 0.
func (e *targets) pgbench(ctx context.Context, name string, secs int) (ingestRun, error) {
	clients, perTx := 16, 1.0
	if name == "P100" {
		clients, perTx = 4, 100
	}
	// pgbench's -T includes opening its connections, slow on a loaded machine.
	secs = max(secs, 3)
	argv := []string{"pgbench", "-n", "-c", strconv.Itoa(clients), "-j", "1", "-T", strconv.Itoa(secs), "-M", "prepared",
		"-D", "org=" + e.ingestOrg.OrgID, "-f", filepath.Join(e.b.out, "pgbench-"+name+".sql"), e.b.dbURL}
	if e.b.pin {
		argv = append([]string{"taskset", "-c", "0"}, argv...)
	}
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	run := ingestRun{Case: name, Clients: clients}
	if m := tpsRE.FindSubmatch(out); err == nil && m != nil {
		tps, _ := strconv.ParseFloat(string(m[1]), 64)
		run.RowsPerSec = tps * perTx
		return run, nil
	}
	if ctx.Err() != nil {
		return run, ctx.Err()
	}
	// pgbench fails when no transaction completes in time (seen on a heavily loaded
	// machine): the round is recorded as 0 rows/s with the reason, and the run goes on.
	run.FirstError = fmt.Sprintf("pgbench: %v: %s", err, lastLine(out))
	return run, nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
