package wsgorilla_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
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
