package graph

import (
	"context"
	"log/slog"
	"time"

	"github.com/99designs/gqlgen/graphql"
)

// logOperation logs every operation at debug level when its first response is ready (a
// subscription: when it starts delivering). With the request's context, so a WebSocket's
// operations carry the request_id of its upgrade request.
func logOperation(log *slog.Logger) graphql.OperationMiddleware {
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		if !log.Enabled(ctx, slog.LevelDebug) {
			return next(ctx)
		}
		oc := graphql.GetOperationContext(ctx)
		start := time.Now()
		responses := next(ctx)
		logged := false
		return func(ctx context.Context) *graphql.Response {
			resp := responses(ctx)
			if !logged {
				logged = true
				errs := 0
				if resp != nil {
					errs = len(resp.Errors)
				}
				log.DebugContext(ctx, "graphql operation", "type", oc.Operation.Operation, "name", oc.Operation.Name,
					"duration", time.Since(start), "errors", errs)
			}
			return resp
		}
	}
}
