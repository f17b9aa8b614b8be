package httpapi_test

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
)

// cursor forges a cursor the way entgql encodes them.
func cursor(t *testing.T, id string, value any) string {
	t.Helper()
	c := map[string]any{"i": id}
	if value != nil {
		c["v"] = value
	}
	b, err := msgpack.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawStdEncoding.EncodeToString(b)
}

// Cursors are client input: one that decodes but was not written by the server — an ID that
// is not an ID, an ordering value of another type than the list's order compares — is
// BAD_USER_INPUT, never a failing SQL statement. Real cursors keep working.
func TestForgedCursorsAreBadInput(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s := apitest.New(t, db)
		ann := s.SignUp(t, "ann")
		for _, name := range []string{"bob", "cy"} {
			s.AddMember(t, ann, ann.OrgID, s.SignUp(t, name), "MEMBER")
		}
		id := ann.OrgID
		for _, tc := range []struct{ name, query, cursor string }{
			{"map value", `query($c: Cursor) { organizations(after: $c) { edges { node { id } } } }`, cursor(t, id, map[string]any{"a": 1})},
			{"not an id", `query($c: Cursor) { organizations(after: $c) { edges { node { id } } } }`, cursor(t, "'; drop table users", nil)},
			{"text for a timestamp", `query($c: Cursor) { organization { auditLog(first: 5, before: $c) { edges { node { id } } } } }`, cursor(t, id, "yesterday")},
			{"text for a sequence", `query($c: Cursor) { organization { events(first: 5, after: $c) { edges { node { id } } } } }`, cursor(t, id, "1")},
			{"number for a timestamp, edge loaded with its parent", `query($c: Cursor) { organization { members(first: 5, after: $c, orderBy: {field: CREATED_AT}) { edges { node { id } } } } }`, cursor(t, id, 7)},
			{"timestamp for a name order", `query($c: Cursor) { organization { sessions(first: 5, after: $c, orderBy: {field: NAME}) { edges { node { id } } } } }`, cursor(t, id, time.Now())},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantCode(t, s.Do(t, q(ann, "", tc.query, map[string]any{"c": tc.cursor})), "BAD_USER_INPUT")
			})
		}

		var page struct {
			Organization struct {
				Members struct {
					PageInfo struct{ EndCursor string }
					Edges    []struct{ Node struct{ ID string } }
				}
			}
		}
		const members = `query($c: Cursor) { organization { members(first: 2, after: $c, orderBy: {field: CREATED_AT, direction: DESC}) {
			pageInfo { endCursor } edges { node { id } } } } }`
		s.OK(t, q(ann, "", members, map[string]any{"c": nil}), &page)
		first := page.Organization.Members.Edges
		s.OK(t, q(ann, "", members, map[string]any{"c": page.Organization.Members.PageInfo.EndCursor}), &page)
		if rest := page.Organization.Members.Edges; len(first) != 2 || len(rest) != 1 || rest[0].Node.ID == first[1].Node.ID {
			t.Fatalf("paging by creation time: %v then %v", first, rest)
		}
	})
}
