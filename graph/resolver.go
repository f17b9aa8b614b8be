// Package graph is the GraphQL layer: gqlgen's generated executor plus thin resolvers that
// hand each operation to a service (or to ent's generated pagination) and return the result.
package graph

import (
	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/internal/auth"
	"github.com/wagate/wagate/internal/events"
	"github.com/wagate/wagate/internal/oversight"
	"github.com/wagate/wagate/internal/sessions"
	"github.com/wagate/wagate/internal/tenancy"
	"github.com/wagate/wagate/internal/webhook"
)

// Resolver is the root of the resolver tree; it holds the services the resolvers call.
type Resolver struct {
	client    *ent.Client
	auth      *auth.Service
	tenancy   *tenancy.Service
	oversight *oversight.Service
	sessions  *sessions.Service
	events    *events.Log
	webhooks  *webhook.Service
}

// Services are what the resolvers delegate to.
type Services struct {
	Client    *ent.Client
	Auth      *auth.Service
	Tenancy   *tenancy.Service
	Oversight *oversight.Service
	Sessions  *sessions.Service
	Events    *events.Log
	Webhooks  *webhook.Service
}

// NewResolver returns the root resolver.
func NewResolver(s Services) *Resolver {
	return &Resolver{client: s.Client, auth: s.Auth, tenancy: s.Tenancy, oversight: s.Oversight, sessions: s.Sessions, events: s.Events,
		webhooks: s.Webhooks}
}
