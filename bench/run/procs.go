package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a server the driver started; only these are ever stopped by it.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// start runs argv (pinned to cpu when pinning is on) with its output in out/<name>.log.
func (b *bench) start(name string, env []string, argv ...string) (*proc, error) {
	if b.pin {
		argv = append([]string{"taskset", "-c", b.serverCPU}, argv...)
	}
	f, err := os.Create(filepath.Join(b.out, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the driver
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: f}
	b.procs = append(b.procs, p)
	return p, nil
}

// stop ends a process the driver started: SIGTERM, then SIGKILL after 5 s.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	p.log.Close()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitHTTP polls url until it answers 2xx, for at most d.
func waitHTTP(ctx context.Context, url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer within %s", url, d)
}

// cpuTicks is utime+stime of pid in clock ticks (100 per second here).
func cpuTicks(pid int) (int64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+2:]) // from field 3 (state) on
	if len(f) < 13 {
		return 0, false
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st, true
}

const ticksPerSecond = 100

// rssKB is VmRSS of pid.
func rssKB(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// cpuSet names the processes whose CPU time a measurement counts: a server and, for the
// SUT, the PostgreSQL backends of its connections (told apart by application_name in the
// bench database; the cluster's shared background processes are not counted).
type cpuSet struct {
	pid     int
	admin   *sql.DB // nil: the server alone
	db, app string
}

func (c cpuSet) pids(ctx context.Context) []int {
	pids := []int{c.pid}
	if c.admin == nil {
		return pids
	}
	rows, err := c.admin.QueryContext(ctx,
		`SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2`, c.db, c.app)
	if err != nil {
		return pids
	}
	defer rows.Close()
	for rows.Next() {
		var p int
		if rows.Scan(&p) == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// cpuMark is a reading of a cpuSet.
type cpuMark map[int]int64

func (c cpuSet) mark(ctx context.Context) cpuMark {
	m := cpuMark{}
	for _, p := range c.pids(ctx) {
		if t, ok := cpuTicks(p); ok {
			m[p] = t
		}
	}
	return m
}

// since is the CPU seconds the set used after m (backends that appeared count from zero).
func (c cpuSet) since(ctx context.Context, m cpuMark) float64 {
	total, _ := c.split(ctx, m)
	return total
}

// split is since, and the part of it the server process used (the rest is PostgreSQL's).
func (c cpuSet) split(ctx context.Context, m cpuMark) (total, server float64) {
	var d, s int64
	for p, t := range c.mark(ctx) {
		d += t - m[p]
		if p == c.pid {
			s = t - m[p]
		}
	}
	return float64(d) / ticksPerSecond, float64(s) / ticksPerSecond
}

// runtimeStats reads a Go target's /stats (goroutines, heap) or Node's process.memoryUsage().
func runtimeStats(url string) map[string]float64 {
	resp, err := http.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var m map[string]float64
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return m
}
