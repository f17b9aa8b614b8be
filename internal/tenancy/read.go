package tenancy

import (
	"context"
	"strings"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/membership"
	"github.com/wagate/wagate/ent/organization"
	"github.com/wagate/wagate/ent/user"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/page"
	"github.com/wagate/wagate/internal/viewer"
)

// Organizations lists the caller's organizations (the organization switcher).
func (s *Service) Organizations(ctx context.Context, p page.Args) (*ent.OrganizationConnection, error) {
	p, err := p.Bounded()
	if err != nil {
		return nil, err
	}
	// Only memberships: privacy also shows organizations that invited the caller.
	return database.Client(ctx, s.client).Organization.Query().
		Where(organization.IDIn(viewer.FromContext(ctx).OrgIDs()...)).
		Paginate(ctx, p.After, p.First, p.Before, p.Last)
}

// Members lists an organization's members, optionally matching search against the members'
// names and e-mail addresses.
func (s *Service) Members(ctx context.Context, org *ent.Organization, p page.Args, order *ent.MembershipOrder, search *string) (*ent.MembershipConnection, error) {
	ordered := page.ByID
	if order != nil && order.Field != nil {
		ordered = page.ValueOf(order.Field.String())
	}
	if search == nil && (p.First != nil || p.Last != nil) {
		if err := page.Check(p.First, p.Last); err != nil {
			return nil, err
		}
		// The page field collection already loaded with the parent, in one query for all
		// parents.
		return org.Members(ctx, p.After, p.First, p.Before, p.Last, order)
	}
	p, err := p.BoundedBy(ordered)
	if err != nil {
		return nil, err
	}
	// Unique(false): a foreign-key edge lists no row twice, and the DISTINCT ent adds to
	// edge queries makes PostgreSQL sort every matching row before applying the LIMIT.
	q := org.QueryMembers().Unique(false)
	if search != nil && *search != "" {
		q.Where(membership.HasUserWith(user.Or(user.EmailContainsFold(*search), user.NameContainsFold(*search))))
	}
	return q.Paginate(ctx, p.After, p.First, p.Before, p.Last, ent.WithMembershipOrder(order))
}

// User returns the viewer's user, or nil for anonymous callers and API keys.
func (s *Service) User(ctx context.Context, v *viewer.Viewer) (*ent.User, error) {
	if !v.IsUser() {
		return nil, nil
	}
	return database.Client(ctx, s.client).User.Get(ctx, v.UserID)
}

// Organization returns the organization v acts in, or nil.
func (s *Service) Organization(ctx context.Context, v *viewer.Viewer) (*ent.Organization, error) {
	if v.OrgID == "" {
		return nil, nil
	}
	return database.Client(ctx, s.client).Organization.Get(ctx, v.OrgID)
}

// PhoneNumber returns a session's number, masked for viewers below ADMIN when the
// organization asks for it.
func (s *Service) PhoneNumber(ctx context.Context, ses *ent.Session) *string {
	return s.MaskedPhone(ctx, ses.OrganizationID, ses.PhoneNumber)
}

// MaskedPhone returns phone as a viewer of org may see it: masked for viewers below ADMIN
// when the organization asks for it.
func (s *Service) MaskedPhone(ctx context.Context, org gid.ID, phone *string) *string {
	if phone == nil || viewer.FromContext(ctx).RoleIn(org).AtLeast(viewer.RoleAdmin) {
		return phone
	}
	mask, err := s.masks.get(ctx, org, func(ctx context.Context) (bool, error) {
		o, err := s.client.Organization.Get(viewer.System(ctx, "phone-mask"), org)
		if err != nil {
			return false, err
		}
		return o.MaskPhoneNumbers, nil
	})
	if err != nil || mask {
		// When the setting cannot be read, masking is the safe side.
		masked := MaskPhone(*phone)
		return &masked
	}
	return phone
}

// MaskPhone keeps the country prefix and the last two digits: "+4915112345678" → "+49*********78".
func MaskPhone(n string) string {
	if len(n) <= 5 {
		return strings.Repeat("*", len(n))
	}
	return n[:3] + strings.Repeat("*", len(n)-5) + n[len(n)-2:]
}
