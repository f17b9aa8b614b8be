package whatsapp

import (
	"strings"
	"unicode"
)

// Server parts of WhatsApp addresses.
const (
	UserServer  = "s.whatsapp.net"
	GroupServer = "g.us"
	LIDServer   = "lid"
)

// NormalizePhone turns "+49 151 1234-5678" or "004915112345678" into "+4915112345678".
func NormalizePhone(s string) (string, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "00")
	var digits strings.Builder
	for i, r := range s {
		switch {
		case unicode.IsDigit(r) && r < 128:
			digits.WriteRune(r)
		case r == '+' && i == 0, r == ' ', r == '-', r == '(', r == ')', r == '.':
		default:
			return "", ErrInvalidPhoneNumber
		}
	}
	d := digits.String()
	// E.164: at most 15 digits, country codes never start with 0.
	if len(d) < 7 || len(d) > 15 || d[0] == '0' {
		return "", ErrInvalidPhoneNumber
	}
	return "+" + d, nil
}

// ChatJID resolves a recipient: a phone number in any common notation, or a user or group
// JID. Device addresses ("…:12@s.whatsapp.net") are refused: messages go to a person or group.
func ChatJID(to string) (string, error) {
	to = strings.TrimSpace(to)
	user, server, ok := strings.Cut(to, "@")
	if !ok {
		phone, err := NormalizePhone(to)
		if err != nil {
			return "", err
		}
		return phone[1:] + "@" + UserServer, nil
	}
	switch server {
	case UserServer:
		if !allDigits(user) || len(user) < 7 || len(user) > 15 || user[0] == '0' {
			return "", ErrInvalidRecipient
		}
	case LIDServer:
		if !allDigits(user) {
			return "", ErrInvalidRecipient
		}
	case GroupServer:
		if !validGroupUser(user) {
			return "", ErrInvalidRecipient
		}
	default:
		return "", ErrInvalidRecipient
	}
	return user + "@" + server, nil
}

// PhoneOf returns the E.164 number of a phone-number JID ("" for groups and LIDs).
func PhoneOf(jid string) string {
	user, server, ok := strings.Cut(jid, "@")
	if !ok || server != UserServer {
		return ""
	}
	user, _, _ = strings.Cut(user, ":")
	if !allDigits(user) || user == "" {
		return ""
	}
	return "+" + user
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// Group ids are "<digits>" or the older "<creator>-<timestamp>".
func validGroupUser(s string) bool {
	a, b, dash := strings.Cut(s, "-")
	return allDigits(a) && (!dash || allDigits(b))
}
