package wsgorilla_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/gorilla/websocket"

	"github.com/wagate/wagate/internal/wsgorilla"
)

var impl = wsgorilla.New(func(*http.Request) bool { return true }, time.Second)

// accept upgrades the request; a failed upgrade fails the test.
func accept(t *testing.T, w http.ResponseWriter, r *http.Request) transport.WebsocketConn {
	c, err := impl.Accept(w, r, transport.WebsocketAcceptOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Errorf("accept: %v", err)
	}
	return c
}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// hijackNoter notes the buffers net/http hands over with the connection.
type hijackNoter struct {
	http.ResponseWriter
	brw *bufio.ReadWriter
}

func (w *hijackNoter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	w.brw = brw
	return c, brw, err
}

// The buffers net/http keeps for the connection hold nothing once it is upgraded, and
// messages larger than the connection's own read buffer still come through whole.
func TestAcceptReleasesNetHTTPBuffers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hw := &hijackNoter{ResponseWriter: w}
		c := accept(t, hw, r)
		if c == nil {
			return
		}
		defer c.Close()
		if r, w := hw.brw.Reader.Size(), hw.brw.Writer.Size(); r != 0 || w != 0 {
			t.Errorf("net/http's reader and writer still hold %d and %d bytes", r, w)
		}
		for range 2 { // the first message is read apart (see NextReader)
			_, msg, err := c.NextReader()
			if err != nil {
				t.Error(err)
				return
			}
			n, err := io.Copy(io.Discard, msg)
			if err != nil {
				t.Error(err)
			}
			_ = c.WriteJSON(n)
		}
	}))
	defer srv.Close()
	c := dial(t, srv.URL)
	for _, size := range []int{100, 100_000} {
		if err := c.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("x"), size)); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := c.ReadJSON(&n); err != nil || n != size {
			t.Fatalf("the server read %d bytes (%v), want %d", n, err, size)
		}
	}
}

// Under a server whose base context is marked with Lifetime, the handler returns once the
// connection is upgraded; the connection's context outlives the request's and ends with
// the marked context.
func TestReapServesUpgradesOffTheHandlersGoroutine(t *testing.T) {
	lifetime, end := context.WithCancel(context.Background())
	defer end()
	conns := make(chan context.Context, 1)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := accept(t, w, r)
		if c == nil {
			return
		}
		context.AfterFunc(r.Context(), func() { _ = c.Close() }) // as gqlgen does
		conns <- r.Context()
		for {
			if _, _, err := c.NextReader(); err != nil {
				return
			}
		}
	})
	requests := make(chan context.Context, 1)
	returned := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests <- r.Context()
		wsgorilla.Reap(next).ServeHTTP(w, r)
		close(returned)
	}))
	srv.Config.BaseContext = func(net.Listener) context.Context { return wsgorilla.Lifetime(lifetime) }
	srv.Start()
	defer srv.Close()

	c := dial(t, srv.URL)
	conn, request := <-conns, <-requests
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler did not return after the upgrade")
	}
	<-request.Done() // net/http ends the request's context when the handler returns
	if conn.Err() != nil {
		t.Fatal("the connection's context ended with the request's")
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	end()
	select {
	case <-conn.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection's context outlived the server's")
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := c.ReadMessage(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("want the connection closed, got %v", err)
	}
}

// A panic before the upgrade reaches net/http, as if Reap had not moved the request to
// another goroutine; one after it is logged as net/http logs those of hijacked connections.
func TestReapPanics(t *testing.T) {
	var mu sync.Mutex
	var logged bytes.Buffer
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("before") {
			panic("before the upgrade")
		}
		if c := accept(t, w, r); c != nil {
			panic("after the upgrade")
		}
	})
	srv := httptest.NewUnstartedServer(wsgorilla.Reap(next))
	srv.Config.BaseContext = func(net.Listener) context.Context { return wsgorilla.Lifetime(context.Background()) }
	srv.Config.ErrorLog = log.New(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logged.Write(p)
	}), "", 0)
	srv.Start()
	defer srv.Close()

	if _, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"?before", nil); err == nil {
		t.Fatal("the upgrade succeeded")
	}
	c := dial(t, srv.URL)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := c.ReadMessage(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("want the connection closed after the panic, got %v", err)
	}
	for _, want := range []string{"http: panic serving", "before the upgrade", "after the upgrade"} {
		mu.Lock()
		got := logged.String()
		mu.Unlock()
		if !strings.Contains(got, want) {
			t.Errorf("the server's log lacks %q:\n%s", want, got)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// With PingInterval, a peer that answers pings stays connected while nothing else happens,
// and one that stopped answering (here: it no longer reads) is cut off after two intervals,
// which no write would have revealed.
func TestPingsEndConnectionsToDeadPeers(t *testing.T) {
	impl := wsgorilla.New(func(*http.Request) bool { return true }, time.Second)
	impl.PingInterval = 50 * time.Millisecond
	ended := map[string]chan error{"/alive": make(chan error, 1), "/dead": make(chan error, 1)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := impl.Accept(w, r, transport.WebsocketAcceptOptions{Subprotocols: []string{"graphql-transport-ws"}})
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer c.Close()
		_, _, err = c.NextReader() // as gqlgen's read loop waits for the next message
		ended[r.URL.Path] <- err
	}))
	defer srv.Close()
	alive := dial(t, srv.URL+"/alive")
	go func() { // reading answers the pings
		for {
			if _, _, err := alive.NextReader(); err != nil {
				return
			}
		}
	}()
	dial(t, srv.URL+"/dead")
	start := time.Now()
	select {
	case err := <-ended["/dead"]:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("the dead peer's connection ended with %v, want a read timeout", err)
		}
		if d := time.Since(start); d < 90*time.Millisecond {
			t.Fatalf("the dead peer was cut off after %v, before two intervals", d)
		}
	case err := <-ended["/alive"]:
		t.Fatalf("the live peer's connection ended: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the dead peer was never cut off")
	}
	select {
	case err := <-ended["/alive"]:
		t.Fatalf("the live peer's connection ended: %v", err)
	case <-time.After(300 * time.Millisecond): // six intervals
	}
}
