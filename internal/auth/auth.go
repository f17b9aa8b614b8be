// Package auth authenticates callers: passwords, session tokens, and the HTTP middleware
// that turns a request's credentials into the viewer every privacy rule reads.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/authtoken"
	"github.com/wagate/wagate/ent/membership"
	"github.com/wagate/wagate/ent/user"
	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/viewer"
)

// Config tunes authentication.
type Config struct {
	// TokenTTL is how long a session token stays valid; 0 means 30 days.
	TokenTTL time.Duration
	// Hash sets the argon2id cost of new password hashes; zero means DefaultHashParams.
	Hash HashParams
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives what callers are not told; nil means slog.Default().
	Log *slog.Logger
	// LoginLimits bound log-in and sign-up attempts; the zero value limits nothing.
	LoginLimits LoginLimits
	// CacheTTL is how long a resolved credential may be reused without hearing of a change
	// (see WatchChanges); 0 means DefaultCacheTTL, a negative value turns the cache off.
	CacheTTL time.Duration
	// CacheSize bounds the credentials remembered, the least recently used going first;
	// 0 means DefaultCacheSize, a negative value turns the cache off.
	CacheSize int
}

// Service authenticates users.
type Service struct {
	client *ent.Client
	ttl    time.Duration
	hash   HashParams
	// dummyHash is checked for unknown e-mail addresses, so an unknown address takes as
	// long to refuse as a wrong password.
	dummyHash string
	now       func() time.Time
	usage     usage
	logger    *slog.Logger
	limits    limiters
	// cache holds resolved credentials.
	cache *cache
}

// New returns a Service.
func New(client *ent.Client, cfg Config) (*Service, error) {
	s := &Service{client: client, ttl: cfg.TokenTTL, hash: cfg.Hash, now: cfg.Now}
	if s.now == nil {
		s.now = time.Now
	}
	s.logger = cfg.Log
	if s.logger == nil {
		s.logger = slog.Default()
	}
	if s.ttl <= 0 {
		s.ttl = 30 * 24 * time.Hour
	}
	s.limits = newLimiters(cfg.LoginLimits, s.now)
	s.cache = newCache(cfg.CacheTTL, cfg.CacheSize, s.now)
	if s.hash == (HashParams{}) {
		s.hash = DefaultHashParams
	}
	h, err := HashPassword("wagate-dummy-password", s.hash)
	if err != nil {
		return nil, err
	}
	s.dummyHash = h
	return s, nil
}

// Password limits: the floor keeps guessable passwords out; the ceiling bounds hashing work.
const (
	minPasswordLen = 10
	maxPasswordLen = 256
)

// errBadCredentials is the one answer for an unknown e-mail, a wrong password and a disabled
// account, so log-in does not tell which addresses have accounts.
var errBadCredentials = apperr.New(apperr.Unauthenticated, "wrong e-mail or password")

// NormalizeEmail validates an e-mail address and returns its canonical (lower-case) form.
func NormalizeEmail(field, email string) (string, error) {
	// Lower-cased before the checks: some letters' lower case is longer in UTF-8, and the
	// stored form must pass them again.
	email = strings.ToLower(strings.TrimSpace(email))
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || len(email) > 254 || !strings.Contains(email, "@") {
		return "", apperr.Invalid(field, "%q is not a valid e-mail address", truncate(email, 80))
	}
	return email, nil
}

// truncate shortens s to at most n bytes, at a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// HashNewPassword checks the password policy and hashes password.
func (s *Service) HashNewPassword(field, password string) (string, error) {
	n := utf8.RuneCountInString(password)
	if n < minPasswordLen {
		return "", apperr.Invalid(field, "the password must have at least %d characters", minPasswordLen)
	}
	if len(password) > maxPasswordLen {
		return "", apperr.Invalid(field, "the password must have at most %d bytes", maxPasswordLen)
	}
	h, err := HashPassword(password, s.hash)
	if err != nil {
		return "", fmt.Errorf("hashing password: %w", err)
	}
	return h, nil
}

// Session is a freshly issued session token.
type Session struct {
	Token     string
	ExpiresAt time.Time
	User      *ent.User
}

// IssueToken creates a session token for u.
func (s *Service) IssueToken(ctx context.Context, u *ent.User) (*Session, error) {
	token, hash := NewSecret(SessionTokenPrefix)
	expires := s.now().Add(s.ttl)
	err := database.Client(ctx, s.client).AuthToken.Create().
		SetUserID(u.ID).
		SetTokenHash(hash).
		SetExpiresAt(expires).
		SetUserAgent(truncate(userAgent(ctx), 250)).
		Exec(viewer.System(ctx, "issue-token"))
	if err != nil {
		return nil, fmt.Errorf("storing session token: %w", err)
	}
	// The rest of this request acts as u, so `signUp { user { memberships } }` and
	// `logIn { organization { … } }` answer for the new session: read in the request's
	// transaction, which may have just made them.
	a, err := loadAccount(ctx, database.Client(ctx, s.client), u)
	if err != nil {
		return nil, err
	}
	v, err := a.viewer("")
	if err != nil {
		return nil, err
	}
	*viewer.FromContext(ctx) = *v
	return &Session{Token: token, ExpiresAt: expires, User: u}, nil
}

// errNotForKeys refuses account operations to API keys.
var errNotForKeys = apperr.New(apperr.Forbidden, "API keys cannot do this: it needs a user")

// LogIn checks an e-mail and password and issues a session token.
func (s *Service) LogIn(ctx context.Context, email, password string) (*Session, error) {
	if viewer.FromContext(ctx).Kind == viewer.KindAPIKey {
		return nil, errNotForKeys
	}
	if err := s.LimitAttempt(ctx); err != nil {
		return nil, err
	}
	email = strings.ToLower(strings.TrimSpace(email))
	if err := s.limitAccount(email); err != nil {
		return nil, err
	}
	sys := viewer.System(ctx, "log-in")
	u, err := database.Client(ctx, s.client).User.Query().Where(user.Email(email)).Only(sys)
	switch {
	case ent.IsNotFound(err):
		_, _ = CheckPassword(s.dummyHash, password)
		return nil, errBadCredentials
	case err != nil:
		return nil, fmt.Errorf("looking up user: %w", err)
	}
	ok, err := CheckPassword(u.PasswordHash, password)
	if err != nil {
		return nil, fmt.Errorf("checking password of %s: %w", u.ID, err)
	}
	if !ok || u.Disabled {
		return nil, errBadCredentials
	}
	s.limits.perAccount.Reset(email)
	return s.IssueToken(ctx, u)
}

// LogOut revokes the token the request was made with.
func (s *Service) LogOut(ctx context.Context) error {
	if viewer.FromContext(ctx).Kind == viewer.KindAPIKey {
		return apperr.New(apperr.Forbidden, "API keys are revoked with revokeAPIKey, not logged out")
	}
	hash, ok := ctx.Value(tokenHashKey{}).([]byte)
	if !ok {
		return apperr.New(apperr.Unauthenticated, "log-out needs a session token")
	}
	_, err := database.Client(ctx, s.client).AuthToken.Delete().
		Where(authtoken.TokenHash(hash)).Exec(viewer.System(ctx, "log-out"))
	if err != nil {
		return fmt.Errorf("revoking token: %w", err)
	}
	return nil
}

type (
	tokenHashKey struct{}
	userAgentKey struct{}
)

func userAgent(ctx context.Context) string {
	ua, _ := ctx.Value(userAgentKey{}).(string)
	return ua
}

// errInvalidToken covers unknown, expired and revoked tokens alike.
var errInvalidToken = apperr.New(apperr.Unauthenticated, "invalid or expired token: log in again")

// Resolve turns a bearer credential and an optional organization override into a viewer.
// An empty credential gives the anonymous viewer.
func (s *Service) Resolve(ctx context.Context, credential string, orgOverride string) (context.Context, *viewer.Viewer, error) {
	return s.resolve(ctx, credential, orgOverride, false)
}

// resolve is Resolve; fresh reads the database even when the credential is cached.
func (s *Service) resolve(ctx context.Context, credential, orgOverride string, fresh bool) (context.Context, *viewer.Viewer, error) {
	switch {
	case credential == "":
		return ctx, &viewer.Viewer{}, nil
	case strings.HasPrefix(credential, APIKeyPrefix):
		// A key always acts in its own organization: the override is ignored.
		v, err := s.resolveAPIKey(ctx, credential, fresh)
		return ctx, v, err
	case !strings.HasPrefix(credential, SessionTokenPrefix):
		return ctx, nil, errInvalidToken
	}
	hash := HashToken(credential)
	tok, err := cachedLookup(ctx, s.cache, hash, fresh, func(ctx context.Context) (*tokenEntry, error) {
		return s.loadToken(ctx, hash)
	})
	if err != nil {
		return ctx, nil, err
	}
	// Again on every use: a cached token expires too.
	if !tok.expiresAt.After(s.now()) {
		return ctx, nil, errInvalidToken
	}
	v, err := tok.account.viewer(orgOverride)
	if err != nil {
		return ctx, nil, err
	}
	return context.WithValue(ctx, tokenHashKey{}, hash), v, nil
}

// tokenEntry is what a valid session token resolved to.
type tokenEntry struct {
	expiresAt time.Time
	account   *account
}

// loadToken reads the session token hashed to hash, its user and their memberships.
func (s *Service) loadToken(ctx context.Context, hash []byte) (*tokenEntry, error) {
	tok, err := s.client.AuthToken.Query().Where(authtoken.TokenHash(hash)).WithUser().
		Only(viewer.System(ctx, "authenticate"))
	switch {
	case ent.IsNotFound(err):
		return nil, errInvalidToken
	case err != nil:
		return nil, fmt.Errorf("looking up token: %w", err)
	}
	if !tok.ExpiresAt.After(s.now()) {
		return nil, errInvalidToken
	}
	u := tok.Edges.User
	if u.Disabled {
		return nil, apperr.New(apperr.Unauthenticated, "this account is disabled")
	}
	a, err := loadAccount(ctx, s.client, u)
	if err != nil {
		return nil, err
	}
	return &tokenEntry{expiresAt: tok.ExpiresAt, account: a}, nil
}

// account is what authenticating a user needs to know of them. It is shared by the
// requests a cache entry serves, so it is never changed.
type account struct {
	id            gid.ID
	email         string
	superAdmin    bool
	emailVerified bool
	selected      *gid.ID
	memberships   []member // oldest first
	// orgs are the memberships by organization, shared by every viewer of the account (a
	// viewer never writes its Orgs in place), so that a cached credential does not build a
	// map per request or per WebSocket connection.
	orgs map[gid.ID]viewer.Role
}

type member struct {
	org  gid.ID
	role viewer.Role
}

// loadAccount reads u's memberships through c.
func loadAccount(ctx context.Context, c *ent.Client, u *ent.User) (*account, error) {
	mems, err := c.Membership.Query().Where(membership.UserID(u.ID)).
		Order(ent.Asc(membership.FieldCreatedAt), ent.Asc(membership.FieldID)).All(viewer.System(ctx, "authenticate"))
	if err != nil {
		return nil, fmt.Errorf("loading memberships: %w", err)
	}
	a := &account{id: u.ID, email: u.Email, superAdmin: u.IsSuperAdmin, emailVerified: u.EmailVerifiedAt != nil,
		selected: u.SelectedOrganizationID, memberships: make([]member, len(mems)),
		orgs: make(map[gid.ID]viewer.Role, len(mems))}
	for i, m := range mems {
		a.memberships[i] = member{org: m.OrganizationID, role: m.Role}
		a.orgs[m.OrganizationID] = m.Role
	}
	return a, nil
}

// viewer returns a new viewer for a, acting in the organization the request picks: the
// override, else the user's selection, else their oldest membership.
func (a *account) viewer(orgOverride string) (*viewer.Viewer, error) {
	v := &viewer.Viewer{
		Kind:          viewer.KindUser,
		UserID:        a.id,
		Email:         a.email,
		SuperAdmin:    a.superAdmin,
		EmailVerified: a.emailVerified,
		Orgs:          a.orgs,
	}
	switch {
	case orgOverride != "":
		id, err := gid.Parse(orgOverride)
		if err != nil || v.Orgs[id] == "" {
			return nil, apperr.New(apperr.NotFound, "organization %q not found", truncate(orgOverride, 40))
		}
		v.OrgID = id
	case a.selected != nil && v.Orgs[*a.selected] != "":
		v.OrgID = *a.selected
	case len(a.memberships) > 0:
		v.OrgID = a.memberships[0].org
	}
	v.Role = v.Orgs[v.OrgID]
	return v, nil
}

// PurgeExpired deletes expired session tokens.
func (s *Service) PurgeExpired(ctx context.Context) (int, error) {
	n, err := s.client.AuthToken.Delete().Where(authtoken.ExpiresAtLT(s.now())).
		Exec(viewer.System(ctx, "purge-tokens"))
	if err != nil {
		return 0, fmt.Errorf("purging expired tokens: %w", err)
	}
	return n, nil
}

// RunMaintenance deletes expired tokens every hour and writes API key usage every
// flushEvery, until ctx ends; then it writes the usage one last time.
func (s *Service) RunMaintenance(ctx context.Context, flushEvery time.Duration, log *slog.Logger) {
	purge := time.NewTicker(time.Hour)
	defer purge.Stop()
	flush := time.NewTicker(flushEvery)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := s.FlushKeyUsage(context.WithoutCancel(ctx)); err != nil {
				log.Warn("writing API key usage at shutdown", "err", err)
			}
			return
		case <-flush.C:
			if err := s.FlushKeyUsage(ctx); err != nil && !errors.Is(err, context.Canceled) {
				log.Warn("writing API key usage", "err", err)
			}
		case <-purge.C:
			if n, err := s.PurgeExpired(ctx); err != nil && !errors.Is(err, context.Canceled) {
				log.Warn("purging expired tokens", "err", err)
			} else if n > 0 {
				log.Info("purged expired tokens", "count", n)
			}
		}
	}
}

func (s *Service) log(context.Context) *slog.Logger { return s.logger }
