package tenancy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/invitation"
	"github.com/wagate/wagate/ent/membership"
	"github.com/wagate/wagate/ent/predicate"
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

// InvitationTokenPrefix starts every invitation token.
const InvitationTokenPrefix = "wiv_"

// InviteMemberInput is who to invite, and as what.
type InviteMemberInput struct {
	Email string
	Role  viewer.Role
}

// InviteMember invites someone by e-mail to the current organization and mails them a link
// with a one-time token.
func (s *Service) InviteMember(ctx context.Context, in InviteMemberInput) (*ent.Invitation, error) {
	v := viewer.FromContext(ctx)
	if err := rule.Require(v, viewer.PermInviteMembers); err != nil {
		return nil, err
	}
	email, err := auth.NormalizeEmail("email", in.Email)
	if err != nil {
		return nil, err
	}
	var inv *ent.Invitation
	var token string
	err = s.tx(ctx, func(ctx context.Context, c *ent.Client) error {
		member, err := c.Membership.Query().Where(membership.OrganizationID(v.OrgID),
			membership.HasUserWith(user.Email(email))).Exist(ctx)
		if err != nil {
			return fmt.Errorf("checking membership: %w", err)
		}
		if member {
			return apperr.New(apperr.Conflict, "%s is already a member", email)
		}
		pending, err := c.Invitation.Query().Where(invitation.OrganizationID(v.OrgID), invitation.Email(email),
			invitation.StatusEQ(invitation.StatusPENDING), invitation.ExpiresAtGT(s.now())).Exist(ctx)
		if err != nil {
			return fmt.Errorf("checking invitations: %w", err)
		}
		if pending {
			return apperr.New(apperr.Conflict, "%s already has a pending invitation: resend it instead", email)
		}
		var hash []byte
		token, hash = auth.NewSecret(InvitationTokenPrefix)
		create := c.Invitation.Create().SetEmail(email).SetRole(in.Role).SetTokenHash(hash).
			SetExpiresAt(s.now().Add(s.opts.InvitationTTL))
		if v.IsUser() {
			create.SetInvitedByID(v.UserID)
		}
		if inv, err = create.Save(ctx); err != nil {
			return err
		}
		return audit.Record(ctx, c, audit.Entry{Action: "invitation.create", TargetType: "Invitation", TargetID: inv.ID,
			Details: map[string]any{"email": email, "role": in.Role}})
	})
	if err != nil {
		return nil, err
	}
	s.mailInvitation(ctx, inv, token)
	return inv, nil
}

// ResendInvitation issues a new token (the old one stops working), restarts the validity
// period and mails the invitation again.
func (s *Service) ResendInvitation(ctx context.Context, id gid.ID) (*ent.Invitation, error) {
	if err := rule.Require(viewer.FromContext(ctx), viewer.PermInviteMembers); err != nil {
		return nil, err
	}
	var inv *ent.Invitation
	var token string
	err := s.tx(ctx, func(ctx context.Context, c *ent.Client) error {
		cur, err := c.Invitation.Get(ctx, id)
		if err != nil {
			return err
		}
		if cur.Status != invitation.StatusPENDING {
			return apperr.New(apperr.Conflict, "this invitation was %s and cannot be resent", strings.ToLower(string(cur.Status)))
		}
		var hash []byte
		token, hash = auth.NewSecret(InvitationTokenPrefix)
		inv, err = c.Invitation.UpdateOne(cur).SetTokenHash(hash).SetExpiresAt(s.now().Add(s.opts.InvitationTTL)).Save(ctx)
		if err != nil {
			return err
		}
		return audit.Record(ctx, c, audit.Entry{Action: "invitation.resend", TargetType: "Invitation", TargetID: id,
			Details: map[string]any{"email": inv.Email}})
	})
	if err != nil {
		return nil, err
	}
	s.mailInvitation(ctx, inv, token)
	return inv, nil
}

// RevokeInvitation withdraws a pending invitation.
func (s *Service) RevokeInvitation(ctx context.Context, id gid.ID) (*ent.Invitation, error) {
	if err := rule.Require(viewer.FromContext(ctx), viewer.PermInviteMembers); err != nil {
		return nil, err
	}
	var inv *ent.Invitation
	err := s.tx(ctx, func(ctx context.Context, c *ent.Client) error {
		cur, err := c.Invitation.Get(ctx, id)
		if err != nil {
			return err
		}
		if cur.Status != invitation.StatusPENDING {
			return apperr.New(apperr.Conflict, "this invitation was already %s", strings.ToLower(string(cur.Status)))
		}
		if err := s.transition(ctx, c, cur, invitation.StatusREVOKED); err != nil {
			return err
		}
		if inv, err = c.Invitation.Get(ctx, id); err != nil {
			return err
		}
		return audit.Record(ctx, c, audit.Entry{Action: "invitation.revoke", TargetType: "Invitation", TargetID: id,
			Details: map[string]any{"email": inv.Email}})
	})
	return inv, err
}

// Invitations lists an organization's invitations, optionally by status. Only the current
// organization's are readable (privacy); another organization lists none.
func (s *Service) Invitations(ctx context.Context, org *ent.Organization, status *invitation.Status) ([]*ent.Invitation, error) {
	if err := rule.Require(viewer.FromContext(ctx), viewer.PermInviteMembers); err != nil {
		return nil, err
	}
	q := database.Client(ctx, s.client).Invitation.Query().
		Where(invitation.OrganizationID(org.ID)).Order(ent.Desc(invitation.FieldID))
	if status != nil {
		q.Where(s.statusIs(*status))
	}
	return q.All(ctx)
}

// statusIs matches invitations that read as status (EXPIRED is a PENDING one past its time).
func (s *Service) statusIs(status invitation.Status) predicate.Invitation {
	now := s.now()
	switch status {
	case invitation.StatusPENDING:
		return invitation.And(invitation.StatusEQ(invitation.StatusPENDING), invitation.ExpiresAtGT(now))
	case invitation.StatusEXPIRED:
		return invitation.And(invitation.StatusEQ(invitation.StatusPENDING), invitation.ExpiresAtLTE(now))
	}
	return invitation.StatusEQ(status)
}

// MyInvitations lists the pending invitations addressed to the caller, in any organization.
func (s *Service) MyInvitations(ctx context.Context) ([]*ent.Invitation, error) {
	v := viewer.FromContext(ctx)
	switch {
	case v.Kind == viewer.KindAnonymous:
		return nil, rule.ErrUnauthenticated
	case !v.IsUser() || !v.EmailVerified:
		// Until the address is verified, the mailed link is the only way in.
		return []*ent.Invitation{}, nil
	}
	return database.Client(ctx, s.client).Invitation.Query().
		Where(invitation.Email(v.Email), s.statusIs(invitation.StatusPENDING)).
		Order(ent.Desc(invitation.FieldID)).All(ctx)
}

// Status is how an invitation reads now.
func (s *Service) Status(inv *ent.Invitation) invitation.Status {
	if inv.Status == invitation.StatusPENDING && !inv.ExpiresAt.After(s.now()) {
		return invitation.StatusEXPIRED
	}
	return inv.Status
}

// findInvitation loads the invitation named by an e-mailed token or by id, for the caller
// to answer.
func (s *Service) findInvitation(ctx context.Context, c *ent.Client, token *string, id *gid.ID) (*ent.Invitation, error) {
	v := viewer.FromContext(ctx)
	switch {
	case v.Kind == viewer.KindAnonymous:
		return nil, apperr.New(apperr.Unauthenticated, "sign up or log in first, then accept the invitation")
	case !v.IsUser():
		return nil, apperr.New(apperr.Forbidden, "only people answer invitations")
	case (token == nil) == (id == nil):
		return nil, apperr.Invalid("token", "give either token or id")
	case id != nil && !v.EmailVerified:
		return nil, apperr.New(apperr.Forbidden, "verify your e-mail address first, or open the link of the invitation e-mail")
	}
	var inv *ent.Invitation
	var err error
	if token != nil {
		hash := auth.HashToken(*token)
		inv, err = c.Invitation.Query().Where(invitation.TokenHash(hash)).Only(viewer.WithInvitationToken(ctx, hash))
	} else {
		inv, err = c.Invitation.Get(ctx, *id)
	}
	if ent.IsNotFound(err) {
		return nil, apperr.New(apperr.NotFound, "invitation not found: the link may have been replaced by a newer one")
	}
	if err != nil {
		return nil, err
	}
	if inv.Email != v.Email {
		return nil, apperr.New(apperr.Forbidden, "this invitation is for another e-mail address; log in with the invited account")
	}
	switch s.Status(inv) {
	case invitation.StatusPENDING:
		return inv, nil
	case invitation.StatusEXPIRED:
		return nil, apperr.New(apperr.Conflict, "this invitation has expired: ask for a new one")
	case invitation.StatusREVOKED:
		return nil, apperr.New(apperr.Conflict, "this invitation was revoked")
	}
	return nil, apperr.New(apperr.Conflict, "this invitation was already %s", strings.ToLower(string(inv.Status)))
}

// AcceptInvitation makes the caller a member of the inviting organization with the
// invitation's role.
func (s *Service) AcceptInvitation(ctx context.Context, token *string, id *gid.ID) (*ent.Membership, error) {
	var m *ent.Membership
	err := s.tx(ctx, func(ctx context.Context, c *ent.Client) error {
		inv, err := s.findInvitation(ctx, c, token, id)
		if err != nil {
			return err
		}
		v := viewer.FromContext(ctx)
		ctx = viewer.WithInvitee(ctx, viewer.Invitee{InvitationID: inv.ID, OrgID: inv.OrganizationID, Role: inv.Role})
		m, err = c.Membership.Create().SetOrganizationID(inv.OrganizationID).SetUserID(v.UserID).SetRole(inv.Role).Save(ctx)
		if ent.IsConstraintError(err) {
			return apperr.New(apperr.Conflict, "you are already a member of this organization")
		}
		if err != nil {
			return err
		}
		if err := s.transition(ctx, c, inv, invitation.StatusACCEPTED); err != nil {
			return err
		}
		if err := s.verifiedByLink(ctx, c, token); err != nil {
			return err
		}
		return audit.Record(ctx, c, audit.Entry{OrgID: inv.OrganizationID, Action: "invitation.accept",
			TargetType: "Membership", TargetID: m.ID, Details: map[string]any{"email": inv.Email, "role": inv.Role}})
	})
	if err != nil {
		return nil, err
	}
	viewer.FromContext(ctx).Joined(m.OrganizationID, m.Role)
	return m, nil
}

// DeclineInvitation turns an invitation down.
func (s *Service) DeclineInvitation(ctx context.Context, token *string, id *gid.ID) (*ent.Invitation, error) {
	var out *ent.Invitation
	err := s.tx(ctx, func(ctx context.Context, c *ent.Client) error {
		inv, err := s.findInvitation(ctx, c, token, id)
		if err != nil {
			return err
		}
		ctx = viewer.WithInvitee(ctx, viewer.Invitee{InvitationID: inv.ID, OrgID: inv.OrganizationID, Role: inv.Role})
		if err := s.transition(ctx, c, inv, invitation.StatusDECLINED); err != nil {
			return err
		}
		if err := s.verifiedByLink(ctx, c, token); err != nil {
			return err
		}
		out = inv
		out.Status = invitation.StatusDECLINED
		return audit.Record(ctx, c, audit.Entry{OrgID: inv.OrganizationID, Action: "invitation.decline",
			TargetType: "Invitation", TargetID: inv.ID, Details: map[string]any{"email": inv.Email}})
	})
	return out, err
}

// verifiedByLink marks the caller's address verified when they answered with the mailed
// token: the link reached their inbox. (findInvitation checked the addresses match.)
func (s *Service) verifiedByLink(ctx context.Context, c *ent.Client, token *string) error {
	v := viewer.FromContext(ctx)
	if token == nil || v.EmailVerified {
		return nil
	}
	u, err := c.User.Get(ctx, v.UserID)
	if err != nil {
		return err
	}
	return s.markVerified(ctx, c, u)
}

// transition moves a pending invitation to status, unless a concurrent answer or revocation
// got there first.
func (s *Service) transition(ctx context.Context, c *ent.Client, inv *ent.Invitation, status invitation.Status) error {
	upd := c.Invitation.Update().Where(invitation.ID(inv.ID), invitation.StatusEQ(invitation.StatusPENDING)).
		SetStatus(status)
	if status != invitation.StatusREVOKED {
		upd.SetRespondedAt(s.now())
	}
	n, err := upd.Save(s.asInvitee(ctx, inv))
	if err != nil {
		return err
	}
	if n == 0 {
		return apperr.New(apperr.Conflict, "this invitation was answered or revoked meanwhile")
	}
	return nil
}

// asInvitee adds the invitee capability when the caller answers their own invitation.
func (s *Service) asInvitee(ctx context.Context, inv *ent.Invitation) context.Context {
	if v := viewer.FromContext(ctx); v.IsUser() && v.Email == inv.Email {
		return viewer.WithInvitee(ctx, viewer.Invitee{InvitationID: inv.ID, OrgID: inv.OrganizationID, Role: inv.Role})
	}
	return ctx
}

// mailInvitation sends the link once the invitation is committed: a rolled-back invitation
// must not reach anyone's inbox.
func (s *Service) mailInvitation(ctx context.Context, inv *ent.Invitation, token string) {
	org, err := s.client.Organization.Get(viewer.System(ctx, "invitation-mail"), inv.OrganizationID)
	orgName := "an organization"
	if err == nil {
		orgName = org.Name
	}
	inviter := "Someone"
	if v := viewer.FromContext(ctx); v.IsUser() && v.Email != "" {
		inviter = v.Email
	}
	link := strings.ReplaceAll(s.opts.InvitationURL, "{token}", token)
	msg := mail.Message{
		To:      inv.Email,
		Subject: fmt.Sprintf("You are invited to %s on wagate", orgName),
		Body: fmt.Sprintf("%s invited you to join %s on wagate as %s.\n\nAccept the invitation:\n%s\n\n"+
			"The link works once and until %s. If you were not expecting this, ignore this e-mail.\n",
			inviter, orgName, inv.Role, link, inv.ExpiresAt.UTC().Format(time.RFC1123)),
	}
	database.AfterCommit(ctx, func() {
		if err := s.opts.Mail.Send(context.WithoutCancel(ctx), msg); err != nil {
			s.opts.Log.ErrorContext(ctx, "queueing invitation e-mail", "invitation", inv.ID, "err", err)
		}
	})
}
