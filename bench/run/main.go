// Command run is the benchmark driver behind `make bench`: it builds the server and the
// reference servers, starts them on a fresh PostgreSQL database, and measures them side by
// side, interleaved, for about two minutes:
//
//	D  memory and goroutines per idle subscriber
//	A  fan-out: events injected on a fixed schedule, delivered to N subscribers in M orgs
//	B  query throughput: trivial query and tenant-scoped list (HTTP), ent privacy on/off
//	C  ingest: inbound messages persisted per second (one per mutation, and backlogs) vs pgbench
//	   inserts into the same table
//
// It prints a markdown table and writes it, with the raw numbers as JSON, under bench/out/.
// See BENCHMARKS.md for what each number means. Settings (environment):
//
//	BENCH_QUICK=1           smoke run (~40 s of measurement, small N)
//	BENCH_SUBS, BENCH_ORGS  subscribers and organizations per target (2000, 100: PERFORMANCE.md §5.3)
//	BENCH_RATE              injected events per second in A (250: 5,000 deliveries/s, at which §5.6 sets A's targets)
//	BENCH_ROUNDS            interleaved rounds (3)
//	BENCH_DATABASE_URL      the PostgreSQL server (postgres://postgres@127.0.0.1:5432/postgres)
//	BENCH_PIN=0             do not pin CPUs with taskset
//	BENCH_BUDGET            hard wall-clock limit of the whole run (10m)
//	BENCH_ONLY              scenarios to run, e.g. "B" or "DA,C" (all: DA,B,C); for iterating on one,
//	                        the report marks what did not run n/a
//	BENCH_PROFILE=1         save CPU and allocation profiles of wagate's first fan-out, trivial-query, tenant-list
//	                        and ingest windows (bench/out/profile-*.pprof; `go tool pprof` reads them)
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	_ "github.com/lib/pq"

	"github.com/wagate/wagate/bench/loadgen"
)

type config struct {
	quick                bool
	subs, orgs, rounds   int
	rate                 float64
	window, drain, query time.Duration
	ingest, settle       time.Duration
	pgURL                string
	budget               time.Duration
	profile              bool
	only                 map[string]bool // nil: every scenario
}

// runs reports whether the scenario (DA, B or C) is part of this run.
func (c config) runs(scenario string) bool { return c.only == nil || c.only[scenario] }

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	n, err := strconv.Atoi(env(key, strconv.Itoa(def)))
	if err != nil || n <= 0 {
		log.Fatalf("%s must be a positive integer", key)
	}
	return n
}

func loadConfig() config {
	c := config{quick: os.Getenv("BENCH_QUICK") == "1", profile: os.Getenv("BENCH_PROFILE") == "1"}
	subs, orgs, rounds := 2000, 100, 3
	c.window, c.drain, c.query, c.ingest, c.settle = 3*time.Second, 3*time.Second, 2*time.Second, 3*time.Second, 2*time.Second
	if c.quick {
		subs, orgs, rounds = 200, 10, 1
		c.window, c.drain, c.query, c.ingest, c.settle = 2*time.Second, 2*time.Second, time.Second, 2*time.Second, time.Second
	}
	c.subs, c.orgs, c.rounds = envInt("BENCH_SUBS", subs), envInt("BENCH_ORGS", orgs), envInt("BENCH_ROUNDS", rounds)
	c.rate = float64(envInt("BENCH_RATE", 250))
	c.pgURL = env("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	d, err := time.ParseDuration(env("BENCH_BUDGET", "10m"))
	if err != nil {
		log.Fatalf("BENCH_BUDGET: %v", err)
	}
	c.budget = d
	if only := os.Getenv("BENCH_ONLY"); only != "" {
		c.only = map[string]bool{}
		for _, s := range strings.Split(strings.ToUpper(only), ",") {
			if s = strings.TrimSpace(s); s != "DA" && s != "B" && s != "C" {
				log.Fatalf("BENCH_ONLY: unknown scenario %q (DA, B or C)", s)
			}
			c.only[s] = true
		}
	}
	return c
}

// bench is one run: its settings, processes, database and results.
type bench struct {
	cfg       config
	root, out string
	pin       bool
	serverCPU string
	procs     []*proc
	admin     *sql.DB // the maintenance database, to create/drop the bench database and find backends
	dbName    string
	dbURL     string // the bench database (no application_name)
	res       results
}

func main() {
	log.SetFlags(log.Ltime)
	cfg := loadConfig()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.budget)
	defer cancel()
	b := &bench{cfg: cfg}
	err := b.run(ctx)
	for _, p := range b.procs {
		p.stop()
	}
	if b.admin != nil && b.dbName != "" {
		dropCtx, c2 := context.WithTimeout(context.Background(), 30*time.Second)
		if _, e := b.admin.ExecContext(dropCtx, `DROP DATABASE IF EXISTS "`+b.dbName+`" WITH (FORCE)`); e != nil {
			log.Printf("dropping %s: %v", b.dbName, e)
		}
		c2()
	}
	if err != nil {
		log.Fatalf("bench: %v", err)
	}
}

func (b *bench) run(ctx context.Context) error {
	var err error
	if b.root, err = os.Getwd(); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(b.root, "bench", "run")); err != nil {
		return fmt.Errorf("run from the repository root (make bench): %w", err)
	}
	b.out = filepath.Join(b.root, "bench", "out")
	if err := os.MkdirAll(filepath.Join(b.out, "bin"), 0o755); err != nil {
		return err
	}
	b.setupPinning()
	if err := b.build(ctx); err != nil {
		return err
	}
	if err := b.createDatabase(ctx); err != nil {
		return err
	}
	t0 := time.Now()
	env, err := b.startAll(ctx)
	if err != nil {
		return err
	}
	b.res.Machine = machine(b, env)
	log.Printf("servers up in %s; seeding %d organizations", time.Since(t0).Round(time.Millisecond), b.cfg.orgs+1)
	if err := env.seed(ctx); err != nil {
		return err
	}
	measured := time.Now()
	for _, sc := range []struct {
		name string
		run  func(context.Context) error
	}{{"DA", env.memoryAndFanout}, {"B", env.queries}, {"C", env.ingest}} {
		if !b.cfg.runs(sc.name) {
			continue
		}
		if err := sc.run(ctx); err != nil {
			return err
		}
	}
	b.res.MeasuredSeconds = time.Since(measured).Seconds()
	return b.report()
}

// setupPinning puts the driver (load generator, pgbench) on CPU 0 and the servers on the
// last CPU, when taskset exists and there are at least two CPUs. PostgreSQL is a shared
// cluster here and is not pinned.
func (b *bench) setupPinning() {
	if os.Getenv("BENCH_PIN") == "0" || runtime.NumCPU() < 2 {
		return
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		log.Printf("taskset not found: CPUs not pinned")
		return
	}
	b.serverCPU = strconv.Itoa(runtime.NumCPU() - 1)
	if out, err := exec.Command("taskset", "-a", "-p", "-c", "0", strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
		log.Printf("pinning the driver: %v: %s", err, out)
		return
	}
	b.pin = true
}

// build compiles everything before anything is timed.
func (b *bench) build(ctx context.Context) error {
	log.Printf("building the server (-tags benchstats) and the references")
	steps := [][]string{
		{"go", "build", "-tags", "benchstats", "-o", filepath.Join(b.out, "bin", "wagate"), "."},
		{"go", "build", "-o", filepath.Join(b.out, "bin", "ref-bare"), "./bench/ref-bare"},
	}
	if _, err := exec.LookPath("npm"); err == nil {
		if _, err := os.Stat(filepath.Join(b.root, "bench", "ref-node", "node_modules", "graphql-ws")); err != nil {
			steps = append(steps, []string{"npm", "ci", "--prefix", "bench/ref-node", "--no-audit", "--no-fund"})
		}
	}
	for _, s := range steps {
		cmd := exec.CommandContext(ctx, s[0], s[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", strings.Join(s, " "), err)
		}
	}
	return nil
}

// createDatabase makes a fresh database for this run on the PostgreSQL server.
func (b *bench) createDatabase(ctx context.Context) error {
	if u, err := url.Parse(b.cfg.pgURL); err != nil || u.Hostname() != "localhost" && loadgen.Loopback("tcp://"+u.Host) != nil {
		return fmt.Errorf("BENCH_DATABASE_URL must point at a loopback PostgreSQL server")
	}
	var err error
	if b.admin, err = sql.Open("postgres", b.cfg.pgURL); err != nil {
		return err
	}
	b.admin.SetMaxOpenConns(2)
	if err := b.admin.PingContext(ctx); err != nil {
		return fmt.Errorf("PostgreSQL at %s: %w (start it: pg_ctlcluster 15 main start)", b.cfg.pgURL, err)
	}
	b.dbName = fmt.Sprintf("wagate_bench_%d_%d", time.Now().Unix(), os.Getpid())
	if _, err := b.admin.ExecContext(ctx, `CREATE DATABASE "`+b.dbName+`"`); err != nil {
		return fmt.Errorf("creating the bench database: %w", err)
	}
	u, err := url.Parse(b.cfg.pgURL)
	if err != nil {
		return err
	}
	u.Path = "/" + b.dbName
	b.dbURL = u.String()
	return nil
}

// withApp adds application_name to a postgres URL, so the driver can find its backends.
func withApp(dsn, app string) string {
	u, _ := url.Parse(dsn)
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	return u.String()
}

func randomKey() string {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

func version(argv ...string) string {
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		return "unavailable"
	}
	return strings.TrimSpace(string(out))
}

func machine(b *bench, e *targets) map[string]string {
	m := map[string]string{
		"cpu": cpuModel(), "cpus": strconv.Itoa(runtime.NumCPU()), "go": runtime.Version(),
		"node": version("node", "--version"), "pgbench": version("pgbench", "--version"),
		"pinned": strconv.FormatBool(b.pin), "serverCPU": b.serverCPU,
		"GOGC": os.Getenv("GOGC"), "GOMEMLIMIT": os.Getenv("GOMEMLIMIT"),
	}
	var pg string
	if b.admin.QueryRow(`SHOW server_version`).Scan(&pg) == nil {
		m["postgres"] = pg
	}
	for _, s := range []string{"synchronous_commit", "fsync", "shared_buffers", "max_connections"} {
		var v string
		if b.admin.QueryRow(`SHOW `+s).Scan(&v) == nil {
			m["pg_"+s] = v
		}
	}
	return m
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown"
}
