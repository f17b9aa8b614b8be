// Package wsgorilla plugs gorilla/websocket into gqlgen's WebSocket transport
// (transport.WebsocketImplementation).
package wsgorilla

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/gorilla/websocket"
)

// Implementation accepts WebSocket connections with gorilla/websocket.
type Implementation struct {
	Upgrader websocket.Upgrader
	// WriteTimeout bounds each frame write, so a peer that stops reading cannot block
	// gqlgen's writer (and through it the connection's other subscriptions) forever.
	WriteTimeout time.Duration
	// Open, when set, counts the connections open now.
	Open interface {
		Inc()
		Dec()
	}
	// PingInterval, when set, makes each connection send a WebSocket ping every interval,
	// and end when its peer has answered none for two intervals: a dead peer, or a
	// half-open connection, which no write would reveal while nothing happens. Peers answer
	// by themselves (browsers without the page's help). The connection keeps a timer for it,
	// not a goroutine (gqlgen's PingPongInterval parks one per connection).
	PingInterval time.Duration
}

// New returns an Implementation that prefers graphql-transport-ws (the protocol with
// ping/pong liveness) and accepts the origins allowed by allowOrigin.
func New(allowOrigin func(r *http.Request) bool, writeTimeout time.Duration) Implementation {
	return Implementation{
		Upgrader: websocket.Upgrader{
			HandshakeTimeout: 10 * time.Second,
			// gorilla picks the first server-listed protocol the client offers.
			Subprotocols:    []string{"graphql-transport-ws", "graphql-ws"},
			CheckOrigin:     allowOrigin,
			WriteBufferPool: &sync.Pool{}, // idle subscribers hold no write buffer
			// A buffer of its own, not net/http's 4 KB one, which Accept releases: an idle
			// subscriber only waits for a frame header. Larger messages are read past it.
			ReadBufferSize: 512,
		},
		WriteTimeout: writeTimeout,
	}
}

// Accept implements transport.WebsocketImplementation.
func (i Implementation) Accept(w http.ResponseWriter, r *http.Request, o transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	up := i.Upgrader // a copy: the shared configuration is never mutated
	up.Subprotocols = slices.Clone(up.Subprotocols)
	for _, p := range o.Subprotocols {
		if !slices.Contains(up.Subprotocols, p) {
			up.Subprotocols = append(up.Subprotocols, p)
		}
	}
	if up.Error == nil {
		// gqlgen answers a failed upgrade itself; writing here too would be a second response.
		up.Error = func(http.ResponseWriter, *http.Request, int, error) {}
	}
	// gorilla writes the upgrade response on the raw connection, without the headers that
	// middleware set on w (X-Request-ID): they are passed on here.
	header := o.ResponseHeader.Clone()
	if header == nil {
		header = http.Header{}
	}
	for k, v := range w.Header() {
		if _, ok := header[k]; !ok {
			header[k] = v
		}
	}
	hw := &hijackWriter{ResponseWriter: w}
	c, err := up.Upgrade(hw, r, header)
	if err != nil {
		return nil, err
	}
	hw.release(up.ReadBufferSize > 0)
	cn := &conn{c: c, writeTimeout: i.WriteTimeout}
	if i.PingInterval > 0 {
		cn.keepAlive(i.PingInterval)
	}
	if i.Open != nil {
		i.Open.Inc()
		cn.closed = i.Open.Dec
	}
	if a, ok := r.Context().Value(acceptedKey{}).(*accepted); ok {
		a.add(cn)
	}
	return cn, nil
}

// hijackWriter keeps the buffers net/http hands over with the connection, so that Accept
// can release them once gorilla has upgraded it.
type hijackWriter struct {
	http.ResponseWriter
	brw *bufio.ReadWriter
}

func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	w.brw = brw
	return c, brw, err
}

// release empties the hijacked reader (unless gorilla reads through it) and writer. net/http
// keeps pointers to them for as long as the handler runs, that is, the connection's whole
// life: each would pin a 4 KB buffer that nothing uses (gorilla/websocket#761).
func (w *hijackWriter) release(reader bool) {
	if w.brw == nil {
		return
	}
	if reader {
		*w.brw.Reader = bufio.Reader{} // empty: gorilla refuses data sent before the upgrade
	}
	*w.brw.Writer = bufio.Writer{}
}

type acceptedKey struct{}

// accepted are the connections accepted while serving one request.
type accepted struct {
	mu       sync.Mutex
	conns    []*conn
	upgraded chan struct{} // closed at the first connection
}

func (a *accepted) add(c *conn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.conns = append(a.conns, c)
	if len(a.conns) == 1 {
		close(a.upgraded)
	}
}

func (a *accepted) closeAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.conns {
		_ = c.Close()
	}
}

type lifetimeKey struct{}

// Lifetime marks ctx, a server's base context (http.Server.BaseContext), as what ends the
// WebSocket connections it serves, so that Reap may serve each on a goroutine of its own.
func Lifetime(ctx context.Context) context.Context {
	return context.WithValue(ctx, lifetimeKey{}, ctx)
}

// Reap closes the connections next accepted once it returns. gqlgen's transport returns
// without closing the socket on some failed connection_init (a payload that is not a JSON
// object, a read error), which would leak it, and with it the peer's resources.
//
// Under a server whose base context is marked with Lifetime, Reap also serves each upgrade
// request on a new goroutine and lets net/http's return once the connection is upgraded.
// gqlgen reads a connection for its whole life on the goroutine that serves its request: on
// net/http's, below the server's frames and the middleware, the idle read loop is deep
// enough to keep a 16 KB stack; on its own it keeps 8 KB. The connection then lives until
// the marked context ends, as it would under net/http, which cancels a hijacked request's
// context only when the server's does, or when the handler returns.
func Reap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			next.ServeHTTP(w, r)
			return
		}
		a := &accepted{upgraded: make(chan struct{})}
		lifetime, ok := r.Context().Value(lifetimeKey{}).(context.Context)
		if !ok {
			defer a.closeAll()
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), acceptedKey{}, a)))
			return
		}
		ctx, cancel := context.WithCancel(context.WithValue(context.WithoutCancel(r.Context()), acceptedKey{}, a))
		// Until the upgrade the request's context still ends the connection (the client went
		// away, the server is shutting down); afterwards, net/http cancels it when this returns.
		untilUpgrade := context.AfterFunc(r.Context(), cancel)
		s := &detached{a: a, next: next, w: w, r: r.WithContext(ctx), cancel: cancel,
			stopLifetime: context.AfterFunc(lifetime, cancel), done: make(chan struct{})}
		go s.serve()
		select {
		case <-a.upgraded:
			untilUpgrade()
		case <-s.done:
			if s.panicked != nil {
				panic(s.panicked) // net/http's recovery handles it, as if it had happened here
			}
		}
	})
}

// detached is an upgrade request Reap serves on its own goroutine.
type detached struct {
	a            *accepted
	next         http.Handler
	w            http.ResponseWriter
	r            *http.Request
	cancel       context.CancelFunc
	stopLifetime func() bool
	done         chan struct{}
	panicked     any // set before done is closed, only while net/http's goroutine waits
}

func (s *detached) serve() {
	defer close(s.done)
	defer s.cancel()
	defer s.stopLifetime()
	defer s.a.closeAll()
	defer s.recover()
	s.next.ServeHTTP(s.w, s.r)
}

// recover hands a panic to net/http's goroutine while it waits for the upgrade, and logs one
// that happens after it as net/http would have: on a hijacked connection it only logs.
func (s *detached) recover() {
	p := recover()
	if p == nil {
		return
	}
	select {
	case <-s.a.upgraded:
	default:
		s.panicked = p
		return
	}
	if p == http.ErrAbortHandler {
		return
	}
	logf := log.Printf
	if srv, ok := s.r.Context().Value(http.ServerContextKey).(*http.Server); ok && srv.ErrorLog != nil {
		logf = srv.ErrorLog.Printf
	}
	logf("http: panic serving %v: %v\n%s", s.r.RemoteAddr, p, debug.Stack())
}

type conn struct {
	c            *websocket.Conn
	writeTimeout time.Duration
	closed       func() // runs once, at Close

	pingMu sync.Mutex
	pinger *time.Timer // nil without PingInterval; stopped at Close

	initRead  bool // only gqlgen's reader calls NextReader, one call at a time
	closeOnce sync.Once
	closeErr  error
}

// CloseInvalidMessage is graphql-transport-ws's close code for a malformed message.
const CloseInvalidMessage = 4400

var errInvalidInit = errors.New("connection_init payload is not an object")

func (c *conn) NextReader() (int, io.Reader, error) {
	mt, r, err := c.c.NextReader()
	var ce *websocket.CloseError
	if errors.As(err, &ce) && (ce.Code == websocket.CloseNormalClosure ||
		ce.Code == websocket.CloseNoStatusReceived || ce.Code == websocket.CloseGoingAway) {
		// A closed browser tab (1001) is as normal as a 1000.
		return mt, nil, transport.ErrWebsocketClosed
	}
	if err != nil || c.initRead {
		return mt, r, err
	}
	// gqlgen returns without closing the socket when the first message is a connection_init
	// whose payload is JSON but not an object: the client would wait forever and the
	// connection would stay open. So the first message is checked here.
	c.initRead = true
	b, err := io.ReadAll(r)
	if err != nil {
		return mt, nil, err
	}
	if invalidInitPayload(b) {
		_ = c.WriteClose(CloseInvalidMessage, "the connection_init payload must be an object")
		return mt, nil, errInvalidInit
	}
	return mt, bytes.NewReader(b), nil
}

// invalidInitPayload reports a connection_init whose payload gqlgen cannot take. Other
// malformed messages gqlgen answers itself.
func invalidInitPayload(msg []byte) bool {
	var m struct {
		Type    string          `json:"type"`
		Payload json.RawMessage `json:"payload"`
	}
	// Decoded as gqlgen decodes messages: the first JSON value, whatever follows it.
	if json.NewDecoder(bytes.NewReader(msg)).Decode(&m) != nil || m.Type != "connection_init" || len(m.Payload) == 0 {
		return false
	}
	var p map[string]any
	return json.Unmarshal(m.Payload, &p) != nil
}

// frames are buffers for the messages appendData writes; one larger than maxPooledFrame (an
// unusually large result) is left to the garbage collector rather than kept.
var frames = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledFrame = 64 << 10

// CloseSlowConsumer is the close code of a connection whose peer stopped reading.
const CloseSlowConsumer = websocket.ClosePolicyViolation

// WriteJSON writes one frame. A frame that cannot be written within the write timeout
// means the peer has stopped reading while its socket buffers are full: the connection is
// closed, which ends its subscriptions. gqlgen only reports write errors, so without this
// a stalled peer would keep its subscriptions (and their producers) alive.
func (c *conn) WriteJSON(v any) error {
	if c.writeTimeout > 0 {
		_ = c.c.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	err := c.write(v) // gqlgen serializes its writers
	if err != nil {
		_ = c.WriteClose(CloseSlowConsumer, "slow consumer: the client stopped reading")
		_ = c.Close()
	}
	return err
}

func (c *conn) write(v any) error {
	b := frames.Get().(*[]byte)
	defer func() {
		if cap(*b) <= maxPooledFrame {
			frames.Put(b)
		}
	}()
	var ok bool
	if *b, ok = appendData((*b)[:0], v); ok {
		return c.c.WriteMessage(websocket.TextMessage, *b)
	}
	return c.c.WriteJSON(v)
}

// WriteClose sends a close frame; WriteControl may run beside a data write.
func (c *conn) WriteClose(code int, msg string) error {
	return c.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, msg), time.Now().Add(time.Second))
}

// keepAlive pings the peer every interval; the read deadline, moved on by each pong, ends
// the connection (gqlgen's read loop fails) when two intervals pass without one.
func (c *conn) keepAlive(every time.Duration) {
	extend := func(string) error { return c.c.SetReadDeadline(time.Now().Add(2 * every)) }
	_ = extend("")
	c.c.SetPongHandler(extend) // called by the read loop
	c.pingMu.Lock()
	defer c.pingMu.Unlock()
	c.pinger = time.AfterFunc(every, func() {
		// WriteControl may run beside gqlgen's writes; a failed ping leaves the deadline to act.
		err := c.c.WriteControl(websocket.PingMessage, nil, time.Now().Add(every))
		c.pingMu.Lock()
		defer c.pingMu.Unlock()
		if err == nil && c.pinger != nil {
			c.pinger.Reset(every)
		}
	})
}

func (c *conn) Close() error {
	c.pingMu.Lock()
	if c.pinger != nil {
		c.pinger.Stop()
		c.pinger = nil
	}
	c.pingMu.Unlock()
	c.closeOnce.Do(func() {
		c.closeErr = c.c.Close()
		if c.closed != nil {
			c.closed()
		}
	})
	return c.closeErr
}

func (c *conn) Subprotocol() string               { return c.c.Subprotocol() }
func (c *conn) SetReadLimit(n int64)              { c.c.SetReadLimit(n) }
func (c *conn) SetReadDeadline(t time.Time) error { return c.c.SetReadDeadline(t) }

// OriginPolicy allows requests without an Origin (non-browser clients), from the server's
// own host, and from the listed origins ("*" allows any).
func OriginPolicy(allowed []string) func(r *http.Request) bool {
	return func(r *http.Request) bool {
		origin := r.Header.Get("Origin")
		if origin == "" || Listed(allowed, origin) {
			return true
		}
		u, err := url.Parse(origin)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
}

// Listed reports whether origin is one of allowed ("*" lists every origin).
func Listed(allowed []string, origin string) bool {
	for _, a := range allowed {
		if a == "*" || strings.EqualFold(strings.TrimRight(a, "/"), origin) {
			return true
		}
	}
	return false
}
