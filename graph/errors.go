package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"

	"entgo.io/ent/privacy"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/internal/apperr"
)

// errorPresenter gives every error one of the API's codes in extensions.code. Only errors
// made for the caller (apperr, privacy, ent's not-found/validation/constraint, malformed
// input) keep their message; anything else is logged and shown as INTERNAL.
func errorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := graphql.DefaultErrorPresenter(ctx, err)
		code, msg, field := classify(ctx, err, gqlErr)
		if code == apperr.Internal {
			log.ErrorContext(ctx, "graphql request failed", "err", err, "path", gqlErr.Path.String())
			msg = "internal error"
		}
		gqlErr.Message = msg
		if gqlErr.Extensions == nil {
			gqlErr.Extensions = map[string]any{}
		}
		if prev, ok := gqlErr.Extensions["code"]; ok && prev != code {
			gqlErr.Extensions["reason"] = prev
		}
		gqlErr.Extensions["code"] = code
		if field != "" {
			gqlErr.Extensions["field"] = field
		}
		if ae := (*apperr.Error)(nil); errors.As(err, &ae) && ae.RetryAfter > 0 {
			gqlErr.Extensions["retryAfter"] = int(math.Ceil(ae.RetryAfter.Seconds()))
		}
		return gqlErr
	}
}

func classify(ctx context.Context, err error, gqlErr *gqlerror.Error) (apperr.Code, string, string) {
	var ae *apperr.Error
	var nf *ent.NotFoundError
	var ve *ent.ValidationError
	switch {
	case errors.As(err, &ae):
		return ae.Code, ae.Message, ae.Field
	case errors.Is(err, privacy.Deny):
		return apperr.Forbidden, "your role does not allow this", ""
	case errors.As(err, &nf):
		return apperr.NotFound, "not found", ""
	case errors.As(err, &ve):
		return apperr.BadUserInput, fmt.Sprintf("invalid value for %s", ve.Name), ve.Name
	case ent.IsConstraintError(err):
		return apperr.Conflict, "this conflicts with existing data", ""
	}
	switch gqlErr.Extensions["code"] {
	case errcode.ValidationFailed, errcode.ParseFailed, reasonComplexity, reasonDepth, "PERSISTED_QUERY_NOT_FOUND":
		return apperr.BadUserInput, gqlErr.Message, ""
	}
	if introspectionRefused(ctx, gqlErr) {
		gqlErr.Extensions = map[string]any{"reason": "INTROSPECTION_DISABLED"}
		return apperr.Forbidden, "introspection is disabled on this server", ""
	}
	// gqlgen's own answers to a malformed request (a body that is not JSON, bad persisted
	// query data) come before any field runs and wrap no other error.
	if ge, ok := err.(*gqlerror.Error); ok && ge.Err == nil && graphql.GetFieldContext(ctx) == nil {
		return apperr.BadUserInput, gqlErr.Message, ""
	}
	// ent's field collection checks the arguments of nested connections while loading their
	// parent, and reports bad ones as GraphQL errors wrapped in its own.
	var inner *gqlerror.Error
	if errors.As(err, &inner) && (inner.Extensions["code"] == "INVALID_PAGINATION" ||
		strings.Contains(err.Error(), "validate first and last")) {
		return apperr.BadUserInput, inner.Message, ""
	}
	if inputError(ctx, gqlErr) {
		return apperr.BadUserInput, gqlErr.Message, ""
	}
	return apperr.Internal, "", ""
}

// introspectionRefused reports whether gqlErr is gqlgen refusing __schema or __type because
// introspection is off.
func introspectionRefused(ctx context.Context, gqlErr *gqlerror.Error) bool {
	fc := graphql.GetFieldContext(ctx)
	return fc != nil && (fc.Field.Name == "__schema" || fc.Field.Name == "__type") &&
		gqlErr.Message == "introspection disabled"
}

// inputError reports whether gqlErr was raised while decoding an argument of the current
// field: gqlgen reports those on a path that extends the field's own path with the
// argument's name, whereas resolver errors sit on the field's path.
func inputError(ctx context.Context, gqlErr *gqlerror.Error) bool {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil {
		return false
	}
	return len(gqlErr.Path) > len(fc.Path())
}

// recoverFunc turns a panic in a resolver into an INTERNAL error instead of a crash.
func recoverFunc(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in resolver", "panic", p)
		return apperr.New(apperr.Internal, "internal error")
	}
}
