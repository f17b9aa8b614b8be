// Package reqlog gives every HTTP request an id and a line in the access log. The id travels
// in the request's context; a logger whose handler is wrapped by Handler adds it to every
// line logged with that context (slog's *Context methods), WebSocket operations included,
// since they run in the context of their connection's upgrade request.
package reqlog

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"sync"
	"time"
)

// Header carries a request's id in and out.
const Header = "X-Request-ID"

type idKey struct{}

// WithID returns ctx carrying the request id.
func WithID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, idKey{}, id)
}

// ID returns the request id in ctx, or "".
func ID(ctx context.Context) string {
	id, _ := ctx.Value(idKey{}).(string)
	return id
}

// wellFormed is what an id from a client or a proxy must look like to be kept: anything
// else (too long, spaces, quotes) is replaced, so ids stay safe to log and to echo.
var wellFormed = regexp.MustCompile(`^[A-Za-z0-9._:+/=-]{1,128}$`)

// Handler wraps h so that records logged with a request's context carry its request_id.
func Handler(h slog.Handler) slog.Handler {
	if _, ok := h.(contextHandler); ok {
		return h
	}
	return contextHandler{h}
}

type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := ID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(as)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}

// Observer receives every finished request: r is the request as the inner handler saw it
// (r.Pattern is the route that matched).
type Observer func(r *http.Request, status int, d time.Duration)

// quiet paths are polled by probes and scrapers: their access lines are debug-level.
var quiet = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// Middleware takes the request id from X-Request-ID when it is well-formed and makes one
// otherwise, echoes it in the response, logs an access line when the request is done, and
// reports it to observe (may be nil).
func Middleware(log *slog.Logger, observe Observer) func(http.Handler) http.Handler {
	log = slog.New(Handler(log.Handler()))
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			id := r.Header.Get(Header)
			if !wellFormed.MatchString(id) {
				id = rand.Text()
			}
			w.Header().Set(Header, id)
			ctx := WithID(r.Context(), id)
			r = r.WithContext(ctx)
			rec := &recorder{ResponseWriter: w}
			next.ServeHTTP(rec, r)
			done := func() {
				d := time.Since(start)
				status := rec.status
				if status == 0 {
					status = http.StatusOK // nothing written at all
				}
				level := slog.LevelInfo
				if quiet[r.URL.Path] {
					level = slog.LevelDebug
				}
				log.LogAttrs(ctx, level, "http request", slog.String("method", r.Method),
					slog.String("path", r.URL.Path), slog.Int("status", status),
					slog.Duration("duration", d), slog.Int64("bytes", rec.bytes))
				if observe != nil {
					observe(r, status, d)
				}
			}
			if rec.conn != nil {
				rec.conn.afterClose(done)
				return
			}
			done()
		})
	}
}

// recorder notes the status and size of a response. It passes Hijack (WebSockets) and
// Flush through, and Unwrap lets http.ResponseController reach the rest.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	conn   *hijacked // set by Hijack
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	if n > 0 { // 0 after a hijack, when the line may be logged on the connection's goroutine
		w.bytes += int64(n)
	}
	return n, err
}

func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("reqlog: the response writer cannot be hijacked")
	}
	c, rw, err := h.Hijack()
	if err != nil {
		return c, rw, err
	}
	if w.status == 0 {
		w.status = http.StatusSwitchingProtocols // the upgrade answers on the raw connection
	}
	w.conn = &hijacked{Conn: c}
	return w.conn, rw, nil
}

// hijacked is a connection taken over from net/http (a WebSocket). Its request lasts until it
// closes, which can be after the handler returns: wsgorilla.Reap serves a WebSocket on a
// goroutine of its own and lets the handler return once it is upgraded.
type hijacked struct {
	net.Conn
	mu     sync.Mutex
	closed bool
	then   func() // runs at the close
}

func (c *hijacked) Close() error {
	err := c.Conn.Close()
	c.mu.Lock()
	then := c.then
	c.closed, c.then = true, nil
	c.mu.Unlock()
	if then != nil {
		then()
	}
	return err
}

// afterClose runs f once the connection is closed: at once if it is.
func (c *hijacked) afterClose(f func()) {
	c.mu.Lock()
	if !c.closed {
		c.then = f
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	f()
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
