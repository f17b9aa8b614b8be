package metrics

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Operation names are chosen by clients: only well-formed ones, and a bounded number of
// them, become label values.
func TestOperationNamesAreBounded(t *testing.T) {
	l := newNameLimiter(3)
	for _, c := range []struct{ in, want string }{
		{"", "anonymous"}, {"Viewer", "Viewer"}, {"a b", "other"}, {strings.Repeat("x", 65), "other"},
		{"Two", "Two"}, {"Three", "Three"}, {"Four", "other"}, {"Viewer", "Viewer"},
	} {
		if got := l.label(c.in); got != c.want {
			t.Errorf("label(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// HTTP series are bounded too: unknown methods and unmatched routes are "other".
func TestObserveHTTPLabels(t *testing.T) {
	m := New()
	m.ObserveHTTP("GET /media/{id}", http.MethodGet, 200, time.Millisecond)
	m.ObserveHTTP("", "BREW", 404, time.Millisecond)
	for labels, want := range map[[3]string]float64{
		{"/media/{id}", "GET", "200"}: 1,
		{"other", "other", "404"}:     1,
	} {
		if got := testutil.ToFloat64(m.httpRequests.WithLabelValues(labels[:]...)); got != want {
			t.Errorf("%v: %v, want %v", labels, got, want)
		}
	}
	var nilMetrics *Metrics // services without metrics
	nilMetrics.ObserveHTTP("/query", "GET", 200, 0)
	nilMetrics.EventIngested("X")
	nilMetrics.WebhookAttempt(WebhookSuccess, time.Second)
}

func TestHandlerToken(t *testing.T) {
	h := New().Handler("s3cret", nil)
	for auth, want := range map[string]int{"": 401, "Bearer nope": 401, "Bearer s3cret": 200} {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("%q: %d, want %d", auth, rec.Code, want)
		}
		if want == 200 && !strings.Contains(rec.Body.String(), "wagate_websocket_connections_open 0") {
			t.Errorf("body: %s", rec.Body.String())
		}
	}
}

// A failing session count leaves that metric out of the scrape, not the whole scrape.
func TestSessionCountFailure(t *testing.T) {
	m := New()
	calls := 0
	err := m.WatchSessions([]string{"NEW", "CONNECTED"}, func(ctx context.Context) (map[string]int, error) {
		calls++
		if calls == 1 {
			return nil, fmt.Errorf("database down")
		}
		return map[string]int{"CONNECTED": 2}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	get := func() string {
		rec := httptest.NewRecorder()
		m.Handler("", nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		return rec.Body.String()
	}
	if body := get(); strings.Contains(body, "wagate_sessions{") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("after a failed count: %s", body)
	}
	body := get()
	if !strings.Contains(body, `wagate_sessions{status="CONNECTED"} 2`) || !strings.Contains(body, `wagate_sessions{status="NEW"} 0`) {
		t.Fatalf("sessions: %s", body)
	}
	get()
	if calls != 2 {
		t.Fatalf("%d queries: the count is cached for a few seconds", calls)
	}
}
