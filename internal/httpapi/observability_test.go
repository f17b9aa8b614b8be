package httpapi_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
	webhooks "github.com/wagate/wagate/internal/webhook"
)

// scrape reads the server's /metrics the way Prometheus does.
func scrape(t *testing.T, s *apitest.Server) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// metric returns the value of the series of name with exactly these labels (a histogram's
// count), and whether it exists.
func metric(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		if len(m.Label)*2 != len(labels) {
			continue
		}
		for i := 0; i < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// wantMetric fails unless the series has the value.
func wantMetric(t *testing.T, fams map[string]*dto.MetricFamily, want float64, name string, labels ...string) {
	t.Helper()
	if got, ok := metric(fams, name, labels...); !ok || got != want {
		t.Errorf("%s%v = %v (present: %v), want %v", name, labels, got, ok, want)
	}
}

// metricEventually waits until the series reaches want.
func metricEventually(t *testing.T, s *apitest.Server, want float64, name string, labels ...string) {
	t.Helper()
	eventually(t, name+" to reach its value", func() bool {
		got, _ := metric(scrape(t, s), name, labels...)
		return got == want
	})
}

// Real traffic — GraphQL over HTTP and WebSocket, an inbound message, its webhook — shows in
// the metrics scraped from /metrics.
func TestMetricsAfterAPITraffic(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s, ann, line := annWithLine(t, db)
		rc := newReceiver(t, nil)
		createWebhook(t, s, ann, rc.URL, "MESSAGE_RECEIVED")
		before := scrape(t, s)
		wantMetric(t, before, 0, "wagate_websocket_connections_open")
		wantMetric(t, before, 1, "wagate_sessions", "status", "CONNECTED")
		wantMetric(t, before, 0, "wagate_sessions", "status", "BANNED") // every status, even without sessions
		if _, ok := before["go_goroutines"]; !ok {
			t.Error("no Go runtime metrics")
		}
		posts, _ := metric(before, "wagate_http_requests_total", "route", "/query", "method", "POST", "status", "200")

		s.OK(t, q(ann, "", `query Viewer { viewer { role } }`, nil), nil)
		wantCode(t, s.Do(t, q(ann, "", `mutation Delete($id: ID!) { deleteSession(id: $id) }`, map[string]any{"id": "ses_01jf3k2v8q9m7x0c4d5e6f7g8h"})), "NOT_FOUND")
		wantCode(t, s.Do(t, q(ann, "", `query Broken { noSuchField }`, nil)), "BAD_USER_INPUT")

		c := subscribeEvents(t, s, ann, map[string]any{"types": []string{"MESSAGE_RECEIVED"}})
		metricEventually(t, s, 1, "wagate_graphql_subscriptions_active", "field", "events")
		simulate(t, s, ann, line.ID, "hello")
		if ev := nextEvent(t, c); ev.Type != "MESSAGE_RECEIVED" {
			t.Fatalf("event %+v", ev)
		}
		s.StartWebhookWorker(t, webhooks.WorkerOptions{})
		metricEventually(t, s, 1, "wagate_webhook_attempts_total", "outcome", "success")

		after := scrape(t, s)
		wantMetric(t, after, 1, "wagate_websocket_connections_open")
		wantMetric(t, after, 1, "wagate_graphql_operation_duration_seconds", "type", "query", "name", "Viewer")
		wantMetric(t, after, 1, "wagate_graphql_operations_total", "type", "subscription", "name", "anonymous")
		wantMetric(t, after, 1, "wagate_graphql_operation_errors_total", "type", "mutation", "name", "Delete", "code", "NOT_FOUND")
		// Refused before it ran: the operation is not known yet.
		wantMetric(t, after, 1, "wagate_graphql_operation_errors_total", "type", "unknown", "name", "other", "code", "BAD_USER_INPUT")
		wantMetric(t, after, 1, "wagate_events_ingested_total", "type", "MESSAGE_RECEIVED")
		wantMetric(t, after, 1, "wagate_events_delivered_total", "type", "MESSAGE_RECEIVED")
		wantMetric(t, after, 1, "wagate_webhook_attempt_duration_seconds")
		wantMetric(t, after, 0, "wagate_webhook_deliveries_failed_total")
		if got, _ := metric(after, "wagate_http_requests_total", "route", "/query", "method", "POST", "status", "200"); got < posts+3 {
			t.Errorf("POST /query count went from %v to %v", posts, got)
		}
		wantMetric(t, after, 1, "wagate_http_requests_total", "route", "/query", "method", "POST", "status", "422")

		c.Close()
		metricEventually(t, s, 0, "wagate_websocket_connections_open")
		metricEventually(t, s, 0, "wagate_graphql_subscriptions_active", "field", "events")
		// The upgrade is one request, of status 101, counted when the connection ends.
		wantMetric(t, scrape(t, s), 1, "wagate_http_requests_total", "route", "/query", "method", "GET", "status", "101")
	})
}

// A socket whose connection_init payload is not an object is closed, not leaked: gqlgen's
// transport gives up on it without closing it.
func TestMalformedConnectionInitIsClosed(t *testing.T) {
	db := testdb.Open(t, "sqlite", database.Options{})
	s := apitest.New(t, db)
	c := dialWS(t, s, "graphql-transport-ws", nil)
	send(t, c, wsMsg{Type: "connection_init", Payload: json.RawMessage(`"not an object"`)})
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := c.ReadMessage()
	if ne, ok := err.(interface{ Timeout() bool }); err == nil || ok && ne.Timeout() {
		t.Fatalf("the server kept the socket open: %v", err)
	}
	metricEventually(t, s, 0, "wagate_websocket_connections_open")
}

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the JSON log lines that have every key/value of match.
func (b *syncBuffer) lines(t *testing.T, match map[string]any) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	sc.Buffer(nil, 1<<20)
next:
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Bytes())
		}
		for k, v := range match {
			if line[k] != v {
				continue next
			}
		}
		out = append(out, line)
	}
	return out
}

// A request's id comes from X-Request-ID when well-formed, is made otherwise, is echoed, and
// is on every log line of the request: its access line and its GraphQL operations, over HTTP
// and over WebSocket.
func TestRequestIDs(t *testing.T) {
	db := testdb.Open(t, "sqlite", database.Options{})
	logs := &syncBuffer{}
	s := apitest.New(t, db, func(o *apitest.Options) { o.LogTo = logs })
	post := func(id string) string {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/query", strings.NewReader(`{"query":"query Probe { viewer { isSuperAdmin } }"}`))
		req.Header.Set("Content-Type", "application/json")
		if id != "" {
			req.Header.Set("X-Request-ID", id)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("X-Request-ID")
	}
	if got := post("lb-7f3a.42"); got != "lb-7f3a.42" {
		t.Fatalf("echoed %q", got)
	}
	made := post("")
	if len(made) < 16 {
		t.Fatalf("made %q", made)
	}
	if replaced := post(`bad id "with quotes"`); replaced == "" || strings.Contains(replaced, " ") {
		t.Fatalf("a malformed id came back as %q", replaced)
	}
	if other := post(""); other == made {
		t.Fatalf("two requests got the same id %q", made)
	}
	access := logs.lines(t, map[string]any{"msg": "http request", "request_id": "lb-7f3a.42"})
	if len(access) != 1 || access[0]["level"] != "INFO" || access[0]["method"] != "POST" || access[0]["path"] != "/query" ||
		access[0]["status"] != 200.0 || access[0]["bytes"].(float64) <= 0 || access[0]["duration"] == nil {
		t.Fatalf("access log: %v", access)
	}
	if op := logs.lines(t, map[string]any{"msg": "graphql operation", "request_id": made, "name": "Probe"}); len(op) != 1 {
		t.Fatalf("operation log of %s: %v", made, op)
	}

	// A WebSocket's operations carry the id of its upgrade request.
	ann := s.SignUp(t, "Ann")
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}}
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/query", http.Header{"X-Request-ID": {"ws-conn-1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := resp.Header.Get("X-Request-ID"); got != "ws-conn-1" {
		t.Fatalf("upgrade response X-Request-ID %q", got)
	}
	send(t, c, wsMsg{Type: "connection_init", Payload: initPayload(ann.Token, "")})
	if m, err := next(t, c); err != nil || m.Type != "connection_ack" {
		t.Fatalf("want connection_ack, got %+v %v", m, err)
	}
	send(t, c, wsMsg{ID: "1", Type: "subscribe", Payload: json.RawMessage(`{"query":"query OverSocket { viewer { role } }"}`)})
	if m, err := next(t, c); err != nil || m.Type != "next" {
		t.Fatalf("want a result, got %+v %v", m, err)
	}
	eventually(t, "the socket's operation to be logged", func() bool {
		return len(logs.lines(t, map[string]any{"msg": "graphql operation", "request_id": "ws-conn-1", "name": "OverSocket"})) == 1
	})

	// Probes are logged at debug level only.
	if resp, err := http.Get(s.URL + "/healthz"); err == nil {
		resp.Body.Close()
	}
	eventually(t, "the probe's access line", func() bool {
		return len(logs.lines(t, map[string]any{"msg": "http request", "path": "/healthz", "level": "DEBUG"})) == 1
	})
}
