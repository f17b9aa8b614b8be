// Command ref-bare is the benchmark's "limit" reference: gqlgen with the same WebSocket
// transport as wagate (gorilla, graphql-transport-ws, the same ping interval, connections
// served off net/http's goroutines by wsgorilla.Reap), the same event shape, and nothing
// else — no authentication, no database, an in-memory broker per organization. The
// organization comes from connection_init ({"org": "..."}).
//
//	POST /inject {"org": "o1", "text": "..."}   publishes an event to the org's subscribers
//	POST /query                                 GraphQL ({hello})
//	GET  /stats                                 goroutines, heap and stack bytes
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/wagate/wagate/bench/rtstats"
	"github.com/wagate/wagate/internal/wsgorilla"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	flag.Parse()
	b := &broker{subs: map[string]map[chan *Event]struct{}{}, seq: map[string]int64{}}
	srv := handler.New(NewExecutableSchema(Config{Resolvers: &Resolver{broker: b}}))
	ws := wsgorilla.New(func(*http.Request) bool { return true }, 10*time.Second)
	ws.PingInterval = 20 * time.Second // as wagate
	srv.AddTransport(transport.Websocket{
		Implementation:        ws,
		InitFunc:              initOrg,
		InitTimeout:           10 * time.Second,
		KeepAlivePingInterval: 20 * time.Second,
	})
	srv.AddTransport(transport.POST{})
	mux := http.NewServeMux()
	mux.Handle("/query", wsgorilla.Reap(srv))
	mux.HandleFunc("POST /inject", b.inject)
	mux.HandleFunc("GET /stats", rtstats.Handler)
	hs := &http.Server{Addr: *addr, Handler: mux, BaseContext: func(net.Listener) context.Context {
		return wsgorilla.Lifetime(context.Background())
	}}
	log.Fatal(hs.ListenAndServe())
}

type orgKey struct{}

func initOrg(ctx context.Context, p transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	return context.WithValue(ctx, orgKey{}, p.GetString("org")), nil, nil
}

func orgOf(ctx context.Context) string { s, _ := ctx.Value(orgKey{}).(string); return s }

// broker fans an org's events out to its subscribers' channels. A full channel blocks the
// publisher for at most a second, then the event is dropped for that subscriber (counted by
// the load generator as missing).
type broker struct {
	mu   sync.Mutex
	subs map[string]map[chan *Event]struct{}
	seq  map[string]int64
}

func (b *broker) subscribe(ctx context.Context, org string) <-chan *Event {
	ch := make(chan *Event, 64)
	b.mu.Lock()
	if b.subs[org] == nil {
		b.subs[org] = map[chan *Event]struct{}{}
	}
	b.subs[org][ch] = struct{}{}
	b.mu.Unlock()
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		delete(b.subs[org], ch)
		b.mu.Unlock()
	})
	return ch
}

func (b *broker) inject(w http.ResponseWriter, r *http.Request) {
	var in struct{ Org, Text string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	b.seq[in.Org]++
	ev := &Event{Cursor: strconv.FormatInt(b.seq[in.Org], 10), Type: "MESSAGE_RECEIVED",
		Payload: map[string]any{"text": in.Text, "fromMe": false}}
	targets := make([]chan *Event, 0, len(b.subs[in.Org]))
	for ch := range b.subs[in.Org] {
		targets = append(targets, ch)
	}
	b.mu.Unlock()
	for _, ch := range targets {
		select {
		case ch <- ev:
		default:
			select {
			case ch <- ev:
			case <-time.After(time.Second):
			}
		}
	}
	w.WriteHeader(http.StatusNoContent)
}
