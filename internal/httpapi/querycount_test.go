package httpapi_test

import (
	"context"
	"fmt"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/reqlog"
	"github.com/wagate/wagate/internal/testdb"
	"github.com/wagate/wagate/internal/whatsapp"
)

// recordingDB opens a database of the dialect whose statements rec records.
func recordingDB(t *testing.T, dialectName string) (*database.DB, *recorder) {
	rec := &recorder{}
	rec.Keep = func(ctx context.Context) bool {
		if loop, _ := pprof.Label(ctx, whatsapp.LoopLabel); loop == "claim" && !rec.scans.Load() {
			return false
		}
		return !rec.requests || reqlog.ID(ctx) != ""
	}
	return testdb.OpenRecorded(t, dialectName, &rec.Recorder), rec
}

// recorder records statements: by default all but the session manager's scans, which run
// every 1 to 3 s and may land in the middle of any count.
type recorder struct {
	testdb.Recorder
	// requests, when set, leaves out the statements no HTTP request runs (after-commit
	// work such as e-mail).
	requests bool
	// scans, when set, keeps the scans.
	scans atomic.Bool
}

// The organization switcher with its members and their users costs the same number of
// queries for two organizations as for six: field collection loads each level in one query.
func TestOrganizationsMembersUsersIsNotNPlusOne(t *testing.T) {
	for _, d := range testdb.Dialects {
		t.Run(d, func(t *testing.T) {
			db, rec := recordingDB(t, d)
			rec.requests = true
			s := apitest.New(t, db)
			ann := s.SignUp(t, "Ann")
			query := `{ organizations(first: 50) { edges { node { name members(first: 20) { edges { node { role user { email name } } } } } } } }`
			count := func() []string {
				rec.Reset()
				var out struct {
					Organizations struct {
						Edges []struct {
							Node struct{ Members struct{ Edges []any } }
						}
					}
				}
				s.OK(t, q(ann, "", query, nil), &out)
				return rec.Reset()
			}
			addOrgs := func(n int) {
				for range n {
					var out struct{ CreateOrganization struct{ ID string } }
					s.OK(t, q(ann, "", `mutation { createOrganization(input: {name: "Org"}) { id } }`, nil), &out)
					for range 3 {
						s.AddMember(t, ann, out.CreateOrganization.ID, s.SignUp(t, "M"), "MEMBER")
					}
				}
			}
			addOrgs(1)
			small := count()
			addOrgs(4)
			large := count()
			if len(small) != len(large) {
				t.Fatalf("queries grow with organizations: %d for 2, %d for 6:\n%s", len(small), len(large), strings.Join(large, "\n"))
			}
			// token, its user, the caller's memberships (auth); organizations; members; users.
			if len(large) != 6 {
				t.Fatalf("%d queries, want 6:\n%s", len(large), strings.Join(large, "\n"))
			}
			// Privacy filtered every tenant-scoped statement.
			for _, stmt := range large[3:] {
				if !strings.Contains(stmt, "IN (") {
					t.Errorf("statement without a tenant filter: %s", stmt)
				}
			}
		})
	}
}

// A credential costs its queries once: repeating it, with or without an organization
// override, runs no statement at all for a query the viewer answers.
func TestRepeatedCredentialRunsNoQueries(t *testing.T) {
	for _, d := range testdb.Dialects {
		t.Run(d, func(t *testing.T) {
			db, rec := recordingDB(t, d)
			s := apitest.New(t, db)
			ann := s.SignUp(t, "Ann")
			key := &apitest.User{Token: s.CreateAPIKey(t, ann, ann.OrgID, "ADMIN").Secret}
			bob := s.SignUp(t, "Bob")
			for _, c := range []struct {
				name  string
				u     *apitest.User
				org   string
				first int
			}{
				{"API key", key, "", 3},         // the key and its creator; the creator's membership
				{"token", bob, "", 3},           // the token and its user; the user's memberships
				{"override", bob, bob.OrgID, 0}, // the same token: the override applies to what is cached
			} {
				rec.Reset()
				s.OK(t, q(c.u, c.org, `{ viewer { role } }`, nil), nil)
				if first := rec.Reset(); len(first) != c.first {
					t.Fatalf("%s: the first request ran %d statements, want %d:\n%s", c.name, len(first), c.first,
						strings.Join(first, "\n"))
				}
				s.OK(t, q(c.u, c.org, `{ viewer { role } }`, nil), nil)
				if again := rec.Reset(); len(again) != 0 {
					t.Fatalf("%s: the repeated request ran %d statements:\n%s", c.name, len(again), strings.Join(again, "\n"))
				}
			}
			// Writing the keys' last use, every 30 s, keeps them cached.
			if err := s.Auth.FlushKeyUsage(t.Context()); err != nil {
				t.Fatal(err)
			}
			rec.Reset()
			s.OK(t, q(key, "", `{ viewer { role } }`, nil), nil)
			if after := rec.Reset(); len(after) != 0 {
				t.Fatalf("after writing key usage, the key ran %d statements:\n%s", len(after), strings.Join(after, "\n"))
			}
		})
	}
}

// A list of what the current organization owns reads the list, not the organization's row;
// a field of the row, asked for directly or in a fragment, still reads it. The lists are
// tenant-filtered all the same: another organization's events never show.
func TestOrganizationListsSkipTheOrganizationRow(t *testing.T) {
	for _, d := range testdb.Dialects {
		t.Run(d, func(t *testing.T) {
			db, rec := recordingDB(t, d)
			rec.requests = true
			s := apitest.New(t, db)
			ann, bob := s.SignUp(t, "Ann"), s.SignUp(t, "Bob")
			simulate(t, s, ann, connectedSandbox(t, s, ann, ann.OrgID, "A").ID, "for ann")
			simulate(t, s, bob, connectedSandbox(t, s, bob, bob.OrgID, "B").ID, "for bob")
			for _, c := range []struct {
				query   string
				readOrg bool
			}{
				{`{ organization { id events(first: 20) { edges { node { cursor payload } } } } }`, false},
				{`{ organization { __typename viewerRole sessions(first: 5) { edges { node { id } } } members(first: 5) { edges { node { role } } } auditLog(first: 5) { edges { node { id } } } } }`, false},
				{`{ organization { name events(first: 20) { edges { node { cursor payload } } } } }`, true},
				{`{ organization { ... on Organization { slug } events(first: 20) { edges { node { cursor payload } } } } }`, true},
				{`{ organization { ...O events(first: 20) { edges { node { cursor payload } } } } } fragment O on Node { ... on Organization { name } }`, true},
			} {
				s.OK(t, q(ann, "", c.query, nil), nil) // the credential is cached: only the query's statements count
				rec.Reset()
				var out struct {
					Organization struct {
						ID, Name, Slug, Typename string
						Events                   struct {
							Edges []struct {
								Node struct{ Payload map[string]any }
							}
						}
						Members, AuditLog struct{ Edges []any }
					}
				}
				s.OK(t, q(ann, "", c.query, nil), &out)
				readOrg := false
				for _, stmt := range rec.Reset() {
					readOrg = readOrg || reads(stmt, "organizations")
				}
				if readOrg != c.readOrg {
					t.Errorf("%s: read the organization: %v, want %v", c.query, readOrg, c.readOrg)
				}
				o := out.Organization
				if c.readOrg && o.Name+o.Slug == "" {
					t.Errorf("%s: the organization's own fields are empty: %+v", c.query, o)
				}
				if strings.HasPrefix(c.query, "{ organization { id ") && o.ID != ann.OrgID {
					t.Errorf("%s: id %q, want %q", c.query, o.ID, ann.OrgID)
				}
				for _, e := range o.Events.Edges {
					if strings.Contains(fmt.Sprint(e.Node.Payload), "for bob") {
						t.Fatalf("%s: another organization's event: %v", c.query, e.Node.Payload)
					}
				}
				if strings.Contains(c.query, "events") && len(o.Events.Edges) == 0 {
					t.Errorf("%s: no events", c.query)
				}
				if strings.Contains(c.query, "members") && (len(o.Members.Edges) == 0 || len(o.AuditLog.Edges) == 0) {
					t.Errorf("%s: members %d, audit entries %d", c.query, len(o.Members.Edges), len(o.AuditLog.Edges))
				}
			}
		})
	}
}

// The lists along a foreign key read a page, not the whole list: without DISTINCT, which
// would make PostgreSQL sort every row of the organization or session before the LIMIT; and
// only the columns the query asks for.
func TestListsReadAPageWithoutDistinct(t *testing.T) {
	db, rec := recordingDB(t, "postgres")
	s := apitest.New(t, db)
	ann := s.SignUp(t, "Ann")
	a := connectedSandbox(t, s, ann, ann.OrgID, "A")
	simulate(t, s, ann, a.ID, "hello")
	for table, query := range map[string]string{
		"events":        `{ organization { events(first: 20) { edges { node { cursor } } } } }`,
		"audit_entries": `{ organization { auditLog(first: 20) { edges { node { id } } } } }`,
		"memberships":   `{ organization { members(first: 20, search: "ann") { edges { node { id } } } } }`,
		"messages":      `query($id: ID!) { node(id: $id) { ... on Session { messages(first: 20) { edges { node { id } } } } } }`,
		"chats":         `query($id: ID!) { node(id: $id) { ... on Session { chats(first: 20) { edges { node { jid } } } } } }`,
	} {
		rec.Reset()
		s.OK(t, q(ann, "", query, map[string]any{"id": a.ID}), nil)
		found := false
		for _, stmt := range rec.Reset() {
			if reads(stmt, table) {
				found = true
				if strings.Contains(stmt, "DISTINCT") {
					t.Errorf("%s: %s", table, stmt)
				}
				// Field collection selects the columns asked for: not an event's payload
				// for its cursor alone.
				if table == "events" && strings.Contains(stmt, "payload") {
					t.Errorf("events: a list of cursors read the payloads: %s", stmt)
				}
			}
		}
		if !found {
			t.Errorf("%s: no statement read the table", table)
		}
	}
}

// On PostgreSQL a received message is stored by one statement, which commits on its own (no
// BEGIN, no COMMIT): a simulated message costs the session's look-up and that statement (the
// mutation answers with the row the statement wrote), and so does a backlog of 50 messages.
// An organization's webhooks are looked
// up once after they change, not per message, and their deliveries are written by the same
// statement.
func TestInboundMessageStatements(t *testing.T) {
	db, rec := recordingDB(t, "postgres")
	s := apitest.New(t, db)
	ann := s.SignUp(t, "Ann")
	a := connectedSandbox(t, s, ann, ann.OrgID, "A")
	simulate(t, s, ann, a.ID, "warm") // the organization's webhooks are looked up: none
	expect := func(what string, n int) {
		t.Helper()
		rec.Reset()
		simulate(t, s, ann, a.ID, what)
		stmts := rec.Reset()
		if len(stmts) != n || !strings.Contains(stmts[len(stmts)-1], "INSERT INTO events") {
			t.Fatalf("%s: %d statements, want %d, the last storing the message and its event:\n%s",
				what, len(stmts), n, strings.Join(stmts, "\n"))
		}
		for _, stmt := range stmts {
			if stmt == "BEGIN" {
				t.Fatalf("%s: a transaction:\n%s", what, strings.Join(stmts, "\n"))
			}
		}
	}
	expect("no webhooks", 2)
	// A backlog of 50 costs the same two.
	var backlog []map[string]any
	for i := range 50 {
		backlog = append(backlog, map[string]any{"from": "+4915112345678", "text": fmt.Sprint("backlog ", i)})
	}
	rec.Reset()
	s.OK(t, q(ann, "", `mutation($in: SimulateIncomingMessagesInput!) { simulateIncomingMessages(input: $in) { id } }`,
		map[string]any{"in": map[string]any{"sessionID": a.ID, "messages": backlog}}), nil)
	if stmts := rec.Reset(); len(stmts) != 2 {
		t.Fatalf("a backlog of 50: %d statements, want 2:\n%s", len(stmts), strings.Join(stmts, "\n"))
	}
	hook, _ := createWebhook(t, s, ann, "https://example.com/hook", "MESSAGE_RECEIVED")
	expect("the first after a webhook was created", 3) // + the webhooks' look-up
	expect("the second", 2)
	if w := getWebhook(t, s, ann, hook); w.Deliveries.TotalCount != 2 {
		t.Fatalf("%d deliveries, want 2", w.Deliveries.TotalCount)
	}
}

// A replica scans for sessions nobody runs every ClaimEvery; the sessions it runs itself are
// not woken by the scans (their outboxes have a timer of their own, and commands come with
// a hint), so an idle replica costs a few statements per scan, not two for each session.
func TestIdleScansWakeNoSession(t *testing.T) {
	db, rec := recordingDB(t, "postgres")
	rec.scans.Store(true)
	s := apitest.New(t, db, func(o *apitest.Options) { o.ClaimEvery = 40 * time.Millisecond })
	ann := s.SignUp(t, "Ann")
	for i := range 5 {
		connectedSandbox(t, s, ann, ann.OrgID, fmt.Sprint("line ", i))
	}
	time.Sleep(100 * time.Millisecond) // what connecting woke is done
	rec.Reset()
	time.Sleep(time.Second) // 25 to 50 scans
	scans, outboxes := 0, 0
	for _, stmt := range rec.Reset() {
		switch {
		case strings.Contains(stmt, `FROM "session_commands"`) && strings.Contains(stmt, "DISTINCT"):
			scans++
		case strings.Contains(stmt, `FROM "messages"`):
			outboxes++
		}
	}
	if scans < 10 || outboxes > 0 {
		t.Fatalf("%d scans read the outboxes %d times, want at least 10 scans and no outbox read", scans, outboxes)
	}
	// The other counts leave the scans out by their label.
	rec.scans.Store(false)
	rec.Reset()
	time.Sleep(200 * time.Millisecond)
	if stmts := rec.Reset(); len(stmts) > 0 {
		t.Fatalf("%d statements without the scans, want none:\n%s", len(stmts), strings.Join(stmts, "\n"))
	}
}
