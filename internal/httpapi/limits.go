package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/wsgorilla"
)

// limitBody bounds request bodies: n bytes, or multipart bytes for multipart requests
// (they carry attachments). A larger body is answered 413 with a GraphQL error, whether
// Content-Length announced it or reading found it.
func limitBody(n, multipart int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := n
		if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
			limit = multipart
		}
		if r.ContentLength > limit {
			writeTooLarge(w, limit)
			return
		}
		if r.Body == nil || r.Body == http.NoBody { // GET, and WebSocket upgrades
			next.ServeHTTP(w, r)
			return
		}
		body := &cappedBody{ReadCloser: http.MaxBytesReader(w, r.Body, limit)}
		r.Body = body
		next.ServeHTTP(&tooLargeWriter{ResponseWriter: w, body: body, limit: limit}, r)
	})
}

// cappedBody notes when its reader hit the limit.
type cappedBody struct {
	io.ReadCloser
	exceeded bool
}

func (b *cappedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		b.exceeded = true
	}
	return n, err
}

// tooLargeWriter replaces whatever the handler answers to a body over the limit (gqlgen
// answers it with an error of its own, without a code) by the 413.
type tooLargeWriter struct {
	http.ResponseWriter
	body              *cappedBody
	limit             int64
	passing, answered bool
}

func (w *tooLargeWriter) intercept() bool {
	if w.passing || !w.body.exceeded {
		w.passing = true
		return false
	}
	if !w.answered {
		w.answered = true
		writeTooLarge(w.ResponseWriter, w.limit)
	}
	return true
}

func (w *tooLargeWriter) WriteHeader(code int) {
	if !w.intercept() {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *tooLargeWriter) Write(p []byte) (int, error) {
	if w.intercept() {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

func (w *tooLargeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// reasonTooLarge is the extensions.reason of a refused body (extensions.code is
// BAD_USER_INPUT).
const reasonTooLarge = "REQUEST_TOO_LARGE"

func writeTooLarge(w http.ResponseWriter, limit int64) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{
		"message":    fmt.Sprintf("the request body is larger than %d bytes", limit),
		"extensions": map[string]any{"code": apperr.BadUserInput, "reason": reasonTooLarge},
	}}})
}

// cors lets pages of the allowed origins call the API from browsers. Credentials (cookies)
// are never allowed: the API authenticates with the Authorization header, which a page
// sends only when its own code holds a token. Without allowed origins browsers keep the
// same-origin policy.
func cors(allowed []string, next http.Handler) http.Handler {
	if len(allowed) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		if origin == "" || !wsgorilla.Listed(allowed, origin) {
			next.ServeHTTP(w, r)
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			if asked := r.Header.Get("Access-Control-Request-Headers"); asked != "" {
				h.Set("Access-Control-Allow-Headers", asked)
			}
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", "Content-Disposition")
		next.ServeHTTP(w, r)
	})
}
