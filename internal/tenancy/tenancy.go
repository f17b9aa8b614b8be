// Package tenancy runs the workflows that span several entities: signing up, organizations,
// memberships and ownership. Authorization is not decided here: every read and write goes
// through ent, whose privacy policies enforce the role table. The service adds what a policy
// cannot know: input validation, clear errors, and the order of steps in one transaction.
package tenancy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/membership"
	"github.com/wagate/wagate/ent/message"
	"github.com/wagate/wagate/ent/organization"
	"github.com/wagate/wagate/ent/user"
	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/audit"
	"github.com/wagate/wagate/internal/auth"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/mail"
	"github.com/wagate/wagate/internal/rule"
	"github.com/wagate/wagate/internal/viewer"
)

// Options configure the service.
type Options struct {
	// InvitationTTL is how long an invitation stays valid; 0 means 7 days.
	InvitationTTL time.Duration
	// InvitationURL is the link e-mailed to invitees; "{token}" is replaced by the token.
	InvitationURL string
	// VerificationURL is the link that confirms an e-mail address; "{token}" is replaced.
	VerificationURL string
	// Mail delivers invitations.
	Mail mail.Sender
	Log  *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultInvitationURL points at the dashboard's accept page of a local installation.
const DefaultInvitationURL = "http://localhost:8080/invitations/accept?token={token}"

// Service implements the tenancy workflows.
type Service struct {
	client *ent.Client
	auth   *auth.Service
	opts   Options
	now    func() time.Time
	masks  memo
}

// New returns a Service.
func New(client *ent.Client, authn *auth.Service, opts Options) *Service {
	if opts.InvitationTTL <= 0 {
		opts.InvitationTTL = 7 * 24 * time.Hour
	}
	if opts.InvitationURL == "" {
		opts.InvitationURL = DefaultInvitationURL
	}
	if opts.VerificationURL == "" {
		opts.VerificationURL = DefaultVerificationURL
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Mail == nil {
		opts.Mail = mail.Log{Logger: opts.Log}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Service{client: client, auth: authn, opts: opts, now: now}
}

func (s *Service) tx(ctx context.Context, fn func(ctx context.Context, c *ent.Client) error) error {
	return database.InTx(ctx, s.client, fn)
}

// SignUpInput is what a new user provides.
type SignUpInput struct {
	Email, Password, Name string
}

var errEmailTaken = &apperr.Error{Code: apperr.Conflict, Field: "email", Message: "an account with this e-mail already exists"}

// SignUp creates a user, their personal organization (with the user as OWNER, selected),
// and a session token, all or nothing.
func (s *Service) SignUp(ctx context.Context, in SignUpInput) (*auth.Session, error) {
	if viewer.FromContext(ctx).Kind == viewer.KindAPIKey {
		return nil, apperr.New(apperr.Forbidden, "API keys cannot sign up")
	}
	if err := s.auth.LimitAttempt(ctx); err != nil {
		return nil, err
	}
	email, err := auth.NormalizeEmail("email", in.Email)
	if err != nil {
		return nil, err
	}
	name, err := cleanName("name", in.Name, 200)
	if err != nil {
		return nil, err
	}
	hash, err := s.auth.HashNewPassword("password", in.Password)
	if err != nil {
		return nil, err
	}
	var sess *auth.Session
	err = s.tx(ctx, func(ctx context.Context, c *ent.Client) error {
		sys := viewer.System(ctx, "sign-up")
		taken, err := c.User.Query().Where(user.Email(email)).Exist(sys)
		if err != nil {
			return fmt.Errorf("checking e-mail: %w", err)
		}
		if taken {
			return errEmailTaken
		}
		u, err := c.User.Create().SetEmail(email).SetName(name).SetPasswordHash(hash).Save(sys)
		if err != nil {
			return fmt.Errorf("creating user: %w", err)
		}
		orgName := name
		if orgName == "" {
			orgName, _, _ = strings.Cut(email, "@")
		}
		org, err := s.found(sys, c, u.ID, truncateRunes(orgName+"'s organization", 100), true)
		if err != nil {
			return err
		}
		if u, err = c.User.UpdateOne(u).SetSelectedOrganizationID(org.ID).Save(sys); err != nil {
			return fmt.Errorf("selecting the personal organization: %w", err)
		}
		if err := s.sendVerification(ctx, c, u); err != nil {
			return err
		}
		founder := viewer.NewContext(ctx, &viewer.Viewer{Kind: viewer.KindUser, UserID: u.ID})
		err = audit.Record(founder, c, audit.Entry{OrgID: org.ID, Action: "organization.create",
			TargetType: "Organization", TargetID: org.ID, Details: map[string]any{"name": org.Name, "personal": true}})
		if err != nil {
			return err
		}
		sess, err = s.auth.IssueToken(ctx, u)
		return err
	})
	if err != nil {
		if ent.IsConstraintError(err) {
			return nil, errEmailTaken
		}
		return nil, err
	}
	return sess, nil
}

// found creates an organization with owner as its first OWNER.
func (s *Service) found(ctx context.Context, c *ent.Client, owner gid.ID, name string, personal bool) (*ent.Organization, error) {
	org, err := c.Organization.Create().SetName(name).SetSlug(newSlug(name)).SetPersonal(personal).Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("creating organization: %w", err)
	}
	err = c.Membership.Create().SetOrganizationID(org.ID).SetUserID(owner).SetRole(viewer.RoleOwner).
		Exec(viewer.WithFounder(ctx, org.ID))
	if err != nil {
		return nil, fmt.Errorf("making the founder OWNER: %w", err)
	}
	return org, nil
}

// CreateOrganization creates an organization owned by the caller.
func (s *Service) CreateOrganization(ctx context.Context, name string) (*ent.Organization, error) {
	name, err := cleanName("name", name, 100)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, apperr.Invalid("name", "the name must not be empty")
	}
	v := viewer.FromContext(ctx)
	var org *ent.Organization
	err = s.tx(ctx, func(ctx context.Context, c *ent.Client) error {
		if org, err = s.found(ctx, c, v.UserID, name, false); err != nil {
			return err
		}
		return audit.Record(ctx, c, audit.Entry{OrgID: org.ID, Action: "organization.create",
			TargetType: "Organization", TargetID: org.ID, Details: map[string]any{"name": name}})
	})
	if err != nil {
		return nil, err
	}
	v.Joined(org.ID, viewer.RoleOwner)
	return org, nil
}

// Current returns the organization the caller acts in, or nil. With idOnly its row is not
// read: only the ID is set, which is all that listing what it owns needs — each list is a
// query of its own under the caller's privacy rules, and the caller's membership was checked
// when it authenticated.
func (s *Service) Current(ctx context.Context, idOnly bool) (*ent.Organization, error) {
	v := viewer.FromContext(ctx)
	if v.Kind == viewer.KindAnonymous {
		return nil, rule.ErrUnauthenticated
	}
	if v.OrgID == "" {
		return nil, nil
	}
	c := database.Client(ctx, s.client)
	if idOnly {
		return c.Organization.Bind(&ent.Organization{ID: v.OrgID}), nil
	}
	return c.Organization.Get(ctx, v.OrgID)
}

// UpdateOrganizationInput changes the fields that are set.
type UpdateOrganizationInput struct {
	ID               *gid.ID
	Name             *string
	Timezone         *string
	DateFormat       *string
	MaskPhoneNumbers *bool
}

var dateFormats = map[string]bool{
	"YYYY-MM-DD": true, "DD/MM/YYYY": true, "MM/DD/YYYY": true, "DD.MM.YYYY": true, "DD-MM-YYYY": true,
}

// UpdateOrganization changes an organization's name and settings.
func (s *Service) UpdateOrganization(ctx context.Context, in UpdateOrganizationInput) (*ent.Organization, error) {
	id := viewer.FromContext(ctx).OrgID
	if in.ID != nil {
		id = *in.ID
	}
	if id == "" {
		return nil, apperr.New(apperr.NotFound, "no organization selected")
	}
	changes := map[string]any{}
	var sets []func(*ent.OrganizationUpdateOne)
	if in.Name != nil {
		name, err := cleanName("name", *in.Name, 100)
		if err != nil {
			return nil, err
		}
		if name == "" {
			return nil, apperr.Invalid("name", "the name must not be empty")
		}
		changes["name"] = name
		sets = append(sets, func(u *ent.OrganizationUpdateOne) { u.SetName(name) })
	}
	if in.Timezone != nil {
		if _, err := time.LoadLocation(*in.Timezone); err != nil || *in.Timezone == "" || *in.Timezone == "Local" {
			return nil, apperr.Invalid("timezone", "%q is not an IANA time zone name", truncateRunes(*in.Timezone, 64))
		}
		changes["timezone"] = *in.Timezone
		sets = append(sets, func(u *ent.OrganizationUpdateOne) { u.SetTimezone(*in.Timezone) })
	}
	if in.DateFormat != nil {
		if !dateFormats[*in.DateFormat] {
			return nil, apperr.Invalid("dateFormat", "dateFormat must be one of YYYY-MM-DD, DD/MM/YYYY, MM/DD/YYYY, DD.MM.YYYY, DD-MM-YYYY")
		}
		changes["dateFormat"] = *in.DateFormat
		sets = append(sets, func(u *ent.OrganizationUpdateOne) { u.SetDateFormat(*in.DateFormat) })
	}
	if in.MaskPhoneNumbers != nil {
		changes["maskPhoneNumbers"] = *in.MaskPhoneNumbers
		sets = append(sets, func(u *ent.OrganizationUpdateOne) { u.SetMaskPhoneNumbers(*in.MaskPhoneNumbers) })
	}
	var org *ent.Organization
	err := s.tx(ctx, func(ctx context.Context, c *ent.Client) error {
		upd := c.Organization.UpdateOneID(id)
		for _, set := range sets {
			set(upd)
		}
		var err error
		if org, err = upd.Save(ctx); err != nil {
			return err
		}
		return audit.Record(ctx, c, audit.Entry{OrgID: id, Action: "organization.update",
			TargetType: "Organization", TargetID: id, Details: changes})
	})
	if err == nil {
		database.AfterCommit(ctx, func() { s.masks.forget(id) })
	}
	return org, err
}

// DeleteOrganization deletes an organization and, through foreign keys, all it owns.
func (s *Service) DeleteOrganization(ctx context.Context, id gid.ID) (gid.ID, error) {
	err := s.tx(ctx, func(ctx context.Context, c *ent.Client) error {
		// Only a delete the policy will allow takes the locks: nobody else may hold up the
		// organization's messages.
		if viewer.FromContext(ctx).CanIn(id, viewer.PermOwnOrganization) {
			if err := database.LockMessages(ctx, c, message.OrganizationID(id)); err != nil {
				return err
			}
		}
		return c.Organization.DeleteOneID(id).Exec(ctx)
	})
	if err != nil {
		return "", err
	}
	viewer.FromContext(ctx).Left(id)
	return id, nil
}

// AddMemberInput names an existing user by e-mail or id.
type AddMemberInput struct {
	Email  *string
	UserID *gid.ID
	Role   viewer.Role
}

// AddMember adds an existing user to the current organization.
func (s *Service) AddMember(ctx context.Context, in AddMemberInput) (*ent.Membership, error) {
	v := viewer.FromContext(ctx)
	// Only callers who may add members get to learn whether an account exists.
	if err := rule.Require(v, viewer.PermInviteMembers); err != nil {
		return nil, err
	}
	if (in.Email == nil) == (in.UserID == nil) {
		return nil, apperr.Invalid("email", "give either email or userID")
	}
	q := database.Client(ctx, s.client).User.Query()
	if in.Email != nil {
		email, err := auth.NormalizeEmail("email", *in.Email)
		if err != nil {
			return nil, err
		}
		q.Where(user.Email(email))
	} else {
		q.Where(user.ID(*in.UserID))
	}
	u, err := q.Only(viewer.System(ctx, "add-member-lookup"))
	if ent.IsNotFound(err) {
		return nil, apperr.New(apperr.NotFound, "no user with this e-mail or id: invite them instead")
	}
	if err != nil {
		return nil, fmt.Errorf("looking up user: %w", err)
	}
	var m *ent.Membership
	err = s.tx(ctx, func(ctx context.Context, c *ent.Client) error {
		m, err = c.Membership.Create().SetOrganizationID(v.OrgID).SetUserID(u.ID).SetRole(in.Role).Save(ctx)
		if ent.IsConstraintError(err) {
			return apperr.New(apperr.Conflict, "%s is already a member", u.Email)
		}
		if err != nil {
			return err
		}
		return audit.Record(ctx, c, audit.Entry{Action: "member.add", TargetType: "Membership", TargetID: m.ID,
			Details: map[string]any{"email": u.Email, "role": in.Role}})
	})
	return m, err
}

// UpdateMemberRole changes a member's role in the current organization.
func (s *Service) UpdateMemberRole(ctx context.Context, id gid.ID, role viewer.Role) (*ent.Membership, error) {
	var m *ent.Membership
	err := s.tx(ctx, func(ctx context.Context, c *ent.Client) (err error) {
		if m, err = c.Membership.UpdateOneID(id).SetRole(role).Save(ctx); err != nil {
			return err
		}
		return audit.Record(ctx, c, audit.Entry{Action: "member.update_role", TargetType: "Membership", TargetID: id,
			Details: map[string]any{"role": role}})
	})
	if err != nil {
		return nil, err
	}
	if v := viewer.FromContext(ctx); m.UserID == v.UserID {
		v.Joined(m.OrganizationID, m.Role)
	}
	return m, nil
}

// RemoveMember removes a member from the current organization; the account stays.
func (s *Service) RemoveMember(ctx context.Context, id gid.ID) (gid.ID, error) {
	err := s.tx(ctx, func(ctx context.Context, c *ent.Client) error {
		if err := c.Membership.DeleteOneID(id).Exec(ctx); err != nil {
			return err
		}
		return audit.Record(ctx, c, audit.Entry{Action: "member.remove", TargetType: "Membership", TargetID: id})
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

// LeaveOrganization removes the caller from an organization.
func (s *Service) LeaveOrganization(ctx context.Context, org gid.ID) (gid.ID, error) {
	v := viewer.FromContext(ctx)
	err := s.tx(ctx, func(ctx context.Context, c *ent.Client) error {
		n, err := c.Membership.Delete().
			Where(membership.OrganizationID(org), membership.UserID(v.UserID)).Exec(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return apperr.New(apperr.NotFound, "you are not a member of this organization")
		}
		return audit.Record(ctx, c, audit.Entry{OrgID: org, Action: "member.leave", TargetType: "User", TargetID: v.UserID})
	})
	if err != nil {
		return "", err
	}
	v.Left(org)
	return org, nil
}

// TransferOwnership makes another member of the current organization OWNER and the caller
// ADMIN.
func (s *Service) TransferOwnership(ctx context.Context, membershipID gid.ID) (*ent.Organization, error) {
	v := viewer.FromContext(ctx)
	if err := rule.Require(v, viewer.PermOwnOrganization); err != nil {
		return nil, err
	}
	var org *ent.Organization
	err := s.tx(ctx, func(ctx context.Context, c *ent.Client) error {
		target, err := c.Membership.Query().
			Where(membership.ID(membershipID), membership.OrganizationID(v.OrgID)).Only(ctx)
		if err != nil {
			return err
		}
		if target.UserID == v.UserID {
			return apperr.Invalid("membershipID", "you already own this organization")
		}
		if err := c.Membership.UpdateOne(target).SetRole(viewer.RoleOwner).Exec(ctx); err != nil {
			return err
		}
		mine, err := c.Membership.Query().
			Where(membership.OrganizationID(v.OrgID), membership.UserID(v.UserID)).Only(ctx)
		if err != nil {
			return fmt.Errorf("finding your membership: %w", err)
		}
		if err := c.Membership.UpdateOne(mine).SetRole(viewer.RoleAdmin).Exec(ctx); err != nil {
			return fmt.Errorf("demoting the previous owner: %w", err)
		}
		err = audit.Record(ctx, c, audit.Entry{Action: "organization.transfer_ownership", TargetType: "Membership",
			TargetID: target.ID, Details: map[string]any{"from": v.UserID, "to": target.UserID}})
		if err != nil {
			return err
		}
		org, err = c.Organization.Query().Where(organization.ID(v.OrgID)).Only(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	v.Joined(v.OrgID, viewer.RoleAdmin)
	return org, nil
}

// SwitchOrganization persists the caller's selected organization and returns the viewer as
// it acts from now on.
func (s *Service) SwitchOrganization(ctx context.Context, org gid.ID) (*viewer.Viewer, error) {
	v := viewer.FromContext(ctx)
	switch {
	case v.Kind == viewer.KindAnonymous:
		return nil, rule.ErrUnauthenticated
	case !v.IsUser():
		return nil, apperr.New(apperr.Forbidden, "only users select organizations")
	}
	if v.RoleIn(org) == "" {
		return nil, apperr.New(apperr.NotFound, "organization not found")
	}
	err := database.Client(ctx, s.client).User.UpdateOneID(v.UserID).SetSelectedOrganizationID(org).Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("saving the selection: %w", err)
	}
	v.OrgID, v.Role = org, v.RoleIn(org)
	return v, nil
}

// Memberships returns a user's memberships: the caller's own, or anyone's for a super admin.
func (s *Service) Memberships(ctx context.Context, u *ent.User) ([]*ent.Membership, error) {
	v := viewer.FromContext(ctx)
	q := database.Client(ctx, s.client).Membership.Query().
		Where(membership.UserID(u.ID)).Order(ent.Asc(membership.FieldCreatedAt))
	switch {
	case v.IsUser() && v.UserID == u.ID:
		return q.All(ctx)
	case v.IsUser() && v.SuperAdmin:
		return q.All(viewer.System(ctx, "admin-memberships"))
	}
	return nil, apperr.New(apperr.Forbidden, "only the user themself and super admins see a user's memberships")
}

var slugUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

// newSlug derives a URL-friendly, unique-enough slug from a name: the readable part may
// repeat across organizations, the random suffix makes collisions practically impossible.
func newSlug(name string) string {
	base := strings.Trim(slugUnsafe.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if len(base) > 40 {
		base = strings.TrimRight(base[:40], "-")
	}
	if base == "" {
		base = "org"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return base + "-" + hex.EncodeToString(b)
}

// cleanName trims a display name and checks its length and characters.
func cleanName(field, s string, max int) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return "", apperr.Invalid(field, "%s must be valid UTF-8", field)
	}
	if utf8.RuneCountInString(s) > max {
		return "", apperr.Invalid(field, "%s must have at most %d characters", field, max)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", apperr.Invalid(field, "%s must not contain control characters", field)
		}
	}
	return s, nil
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
