package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/wagate/wagate/internal/apperr"
)

// FuzzNormalizeEmail: sign-up, log-in and invitations compare addresses in the form this
// returns, so it must be a fixed point; refusals are BAD_USER_INPUT on the given field.
func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{"Ann@Example.com", " ann@example.com ", "Ann <ann@example.com>", "ann", "@", "a@b",
		`"a b"@example.com`, "ann@[127.0.0.1]", "ÄNN@ÉXAMPLE.COM", "a@b@c", strings.Repeat("a", 250) + "@b.c", "=?utf-8?q?a?=@b.c", strings.Repeat("Ⱥ", 125) + "@b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		email, err := NormalizeEmail("email", s)
		if err != nil {
			var e *apperr.Error
			if !errors.As(err, &e) || e.Code != apperr.BadUserInput || e.Field != "email" {
				t.Fatalf("NormalizeEmail(%q): %#v", s, err)
			}
			return
		}
		if again, err := NormalizeEmail("email", email); err != nil || again != email {
			t.Fatalf("NormalizeEmail(%q) = %q, which normalizes to %q, %v", s, email, again, err)
		}
		if email != strings.ToLower(email) || len(email) > 254 {
			t.Fatalf("NormalizeEmail(%q) = %q", s, email)
		}
	})
}
