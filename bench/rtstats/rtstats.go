// Package rtstats serves a Go process's runtime statistics as JSON for the benchmark driver:
// goroutines, heap and stack bytes. Only bench builds serve it (see ../../benchstats.go
// and ref-bare); the server's default build has no such endpoint.
package rtstats

import (
	"encoding/json"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"runtime/metrics"
)

// Stats is what GET /stats answers.
type Stats struct {
	Goroutines  int64  `json:"goroutines"`
	HeapObjects uint64 `json:"heapObjectsBytes"`
	Stacks      uint64 `json:"stacksBytes"`
	TotalMapped uint64 `json:"totalMappedBytes"`
	// InUse is what the runtime holds minus what it keeps free or gave back: a per-connection
	// figure unaffected by memory freed earlier and not yet returned to the OS (RSS is).
	InUse uint64 `json:"inUseBytes"`
}

var names = []string{
	"/sched/goroutines:goroutines",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
}

// Read samples the runtime.
func Read() Stats {
	s := make([]metrics.Sample, len(names))
	for i, n := range names {
		s[i].Name = n
	}
	metrics.Read(s)
	return Stats{
		Goroutines:  int64(s[0].Value.Uint64()),
		HeapObjects: s[1].Value.Uint64(),
		Stacks:      s[2].Value.Uint64(),
		TotalMapped: s[3].Value.Uint64(),
		InUse:       s[3].Value.Uint64() - s[4].Value.Uint64() - s[5].Value.Uint64(),
	}
}

// Handler answers GET /stats, after garbage collections: memory per connection is then what
// the connections keep alive, not what the last burst of work left for the collector. Three,
// as in the API's memory test: each halves at most the stacks of goroutines that use a
// quarter of theirs, as a server running for a while has had done to its idle connections.
func Handler(w http.ResponseWriter, _ *http.Request) {
	for range 3 {
		runtime.GC()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(Read())
}

// Serve listens on addr (loopback) in the background and serves /stats and a CPU profile
// (/debug/pprof/profile) there.
func Serve(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("bench stats listener: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", Handler)
	// CPU profiles for BENCH_PROFILE=1: where a window's CPU time went.
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.Handle("GET /debug/pprof/allocs", pprof.Handler("allocs"))
	go func() { _ = http.Serve(ln, mux) }()
}
