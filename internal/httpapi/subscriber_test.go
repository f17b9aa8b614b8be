package httpapi_test

import (
	"encoding/json"
	"errors"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
)

// dialTinyBuffer opens a WebSocket whose kernel receive buffer is a few KiB, so a client
// that stops reading stalls the server's writes quickly.
func dialTinyBuffer(t *testing.T, s *apitest.Server) *websocket.Conn {
	t.Helper()
	nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, NetDialContext: nd.DialContext, ReadBufferSize: 1024}
	c, _, err := d.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/query", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// settleGoroutines waits until the process runs at most want goroutines.
func settleGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A subscriber that stops reading is disconnected once a frame cannot be written within
// the write timeout; the others get every event meanwhile, and nothing of the slow one is
// left running.
func TestSlowSubscriberIsDisconnectedWithoutSlowingOthers(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db, func(o *apitest.Options) {
			o.WebSocketWriteTimeout = 300 * time.Millisecond
			o.SendBuffer = 8 << 10
		})
		ann := s.SignUp(t, "Ann")
		a := connectedSandbox(t, s, ann, ann.OrgID, "A")
		received := map[string]any{"types": []string{"MESSAGE_RECEIVED"}}
		baseline := runtime.NumGoroutine()

		slow := dialTinyBuffer(t, s)
		send(t, slow, wsMsg{Type: "connection_init", Payload: initPayload(ann.Token, "")})
		if m, err := next(t, slow); err != nil || m.Type != "connection_ack" {
			t.Fatalf("want connection_ack, got %+v %v", m, err)
		}
		payload, _ := json.Marshal(map[string]any{"query": `subscription { events(types: [MESSAGE_RECEIVED]) { cursor payload } }`})
		send(t, slow, wsMsg{ID: "slow", Type: "subscribe", Payload: payload})
		fast := subscribeEvents(t, s, ann, received)

		// 24 events of 60 KiB: far more than the slow client's socket buffers hold (loopback
		// accepts a whole segment of up to 64 KiB whatever the buffer sizes).
		text := strings.Repeat("x", 60<<10)
		const n = 24
		for i := range n {
			simulate(t, s, ann, a.ID, text[:len(text)-i])
			if e := nextEvent(t, fast); e.Payload["text"] != text[:len(text)-i] {
				t.Fatalf("fast subscriber, event %d: %.40v", i, e.Payload["text"])
			}
		}

		// The slow client stays stalled past the write timeout (the events above may take less
		// than that), then reads what the kernel buffered and finds the connection closed.
		time.Sleep(3 * 300 * time.Millisecond)
		_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
		got := 0
		var err error
		for {
			var m wsMsg
			if err = slow.ReadJSON(&m); err != nil {
				break
			}
			if m.Type == "next" {
				got++
			}
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the slow subscriber was never disconnected (%d events read)", got)
		}
		if got >= n {
			t.Fatalf("the slow subscriber read all %d events: the test never stalled it", got)
		}
		fast.Close()
		slow.Close()
		settleGoroutines(t, baseline+2)
	})
}

// Subscriptions ended every way a client can end them leave no goroutine behind.
func TestSubscriptionsLeaveNoGoroutines(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann := s.SignUp(t, "Ann")
		a := connectedSandbox(t, s, ann, ann.OrgID, "A")
		baseline := runtime.NumGoroutine()

		// Only the message below, so no replay of the log is still being executed (its
		// resolvers' goroutines) when the goroutines are counted.
		const n = 12
		received := map[string]any{"types": []string{"MESSAGE_RECEIVED"}}
		conns := make([]*websocket.Conn, n)
		for i := range conns {
			conns[i] = subscribeEvents(t, s, ann, received)
		}
		legacy := dialWS(t, s, "graphql-ws", nil)
		send(t, legacy, wsMsg{Type: "connection_init", Payload: initPayload(ann.Token, "")})
		if m, err := next(t, legacy); err != nil || m.Type != "connection_ack" {
			t.Fatalf("legacy: want connection_ack, got %+v %v", m, err)
		}
		payload, _ := json.Marshal(map[string]any{"query": `subscription { events(types: [MESSAGE_RECEIVED]) { cursor } }`})
		send(t, legacy, wsMsg{ID: "1", Type: "start", Payload: payload})

		simulate(t, s, ann, a.ID, "hello")
		for _, c := range conns {
			if e := nextEvent(t, c); e.Type == "" {
				t.Fatal("no event")
			}
		}
		if m, err := next(t, legacy); err != nil || m.Type != "data" {
			t.Fatalf("legacy: want data, got %+v %v", m, err)
		}
		// A connection with one subscription costs the server three goroutines, as bare
		// gqlgen with the same transport: the connection's read loop, its context watcher
		// and the subscription's own, which also pulls the events (no producer goroutine per
		// subscriber; pings are a timer's, and the legacy protocol's keep-alive adds one);
		// the organization's feed adds one for all of them, and one more may be passing by
		// (a timer's or the test server's). Others passing by (the feed's reader,
		// after-commit work) end soon: the count has to come down to the bound, not be under
		// it at one arbitrary instant.
		low, high := baseline+n, baseline+3*n+4+2 // + the legacy connection's four, the feed, one passing by
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			g := runtime.NumGoroutine()
			if g <= low {
				t.Fatalf("%d goroutines with %d subscriptions open, baseline %d: want more than %d", g, n+1, baseline, low)
			}
			if g <= high {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d goroutines with %d subscriptions open, baseline %d: want at most %d", g, n+1, baseline, high)
			}
		}

		for i, c := range conns {
			switch i % 3 {
			case 0: // complete the subscription, then close politely
				send(t, c, wsMsg{ID: "events", Type: "complete"})
				_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
				c.Close()
			case 1: // drop the TCP connection
				c.Close()
			case 2: // close frame only
				_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), time.Now().Add(time.Second))
				c.Close()
			}
		}
		send(t, legacy, wsMsg{ID: "1", Type: "stop"})
		send(t, legacy, wsMsg{Type: "connection_terminate"})
		legacy.Close()
		settleGoroutines(t, baseline+2)
	})
}
