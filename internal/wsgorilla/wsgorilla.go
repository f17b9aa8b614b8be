// Package wsgorilla plugs gorilla/websocket into gqlgen's WebSocket transport
// (transport.WebsocketImplementation).
package wsgorilla

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	c, err := up.Upgrade(w, r, o.ResponseHeader)
	if err != nil {
		return nil, err
	}
	wc := &conn{c: c, writeTimeout: i.WriteTimeout}
	// The request context ends when gqlgen's handler returns, and nobody reads the socket
	// after that. gqlgen returns without closing it when a connection_init payload is JSON but
	// not an object, which would leave the client waiting and the socket open for good.
	context.AfterFunc(r.Context(), wc.abandon)
	return wc, nil
}

type conn struct {
	c            *websocket.Conn
	writeTimeout time.Duration
	closeSent    atomic.Bool
	closeOnce    sync.Once
	closeErr     error
}

// CloseInvalidMessage is graphql-transport-ws's close code for a malformed message.
const CloseInvalidMessage = 4400

// abandon closes a connection its handler has finished with, telling the client why unless
// a close frame was sent already.
func (c *conn) abandon() {
	if !c.closeSent.Load() {
		_ = c.WriteClose(CloseInvalidMessage, "invalid message")
	}
	_ = c.Close()
}

func (c *conn) NextReader() (int, io.Reader, error) {
	mt, r, err := c.c.NextReader()
	var ce *websocket.CloseError
	if errors.As(err, &ce) && (ce.Code == websocket.CloseNormalClosure ||
		ce.Code == websocket.CloseNoStatusReceived || ce.Code == websocket.CloseGoingAway) {
		// A closed browser tab (1001) is as normal as a 1000.
		return mt, nil, transport.ErrWebsocketClosed
	}
	return mt, r, err
}

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
	err := c.c.WriteJSON(v) // gqlgen serializes its writers
	if err != nil {
		_ = c.WriteClose(CloseSlowConsumer, "slow consumer: the client stopped reading")
		_ = c.Close()
	}
	return err
}

// WriteClose sends a close frame; WriteControl may run beside a data write.
func (c *conn) WriteClose(code int, msg string) error {
	c.closeSent.Store(true)
	return c.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, msg), time.Now().Add(time.Second))
}

func (c *conn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.c.Close() })
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
		if origin == "" {
			return true
		}
		for _, a := range allowed {
			if a == "*" || strings.EqualFold(strings.TrimRight(a, "/"), origin) {
				return true
			}
		}
		u, err := url.Parse(origin)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
}
