// Package page bounds Relay pagination arguments.
package page

import (
	"strings"
	"time"

	"entgo.io/contrib/entgql"

	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/gid"
)

// Max is the largest page a connection returns, and the default size.
const Max = 100

// Args are a connection's pagination arguments.
type Args struct {
	After  *entgql.Cursor[gid.ID]
	First  *int
	Before *entgql.Cursor[gid.ID]
	Last   *int
}

// Check validates first and last.
func Check(first, last *int) error {
	for name, n := range map[string]*int{"first": first, "last": last} {
		if n != nil && (*n < 0 || *n > Max) {
			return apperr.Invalid(name, "%s must be between 0 and %d", name, Max)
		}
	}
	if first != nil && last != nil {
		return apperr.Invalid("last", "pass first or last, not both")
	}
	return nil
}

// Value is the kind of ordering value in a connection's cursors, which is compared with the
// ordering column in SQL.
type Value int

// The kinds of ordering value.
const (
	ByID     Value = iota // no value: ordered by ID
	ByTime                // a timestamp column
	ByString              // a text column (names, e-mail addresses, roles)
	BySeq                 // an integer column
	anyValue              // any kind the server writes, for checks that do not know the order
)

// ValueOf returns the kind of value in cursors of a connection ordered by an ent order field
// ("CREATED_AT", "NAME", …).
func ValueOf(orderField string) Value {
	if strings.HasSuffix(orderField, "_AT") || orderField == "TIMESTAMP" {
		return ByTime
	}
	return ByString
}

// CheckCursors refuses cursors the server cannot have written. A cursor is base64 msgpack
// that decodes into any ID and any value, and a value of the wrong type — a map, or text
// where a timestamp column is compared — fails in SQL, an internal error for what is the
// caller's mistake.
func CheckCursors(after, before *entgql.Cursor[gid.ID], v Value) error {
	for name, c := range map[string]*entgql.Cursor[gid.ID]{"after": after, "before": before} {
		if c == nil {
			continue
		}
		if _, err := gid.Parse(string(c.ID)); err != nil || !valueIs(c.Value, v) {
			return apperr.Invalid(name, "%s is not a cursor of this list", name)
		}
	}
	return nil
}

func valueIs(x any, v Value) bool {
	switch x.(type) {
	case nil:
		return v == ByID || v == anyValue
	case time.Time:
		return v == ByTime || v == anyValue
	case string:
		return v == ByString || v == anyValue
	case int8, int16, int32, int64, uint8, uint16, uint32, uint64:
		return v == BySeq || v == anyValue
	}
	return false
}

// CheckAnyCursors refuses cursors no connection of the server writes.
func CheckAnyCursors(after, before *entgql.Cursor[gid.ID]) error {
	return CheckCursors(after, before, anyValue)
}

// Bounded validates the arguments of a connection ordered by ID and fills in the default
// page size (first: Max) when neither first nor last is given.
func (a Args) Bounded() (Args, error) { return a.BoundedBy(ByID) }

// BoundedBy is Bounded for a connection whose cursors carry ordering values of kind v.
func (a Args) BoundedBy(v Value) (Args, error) {
	if err := Check(a.First, a.Last); err != nil {
		return a, err
	}
	if err := CheckCursors(a.After, a.Before, v); err != nil {
		return a, err
	}
	if a.First == nil && a.Last == nil {
		n := Max
		a.First = &n
	}
	return a, nil
}
