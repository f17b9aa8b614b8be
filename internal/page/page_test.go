package page

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"entgo.io/contrib/entgql"

	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/gid"
)

func marshal(c entgql.Cursor[gid.ID]) string {
	var sb strings.Builder
	c.MarshalGQL(&sb)
	s, _ := strconv.Unquote(sb.String())
	return s
}

// FuzzCursor: whatever a client sends as a cursor, decoding never panics, and a cursor the
// checks accept has a real ID and an ordering value of the list's kind, and encodes back to
// the same cursor; every refusal is BAD_USER_INPUT on the argument.
func FuzzCursor(f *testing.F) {
	id := gid.New("org")
	for _, c := range []entgql.Cursor[gid.ID]{{ID: id}, {ID: id, Value: time.Unix(1735689600, 5).UTC()},
		{ID: id, Value: "Ann"}, {ID: id, Value: int64(42)}, {ID: "nonsense"}, {ID: id, Value: map[string]any{"a": 1}},
		{ID: id, Value: []any{1, "x"}}, {ID: id, Value: 1.5}} {
		f.Add(marshal(c))
	}
	f.Add("")
	f.Add("!!!")
	f.Add("3w") // msgpack array32 header promising 4 billion elements
	f.Fuzz(func(t *testing.T, s string) {
		var c entgql.Cursor[gid.ID]
		if c.UnmarshalGQL(s) != nil {
			return // gqlgen answers BAD_USER_INPUT for a cursor that does not decode
		}
		for _, kind := range []Value{ByID, ByTime, ByString, BySeq, anyValue} {
			err := CheckCursors(nil, &c, kind)
			if err != nil {
				var e *apperr.Error
				if !errors.As(err, &e) || e.Code != apperr.BadUserInput || e.Field != "before" {
					t.Fatalf("CheckCursors(%q, %d) = %#v", s, kind, err)
				}
				continue
			}
			if _, err := gid.Parse(string(c.ID)); err != nil || !valueIs(c.Value, kind) {
				t.Fatalf("CheckCursors accepted %#v for kind %d", c, kind)
			}
			var back entgql.Cursor[gid.ID]
			if err := back.UnmarshalGQL(marshal(c)); err != nil || back.ID != c.ID || !sameValue(back.Value, c.Value) {
				t.Fatalf("cursor %#v re-encoded reads as %#v, %v", c, back, err)
			}
		}
	})
}

func sameValue(a, b any) bool {
	if ta, ok := a.(time.Time); ok {
		tb, ok := b.(time.Time)
		return ok && ta.Equal(tb)
	}
	return a == b
}

func TestBoundedByRefusesForeignCursors(t *testing.T) {
	id := gid.New("ses")
	at := &entgql.Cursor[gid.ID]{ID: id, Value: time.Now()}
	if _, err := (Args{After: at}).BoundedBy(ByTime); err != nil {
		t.Fatalf("a cursor of a time-ordered list: %v", err)
	}
	if _, err := (Args{After: at}).Bounded(); !apperr.Is(err, apperr.BadUserInput) {
		t.Fatalf("a time cursor on a list ordered by ID: %v", err)
	}
	a, err := (Args{Before: &entgql.Cursor[gid.ID]{ID: id}}).Bounded()
	if err != nil || a.First == nil || *a.First != Max {
		t.Fatalf("Bounded() = %+v, %v", a, err)
	}
}
