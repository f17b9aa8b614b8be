//go:build linux

package whatsapp_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"entgo.io/ent/dialect"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/session"
	"github.com/wagate/wagate/internal/cluster"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/events"
	"github.com/wagate/wagate/internal/testdb"
	"github.com/wagate/wagate/internal/viewer"
	"github.com/wagate/wagate/internal/webhook"
	"github.com/wagate/wagate/internal/whatsapp"
	"github.com/wagate/wagate/internal/whatsapp/sandbox"
)

// BenchmarkDeliver measures inbound ingest: 16 goroutines deliver messages, into one
// organization or spread over 20, through 1, 2 or 4 lanes, stored one by one in shared
// transactions or in bulk statements (PostgreSQL only, with a notification bus, as scenario
// C of bench/run without its HTTP). Besides events/s it reports events per commit and the
// CPU time per event of this process and of the database's backends, which a busy machine
// distorts less than the rate. Run with e.g.
//
//	go test -run '^$' -bench 'Deliver/orgs=20/lanes=2' -benchtime 5s ./internal/whatsapp/
func BenchmarkDeliver(b *testing.B) {
	for _, orgs := range []int{1, 20} {
		for _, lanes := range []int{1, 2, 4} {
			for _, bulk := range []bool{false, true} {
				b.Run(fmt.Sprintf("orgs=%d/lanes=%d/bulk=%v", orgs, lanes, bulk), func(b *testing.B) { benchDeliver(b, orgs, lanes, bulk) })
			}
		}
	}
}

func benchDeliver(b *testing.B, orgs, lanes int, bulk bool) {
	txs := &commitCounter{}
	db := testdb.Open(b, "postgres", database.Options{WrapDriver: func(d dialect.Driver) dialect.Driver {
		txs.Driver = d
		return txs
	}})
	ctx := viewer.System(context.Background(), "bench")
	keys, err := webhook.NewKeyring(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	log := events.New(db.Client, quiet)
	log.Webhooks = webhook.New(db.Client, webhook.Options{Keys: keys, Log: quiet})
	bctx, cancel := context.WithCancel(context.Background())
	l := cluster.Listen(db.DSN, quiet)
	go l.Run(bctx)
	b.Cleanup(func() { cancel(); l.Wait() })
	if err := log.Distribute(l); err != nil {
		b.Fatal(err)
	}
	net := sandbox.New(sandbox.Options{})
	b.Cleanup(net.Close)
	m := whatsapp.NewManager(db.Client, []whatsapp.Engine{net}, whatsapp.ManagerOptions{Log: quiet, Events: log, IngestLanes: lanes,
		BulkInbound: bulk})
	b.Cleanup(m.Stop)
	var sessions []*ent.Session
	for i := range orgs {
		org := db.Client.Organization.Create().SetName("Org").SetSlug(fmt.Sprintf("org-%d", i)).SaveX(ctx)
		s := db.Client.Session.Create().SetOrganizationID(org.ID).SetName("s").
			SetEngine(session.EngineSANDBOX).SaveX(ctx)
		if err := m.Connect(ctx, s); err != nil {
			b.Fatal(err)
		}
		sessions = append(sessions, s)
	}
	for _, s := range sessions { // live, as in the server: Deliver knows its organization
		waitStatus(b, db.Client, string(s.ID), session.StatusCONNECTED)
	}
	var n, failed atomic.Int64
	b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	dbName := db.DSN[strings.LastIndexByte(db.DSN, '/')+1:]
	dbName, _, _ = strings.Cut(dbName, "?")
	self0, pg0 := cpuTime(dbName)
	txs0 := txs.n.Load()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			s := sessions[int(i)%len(sessions)]
			err := m.Deliver(context.Background(), string(s.ID), whatsapp.Inbound{
				ID: fmt.Sprintf("BENCH%d", i), Chat: "15550000009@s.whatsapp.net", Sender: "15550000009@s.whatsapp.net",
				Kind: whatsapp.KindText, Text: "hello", Timestamp: time.Now(),
			})
			if err != nil {
				failed.Add(1)
			}
		}
	})
	elapsed := time.Since(start)
	self1, pg1 := cpuTime(dbName)
	txs1 := txs.n.Load()
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d deliveries failed", failed.Load())
	}
	b.ReportMetric(float64(n.Load())/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(n.Load())/float64(txs1-txs0), "events/commit")
	b.ReportMetric(float64((self1-self0).Microseconds())/float64(n.Load()), "go-µs/event")
	b.ReportMetric(float64((pg1-pg0).Microseconds())/float64(n.Load()), "pg-µs/event")
}

// commitCounter is an ent driver that counts the transactions it starts and the statements
// it runs outside them with QueryContext (in this benchmark, bulk writes, each committing on
// its own).
type commitCounter struct {
	dialect.Driver
	n atomic.Int64
}

func (d *commitCounter) Tx(ctx context.Context) (dialect.Tx, error) {
	d.n.Add(1)
	return d.Driver.Tx(ctx)
}

func (d *commitCounter) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	d.n.Add(1)
	return d.Driver.(interface {
		QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	}).QueryContext(ctx, q, args...)
}

// cpuTime is the CPU time used so far by this process, and by the PostgreSQL backends
// serving database db.
func cpuTime(db string) (self, pg time.Duration) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		cmd, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err != nil || !strings.HasPrefix(string(cmd), "postgres: ") || !strings.Contains(string(cmd), " "+db+" ") {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		pg += time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
	}
	return self, pg
}
