package httpapi_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wagate/wagate/ent/webhook"
	"github.com/wagate/wagate/internal/apitest"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/testdb"
	"github.com/wagate/wagate/internal/viewer"
	webhooks "github.com/wagate/wagate/internal/webhook"
)

// receiver is a webhook endpoint that records what it gets and answers what answer says.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	answer func(n int, r received) int // the status for the n-th request (0-based)
}

type received struct {
	Header http.Header
	Body   []byte
}

func newReceiver(t *testing.T, answer func(n int, r received) int) *receiver {
	rc := &receiver{answer: answer}
	if rc.answer == nil {
		rc.answer = func(int, received) int { return http.StatusNoContent }
	}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := received{Header: r.Header.Clone(), Body: body}
		rc.mu.Lock()
		n := len(rc.got)
		rc.got = append(rc.got, rec)
		rc.mu.Unlock()
		w.WriteHeader(rc.answer(n, rec))
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// perEvent counts the requests per webhook-id.
func (rc *receiver) perEvent() map[string]int {
	out := map[string]int{}
	for _, r := range rc.requests() {
		out[r.Header.Get("webhook-id")]++
	}
	return out
}

// annWithLine starts a server on db with a user, Ann, and a connected sandbox session of hers.
func annWithLine(t *testing.T, db *database.DB, options ...func(*apitest.Options)) (*apitest.Server, *apitest.User, sessionView) {
	t.Helper()
	s := apitest.New(t, db, options...)
	ann := s.SignUp(t, "Ann")
	return s, ann, connectedSandbox(t, s, ann, ann.OrgID, "A")
}

// verify checks a request's signatures the way a receiver would, with its own HMAC code:
// it returns how many of the space-separated signatures secret produced.
func verify(t *testing.T, secret string, r received) (valid, total int) {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatalf("secret %q: %v", secret, err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(r.Header.Get("webhook-id") + "." + r.Header.Get("webhook-timestamp") + "." + string(r.Body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(r.Header.Get("webhook-signature")) {
		total++
		if hmac.Equal([]byte(sig), []byte(want)) {
			valid++
		}
	}
	return valid, total
}

type webhookView struct {
	ID, URL        string
	EventTypes     []string
	Enabled        bool
	FailingSince   *time.Time
	DisabledReason *string
	Deliveries     struct {
		TotalCount int
		Edges      []struct{ Node deliveryView }
	}
}

type deliveryView struct {
	ID, Status     string
	Attempts       int
	LastStatusCode *int
	LastError      *string
	NextAttemptAt  *time.Time
	LastAttemptAt  *time.Time
	Event          struct{ ID, Type string }
}

const webhookFields = `id url eventTypes enabled failingSince disabledReason
	deliveries(first: 100) { totalCount edges { node { id status attempts lastStatusCode lastError nextAttemptAt lastAttemptAt event { id type } } } }`

func createWebhook(t *testing.T, s *apitest.Server, u *apitest.User, url string, types ...string) (id, secret string) {
	t.Helper()
	in := map[string]any{"url": url}
	if types != nil {
		in["eventTypes"] = types
	}
	var out struct {
		CreateWebhook struct {
			Secret  string
			Webhook struct{ ID string }
		}
	}
	s.OK(t, q(u, "", `mutation($in: CreateWebhookInput!) { createWebhook(input: $in) { secret webhook { id } } }`,
		map[string]any{"in": in}), &out)
	return out.CreateWebhook.Webhook.ID, out.CreateWebhook.Secret
}

func getWebhook(t *testing.T, s *apitest.Server, u *apitest.User, id string) webhookView {
	t.Helper()
	var out struct{ Node webhookView }
	s.OK(t, q(u, "", `query($id: ID!) { node(id: $id) { ... on Webhook { `+webhookFields+` } } }`, map[string]any{"id": id}), &out)
	return out.Node
}

// deliveriesSettled waits until the webhook has n deliveries, none of them PENDING.
func deliveriesSettled(t *testing.T, s *apitest.Server, u *apitest.User, id string, n int) webhookView {
	t.Helper()
	var w webhookView
	eventually(t, "deliveries to settle", func() bool {
		w = getWebhook(t, s, u, id)
		if w.Deliveries.TotalCount != n {
			return false
		}
		for _, e := range w.Deliveries.Edges {
			if e.Node.Status == "PENDING" {
				return false
			}
		}
		return true
	})
	return w
}

func TestWebhookDeliveryIsSignedAndDescribesTheEvent(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s, ann, ses := annWithLine(t, db)
		rc := newReceiver(t, nil)
		id, secret := createWebhook(t, s, ann, rc.URL+"/hook", "MESSAGE_RECEIVED")
		if key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_")); !strings.HasPrefix(secret, "whsec_") || err != nil || len(key) < 24 {
			t.Fatalf("secret %q", secret)
		}
		// A second endpoint that wants other events gets none of these.
		other, _ := createWebhook(t, s, ann, rc.URL+"/other", "SESSION_STATUS")
		var list struct {
			Organization struct{ Webhooks []webhookView }
		}
		s.OK(t, q(ann, "", `{ organization { webhooks { id url eventTypes enabled failingSince } } }`, nil), &list)
		if ws := list.Organization.Webhooks; len(ws) != 2 || ws[1].ID != id || ws[1].URL != rc.URL+"/hook" ||
			len(ws[1].EventTypes) != 1 || ws[1].EventTypes[0] != "MESSAGE_RECEIVED" || !ws[1].Enabled || ws[1].FailingSince != nil {
			t.Fatalf("webhooks: %+v", list)
		}

		msg := simulate(t, s, ann, ses.ID, "hello webhook")
		s.StartWebhookWorker(t, webhooks.WorkerOptions{})
		w := deliveriesSettled(t, s, ann, id, 1)
		d := w.Deliveries.Edges[0].Node
		if d.Status != "SUCCEEDED" || d.Attempts != 1 || d.LastStatusCode == nil || *d.LastStatusCode != 204 ||
			d.LastError != nil || d.NextAttemptAt != nil || d.LastAttemptAt == nil || d.Event.Type != "MESSAGE_RECEIVED" {
			t.Fatalf("delivery: %+v", d)
		}
		reqs := rc.requests()
		if len(reqs) != 1 {
			t.Fatalf("%d requests", len(reqs))
		}
		r := reqs[0]
		if valid, total := verify(t, secret, r); valid != 1 || total != 1 {
			t.Fatalf("signature %q: %d of %d valid", r.Header.Get("webhook-signature"), valid, total)
		}
		if ts, err := strconv.ParseInt(r.Header.Get("webhook-timestamp"), 10, 64); err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute ||
			r.Header.Get("webhook-id") != d.Event.ID || r.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("headers: %v", r.Header)
		}
		var body map[string]any
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatal(err)
		}
		data, _ := body["data"].(map[string]any)
		if body["id"] != d.Event.ID || body["type"] != "MESSAGE_RECEIVED" || body["organizationId"] != ann.OrgID ||
			body["sessionId"] != ses.ID || body["occurredAt"] == nil || data["messageId"] != msg || data["text"] != "hello webhook" {
			t.Fatalf("body: %s", r.Body)
		}
		if strings.Contains(string(r.Body), "whsec_") || strings.Contains(string(r.Body), ann.Token) {
			t.Fatalf("a secret in the body: %s", r.Body)
		}
		if o := getWebhook(t, s, ann, other); o.Deliveries.TotalCount != 0 {
			t.Fatalf("the SESSION_STATUS webhook got %+v", o.Deliveries)
		}

		// Update: validation, then a disabled webhook enqueues nothing.
		r2 := s.Do(t, q(ann, "", `mutation($id: ID!) { updateWebhook(input: {id: $id, eventTypes: []}) { id } }`, map[string]any{"id": id}))
		wantCode(t, r2, "BAD_USER_INPUT")
		r2 = s.Do(t, q(ann, "", `mutation($id: ID!) { updateWebhook(input: {id: $id, url: "ftp://x.example/"}) { id } }`, map[string]any{"id": id}))
		wantCode(t, r2, "BAD_USER_INPUT")
		var upd struct{ UpdateWebhook webhookView }
		s.OK(t, q(ann, "", `mutation($id: ID!, $u: String!) { updateWebhook(input: {id: $id, url: $u, enabled: false}) { id url enabled eventTypes } }`,
			map[string]any{"id": id, "u": rc.URL + "/v2"}), &upd)
		if upd.UpdateWebhook.URL != rc.URL+"/v2" || upd.UpdateWebhook.Enabled || len(upd.UpdateWebhook.EventTypes) != 1 {
			t.Fatalf("updated: %+v", upd)
		}
		simulate(t, s, ann, ses.ID, "while disabled")
		if w := getWebhook(t, s, ann, id); w.Deliveries.TotalCount != 1 {
			t.Fatalf("a disabled webhook got a delivery: %+v", w.Deliveries)
		}

		// Omitted event types mean all of them; an empty list is refused.
		all, _ := createWebhook(t, s, ann, rc.URL+"/all")
		if w := getWebhook(t, s, ann, all); len(w.EventTypes) != 10 {
			t.Fatalf("default event types: %v", w.EventTypes)
		}
		wantCode(t, s.Do(t, q(ann, "", `mutation { createWebhook(input: {url: "https://example.com/", eventTypes: []}) { secret } }`, nil)), "BAD_USER_INPUT")

		// Delete takes the deliveries along; every change is in the audit log, without secrets.
		var del struct{ DeleteWebhook string }
		s.OK(t, q(ann, "", `mutation($id: ID!) { deleteWebhook(id: $id) }`, map[string]any{"id": id}), &del)
		if del.DeleteWebhook != id {
			t.Fatalf("deleteWebhook returned %q", del.DeleteWebhook)
		}
		wantCode(t, s.Do(t, q(ann, "", `mutation($id: ID!) { deleteWebhook(id: $id) }`, map[string]any{"id": id})), "NOT_FOUND")
		n, err := db.Client.WebhookDelivery.Query().Count(viewer.System(context.Background(), "test"))
		if err != nil || n != 0 {
			t.Fatalf("%d deliveries left (%v)", n, err)
		}
		var audit struct {
			Organization struct {
				AuditLog struct {
					Edges []struct {
						Node struct{ Action, TargetID string }
					}
				}
			}
		}
		r3 := s.Do(t, q(ann, "", `{ organization { auditLog(first: 50) { edges { node { action targetID details } } } } }`, nil))
		r3.Decode(t, &audit)
		actions := map[string]int{}
		for _, e := range audit.Organization.AuditLog.Edges {
			actions[e.Node.Action]++
		}
		if actions["webhook.create"] != 3 || actions["webhook.update"] != 1 || actions["webhook.delete"] != 1 {
			t.Fatalf("audit actions: %v", actions)
		}
		if strings.Contains(string(r3.Data), "whsec_") {
			t.Fatalf("a secret in the audit log: %s", r3.Data)
		}
	})
}

// A receiver that is down gets everything once it is back: deliveries stay PENDING with
// the error and the next attempt, the endpoint shows failingSince, and all succeed later.
func TestWebhookReceiverDownThenUp(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s, ann, ses := annWithLine(t, db)
		var up sync.Mutex
		down := true
		rc := newReceiver(t, func(int, received) int {
			up.Lock()
			defer up.Unlock()
			if down {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		})
		id, _ := createWebhook(t, s, ann, rc.URL, "MESSAGE_RECEIVED")
		s.StartWebhookWorker(t, webhooks.WorkerOptions{})
		const n = 5
		for i := range n {
			simulate(t, s, ann, ses.ID, "m"+string(rune('0'+i)))
		}
		eventually(t, "every delivery to fail twice", func() bool {
			w := getWebhook(t, s, ann, id)
			for _, e := range w.Deliveries.Edges {
				if e.Node.Attempts < 2 {
					return false
				}
			}
			return w.Deliveries.TotalCount == n && w.FailingSince != nil
		})
		w := getWebhook(t, s, ann, id)
		for _, e := range w.Deliveries.Edges {
			d := e.Node
			if d.Status != "PENDING" || d.LastStatusCode == nil || *d.LastStatusCode != 503 || d.LastError == nil || d.NextAttemptAt == nil {
				t.Fatalf("while down: %+v", d)
			}
		}
		up.Lock()
		down = false
		up.Unlock()
		w = deliveriesSettled(t, s, ann, id, n)
		for _, e := range w.Deliveries.Edges {
			if e.Node.Status != "SUCCEEDED" {
				t.Fatalf("after recovery: %+v", e.Node)
			}
		}
		if w.FailingSince != nil || !w.Enabled {
			t.Fatalf("endpoint after recovery: %+v", w)
		}
		// Each event reached the receiver with a 200 exactly once.
		delivered := rc.perEvent() // ids repeat across retries
		if len(delivered) != n {
			t.Fatalf("events seen: %v", delivered)
		}
	})
}

// Retries end: after the schedule a delivery is FAILED; a redirect is a failure and is not
// followed; an endpoint failing for 3 days is disabled, can be enabled again, and a failed
// delivery can be sent again by hand.
func TestWebhookRetriesEndAndFailingEndpointsAreDisabled(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s, ann, ses := annWithLine(t, db)
		target := newReceiver(t, nil)
		var mu sync.Mutex
		status := http.StatusFound
		rc := newReceiver(t, func(int, received) int {
			mu.Lock()
			defer mu.Unlock()
			return status
		})
		rc.Config.Handler = redirecting(target.URL, rc.Config.Handler)
		id, _ := createWebhook(t, s, ann, rc.URL, "MESSAGE_RECEIVED")
		s.StartWebhookWorker(t, webhooks.WorkerOptions{Schedule: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}})
		simulate(t, s, ann, ses.ID, "one")
		w := deliveriesSettled(t, s, ann, id, 1)
		d := w.Deliveries.Edges[0].Node
		if d.Status != "FAILED" || d.Attempts != 3 || *d.LastStatusCode != 302 || !strings.Contains(*d.LastError, "redirect") || d.NextAttemptAt != nil {
			t.Fatalf("delivery: %+v", d)
		}
		if len(target.requests()) != 0 {
			t.Fatal("a redirect was followed")
		}
		metricEventually(t, s, 3, "wagate_webhook_attempts_total", "outcome", "http_error")
		metricEventually(t, s, 1, "wagate_webhook_deliveries_failed_total")
		if w.FailingSince == nil || !w.Enabled {
			t.Fatalf("endpoint: %+v", w)
		}

		// Three days later it still fails: the next failure disables it.
		s.Clock.Advance(73 * time.Hour)
		simulate(t, s, ann, ses.ID, "two")
		eventually(t, "the endpoint to be disabled", func() bool { return !getWebhook(t, s, ann, id).Enabled })
		w = getWebhook(t, s, ann, id)
		if w.DisabledReason == nil || w.FailingSince == nil {
			t.Fatalf("disabled endpoint: %+v", w)
		}
		wantCode(t, s.Do(t, q(ann, "", `mutation($id: ID!) { redeliverWebhookDelivery(id: $id) { id } }`, map[string]any{"id": d.ID})), "CONFLICT")

		// Fixed and enabled again: failingSince is cleared and the failed delivery goes out.
		mu.Lock()
		status = http.StatusOK
		mu.Unlock()
		var en struct{ UpdateWebhook webhookView }
		s.OK(t, q(ann, "", `mutation($id: ID!) { updateWebhook(input: {id: $id, enabled: true}) { enabled failingSince disabledReason } }`,
			map[string]any{"id": id}), &en)
		if !en.UpdateWebhook.Enabled || en.UpdateWebhook.FailingSince != nil || en.UpdateWebhook.DisabledReason != nil {
			t.Fatalf("enabled: %+v", en)
		}
		var re struct{ RedeliverWebhookDelivery deliveryView }
		s.OK(t, q(ann, "", `mutation($id: ID!) { redeliverWebhookDelivery(id: $id) { id status attempts } }`, map[string]any{"id": d.ID}), &re)
		if re.RedeliverWebhookDelivery.Status != "PENDING" {
			t.Fatalf("redelivered: %+v", re)
		}
		w = deliveriesSettled(t, s, ann, id, 2)
		for _, e := range w.Deliveries.Edges {
			if e.Node.Status != "SUCCEEDED" {
				t.Fatalf("after enabling: %+v", e.Node)
			}
			if e.Node.ID == d.ID && e.Node.Attempts != 4 {
				t.Fatalf("redelivered delivery: %+v", e.Node)
			}
		}
		// The system's disabling is in the audit log.
		var audit struct {
			Organization struct {
				AuditLog struct {
					Edges []struct{ Node struct{ Action string } }
				}
			}
		}
		s.OK(t, q(ann, "", `{ organization { auditLog(first: 20) { edges { node { action } } } } }`, nil), &audit)
		found := false
		for _, e := range audit.Organization.AuditLog.Edges {
			found = found || e.Node.Action == "webhook.disable"
		}
		if !found {
			t.Fatalf("no webhook.disable in %+v", audit)
		}
	})
}

// redirecting answers 3xx statuses with a Location header pointing at target.
func redirecting(target string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", target)
		next.ServeHTTP(w, r)
	})
}

// Rotation: for 24 hours every request carries the new and the previous signature, then
// only the new one.
func TestWebhookSecretRotation(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s, ann, ses := annWithLine(t, db)
		rc := newReceiver(t, nil)
		id, oldSecret := createWebhook(t, s, ann, rc.URL, "MESSAGE_RECEIVED")
		var rot struct {
			RotateWebhookSecret struct {
				Secret  string
				Webhook struct{ ID string }
			}
		}
		s.OK(t, q(ann, "", `mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret webhook { id } } }`, map[string]any{"id": id}), &rot)
		newSecret := rot.RotateWebhookSecret.Secret
		if rot.RotateWebhookSecret.Webhook.ID != id || newSecret == oldSecret || !strings.HasPrefix(newSecret, "whsec_") {
			t.Fatalf("rotated: %+v", rot)
		}
		s.StartWebhookWorker(t, webhooks.WorkerOptions{})
		simulate(t, s, ann, ses.ID, "during the overlap")
		deliveriesSettled(t, s, ann, id, 1)
		r := rc.requests()[0]
		if nv, total := verify(t, newSecret, r); nv != 1 || total != 2 {
			t.Fatalf("during the overlap, new secret: %d of %d", nv, total)
		}
		if ov, _ := verify(t, oldSecret, r); ov != 1 {
			t.Fatal("during the overlap the old secret does not verify")
		}
		s.Clock.Advance(24*time.Hour + time.Minute)
		simulate(t, s, ann, ses.ID, "after the overlap")
		deliveriesSettled(t, s, ann, id, 2)
		r = rc.requests()[1]
		if nv, total := verify(t, newSecret, r); nv != 1 || total != 1 {
			t.Fatalf("after the overlap, new secret: %d of %d", nv, total)
		}
		if ov, _ := verify(t, oldSecret, r); ov != 0 {
			t.Fatal("after the overlap the old secret still verifies")
		}
	})
}

// A worker killed mid-attempt: its lease runs out and the next worker (the restarted
// server, or another replica) attempts the delivery again; the dead worker's late result
// changes nothing. A worker stopped gracefully mid-attempt releases the delivery at once.
func TestWebhookDeliveryResumesAfterAWorkerDies(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s, ann, ses := annWithLine(t, db)
		hang := make(chan struct{})
		rc := newReceiver(t, func(n int, _ received) int {
			if n == 0 {
				<-hang // the first attempt never gets its answer in time
			}
			return http.StatusOK
		})
		t.Cleanup(func() {
			select {
			case <-hang:
			default:
				close(hang)
			}
		})
		id, _ := createWebhook(t, s, ann, rc.URL, "MESSAGE_RECEIVED")
		simulate(t, s, ann, ses.ID, "one")
		dead := s.StartWebhookWorker(t, webhooks.WorkerOptions{Concurrency: 1, Lease: time.Minute})
		eventually(t, "the first attempt to start", func() bool { return len(rc.requests()) == 1 })
		if d := getWebhook(t, s, ann, id).Deliveries.Edges[0].Node; d.Status != "PENDING" || d.Attempts != 1 {
			t.Fatalf("in flight: %+v", d)
		}
		// The lease runs out; the next worker takes over.
		s.Clock.Advance(2 * time.Minute)
		s.StartWebhookWorker(t, webhooks.WorkerOptions{})
		w := deliveriesSettled(t, s, ann, id, 1)
		if d := w.Deliveries.Edges[0].Node; d.Status != "SUCCEEDED" || d.Attempts != 2 {
			t.Fatalf("after takeover: %+v", d)
		}
		close(hang) // the dead worker's attempt ends late: its result is dropped
		dead.Stop(context.Background())
		if d := getWebhook(t, s, ann, id).Deliveries.Edges[0].Node; d.Status != "SUCCEEDED" || d.Attempts != 2 {
			t.Fatalf("after the late answer: %+v", d)
		}
		if reqs := rc.requests(); len(reqs) != 2 || reqs[0].Header.Get("webhook-id") != reqs[1].Header.Get("webhook-id") {
			t.Fatalf("requests: %d", len(reqs))
		}
	})
}

func TestWebhookGracefulStopReleasesAttemptsInFlight(t *testing.T) {
	db := testdb.Open(t, "sqlite", database.Options{})
	s, ann, ses := annWithLine(t, db)
	block := make(chan struct{})
	rc := newReceiver(t, func(n int, _ received) int {
		if n == 0 {
			<-block // longer than the shutdown allows
		}
		return http.StatusOK
	})
	id, _ := createWebhook(t, s, ann, rc.URL, "MESSAGE_RECEIVED")
	simulate(t, s, ann, ses.ID, "one")
	w := s.StartWebhookWorker(t, webhooks.WorkerOptions{})
	eventually(t, "the first attempt to start", func() bool { return len(rc.requests()) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	w.Stop(ctx)
	close(block)
	if d := getWebhook(t, s, ann, id).Deliveries.Edges[0].Node; d.Status != "PENDING" || d.Attempts != 0 {
		t.Fatalf("released: %+v", d)
	}
	s.StartWebhookWorker(t, webhooks.WorkerOptions{})
	if d := deliveriesSettled(t, s, ann, id, 1).Deliveries.Edges[0].Node; d.Status != "SUCCEEDED" || d.Attempts != 1 {
		t.Fatalf("after restart: %+v", d)
	}
}

// Two workers (on PostgreSQL: with FOR UPDATE SKIP LOCKED, as two replicas would) share a
// backlog without ever sending the same attempt twice.
func TestWebhookWorkersShareTheWorkWithoutDuplicates(t *testing.T) {
	testdb.Each(t, func(t *testing.T, db *database.DB) {
		s, ann, ses := annWithLine(t, db)
		rc := newReceiver(t, func(int, received) int {
			time.Sleep(5 * time.Millisecond)
			return http.StatusOK
		})
		id, _ := createWebhook(t, s, ann, rc.URL, "MESSAGE_RECEIVED")
		const n = 30
		for i := range n {
			simulate(t, s, ann, ses.ID, "backlog "+string(rune('a'+i)))
		}
		// No cap per webhook: both workers take part fully.
		s.StartWebhookWorker(t, webhooks.WorkerOptions{Concurrency: 4, PerWebhook: 8})
		s.StartWebhookWorker(t, webhooks.WorkerOptions{Concurrency: 4, PerWebhook: 8})
		w := deliveriesSettled(t, s, ann, id, n)
		for _, e := range w.Deliveries.Edges {
			if e.Node.Status != "SUCCEEDED" || e.Node.Attempts != 1 {
				t.Fatalf("delivery: %+v", e.Node)
			}
		}
		seen := rc.perEvent()
		for ev, k := range seen {
			if k != 1 {
				t.Errorf("event %s sent %d times", ev, k)
			}
		}
		if len(seen) != n {
			t.Fatalf("%d events sent, want %d", len(seen), n)
		}
	})
}

// The SSRF guard, as production runs it: private targets are refused when saved, and a URL
// that reaches a private address anyway (DNS rebinding) is refused when sending.
func TestWebhookSSRFGuard(t *testing.T) {
	db := testdb.Open(t, "sqlite", database.Options{})
	s := apitest.New(t, db, func(o *apitest.Options) {
		o.WebhookSSRFGuard = true
		o.WebhookResolver = fakeResolver{"hooks.example.test": "93.184.215.14", "intranet.example.test": "10.0.0.7"}
	})
	ann := s.SignUp(t, "Ann")
	for _, url := range []string{
		"http://127.0.0.1:8080/", "http://localhost/", "http://[::1]/", "http://10.1.2.3/", "http://172.20.0.1/",
		"http://192.168.1.1/", "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/",
		"http://100.64.1.1/", "http://0.0.0.0/", "http://[fe80::1]/", "http://[fd12::1]/", "http://224.0.0.1/",
		"http://intranet.example.test/", "gopher://hooks.example.test/", "javascript:alert(1)",
	} {
		r := s.Do(t, q(ann, "", `mutation($u: String!) { createWebhook(input: {url: $u}) { secret } }`, map[string]any{"u": url}))
		if r.Code() != "BAD_USER_INPUT" || r.Errors[0].Extensions["field"] != "url" {
			t.Errorf("%s: %+v", url, r.Errors)
		}
	}
	id, _ := createWebhook(t, s, ann, "https://hooks.example.test/wagate", "MESSAGE_RECEIVED")
	wantCode(t, s.Do(t, q(ann, "", `mutation($id: ID!) { updateWebhook(input: {id: $id, url: "http://127.0.0.1/"}) { id } }`,
		map[string]any{"id": id})), "BAD_USER_INPUT")

	// The name now points at this machine: the connection is refused, the receiver never hit.
	rc := newReceiver(t, nil)
	err := db.Client.Webhook.Update().Where(webhook.ID(gid.ID(id))).SetURL(rc.URL).Exec(viewer.System(context.Background(), "test-rebinding"))
	if err != nil {
		t.Fatal(err)
	}
	ses := connectedSandbox(t, s, ann, ann.OrgID, "A")
	simulate(t, s, ann, ses.ID, "rebound")
	s.StartWebhookWorker(t, webhooks.WorkerOptions{Schedule: []time.Duration{}})
	d := deliveriesSettled(t, s, ann, id, 1).Deliveries.Edges[0].Node
	if d.Status != "FAILED" || d.LastError == nil || !strings.Contains(*d.LastError, "SSRF") || len(rc.requests()) != 0 {
		t.Fatalf("delivery to a rebound name: %+v (requests: %d)", d, len(rc.requests()))
	}
}

// fakeResolver resolves host names from a table.
type fakeResolver map[string]string

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	a, ok := f[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return []netip.Addr{netip.MustParseAddr(a)}, nil
}
