// Package metrics holds wagate's Prometheus collectors. Each server has its own registry
// (tests run many servers in one process), and every recording method is safe on a nil
// *Metrics, so services built without metrics need no checks.
package metrics

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "wagate"

// Metrics is one server's collectors.
type Metrics struct {
	// Registry holds every collector below, plus the Go runtime and process collectors.
	Registry *prometheus.Registry

	httpRequests    *prometheus.CounterVec
	httpDuration    *prometheus.HistogramVec
	gqlOperations   *prometheus.CounterVec
	gqlDuration     *prometheus.HistogramVec
	gqlErrors       *prometheus.CounterVec
	subscriptions   *prometheus.GaugeVec
	websockets      prometheus.Gauge
	eventsIngested  *prometheus.CounterVec
	eventsDelivered *prometheus.CounterVec
	webhookAttempts *prometheus.CounterVec
	webhookDuration prometheus.Histogram
	webhookFailed   prometheus.Counter

	operationNames *nameLimiter
}

// New returns a fresh registry with every collector registered.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		httpRequests: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "http_requests_total",
			Help: "HTTP requests by route (the matched pattern), method and status."},
			[]string{"route", "method", "status"})),
		httpDuration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace,
			Name: "http_request_duration_seconds",
			Help: "HTTP request latency by route, method and status; a WebSocket's lasts as long as the connection."},
			[]string{"route", "method", "status"})),
		gqlOperations: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "graphql_operations_total",
			Help: "GraphQL operations started, by type and operation name."},
			[]string{"type", "name"})),
		gqlDuration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace,
			Name: "graphql_operation_duration_seconds",
			Help: "Latency of GraphQL queries and mutations, by type and operation name."},
			[]string{"type", "name"})),
		gqlErrors: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "graphql_operation_errors_total",
			Help: "GraphQL responses with errors, by type, operation name and extensions.code (once per code per response)."},
			[]string{"type", "name", "code"})),
		subscriptions: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace,
			Name: "graphql_subscriptions_active",
			Help: "GraphQL subscriptions running now, by root field."},
			[]string{"field"})),
		websockets: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace,
			Name: "websocket_connections_open",
			Help: "WebSocket connections open now."})),
		eventsIngested: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "events_ingested_total",
			Help: "Events committed to the event log, by type."},
			[]string{"type"})),
		eventsDelivered: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "events_delivered_total",
			Help: "Events handed to subscriptions, by type."},
			[]string{"type"})),
		webhookAttempts: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "webhook_attempts_total",
			Help: "Webhook delivery attempts by outcome: success (2xx), http_error (another status) or error (no answer)."},
			[]string{"outcome"})),
		webhookDuration: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace,
			Name: "webhook_attempt_duration_seconds",
			Help: "Time from sending a webhook request to its answer or failure."})),
		webhookFailed: register(reg, prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace,
			Name: "webhook_deliveries_failed_total",
			Help: "Webhook deliveries given up (FAILED) after their last retry."})),
		operationNames: newNameLimiter(maxOperationNames),
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	reg.MustRegister(c)
	return c
}

// Handler serves the registry in the Prometheus text format. A non-empty token must come
// as "Authorization: Bearer <token>". A collector that fails (the sessions query) is left
// out of that scrape instead of failing it.
func (m *Metrics) Handler(token string, log *slog.Logger) http.Handler {
	h := promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      errorLog{log},
	})
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

type errorLog struct{ log *slog.Logger }

func (l errorLog) Println(v ...any) {
	if l.log != nil {
		l.log.Warn("collecting metrics", "err", strings.TrimSpace(fmt.Sprintln(v...)))
	}
}

// ObserveHTTP records one finished HTTP request. route is the pattern that matched ("" for
// none); methods outside the standard ones count as "other", so clients cannot add series.
func (m *Metrics) ObserveHTTP(route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	if _, path, ok := strings.Cut(route, " "); ok {
		route = path // "GET /media/{id}": the method has its own label
	}
	if route == "" {
		route = "other"
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
	default:
		method = "other"
	}
	code := strconv.Itoa(status)
	m.httpRequests.WithLabelValues(route, method, code).Inc()
	m.httpDuration.WithLabelValues(route, method, code).Observe(d.Seconds())
}

// EventIngested counts an event whose transaction committed.
func (m *Metrics) EventIngested(eventType string) {
	if m != nil {
		m.eventsIngested.WithLabelValues(eventType).Inc()
	}
}

// EventDelivered counts an event handed to a subscription.
func (m *Metrics) EventDelivered(eventType string) {
	if m != nil {
		m.eventsDelivered.WithLabelValues(eventType).Inc()
	}
}

// Webhook attempt outcomes.
const (
	WebhookSuccess   = "success"
	WebhookHTTPError = "http_error"
	WebhookError     = "error"
)

// WebhookAttempt records one delivery attempt; d is 0 when no request was sent (the
// webhook or its event could not be loaded), and then no latency is recorded.
func (m *Metrics) WebhookAttempt(outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.webhookAttempts.WithLabelValues(outcome).Inc()
	if d > 0 {
		m.webhookDuration.Observe(d.Seconds())
	}
}

// WebhookDeliveryFailed counts a delivery given up after its last attempt.
func (m *Metrics) WebhookDeliveryFailed() {
	if m != nil {
		m.webhookFailed.Inc()
	}
}

// Gauge is what the WebSocket implementation counts its connections with.
type Gauge interface {
	Inc()
	Dec()
}

// WebSockets is the gauge of open WebSocket connections (nil without metrics).
func (m *Metrics) WebSockets() Gauge {
	if m == nil {
		return nil
	}
	return m.websockets
}
