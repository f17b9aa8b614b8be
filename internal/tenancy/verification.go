package tenancy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/user"
	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/auth"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/mail"
	"github.com/wagate/wagate/internal/rule"
	"github.com/wagate/wagate/internal/viewer"
)

// VerificationTokenPrefix starts every e-mail verification token.
const VerificationTokenPrefix = "wev_"

// DefaultVerificationURL points at the dashboard's verification page of a local installation.
const DefaultVerificationURL = "http://localhost:8080/verify-email?token={token}"

const verificationTTL = 48 * time.Hour

// sendVerification gives u a new verification token and mails it once c's transaction
// commits. Until an address is verified, invitations to it can only be accepted through
// the link they were mailed with: anyone may sign up with any address.
func (s *Service) sendVerification(ctx context.Context, c *ent.Client, u *ent.User) error {
	token, hash := auth.NewSecret(VerificationTokenPrefix)
	err := c.User.UpdateOne(u).SetEmailVerificationHash(hash).
		SetEmailVerificationExpiresAt(s.now().Add(verificationTTL)).Exec(viewer.System(ctx, "email-verification"))
	if err != nil {
		return fmt.Errorf("storing the verification token: %w", err)
	}
	msg := mail.Message{
		To:      u.Email,
		Subject: "Confirm your e-mail address for wagate",
		Body: fmt.Sprintf("Confirm that this address is yours:\n%s\n\nThe link works once, for %d hours. "+
			"If you did not sign up for wagate, ignore this e-mail.\n",
			strings.ReplaceAll(s.opts.VerificationURL, "{token}", token), int(verificationTTL.Hours())),
	}
	database.AfterCommit(ctx, func() {
		if err := s.opts.Mail.Send(context.WithoutCancel(ctx), msg); err != nil {
			s.opts.Log.ErrorContext(ctx, "queueing verification e-mail", "user", u.ID, "err", err)
		}
	})
	return nil
}

var errBadVerification = apperr.New(apperr.NotFound, "invalid or expired verification link: request a new one")

// VerifyEmail marks the address of the account the token was mailed to as verified.
func (s *Service) VerifyEmail(ctx context.Context, token string) (bool, error) {
	if !strings.HasPrefix(token, VerificationTokenPrefix) {
		return false, errBadVerification
	}
	err := s.tx(ctx, func(ctx context.Context, c *ent.Client) error {
		sys := viewer.System(ctx, "email-verification")
		u, err := c.User.Query().Where(user.EmailVerificationHash(auth.HashToken(token))).Only(sys)
		if ent.IsNotFound(err) {
			return errBadVerification
		}
		if err != nil {
			return err
		}
		if u.EmailVerificationExpiresAt == nil || !u.EmailVerificationExpiresAt.After(s.now()) {
			return errBadVerification
		}
		return s.markVerified(sys, c, u)
	})
	return err == nil, err
}

func (s *Service) markVerified(ctx context.Context, c *ent.Client, u *ent.User) error {
	err := c.User.UpdateOne(u).SetEmailVerifiedAt(s.now()).ClearEmailVerificationHash().
		ClearEmailVerificationExpiresAt().Exec(viewer.System(ctx, "email-verification"))
	if err != nil {
		return fmt.Errorf("marking the address verified: %w", err)
	}
	if v := viewer.FromContext(ctx); v.IsUser() && v.UserID == u.ID {
		v.EmailVerified = true
	}
	return nil
}

// ResendVerification mails the caller a new verification link.
func (s *Service) ResendVerification(ctx context.Context) (bool, error) {
	v := viewer.FromContext(ctx)
	switch {
	case v.Kind == viewer.KindAnonymous:
		return false, rule.ErrUnauthenticated
	case !v.IsUser():
		return false, apperr.New(apperr.Forbidden, "only people verify e-mail addresses")
	case v.EmailVerified:
		return false, apperr.New(apperr.Conflict, "your e-mail address is already verified")
	}
	err := s.tx(ctx, func(ctx context.Context, c *ent.Client) error {
		u, err := c.User.Get(ctx, v.UserID)
		if err != nil {
			return err
		}
		return s.sendVerification(ctx, c, u)
	})
	return err == nil, err
}
