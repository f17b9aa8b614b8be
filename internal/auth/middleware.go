package auth

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/viewer"
)

// OrganizationHeader selects the organization a user's request acts in.
const OrganizationHeader = "X-Organization-ID"

// Middleware resolves the caller of every request once and puts the viewer in the request
// context. Browsers cannot set headers on WebSocket upgrades, so those arrive anonymous here
// and authenticate in connection_init instead.
func (s *Service) Middleware(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			header := r.Header.Get("Authorization")
			credential, ok := bearer(header)
			if header != "" && !ok {
				writeError(w, http.StatusUnauthorized, apperr.New(apperr.Unauthenticated, "the Authorization header must be \"Bearer <token>\""))
				return
			}
			ctx, v, err := s.Resolve(r.Context(), credential, r.Header.Get(OrganizationHeader))
			if err != nil {
				var e *apperr.Error
				if !asAppErr(err, &e) {
					log.ErrorContext(r.Context(), "authenticating request", "err", err)
					writeError(w, http.StatusInternalServerError, apperr.New(apperr.Internal, "internal error"))
					return
				}
				status := http.StatusUnauthorized
				if e.Code == apperr.NotFound {
					status = http.StatusNotFound
				}
				writeError(w, status, e)
				return
			}
			ctx = context.WithValue(ctx, userAgentKey{}, r.UserAgent())
			if credential != "" {
				// A WebSocket upgraded on this request may rely on it (see WebsocketInit).
				ctx = context.WithValue(ctx, upgradeCredentialKey{}, wsCredential{credential, r.Header.Get(OrganizationHeader)})
			}
			next.ServeHTTP(w, r.WithContext(viewer.NewContext(ctx, v)))
		})
	}
}

func asAppErr(err error, target **apperr.Error) bool {
	return errors.As(err, target)
}

// writeError answers in the GraphQL response shape, so clients handle it like any other
// error, with its code in extensions.code.
func writeError(w http.ResponseWriter, status int, e *apperr.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]any{{
			"message":    e.Message,
			"extensions": map[string]any{"code": e.Code},
		}},
	})
}
