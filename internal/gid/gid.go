// Package gid implements wagate's global object identifiers.
//
// An ID is "<prefix>_<ulid>", e.g. "org_01jf3k2v8q9m7x0c4d5e6f7g8h". The prefix names the
// object type, so a Relay node(id:) lookup knows which table to read without an extra query,
// and IDs in logs, webhooks and support tickets say what they point at. The ULID part is
// time-ordered, which keeps B-tree inserts local and makes IDs usable as stable cursors.
package gid

import (
	"crypto/rand"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ID is an opaque, type-prefixed identifier.
type ID string

// ulidLen is the length of the Crockford base32 encoding of 128 bits.
const ulidLen = 26

const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// ErrMalformed is returned for strings that are not well-formed IDs.
var ErrMalformed = errors.New("malformed id")

// New returns a fresh ID with the given prefix.
func New(prefix string) ID {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	binary.BigEndian.PutUint16(b[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(ms))
	if _, err := rand.Read(b[6:]); err != nil {
		panic(fmt.Errorf("gid: reading randomness: %w", err)) // crypto/rand never fails on supported platforms
	}
	return ID(prefix + "_" + encode(b))
}

// encode writes 128 bits as 26 base32 characters, most significant first.
func encode(b [16]byte) string {
	hi := binary.BigEndian.Uint64(b[0:8])
	lo := binary.BigEndian.Uint64(b[8:16])
	var out [ulidLen]byte
	for i := ulidLen - 1; i >= 0; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// Parse validates s and returns it as an ID.
func Parse(s string) (ID, error) {
	prefix, body, ok := strings.Cut(s, "_")
	if !ok || len(prefix) == 0 || len(prefix) > 8 || len(body) != ulidLen {
		return "", fmt.Errorf("%w: %q", ErrMalformed, truncate(s))
	}
	for i := 0; i < len(prefix); i++ {
		if prefix[i] < 'a' || prefix[i] > 'z' {
			return "", fmt.Errorf("%w: %q", ErrMalformed, truncate(s))
		}
	}
	// The first character carries only 3 bits (128 = 26*5 - 2).
	if strings.IndexByte("01234567", body[0]) < 0 {
		return "", fmt.Errorf("%w: %q", ErrMalformed, truncate(s))
	}
	for i := 0; i < len(body); i++ {
		if strings.IndexByte(alphabet, body[i]) < 0 {
			return "", fmt.Errorf("%w: %q", ErrMalformed, truncate(s))
		}
	}
	return ID(s), nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Prefix returns the type prefix of id ("" when id has none).
func (id ID) Prefix() string {
	p, _, ok := strings.Cut(string(id), "_")
	if !ok {
		return ""
	}
	return p
}

// String implements fmt.Stringer.
func (id ID) String() string { return string(id) }

// MarshalGQL implements graphql.Marshaler.
func (id ID) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(string(id))) }

// UnmarshalGQL implements graphql.Unmarshaler; malformed input is a user error, not a lookup.
func (id *ID) UnmarshalGQL(v any) error {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case ID: // entgql's node resolvers re-decode IDs they already hold
		s = string(v)
	default:
		return fmt.Errorf("%w: want a string, got %T", ErrMalformed, v)
	}
	parsed, err := Parse(s)
	if err != nil {
		return err
	}
	*id = parsed
	return nil
}

// Scan implements sql.Scanner.
func (id *ID) Scan(src any) error {
	switch v := src.(type) {
	case string:
		*id = ID(v)
	case []byte:
		*id = ID(v)
	default:
		return fmt.Errorf("gid: cannot scan %T", src)
	}
	return nil
}

// Value implements driver.Valuer.
func (id ID) Value() (driver.Value, error) { return string(id), nil }
