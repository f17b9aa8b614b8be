package httpapi_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/auth"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
	"github.com/wagate/wagate/internal/whatsapp/sandbox"
)

// replicas starts two servers on one fresh PostgreSQL database, each with a pool of its own
// (as two processes have), sharing one sandbox network; opts apply to both.
func replicas(t *testing.T, opts ...func(*apitest.Options)) (a, b *apitest.Server) {
	t.Helper()
	dbA := testdb.Open(t, "postgres", database.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dbB, err := database.Open(ctx, dbA.DSN, database.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dbB.Close() }) // after the servers stop
	whatsApp := sandbox.New(sandbox.Options{})
	t.Cleanup(whatsApp.Close)
	opts = append([]func(*apitest.Options){func(o *apitest.Options) { o.ClaimEvery, o.Network = 200*time.Millisecond, whatsApp }}, opts...)
	return apitest.New(t, dbA, opts...), apitest.New(t, dbB, opts...)
}

// Two replicas on one PostgreSQL database: requests may reach either. Replica A runs the
// session; everything asked of replica B reaches it, B's subscribers see A's events, and
// when A loses its database connection B takes the session over with nothing lost.
func TestReplicasShareSessionsAndEvents(t *testing.T) {
	a, b := replicas(t)
	ann, bob := a.SignUp(t, "Ann"), a.SignUp(t, "Bob")
	ses := connectedSandbox(t, a, ann, ann.OrgID, "A")     // connected through A: A runs it
	peer := connectedSandbox(t, b, bob, bob.OrgID, "Peer") // and B runs Bob's

	// B's subscriber gets the events of a message simulated through B and received by A.
	sub := subscribeEvents(t, b, ann, map[string]any{"types": []string{"MESSAGE_RECEIVED", "MESSAGE_SENT"}})
	id := simulate(t, b, ann, ses.ID, "through B")
	if e := nextEvent(t, sub); e.Type != "MESSAGE_RECEIVED" || e.Message == nil || e.Message.ID != id {
		t.Fatalf("B's subscriber: %+v, want the message %s", e, id)
	}

	// So do the events of a backlog simulated through B, in order, and B answers with the
	// messages A stored.
	var backlog struct{ SimulateIncomingMessages []struct{ ID, Text string } }
	b.OK(t, q(ann, ann.OrgID, `mutation($s: ID!) { simulateIncomingMessages(input: {sessionID: $s, messages: [
		{from: "+4915112345678", text: "one"}, {from: "+4915112345679", text: "two"}]}) { id text } }`,
		map[string]any{"s": ses.ID}), &backlog)
	if m := backlog.SimulateIncomingMessages; len(m) != 2 || m[0].Text != "one" || m[1].Text != "two" {
		t.Fatalf("backlog through B: %+v", m)
	}
	for _, m := range backlog.SimulateIncomingMessages {
		if e := nextEvent(t, sub); e.Type != "MESSAGE_RECEIVED" || e.Message == nil || e.Message.ID != m.ID {
			t.Fatalf("B's subscriber: %+v, want the message %s", e, m.ID)
		}
	}

	// A message accepted by B is sent by A.
	sendVia := func(s *apitest.Server, text string) string {
		var out struct{ SendMessage struct{ ID string } }
		s.OK(t, q(ann, ann.OrgID, `mutation($in: SendMessageInput!) { sendMessage(input: $in) { id } }`,
			map[string]any{"in": map[string]any{"sessionID": ses.ID, "to": *peer.PhoneNumber, "text": text}}), &out)
		return out.SendMessage.ID
	}
	sent := sendVia(b, "accepted by B")
	if e := nextEvent(t, sub); e.Type != "MESSAGE_SENT" || e.Message == nil || e.Message.ID != sent {
		t.Fatalf("B's subscriber: %+v, want MESSAGE_SENT of %s", e, sent)
	}

	// A command that answers: a pairing code for a paired session is refused by the owner,
	// with the owner's error.
	r := b.Do(t, q(ann, ann.OrgID, `mutation($id: ID!) { requestPairingCode(id: $id, phoneNumber: "+4915112345678") }`,
		map[string]any{"id": ses.ID}))
	wantCode(t, r, "CONFLICT")

	// A loses its database connections (as a crashed or partitioned replica does): its
	// locks go, it stops the session, and B takes it over.
	var killed int
	if err := b.DB.SQL.QueryRowContext(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND (classid::bigint << 32 | objid::bigint) = hashtextextended($1, 0)`,
		"wagate-session:"+ses.ID).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminating A's lock connection: %d, %v", killed, err)
	}
	// Meanwhile messages keep arriving through B, and get queued.
	var queued []string
	for i := range 3 {
		queued = append(queued, sendVia(b, fmt.Sprint("during failover ", i)))
	}
	deadline := time.Now().Add(15 * time.Second)
	seen := map[string]int{}
	for len(seen) < len(queued) {
		if time.Now().After(deadline) {
			t.Fatalf("after the failover, sent %v of %v", seen, queued)
		}
		e := nextEvent(t, sub)
		if e.Type == "MESSAGE_SENT" {
			seen[e.Message.ID]++
		}
	}
	for _, id := range queued {
		if seen[id] != 1 {
			t.Fatalf("message %s sent %d times", id, seen[id])
		}
	}
	// The session now runs on B: B's commands work with A gone.
	a.Stop()
	// While B reconnects the session, a client may be told CONFLICT and retries.
	var out struct{ SimulateIncomingMessage struct{ ID string } }
	eventually(t, "B to accept a message for the session", func() bool {
		r := b.Do(t, q(ann, ann.OrgID, `mutation($s: ID!) { simulateIncomingMessage(input: {sessionID: $s, from: "+4915112345678", text: "after the failover"}) { id } }`,
			map[string]any{"s": ses.ID}))
		switch r.Code() {
		case "CONFLICT":
			return false
		case "":
		default:
			t.Fatalf("simulate through B: %+v", r.Errors)
		}
		r.Decode(t, &out)
		return true
	})
	id = out.SimulateIncomingMessage.ID
	for {
		if e := nextEvent(t, sub); e.Type == "MESSAGE_RECEIVED" {
			if e.Message.ID != id {
				t.Fatalf("received %s, want %s", e.Message.ID, id)
			}
			break
		}
	}
}

// A replica that cached a credential stops accepting it as soon as another replica logs it
// out: the log-out's commit notifies it. The cache's TTL is far longer than the wait here,
// so nothing else could.
func TestReplicasForgetCredentialsChangedElsewhere(t *testing.T) {
	a, b := replicas(t, func(o *apitest.Options) { o.Auth = func(c *auth.Config) { c.CacheTTL = time.Hour } })
	ann := a.SignUp(t, "Ann")
	b.OK(t, q(ann, "", whoAmI, nil), nil) // now cached by B
	a.OK(t, q(ann, "", `mutation { logOut }`, nil), nil)
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b.Do(t, q(ann, "", whoAmI, nil)).Code() == "UNAUTHENTICATED" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("replica B still accepts the token 2 s after replica A logged it out")
		}
	}
}

// A webhook created through one replica gets the events another replica stores without
// waiting for that replica's memory of the organization's webhooks (none) to expire after
// 10 s: the creation's commit notifies it.
func TestReplicasLearnOfWebhooksCreatedElsewhere(t *testing.T) {
	a, b := replicas(t)
	ann := a.SignUp(t, "Ann")
	ses := connectedSandbox(t, b, ann, ann.OrgID, "B's") // B runs it, and stores what it receives
	simulate(t, b, ann, ses.ID, "before")                // B now knows the organization has no webhooks
	hook, _ := createWebhook(t, a, ann, "https://example.com/hook", "MESSAGE_RECEIVED")
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		simulate(t, b, ann, ses.ID, "after")
		if getWebhook(t, a, ann, hook).Deliveries.TotalCount > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("replica B still writes no deliveries 2 s after replica A created a webhook")
		}
	}
}
