package auth

import (
	"context"
	"math"
	"net/netip"
	"time"

	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/clientip"
	"github.com/wagate/wagate/internal/ratelimit"
)

// LoginLimits bound password guessing. They live in each process's memory: with several
// replicas an attacker gets each budget once per replica. The zero value limits nothing.
type LoginLimits struct {
	// PerIP bounds log-in and sign-up attempts from one client address (for IPv6, its /64:
	// one subscriber usually has the whole prefix).
	PerIP ratelimit.Rate
	// PerAccount bounds log-in attempts at one e-mail address, whoever makes them; a
	// successful log-in refills it, so only failures add up. Addresses without an account
	// count the same, so the limit does not tell which ones have one.
	PerAccount ratelimit.Rate
}

// DefaultLoginLimits are the server's defaults.
var DefaultLoginLimits = LoginLimits{
	PerIP:      ratelimit.Rate{Burst: 20, Per: time.Minute},
	PerAccount: ratelimit.Rate{Burst: 10, Per: 15 * time.Minute},
}

type limiters struct {
	perIP, perAccount *ratelimit.Limiter
}

func newLimiters(l LoginLimits, now func() time.Time) limiters {
	return limiters{perIP: ratelimit.New(l.PerIP, now), perAccount: ratelimit.New(l.PerAccount, now)}
}

// LimitAttempt spends one of the log-in and sign-up attempts of the caller's address, or
// answers RATE_LIMITED when they are used up. Callers without an address (in-process
// ones) are not limited.
func (s *Service) LimitAttempt(ctx context.Context) error {
	a := clientip.From(ctx)
	if !a.IsValid() {
		return nil
	}
	if a.Is6() {
		a = netip.PrefixFrom(a, 64).Masked().Addr()
	}
	if wait := s.limits.perIP.Take(a.String()); wait > 0 {
		return tooMany(wait)
	}
	return nil
}

// limitAccount spends one log-in attempt at the (normalized) address email.
func (s *Service) limitAccount(email string) error {
	if wait := s.limits.perAccount.Take(email); wait > 0 {
		return tooMany(wait)
	}
	return nil
}

func tooMany(wait time.Duration) error {
	wait = time.Duration(math.Ceil(wait.Seconds())) * time.Second
	return &apperr.Error{Code: apperr.RateLimited, RetryAfter: wait,
		Message: "too many attempts: try again in " + wait.String()}
}
