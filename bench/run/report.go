package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// results is everything a run measured; it is written as JSON.
type results struct {
	Time            time.Time
	Machine         map[string]string
	Config          map[string]any
	MeasuredSeconds float64
	Memory          []memRow
	Windows         []window
	Queries         []queryRun
	Ingest          []ingestRun
	IngestHalfRate  *ingestRun `json:",omitempty"`
	Gates           []gateResult
	Rows            []row
	Noisy           bool
	NoiseAA         float64 // median |A/A − 1| of the fan-out per-CPU figure
}

type gateResult struct {
	Name   string
	Pass   bool
	Detail string
}

// row is one line of the table: a ratio (or an absolute figure) per round, its median
// against the target.
type row struct {
	ID, Metric string
	SUT, Ref   string // medians of the absolute figures
	Median     float64
	Min, Max   float64
	Rounds     []float64
	Target     string
	Verdict    string
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// collect gathers f over the entries keep selects, in order (that is, by round).
func collect[T any](xs []T, keep func(T) bool, f func(T) float64) []float64 {
	var out []float64
	for _, x := range xs {
		if keep(x) {
			out = append(out, f(x))
		}
	}
	return out
}

// byRound collects f over the fan-out windows of one target.
func (r *results) byRound(target string, f func(window) float64) []float64 {
	return collect(r.Windows, func(w window) bool { return w.Target == target }, f)
}

func (r *results) queryRounds(name string, f func(queryRun) float64) []float64 {
	return collect(r.Queries, func(q queryRun) bool { return q.Case == name }, f)
}

func (r *results) ingestRounds(name string, f func(ingestRun) float64) []float64 {
	return collect(r.Ingest, func(q ingestRun) bool { return q.Case == name }, f)
}

func ingestCPU(q ingestRun) float64 { return q.PerCPUSecond }

// pairwise combines two per-round series; a round where the reference measured nothing
// (0: e.g. pgbench completed no transaction) is left out.
func pairwise(a, b []float64, f func(x, y float64) float64) []float64 {
	var out []float64
	for i := range min(len(a), len(b)) {
		if b[i] != 0 {
			out = append(out, f(a[i], b[i]))
		}
	}
	return out
}

func div(x, y float64) float64 { return x / y }
func sub(x, y float64) float64 { return x - y }

// add appends a row; ok decides the verdict from the median (nil: informational).
func (r *results) add(id, metric string, sut, ref []float64, unit string, vals []float64, target string, ok func(float64) bool) {
	w := row{ID: id, Metric: metric, Rounds: vals, Target: target, Verdict: "info"}
	if len(sut) > 0 {
		w.SUT = fmtNum(median(sut)) + unit
	}
	if len(ref) > 0 {
		w.Ref = fmtNum(median(ref)) + unit
	}
	if len(vals) == 0 {
		w.Verdict = "n/a" // not measured: JSON keeps zeros, the table shows dashes
		r.Rows = append(r.Rows, w)
		return
	}
	w.Median, w.Min, w.Max = median(vals), slices.Min(vals), slices.Max(vals)
	if ok != nil {
		w.Verdict = "FAIL"
		if ok(w.Median) {
			w.Verdict = "pass"
		}
	}
	r.Rows = append(r.Rows, w)
}

func fmtNum(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "–"
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func atLeast(t float64) func(float64) bool { return func(v float64) bool { return v >= t } }
func atMost(t float64) func(float64) bool  { return func(v float64) bool { return v <= t } }

// tabulate derives the table from the raw measurements.
func (r *results) tabulate() {
	const sut, bare, node = "wagate", "bare-gqlgen", "node-graphql-ws"
	perCPU := func(w window) float64 { return w.PerCPUSecond }
	p50 := func(w window) float64 { return w.P50 }
	p99 := func(w window) float64 { return w.P99 }
	ratio := func(w window) float64 { return float64(w.Delivered) / float64(max(w.Expected, 1)) }

	// A gate: every window of every target.
	for _, t := range []string{sut, aaName, bare, node} {
		ws := r.byRound(t, func(w window) float64 { return 0 })
		if len(ws) == 0 {
			continue
		}
		var minRatio = math.Inf(1)
		var leaks, disorder, errs, injErr int64
		for _, w := range r.Windows {
			if w.Target == t {
				minRatio = math.Min(minRatio, ratio(w))
				leaks += w.Leaks
				disorder += w.Disorder
				errs += w.StreamErrors
				injErr += w.InjectErrors
			}
		}
		r.Gates = append(r.Gates, gateResult{Name: "A-gate " + t,
			Pass:   minRatio == 1 && leaks == 0 && disorder == 0 && errs == 0 && injErr == 0,
			Detail: fmt.Sprintf("delivered/expected min %.4f, cross-org %d, order violations %d, stream errors %d, inject errors %d", minRatio, leaks, disorder, errs, injErr)})
	}
	sutCPU, aaCPU := r.byRound(sut, perCPU), r.byRound(aaName, perCPU)
	bareCPU, nodeCPU := r.byRound(bare, perCPU), r.byRound(node, perCPU)
	r.add("A-F1", "deliveries per CPU-s, wagate ÷ Node", sutCPU, nodeCPU, "", pairwise(sutCPU, nodeCPU, div), "≥ 1.5", atLeast(1.5))
	r.add("A-F3", "deliveries per CPU-s, wagate ÷ bare gqlgen", sutCPU, bareCPU, "", pairwise(sutCPU, bareCPU, div), "≥ 0.6", atLeast(0.6))
	// The SUT's subscribers cost CPU while idle (their access is re-checked every second):
	// subtracting that rate shows what the deliveries themselves cost.
	var idleRate float64
	for _, m := range r.Memory {
		if m.Target == sut {
			idleRate = m.IdleCPUPerSec
		}
	}
	marginal := r.byRound(sut, func(w window) float64 {
		if c := w.CPUSeconds - idleRate*w.Seconds; c > 0 {
			return float64(w.Delivered) / c
		}
		return 0 // idle CPU exceeded the window's: the estimate is meaningless
	})
	r.add("A-F3m", "deliveries per CPU-s with idle CPU subtracted, wagate ÷ bare", marginal, bareCPU, "", pairwise(marginal, bareCPU, div), "—", nil)
	serverShare := r.byRound(sut, func(w window) float64 {
		if w.CPUSeconds > 0 {
			return w.ServerCPUSeconds / w.CPUSeconds
		}
		return 0
	})
	r.add("A-cpu", "wagate process's share of its CPU (the rest: its PostgreSQL backends)", serverShare, nil, "", serverShare, "—", nil)
	r.add("A-F2/F4", "wagate in-memory mode ÷ Node / bare", nil, nil, "", nil, "≥ 2.0 / ≥ 0.8", nil)
	r.add("A-L1", "latency p50 (ms), wagate", r.byRound(sut, p50), nil, "", r.byRound(sut, p50), "≤ 5", atMost(5))
	r.add("A-L1", "latency p99 (ms), wagate", r.byRound(sut, p99), nil, "", r.byRound(sut, p99), "≤ 25", atMost(25))
	r.add("A-L2", "latency p99, wagate ÷ Node", r.byRound(sut, p99), r.byRound(node, p99), " ms", pairwise(r.byRound(sut, p99), r.byRound(node, p99), div), "≤ 1.0", atMost(1))
	r.add("A-L3", "latency p99, wagate − bare (ms)", r.byRound(sut, p99), r.byRound(bare, p99), " ms", pairwise(r.byRound(sut, p99), r.byRound(bare, p99), sub), "≤ 15", atMost(15))
	aa := pairwise(sutCPU, aaCPU, div)
	r.add("A/A", "deliveries per CPU-s, wagate ÷ wagate (noise)", sutCPU, aaCPU, "", aa, "1 ± 0.10", func(v float64) bool { return math.Abs(v-1) <= 0.10 })
	if len(aa) > 0 {
		r.NoiseAA = math.Abs(median(aa) - 1)
		r.Noisy = r.NoiseAA > 0.10
	}

	mem := map[string]memRow{}
	for _, m := range r.Memory {
		mem[m.Target] = m
	}
	one := func(t string, f func(memRow) float64) []float64 {
		if m, ok := mem[t]; ok {
			return []float64{f(m)}
		}
		return nil
	}
	rss := func(m memRow) float64 { return m.RSSPerSubKB }
	inuse := func(m memRow) float64 { return m.InUsePerSubKB }
	gor := func(m memRow) float64 { return m.GoroutinesPerSub }
	idle := func(m memRow) float64 { return m.IdleCPUPerSec * 1000 / float64(max(m.N, 1)) * 1000 } // ms/s per 1000 subs
	r.add("D-M1", "Go memory in use per idle subscriber (KB), wagate", one(sut, inuse), nil, "", one(sut, inuse), "≤ 40", atMost(40))
	r.add("D-M2", "Go memory in use per idle subscriber, wagate ÷ bare", one(sut, inuse), one(bare, inuse), " KB", pairwise(one(sut, inuse), one(bare, inuse), div), "≤ 1.2", atMost(1.2))
	r.add("D-M3", "per idle subscriber: wagate Go in use ÷ Node ΔRSS", one(sut, inuse), one(node, rss), " KB", pairwise(one(sut, inuse), one(node, rss), div), "≤ 1.5", atMost(1.5))
	r.add("D-rss", "ΔRSS per idle subscriber (KB), wagate (ref: bare)", one(sut, rss), one(bare, rss), "", one(sut, rss), "—", nil)
	r.add("D-M4", "goroutines per idle subscriber, wagate (ref: bare)", one(sut, gor), one(bare, gor), "", one(sut, gor), "≤ 4", atMost(4))
	r.add("D-idle", "idle CPU, ms per s per 1000 subscribers (ref: bare)", one(sut, idle), one(bare, idle), "", one(sut, idle), "—", nil)

	qps := func(q queryRun) float64 { return q.PerSecond }
	qcpu := func(q queryRun) float64 { return q.PerCPUSecond }
	on, off := r.queryRounds("ent list privacy on", qps), r.queryRounds("ent list privacy off", qps)
	r.add("B-Q1", "req/s ent list, privacy on ÷ off (in-process, same SQL)", on, off, "", pairwise(on, off, div), "≥ 0.90", atLeast(0.90))
	triv, hello := r.queryRounds("wagate trivial", qcpu), r.queryRounds("bare {hello}", qcpu)
	r.add("B-Q2", "req per CPU-s, wagate trivial ÷ bare {hello}", triv, hello, "", pairwise(triv, hello, div), "≥ 0.80", atLeast(0.80))
	list := r.queryRounds("wagate tenant list", qcpu)
	r.add("B-Q3", "req per (server+PG) CPU-s, wagate tenant list ÷ bare {hello}", list, hello, "", pairwise(list, hello, div), "≥ 0.15", atLeast(0.15))
	r.add("B-req/s", "req/s, wagate trivial ÷ bare {hello} (wall clock, 16 clients)", r.queryRounds("wagate trivial", qps), r.queryRounds("bare {hello}", qps), "",
		pairwise(r.queryRounds("wagate trivial", qps), r.queryRounds("bare {hello}", qps), div), "—", nil)
	lp99 := r.queryRounds("wagate tenant list", func(q queryRun) float64 { return q.P99 })
	r.add("B-Q4*", "p99 (ms) wagate tenant list, at saturation (16 clients)", lp99, nil, "", lp99, "≤ 10 at 50% load", nil)

	rate := func(q ingestRun) float64 { return q.RowsPerSec }
	sIn, spread, p1, p100 := r.ingestRounds("wagate", rate), r.ingestRounds("wagate-spread", rate), r.ingestRounds("P1", rate), r.ingestRounds("P100", rate)
	backlog := r.ingestRounds("wagate-backlog", rate)
	r.add("C-I1", fmt.Sprintf("rows/s, wagate ingest (all orgs, backlogs of %d) ÷ pgbench 1 row/tx", backlogSize), backlog, p1, "", pairwise(backlog, p1, div), "≥ 1.0", atLeast(1.0))
	r.add("C-I2", fmt.Sprintf("rows/s, wagate ingest (all orgs, backlogs of %d) ÷ pgbench 100 rows/tx", backlogSize), backlog, p100, "", pairwise(backlog, p100, div), "≥ 0.15", atLeast(0.15))
	r.add("C-I1m", "rows/s, wagate ingest (all orgs, one message per mutation) ÷ pgbench 1 row/tx", spread, p1, "", pairwise(spread, p1, div), "—", nil)
	r.add("C-I1m/1", "rows/s, wagate ingest (one org, one message per mutation) ÷ pgbench 1 row/tx", sIn, p1, "", pairwise(sIn, p1, div), "—", nil)
	r.add("C-cpu", "rows per (server+PG) CPU-s, wagate ingest (all orgs, backlogs)", r.ingestRounds("wagate-backlog", ingestCPU), nil, "", r.ingestRounds("wagate-backlog", ingestCPU), "—", nil)
	r.add("C-cpu/m", "rows per (server+PG) CPU-s, wagate ingest (all orgs, one message per mutation)", r.ingestRounds("wagate-spread", ingestCPU), nil, "", r.ingestRounds("wagate-spread", ingestCPU), "—", nil)
	r.add("C-I3", "ingest with NOTIFY ÷ without", nil, nil, "", nil, "≥ 0.90", nil)
	if h := r.IngestHalfRate; h != nil {
		r.add("C-L1", fmt.Sprintf("ack p99 (ms) at 50%% of max ingest (%.0f/s)", h.RowsPerSec), []float64{h.P99}, nil, "", []float64{h.P99}, "≤ 50", atMost(50))
	}
	var bad []string
	for _, q := range r.Ingest {
		if strings.HasPrefix(q.Case, "wagate") && (q.Rows != q.Acked || q.Errors > 0) {
			bad = append(bad, fmt.Sprintf("round %d: %d rows for %d acks, %d errors", q.Round+1, q.Rows, q.Acked, q.Errors))
		}
	}
	r.Gates = append(r.Gates, gateResult{Name: "C-gate", Pass: len(bad) == 0, Detail: "persisted rows == acknowledged messages, no errors " + strings.Join(bad, "; ")})
}

// markdown renders the table.
func (r *results) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s, %s CPUs, %s, PostgreSQL %s, Node %s; pinned=%s (servers on CPU %s); measured %.0f s\n\n",
		r.Machine["cpu"], r.Machine["cpus"], r.Machine["go"], r.Machine["postgres"], r.Machine["node"],
		r.Machine["pinned"], r.Machine["serverCPU"], r.MeasuredSeconds)
	fmt.Fprintf(&b, "| id | metric | wagate | reference | ratio / value (median) | target | min / max | rounds | verdict |\n")
	fmt.Fprintf(&b, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, w := range r.Rows {
		var rounds []string
		for _, v := range w.Rounds {
			rounds = append(rounds, fmtNum(v))
		}
		med, lo, hi := fmtNum(w.Median), fmtNum(w.Min), fmtNum(w.Max)
		if w.Verdict == "n/a" {
			med, lo, hi = "–", "–", "–"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s / %s | %s | %s |\n", w.ID, w.Metric, w.SUT, w.Ref,
			med, w.Target, lo, hi, strings.Join(rounds, ", "), w.Verdict)
	}
	b.WriteString("\n| gate | pass | detail |\n| --- | --- | --- |\n")
	for _, g := range r.Gates {
		fmt.Fprintf(&b, "| %s | %v | %s |\n", g.Name, g.Pass, g.Detail)
	}
	noisy := "no"
	if r.Noisy {
		noisy = "YES (ratios are unreliable)"
	}
	fmt.Fprintf(&b, "\nA/A noise |median − 1| = %.3f; noisy run: %s\n", r.NoiseAA, noisy)
	return b.String()
}

func (b *bench) report() error {
	r := &b.res
	r.Time = time.Now().UTC()
	r.Config = map[string]any{"subscribers": b.cfg.subs, "orgs": b.cfg.orgs, "rate": b.cfg.rate, "rounds": b.cfg.rounds,
		"window": b.cfg.window.String(), "drain": b.cfg.drain.String(), "query": b.cfg.query.String(),
		"ingest": b.cfg.ingest.String(), "quick": b.cfg.quick}
	r.tabulate()
	md := r.markdown()
	fmt.Println()
	fmt.Print(md)
	stamp := r.Time.Format("20060102-150405")
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{"results-" + stamp + ".json": js, "results-" + stamp + ".md": []byte(md),
		"latest.json": js, "latest.md": []byte(md)} {
		if err := os.WriteFile(filepath.Join(b.out, name), data, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("\nwritten: bench/out/results-%s.{md,json}\n", stamp)
	return nil
}
