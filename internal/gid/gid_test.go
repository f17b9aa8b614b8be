package gid

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestNewParsesAndSorts(t *testing.T) {
	prev := New("org")
	for range 1000 {
		id := New("org")
		if _, err := Parse(string(id)); err != nil {
			t.Fatalf("Parse(New()) = %v", err)
		}
		if id.Prefix() != "org" {
			t.Fatalf("prefix = %q", id.Prefix())
		}
		// Same-millisecond IDs are random among themselves; across milliseconds they sort.
		if string(id[:14]) < string(prev[:14]) {
			t.Fatalf("time part went backwards: %s < %s", id, prev)
		}
		prev = id
	}
}

func TestParseRejects(t *testing.T) {
	for _, s := range []string{
		"", "org", "org_", "_01jf3k2v8q9m7x0c4d5e6f7g8h", "ORG_01jf3k2v8q9m7x0c4d5e6f7g8h",
		"org_01jf3k2v8q9m7x0c4d5e6f7g8", "org_91jf3k2v8q9m7x0c4d5e6f7g8h", "org_01jf3k2v8q9m7x0c4d5e6f7g8u",
		"toolongprefix_01jf3k2v8q9m7x0c4d5e6f7g8h", "1; DROP TABLE users",
	} {
		if _, err := Parse(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) err = %v, want ErrMalformed", s, err)
		}
	}
}

func TestUnmarshalGQL(t *testing.T) {
	var id ID
	if err := id.UnmarshalGQL(42); err == nil {
		t.Fatal("UnmarshalGQL(42) succeeded")
	}
	want := New("usr")
	if err := id.UnmarshalGQL(string(want)); err != nil || id != want {
		t.Fatalf("UnmarshalGQL = %v, %q", err, id)
	}
	var sb strings.Builder
	id.MarshalGQL(&sb)
	if sb.String() != `"`+string(want)+`"` {
		t.Fatalf("MarshalGQL = %s", sb.String())
	}
}

// FuzzParse: an accepted ID is returned unchanged and survives GraphQL's round trip; a
// refused one is ErrMalformed, with the input shortened in the message.
func FuzzParse(f *testing.F) {
	f.Add(string(New("org")))
	f.Add("org_")
	f.Add("a_zzzzzzzzzzzzzzzzzzzzzzzzzz")
	f.Add("abcdefghi_01jf3k2v8q9m7x0c4d5e6f7g8h")
	f.Add("org_01jf3k2v8q9m7x0c4d5e6f7g8h_")
	f.Add("ORG_01JF3K2V8Q9M7X0C4D5E6F7G8H")
	f.Add("org_81jf3k2v8q9m7x0c4d5e6f7g8h")
	f.Add(strings.Repeat("é", 40))
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%q): untyped error %v", s, err)
			}
			if len(err.Error()) > 200 {
				t.Fatalf("Parse(%d bytes): the error repeats the whole input", len(s))
			}
			return
		}
		if string(id) != s || id.Prefix() == "" {
			t.Fatalf("Parse(%q) = %q, prefix %q", s, id, id.Prefix())
		}
		var sb strings.Builder
		id.MarshalGQL(&sb)
		var back ID
		if unq, err := strconv.Unquote(sb.String()); err != nil || back.UnmarshalGQL(unq) != nil || back != id {
			t.Fatalf("GraphQL round trip of %q gave %q (%s)", id, back, sb.String())
		}
	})
}
