// Package oversight is the platform super admin's read-only view across organizations, and
// the one write a super admin makes on others: disabling and re-enabling accounts.
package oversight

import (
	"context"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/organization"
	"github.com/wagate/wagate/ent/session"
	"github.com/wagate/wagate/ent/user"
	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/page"
	"github.com/wagate/wagate/internal/rule"
	"github.com/wagate/wagate/internal/viewer"
)

// Service answers the `admin` namespace.
type Service struct{ client *ent.Client }

// New returns a Service.
func New(client *ent.Client) *Service { return &Service{client: client} }

// Guard fails unless the caller is a super admin, and returns ctx marked for oversight reads.
func Guard(ctx context.Context) (context.Context, error) {
	v := viewer.FromContext(ctx)
	switch {
	case v.Kind == viewer.KindAnonymous:
		return ctx, rule.ErrUnauthenticated
	case !v.IsUser() || !v.SuperAdmin:
		return ctx, apperr.New(apperr.Forbidden, "only platform super admins may use admin")
	}
	return viewer.WithOversight(ctx), nil
}

// listing guards an oversight list and bounds its page.
func listing(ctx context.Context, p page.Args) (context.Context, page.Args, error) {
	ctx, err := Guard(ctx)
	if err != nil {
		return ctx, p, err
	}
	p, err = p.Bounded()
	return ctx, p, err
}

// Users lists every account, optionally matching search against e-mail and name.
func (s *Service) Users(ctx context.Context, p page.Args, search *string) (*ent.UserConnection, error) {
	ctx, p, err := listing(ctx, p)
	if err != nil {
		return nil, err
	}
	q := s.client.User.Query()
	if search != nil && *search != "" {
		q.Where(user.Or(user.EmailContainsFold(*search), user.NameContainsFold(*search)))
	}
	return q.Paginate(ctx, p.After, p.First, p.Before, p.Last)
}

// Organizations lists every organization, optionally matching search against name and slug.
func (s *Service) Organizations(ctx context.Context, p page.Args, search *string) (*ent.OrganizationConnection, error) {
	ctx, p, err := listing(ctx, p)
	if err != nil {
		return nil, err
	}
	q := s.client.Organization.Query()
	if search != nil && *search != "" {
		q.Where(organization.Or(organization.NameContainsFold(*search), organization.SlugContainsFold(*search)))
	}
	return q.Paginate(ctx, p.After, p.First, p.Before, p.Last)
}

// Sessions lists every organization's WhatsApp sessions, optionally by status.
func (s *Service) Sessions(ctx context.Context, p page.Args, status *session.Status) (*ent.SessionConnection, error) {
	ctx, p, err := listing(ctx, p)
	if err != nil {
		return nil, err
	}
	q := s.client.Session.Query()
	if status != nil {
		q.Where(session.StatusEQ(*status))
	}
	return q.Paginate(ctx, p.After, p.First, p.Before, p.Last)
}

// SetUserDisabled disables or re-enables an account. Disabling takes effect on the user's
// next request: every request re-checks the account.
func (s *Service) SetUserDisabled(ctx context.Context, id gid.ID, disabled bool) (*ent.User, error) {
	if _, err := Guard(ctx); err != nil {
		return nil, err
	}
	if disabled && id == viewer.FromContext(ctx).UserID {
		return nil, apperr.Invalid("userID", "you cannot disable your own account")
	}
	return database.Client(ctx, s.client).User.UpdateOneID(id).SetDisabled(disabled).Save(ctx)
}
