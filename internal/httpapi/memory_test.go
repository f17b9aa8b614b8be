//go:build !race

// The race detector enlarges stacks and objects: the bounds below hold for normal builds.

package httpapi_test

import (
	"encoding/json"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/auth"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
)

// live is what the heap's objects and the goroutines' stacks take after a few collections.
func live() (objects, stacks float64) {
	for range 3 { // a stack shrinks by half at most per collection
		runtime.GC()
	}
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return float64(s[0].Value.Uint64()), float64(s[1].Value.Uint64())
}

// What idle subscribers (a connection with one events subscription each) keep alive stays
// within bounds that catch the return of what was cut from them: net/http's 4 KB read and
// write buffers, pinned for the connection's life (8 KB more objects), its read loop back
// on net/http's goroutine, whose stack then stays at 16 KB rather than 8, or a goroutine
// parked per connection for pings (3.5 KB more stacks). The bounds include the client's
// side of the connections, in this process too.
func TestIdleSubscribersMemory(t *testing.T) {
	db := testdb.Open(t, "sqlite", database.Options{})
	// No credential cache: every connection_init reads the database, as a cold cache would.
	s := apitest.New(t, db, func(o *apitest.Options) { o.Auth = func(c *auth.Config) { c.CacheTTL = -1 } })
	ann := s.SignUp(t, "Ann")
	// Small client buffers: the client's side of each connection is in this process too.
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, ReadBufferSize: 256,
		WriteBufferPool: &sync.Pool{}, HandshakeTimeout: 5 * time.Second}
	subscribe, _ := json.Marshal(map[string]any{"query": `subscription { events { cursor type payload } }`})
	open := func() {
		c, _, err := d.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/query", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		send(t, c, wsMsg{Type: "connection_init", Payload: initPayload(ann.Token, "")})
		if m, err := next(t, c); err != nil || m.Type != "connection_ack" {
			t.Fatalf("want connection_ack, got %+v %v", m, err)
		}
		send(t, c, wsMsg{ID: "events", Type: "subscribe", Payload: subscribe})
	}
	open() // the organization's feed, the caches and the pools are there before the baseline
	const n = 200
	objectsBefore, stacksBefore := live()
	for range n {
		open()
	}
	metricEventually(t, s, n+1, "wagate_graphql_subscriptions_active", "field", "events")
	time.Sleep(100 * time.Millisecond) // every subscription waiting for its next event
	objectsAfter, stacksAfter := live()
	objects, stacks := (objectsAfter-objectsBefore)/n/1024, (stacksAfter-stacksBefore)/n/1024
	t.Logf("per idle subscriber: %.1f KB of objects, %.1f KB of stacks", objects, stacks)
	if objects > 23 || stacks > 20 {
		t.Errorf("an idle subscriber keeps %.1f KB of objects and %.1f KB of stacks alive, want at most 23 and 20", objects, stacks)
	}
}
