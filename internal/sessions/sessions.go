// Package sessions is the service behind the session and messaging API: it checks input,
// writes through ent (whose privacy policies enforce the role table), records audit entries,
// and hands work to the WhatsApp manager once the change has committed.
package sessions

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/message"
	"github.com/wagate/wagate/ent/session"
	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/audit"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/ratelimit"
	"github.com/wagate/wagate/internal/rule"
	"github.com/wagate/wagate/internal/viewer"
	"github.com/wagate/wagate/internal/whatsapp"
	"github.com/wagate/wagate/internal/whatsapp/sandbox"
)

// Options configure the service.
type Options struct {
	// SendPerMinute paces each session's outgoing messages; 0 means 60.
	SendPerMinute int
	// MaxMediaBytes bounds an uploaded attachment; 0 means 16 MiB.
	MaxMediaBytes int64
	Now           func() time.Time
}

// Service implements sessions, chats and messages.
type Service struct {
	client  *ent.Client
	manager *whatsapp.Manager
	sandbox *sandbox.Network
	// pacer is a token bucket per session: pacing protects numbers from WhatsApp's spam
	// detection.
	pacer *ratelimit.Limiter
	opts  Options
}

// New returns a Service. sandboxNet may be nil when the sandbox engine is off.
func New(client *ent.Client, manager *whatsapp.Manager, sandboxNet *sandbox.Network, opts Options) *Service {
	if opts.SendPerMinute <= 0 {
		opts.SendPerMinute = 60
	}
	if opts.MaxMediaBytes <= 0 {
		opts.MaxMediaBytes = 16 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{client: client, manager: manager, sandbox: sandboxNet,
		pacer: ratelimit.New(ratelimit.Rate{Burst: opts.SendPerMinute, Per: time.Minute}, opts.Now), opts: opts}
}

func (s *Service) tx(ctx context.Context, fn func(ctx context.Context, c *ent.Client) error) error {
	return database.InTx(ctx, s.client, fn)
}

// CreateSessionInput names a new session and its engine.
type CreateSessionInput struct {
	Name   string
	Engine session.Engine
}

// CreateSession adds a WhatsApp number to the current organization; connectSession pairs it.
func (s *Service) CreateSession(ctx context.Context, in CreateSessionInput) (*ent.Session, error) {
	if err := rule.Require(viewer.FromContext(ctx), viewer.PermManageSessions); err != nil {
		return nil, err
	}
	name := strings.TrimSpace(in.Name)
	if name == "" || utf8.RuneCountInString(name) > 100 {
		return nil, apperr.Invalid("name", "the name must have 1 to 100 characters")
	}
	if _, ok := s.manager.Engine(string(in.Engine)); !ok {
		return nil, apperr.Invalid("engine", "the %s engine is not enabled on this server", in.Engine)
	}
	var ses *ent.Session
	err := s.tx(ctx, func(ctx context.Context, c *ent.Client) (err error) {
		if ses, err = c.Session.Create().SetName(name).SetEngine(in.Engine).Save(ctx); err != nil {
			return err
		}
		return audit.Record(ctx, c, audit.Entry{Action: "session.create", TargetType: "Session", TargetID: ses.ID,
			Details: map[string]any{"name": name, "engine": in.Engine}})
	})
	return ses, err
}

// manage loads a session of the current organization for a session-management operation.
func (s *Service) manage(ctx context.Context, c *ent.Client, id gid.ID) (*ent.Session, error) {
	if err := rule.Require(viewer.FromContext(ctx), viewer.PermManageSessions); err != nil {
		return nil, err
	}
	return c.Session.Get(ctx, id)
}

// change runs a session-management operation: fn's writes and an audit entry in one
// transaction, then after on the manager once committed.
func (s *Service) change(ctx context.Context, id gid.ID, action string,
	fn func(ctx context.Context, c *ent.Client, ses *ent.Session) error, after func(ses *ent.Session)) (*ent.Session, error) {
	var ses *ent.Session
	err := s.tx(ctx, func(ctx context.Context, c *ent.Client) (err error) {
		if ses, err = s.manage(ctx, c, id); err != nil {
			return err
		}
		if fn != nil {
			if err = fn(ctx, c, ses); err != nil {
				return err
			}
		}
		if err = audit.Record(ctx, c, audit.Entry{Action: action, TargetType: "Session", TargetID: id,
			Details: map[string]any{"name": ses.Name}}); err != nil {
			return err
		}
		database.AfterCommit(ctx, func() { after(ses) })
		return nil
	})
	return ses, err
}

// ConnectSession connects a session; an unpaired one starts QR pairing (see sessionPairing).
func (s *Service) ConnectSession(ctx context.Context, id gid.ID) (*ent.Session, error) {
	return s.change(ctx, id, "session.connect", func(ctx context.Context, c *ent.Client, ses *ent.Session) error {
		return c.Session.UpdateOne(ses).SetAutoconnect(true).Exec(viewer.System(ctx, "session-connect"))
	}, func(ses *ent.Session) {
		if err := s.manager.Connect(context.Background(), ses); err != nil {
			s.manager.LogFailure("connecting session", ses.ID, err)
		}
	})
}

// DisconnectSession closes a session's connection and keeps its pairing.
func (s *Service) DisconnectSession(ctx context.Context, id gid.ID) (*ent.Session, error) {
	return s.change(ctx, id, "session.disconnect", func(ctx context.Context, c *ent.Client, ses *ent.Session) error {
		return c.Session.UpdateOne(ses).SetAutoconnect(false).Exec(viewer.System(ctx, "session-disconnect"))
	}, func(ses *ent.Session) {
		if err := s.manager.Disconnect(context.Background(), ses); err != nil {
			s.manager.LogFailure("disconnecting session", ses.ID, err)
		}
	})
}

// LogoutSession unlinks the device from the phone; the session can be paired again.
func (s *Service) LogoutSession(ctx context.Context, id gid.ID) (*ent.Session, error) {
	return s.change(ctx, id, "session.logout", func(ctx context.Context, c *ent.Client, ses *ent.Session) error {
		if ses.DeviceJid == nil {
			return apperr.New(apperr.Conflict, "the session is not paired")
		}
		return c.Session.UpdateOne(ses).SetAutoconnect(false).Exec(viewer.System(ctx, "session-logout"))
	}, func(ses *ent.Session) {
		if err := s.manager.Logout(context.Background(), ses); err != nil {
			s.manager.LogFailure("logging out session", ses.ID, err)
		}
	})
}

// DeleteSession deletes a session with its chats and messages, unlinking its device.
func (s *Service) DeleteSession(ctx context.Context, id gid.ID) (gid.ID, error) {
	_, err := s.change(ctx, id, "session.delete", func(ctx context.Context, c *ent.Client, ses *ent.Session) error {
		if err := database.LockMessages(ctx, c, message.SessionID(ses.ID)); err != nil {
			return err
		}
		return c.Session.DeleteOne(ses).Exec(ctx)
	}, func(ses *ent.Session) { s.manager.Remove(context.Background(), ses) })
	if err != nil {
		return "", err
	}
	return id, nil
}

// RequestPairingCode pairs a connecting session by phone number; the user enters the
// returned code on the phone.
func (s *Service) RequestPairingCode(ctx context.Context, id gid.ID, phone string) (string, error) {
	ses, err := s.manage(ctx, database.Client(ctx, s.client), id)
	if err != nil {
		return "", err
	}
	if _, err := whatsapp.NormalizePhone(phone); err != nil {
		return "", apperr.Invalid("phoneNumber", "%v", err)
	}
	code, err := s.manager.RequestPairingCode(ctx, ses, phone)
	return code, engineError(err, "phoneNumber")
}

// SubscribePairing streams a session's pairing updates.
func (s *Service) SubscribePairing(ctx context.Context, id gid.ID) (<-chan *whatsapp.PairingUpdate, error) {
	ses, err := s.manage(ctx, s.client, id)
	if err != nil {
		return nil, err
	}
	if ses.DeviceJid != nil {
		// Already paired: there is nothing to wait for.
		done := make(chan *whatsapp.PairingUpdate, 1)
		done <- &whatsapp.PairingUpdate{Type: whatsapp.PairingPaired}
		close(done)
		return done, nil
	}
	ch, cancel := s.manager.SubscribePairing(id)
	context.AfterFunc(ctx, cancel)
	return ch, nil
}

// engineError turns engine errors into API errors.
func engineError(err error, field string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, whatsapp.ErrNotConnected):
		return apperr.Wrap(apperr.Conflict, err, "the session is not connected: call connectSession first")
	case errors.Is(err, whatsapp.ErrAlreadyPaired):
		return apperr.Wrap(apperr.Conflict, err, "the session is already paired")
	case errors.Is(err, whatsapp.ErrNotPaired):
		return apperr.Wrap(apperr.Conflict, err, "the session is not paired")
	case errors.Is(err, whatsapp.ErrInvalidPhoneNumber), errors.Is(err, whatsapp.ErrInvalidRecipient):
		return &apperr.Error{Code: apperr.BadUserInput, Field: field, Message: err.Error(), Err: err}
	case errors.Is(err, whatsapp.ErrRateLimited):
		return apperr.Wrap(apperr.RateLimited, err, "WhatsApp is rate limiting this session; try again later")
	}
	return err
}

// newWAMessageID returns a message ID in WhatsApp Web's format, chosen before sending so a
// retry reuses it and WhatsApp never delivers the message twice.
func newWAMessageID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "3EB0" + strings.ToUpper(hex.EncodeToString(b))
}
