// Package loadgen is the benchmark's load generator: graphql-transport-ws subscribers
// (gorilla/websocket) that check and time every event they receive, an open-loop injector,
// and a closed-loop HTTP client. It talks to loopback addresses only, and every loop it runs
// is bounded in count and in time.
//
// An injected event carries a marker in its text, "B|w=<window>|o=<org>|s=<seq>|t=<ns>|":
// the window it belongs to, the organization it was sent to, its number within the
// organization and window (informational: order is checked on the server's cursor), and its
// scheduled send time (unix ns). A subscriber finds the
// marker with bytes.Index, without decoding the frame, so the client's cost per event stays
// small and the same for every target.
package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gorilla/websocket"
)

// Marker is the text of an injected event.
func Marker(window, org, seq int, scheduled time.Time) string {
	return fmt.Sprintf("B|w=%d|o=%d|s=%d|t=%d|", window, org, seq, scheduled.UnixNano())
}

// Loopback refuses any address that is not on 127.0.0.0/8 or ::1: the benchmark never
// sends traffic off the machine.
func Loopback(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s: the benchmark only talks to loopback addresses", rawURL)
	}
	return nil
}

// NewHist is a latency histogram in microseconds, 1 µs to 60 s, 3 significant digits.
func NewHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 60_000_000, 3) }

// Sink gathers what one target's subscribers receive in the current window.
type Sink struct {
	window    atomic.Int64
	delivered atomic.Int64
	late      atomic.Int64 // events of an earlier window
	leaks     atomic.Int64 // events of another organization
	disorder  atomic.Int64 // a cursor at or below one the subscriber already received
	errs      atomic.Int64 // error or complete frames, and dropped connections
	mu        sync.Mutex
	hist      *hdrhistogram.Histogram
}

// NewSink returns an empty Sink.
func NewSink() *Sink { return &Sink{hist: NewHist()} }

// Begin starts window w: counters and latencies restart from zero.
func (s *Sink) Begin(w int) {
	s.mu.Lock()
	s.hist.Reset()
	s.mu.Unlock()
	s.delivered.Store(0)
	s.late.Store(0)
	s.leaks.Store(0)
	s.disorder.Store(0)
	s.window.Store(int64(w))
}

// Counts is a window's tally.
type Counts struct {
	Delivered, Late, Leaks, Disorder, Errors int64
	P50, P99, P999, Max                      float64 // milliseconds
}

// Delivered is how many events of the current window arrived so far.
func (s *Sink) Delivered() int64 { return s.delivered.Load() }

// Snapshot reads the current window's tally.
func (s *Sink) Snapshot() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := func(q float64) float64 { return float64(s.hist.ValueAtQuantile(q)) / 1000 }
	return Counts{Delivered: s.delivered.Load(), Late: s.late.Load(), Leaks: s.leaks.Load(),
		Disorder: s.disorder.Load(), Errors: s.errs.Load(),
		P50: ms(50), P99: ms(99), P999: ms(99.9), Max: float64(s.hist.Max()) / 1000}
}

// field reads the integer after key in b, up to the next '|'.
func field(b []byte, key string) (int64, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	j := bytes.IndexByte(b, '|')
	if j < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b[:j]), 10, 64)
	return n, err == nil
}

// subscriber is one WebSocket connection with one subscription.
type subscriber struct {
	conn       *websocket.Conn
	org        int
	sink       *Sink
	lastCursor int64
	wmu        sync.Mutex
}

var (
	nextTag = []byte(`"type":"next"`)
	pingTag = []byte(`"type":"ping"`)
	errTag  = []byte(`"type":"error"`)
	compTag = []byte(`"type":"complete"`)
	mark    = []byte("B|w=")
	cursor  = []byte(`"cursor":"`)
)

// cursorOf reads the event's cursor: the server's order, which is the order that must hold
// (concurrent injections into one organization may commit in another order than sent).
func cursorOf(msg []byte) (int64, bool) {
	i := bytes.Index(msg, cursor)
	if i < 0 {
		return 0, false
	}
	b := msg[i+len(cursor):]
	j := bytes.IndexByte(b, '"')
	if j < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b[:j]), 10, 64)
	return n, err == nil
}

func (s *subscriber) write(v any) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return s.conn.WriteJSON(v)
}

// read runs until the connection closes.
func (s *subscriber) read() {
	for {
		_, msg, err := s.conn.ReadMessage()
		if err != nil {
			return
		}
		switch {
		case bytes.Contains(msg, nextTag):
			if c, ok := cursorOf(msg); ok {
				if c <= s.lastCursor {
					s.sink.disorder.Add(1)
				}
				s.lastCursor = c
			}
			i := bytes.Index(msg, mark)
			if i < 0 {
				continue // an event that was not injected by the benchmark (session status…)
			}
			now := time.Now()
			m := msg[i:]
			w, _ := field(m, "B|w=")
			o, _ := field(m, "|o=")
			t, ok := field(m, "|t=")
			if !ok {
				continue
			}
			if w != s.sink.window.Load() {
				s.sink.late.Add(1)
				continue
			}
			if int(o) != s.org {
				s.sink.leaks.Add(1)
			}
			s.sink.delivered.Add(1)
			us := now.Sub(time.Unix(0, t)).Microseconds()
			s.sink.mu.Lock()
			_ = s.sink.hist.RecordValue(max(us, 1))
			s.sink.mu.Unlock()
		case bytes.Contains(msg, pingTag):
			_ = s.write(map[string]string{"type": "pong"})
		case bytes.Contains(msg, errTag), bytes.Contains(msg, compTag):
			s.sink.errs.Add(1)
		}
	}
}

// Pool is a target's subscribers.
type Pool struct {
	subs []*subscriber
	wg   sync.WaitGroup
	// PerOrg is how many subscribers each organization has.
	PerOrg []int
}

// DialConfig describes the subscribers to open.
type DialConfig struct {
	URL   string // ws://127.0.0.1:port/path
	N     int    // subscribers, one connection and one subscription each
	Orgs  int    // spread round-robin over this many organizations
	Init  func(org int) map[string]any
	Query string
	// Rate bounds connection attempts per second; InFlight bounds handshakes at once.
	Rate, InFlight int
	Timeout        time.Duration // for the whole pool
}

// Dial opens the subscribers and subscribes each, waiting for every connection_ack.
func Dial(ctx context.Context, cfg DialConfig, sink *Sink) (*Pool, error) {
	if err := Loopback(cfg.URL); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, ReadBufferSize: 1024,
		WriteBufferSize: 256, HandshakeTimeout: 10 * time.Second, EnableCompression: false}
	p := &Pool{subs: make([]*subscriber, cfg.N), PerOrg: make([]int, cfg.Orgs)}
	sem := make(chan struct{}, cfg.InFlight)
	tick := time.NewTicker(time.Second / time.Duration(cfg.Rate))
	defer tick.Stop()
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for i := 0; i < cfg.N; i++ {
		select {
		case <-tick.C:
		case <-ctx.Done():
			wg.Wait()
			p.Close()
			return nil, fmt.Errorf("dialing subscriber %d of %d: %w", i, cfg.N, ctx.Err())
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := dialOne(ctx, d, cfg, i%cfg.Orgs, sink)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("subscriber %d: %w", i, err)
				}
				return
			}
			p.subs[i] = s
			p.PerOrg[s.org]++
		}(i)
	}
	wg.Wait()
	if firstErr != nil {
		p.Close()
		return nil, firstErr
	}
	for _, s := range p.subs {
		p.wg.Add(1)
		go func() { defer p.wg.Done(); s.read() }()
	}
	return p, nil
}

func dialOne(ctx context.Context, d websocket.Dialer, cfg DialConfig, org int, sink *Sink) (*subscriber, error) {
	conn, _, err := d.DialContext(ctx, cfg.URL, nil)
	if err != nil {
		return nil, err
	}
	s := &subscriber{conn: conn, org: org, sink: sink}
	fail := func(err error) (*subscriber, error) { _ = conn.Close(); return nil, err }
	if err := s.write(map[string]any{"type": "connection_init", "payload": cfg.Init(org)}); err != nil {
		return fail(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			return fail(fmt.Errorf("waiting for connection_ack: %w", err))
		}
		var m struct{ Type string }
		if json.Unmarshal(msg, &m) == nil && m.Type == "connection_ack" {
			break
		}
		if m.Type != "ping" {
			return fail(fmt.Errorf("unexpected %s before connection_ack", msg))
		}
	}
	_ = conn.SetReadDeadline(time.Time{})
	err = s.write(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": cfg.Query}})
	if err != nil {
		return fail(err)
	}
	return s, nil
}

// Close closes every connection and waits for the readers.
func (p *Pool) Close() {
	for _, s := range p.subs {
		if s != nil {
			s.wmu.Lock()
			_ = s.conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			s.wmu.Unlock()
			_ = s.conn.Close()
		}
	}
	p.wg.Wait()
}

// InjectResult is what an open-loop injection did.
type InjectResult struct {
	Sent, Errors int64
	FirstErr     error
	Ack          *hdrhistogram.Histogram // scheduled time to answer, µs
}

// Inject calls send n times on a fixed schedule (rate per second), never waiting for
// answers before the next is due (open loop), with at most inFlight outstanding; a call
// that has to wait for a slot still measures from its scheduled time. It stops early when
// ctx ends.
func Inject(ctx context.Context, n int, rate float64, inFlight int, send func(ctx context.Context, i int, scheduled time.Time) error) InjectResult {
	res := InjectResult{Ack: NewHist()}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, inFlight)
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		at := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if d := time.Until(at); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int, at time.Time) {
			defer wg.Done()
			defer func() { <-sem }()
			err := send(ctx, i, at)
			us := time.Since(at).Microseconds()
			mu.Lock()
			defer mu.Unlock()
			res.Sent++
			_ = res.Ack.RecordValue(max(us, 1))
			if err != nil {
				res.Errors++
				if res.FirstErr == nil {
					res.FirstErr = err
				}
			}
		}(i, at)
	}
	wg.Wait()
	return res
}

// LoadResult is what a closed-loop run did.
type LoadResult struct {
	OK, Errors int64
	Elapsed    time.Duration
	FirstErr   error
	Hist       *hdrhistogram.Histogram // µs
}

// Load runs do from conc goroutines back to back for dur (closed loop). A call still running
// at the end is awaited, not cancelled, so every request the server completed is counted.
func Load(ctx context.Context, conc int, dur time.Duration, do func(ctx context.Context) error) LoadResult {
	deadline := time.Now().Add(dur)
	res := LoadResult{Hist: NewHist()}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := NewHist()
			var ok, bad int64
			var first error
			for ctx.Err() == nil && time.Now().Before(deadline) {
				t := time.Now()
				err := do(ctx)
				if err != nil {
					bad++
					if first == nil {
						first = err
					}
					continue
				}
				ok++
				_ = h.RecordValue(max(time.Since(t).Microseconds(), 1))
			}
			mu.Lock()
			defer mu.Unlock()
			res.OK += ok
			res.Errors += bad
			res.Hist.Merge(h)
			if res.FirstErr == nil {
				res.FirstErr = first
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res
}

// Client is an HTTP client for loopback load: keep-alive connections, no proxy.
func Client(conns int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		Proxy: nil, MaxIdleConns: conns * 2, MaxIdleConnsPerHost: conns * 2, MaxConnsPerHost: conns * 2,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext, IdleConnTimeout: time.Minute,
	}}
}

// ErrStatus is an HTTP answer outside 2xx.
var ErrStatus = errors.New("unexpected HTTP status")
