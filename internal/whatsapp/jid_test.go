package whatsapp

import (
	"errors"
	"testing"
)

func TestChatJID(t *testing.T) {
	tests := []struct{ in, want string }{
		{"+49 151 1234-5678", "4915112345678@s.whatsapp.net"},
		{"004915112345678", "4915112345678@s.whatsapp.net"},
		{"4915112345678@s.whatsapp.net", "4915112345678@s.whatsapp.net"},
		{"120363025246125486@g.us", "120363025246125486@g.us"},
		{"4915112345678-1609459200@g.us", "4915112345678-1609459200@g.us"},
		{"123456789012345@lid", "123456789012345@lid"},
	}
	for _, tt := range tests {
		if got, err := ChatJID(tt.in); err != nil || got != tt.want {
			t.Errorf("ChatJID(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "abc", "+0151", "12", "4915112345678:12@s.whatsapp.net", "x@g.us", "1@example.com",
		"+49151123456789012", "49151@s.whatsapp.net"} {
		if _, err := ChatJID(bad); err == nil {
			t.Errorf("ChatJID(%q) accepted", bad)
		} else if !errors.Is(err, ErrInvalidRecipient) && !errors.Is(err, ErrInvalidPhoneNumber) {
			t.Errorf("ChatJID(%q): unexpected error %v", bad, err)
		}
	}
}

func TestPhoneOf(t *testing.T) {
	for in, want := range map[string]string{
		"4915112345678@s.whatsapp.net":    "+4915112345678",
		"4915112345678:12@s.whatsapp.net": "+4915112345678",
		"120363025246125486@g.us":         "",
		"123@lid":                         "",
		"nonsense":                        "",
	} {
		if got := PhoneOf(in); got != want {
			t.Errorf("PhoneOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzChatJID(f *testing.F) {
	for _, s := range []string{"+4915112345678", "1@g.us", "4915112345678@s.whatsapp.net", "+", "@",
		"4915112345678-1609459200@g.us", "123@lid", "4915112345678:12@s.whatsapp.net", "00+4915112345678"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		jid, err := ChatJID(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidRecipient) && !errors.Is(err, ErrInvalidPhoneNumber) {
				t.Fatalf("ChatJID(%q): untyped error %v", s, err)
			}
			return
		}
		again, err := ChatJID(jid)
		if err != nil || again != jid {
			t.Fatalf("ChatJID(%q) = %q is not stable: %q, %v", s, jid, again, err)
		}
		if p := PhoneOf(jid); p != "" && p[1:]+"@"+UserServer != jid {
			t.Fatalf("PhoneOf(%q) = %q does not name the same user", jid, p)
		}
	})
}

// FuzzNormalizePhone: a normalized number is E.164, normalizes to itself, and survives the
// trip through a JID and back.
func FuzzNormalizePhone(f *testing.F) {
	for _, s := range []string{"+49 151 1234-5678", "004915112345678", "(030) 123456", "+1.555.000.0001",
		"0049", "+", "", "٤٩١٥١١٢٣٤٥٦٧", "+0 151 1234567", "00+4915112345678", "1234567890123456"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := NormalizePhone(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidPhoneNumber) {
				t.Fatalf("NormalizePhone(%q): untyped error %v", s, err)
			}
			return
		}
		if len(p) < 8 || len(p) > 16 || p[0] != '+' || p[1] == '0' || !allDigits(p[1:]) {
			t.Fatalf("NormalizePhone(%q) = %q is not E.164", s, p)
		}
		if again, err := NormalizePhone(p); err != nil || again != p {
			t.Fatalf("NormalizePhone(%q) = %q is not stable: %q, %v", s, p, again, err)
		}
		jid, err := ChatJID(p)
		if err != nil || PhoneOf(jid) != p {
			t.Fatalf("%q → ChatJID %q, %v → PhoneOf %q", p, jid, err, PhoneOf(jid))
		}
	})
}
