//go:build benchstats

package main

// BENCH-ONLY. Compiled only with `-tags benchstats` (bench/run builds the server that way);
// the default build has no such listener. With WAGATE_BENCH_STATS_ADDR set (a loopback
// address), the process serves its goroutine count and heap/stack sizes as JSON on
// GET /stats there, so the benchmark can report goroutines per idle subscriber.

import (
	"os"

	"github.com/wagate/wagate/bench/rtstats"
)

func init() {
	if addr := os.Getenv("WAGATE_BENCH_STATS_ADDR"); addr != "" {
		rtstats.Serve(addr)
	}
}
