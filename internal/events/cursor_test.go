package events

import (
	"errors"
	"testing"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/internal/apperr"
)

// FuzzParseCursor: an accepted cursor names a position that formats back to a cursor of the
// same position; anything else is BAD_USER_INPUT on the "after" argument.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"", "0", "42", "-1", "9223372036854775807", "9223372036854775808", "+7", "007",
		"1e3", " 1", "0x10", "MQ=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseCursor(s)
		if err != nil {
			var e *apperr.Error
			if !errors.As(err, &e) || e.Code != apperr.BadUserInput || e.Field != "after" {
				t.Fatalf("ParseCursor(%q): %#v, want BAD_USER_INPUT on after", s, err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("ParseCursor(%q) = %d", s, n)
		}
		c := (&ent.Event{Seq: n}).Cursor()
		if again, err := ParseCursor(c); err != nil || again != n {
			t.Fatalf("ParseCursor(%q) = %d; its cursor %q reads as %d, %v", s, n, c, again, err)
		}
	})
}
