package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/predicate"
	"github.com/wagate/wagate/ent/webhook"
	"github.com/wagate/wagate/ent/webhookdelivery"
	"github.com/wagate/wagate/internal/audit"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/metrics"
	"github.com/wagate/wagate/internal/viewer"
)

// DefaultSchedule is the wait before each retry: roughly exponential, about 40 hours in
// all (at least 31 with the jitter), so a delivery is retried for more than a day.
var DefaultSchedule = []time.Duration{
	5 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute, time.Hour,
	2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 12 * time.Hour, 12 * time.Hour,
}

// WorkerOptions tune a delivery worker. Zero values take the defaults.
type WorkerOptions struct {
	// Dialect is the database's (dialect.Postgres claims with FOR UPDATE SKIP LOCKED, so
	// the workers of several replicas share the work).
	Dialect string
	// Concurrency is how many deliveries are attempted at once; 4 by default.
	Concurrency int
	// PerWebhook is how many deliveries of one webhook may be in flight at once, over all
	// workers (a soft cap: two replicas claiming together may exceed it by one each), so one
	// tenant's slow endpoint cannot hold every slot. Concurrency/2 (at least 1) by default.
	PerWebhook int
	// Timeout bounds one attempt; 10 s by default.
	Timeout time.Duration
	// Schedule is the wait before each retry (DefaultSchedule): after len(Schedule)+1
	// failed attempts a delivery is FAILED.
	Schedule []time.Duration
	// Jitter spreads each wait by up to ± this fraction; 0.2 by default, negative for none.
	Jitter float64
	// Lease is how long a claimed delivery belongs to its worker: if the worker dies
	// mid-attempt, another one retries once it has passed. Timeout + 30 s by default.
	// Leases are compared with each replica's own clock (which tests can move), so the
	// replicas' clocks must agree to well within Lease - Timeout (NTP does).
	Lease time.Duration
	// Poll is how often due deliveries are looked for without being woken; 1 s by default.
	Poll time.Duration
	// DisableAfter disables an endpoint that has failed continuously this long; 72 h.
	DisableAfter time.Duration
}

func (o *WorkerOptions) defaults() {
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.PerWebhook <= 0 {
		o.PerWebhook = max(1, o.Concurrency/2)
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Schedule == nil {
		o.Schedule = DefaultSchedule
	}
	if o.Jitter == 0 {
		o.Jitter = 0.2
	}
	if o.Lease <= 0 {
		o.Lease = o.Timeout + 30*time.Second
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.DisableAfter <= 0 {
		o.DisableAfter = 72 * time.Hour
	}
}

// Worker claims due deliveries and attempts them.
type Worker struct {
	s    *Service
	opts WorkerOptions
	http *http.Client

	stop     context.CancelFunc // stops claiming
	abort    context.CancelFunc // cancels attempts in flight
	done     chan struct{}
	inflight sync.WaitGroup
}

// NewWorker returns a worker of s; Start runs it.
func (s *Service) NewWorker(opts WorkerOptions) *Worker {
	opts.defaults()
	transport := &http.Transport{
		// No proxy: the guard must see the address really connected to.
		Proxy:                 nil,
		DialContext:           newDialer(s.opts.AllowPrivate).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   opts.Timeout,
		ResponseHeaderTimeout: opts.Timeout,
	}
	return &Worker{s: s, opts: opts, http: &http.Client{
		Transport: transport,
		Timeout:   opts.Timeout,
		// A redirect is an answer like any other 3xx: a failed attempt, never followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Start runs the worker in the background until Stop.
func (w *Worker) Start() {
	ctx, stop := context.WithCancel(context.Background())
	attempts, abort := context.WithCancel(context.Background())
	w.stop, w.abort, w.done = stop, abort, make(chan struct{})
	go func() {
		defer close(w.done)
		w.run(ctx, attempts)
	}()
}

// Stop stops claiming and waits for the attempts in flight to finish, until ctx ends; then
// it cancels them and releases their deliveries, which the next worker attempts again at
// once (the cancelled attempts do not count).
func (w *Worker) Stop(ctx context.Context) {
	if w.stop == nil {
		return
	}
	w.stop()
	select {
	case <-w.done:
	case <-ctx.Done():
		w.abort()
		<-w.done
	}
	w.abort()
}

// run claims deliveries while there are free slots, and waits for a wake-up, a poll tick or
// a finished attempt otherwise.
func (w *Worker) run(ctx, attempts context.Context) {
	defer w.inflight.Wait()
	slots := make(chan struct{}, w.opts.Concurrency)
	freed := make(chan struct{}, 1)
	tick := time.NewTicker(w.opts.Poll)
	defer tick.Stop()
	for {
		free := cap(slots) - len(slots)
		if free > 0 {
			batch, more, err := w.claim(ctx, free)
			if err != nil && ctx.Err() == nil {
				w.s.opts.Log.Warn("claiming webhook deliveries", "err", err)
			}
			for _, d := range batch {
				slots <- struct{}{}
				w.inflight.Add(1)
				go func() {
					defer w.inflight.Done()
					w.attempt(attempts, d)
					<-slots
					select {
					case freed <- struct{}{}:
					default:
					}
				}()
			}
			if more && len(batch) > 0 {
				continue // there may be more
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-w.s.wake:
		case <-tick.C:
		case <-freed:
		}
	}
}

// due selects deliveries a worker may claim now.
func due(now time.Time) []predicate.WebhookDelivery {
	return []predicate.WebhookDelivery{
		webhookdelivery.StatusEQ(webhookdelivery.StatusPENDING),
		webhookdelivery.NextAttemptAtLTE(now),
		webhookdelivery.Or(webhookdelivery.LeasedUntilIsNil(), webhookdelivery.LeasedUntilLTE(now)),
		webhookdelivery.HasWebhookWith(webhook.Enabled(true)),
	}
}

// claimed is a delivery a worker holds, as of its claim.
type claimed struct {
	*ent.WebhookDelivery
}

// inFlight counts the deliveries in flight per webhook. Leased deliveries were due when
// claimed, so the condition on next_attempt_at only lets the (status, next_attempt_at) index
// serve the query.
func (w *Worker) inFlight(ctx context.Context, now time.Time) (map[gid.ID]int, error) {
	var rows []struct {
		WebhookID gid.ID `json:"webhook_id"`
		Count     int    `json:"count"`
	}
	err := w.s.client.WebhookDelivery.Query().Where(webhookdelivery.StatusEQ(webhookdelivery.StatusPENDING),
		webhookdelivery.NextAttemptAtLTE(now), webhookdelivery.LeasedUntilGT(now)).
		GroupBy(webhookdelivery.FieldWebhookID).Aggregate(ent.Count()).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("counting deliveries in flight: %w", err)
	}
	out := make(map[gid.ID]int, len(rows))
	for _, r := range rows {
		out[r.WebhookID] = r.Count
	}
	return out, nil
}

// claim takes up to n due deliveries, at most PerWebhook in flight per webhook: it counts
// their attempt and leases them, in one transaction. On PostgreSQL the rows are locked with
// SKIP LOCKED, so concurrent workers take different deliveries; SQLite runs one write
// transaction at a time anyway. more reports that further due deliveries may be waiting.
func (w *Worker) claim(ctx context.Context, n int) (out []claimed, more bool, err error) {
	sys := viewer.System(ctx, "webhook-worker")
	now := w.s.now()
	live, err := w.inFlight(sys, now)
	if err != nil {
		return nil, false, err
	}
	where := due(now)
	var full []gid.ID
	for id, k := range live {
		if k >= w.opts.PerWebhook {
			full = append(full, id)
		}
	}
	if len(full) > 0 {
		where = append(where, webhookdelivery.WebhookIDNotIn(full...))
	}
	pg := w.opts.Dialect == dialect.Postgres
	if !pg {
		// Look first without the write lock, which SQLite would take for the transaction.
		ok, err := w.s.client.WebhookDelivery.Query().Where(where...).Exist(sys)
		if err != nil || !ok {
			return nil, false, err
		}
	}
	err = database.InTx(sys, w.s.client, func(ctx context.Context, c *ent.Client) error {
		q := c.WebhookDelivery.Query().Where(where...).
			Order(ent.Asc(webhookdelivery.FieldNextAttemptAt), ent.Asc(webhookdelivery.FieldID)).Limit(n)
		if pg {
			q.ForUpdate(entsql.WithLockAction(entsql.SkipLocked))
		}
		found, err := q.All(ctx)
		if err != nil || len(found) == 0 {
			return err
		}
		more = len(found) == n
		var rows []*ent.WebhookDelivery
		for _, d := range found {
			if live[d.WebhookID] < w.opts.PerWebhook {
				live[d.WebhookID]++
				rows = append(rows, d)
			}
		}
		ids := make([]gid.ID, len(rows))
		for i, d := range rows {
			ids[i] = d.ID
		}
		lease := now.Add(w.opts.Lease)
		if err := c.WebhookDelivery.Update().Where(webhookdelivery.IDIn(ids...)).
			AddAttempts(1).SetLeasedUntil(lease).Exec(ctx); err != nil {
			return err
		}
		for _, d := range rows {
			d.Attempts++
			d.LeasedUntil = &lease
			out = append(out, claimed{d})
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("claiming deliveries: %w", err)
	}
	return out, more, nil
}

// outcome is what one attempt came to.
type outcome struct {
	status int    // the HTTP status, 0 without an answer
	err    string // why it failed; "" on success
	// aborted: the attempt did not happen for a reason of this worker's (it is stopping, or
	// cannot decrypt the secret); the delivery is released uncounted, and the endpoint's
	// health is untouched.
	aborted bool
	// took is how long the request took; 0 when none was sent.
	took time.Duration
	// holdOff delays the next attempt of an aborted one.
	holdOff time.Duration
}

func (o outcome) ok() bool { return o.err == "" && !o.aborted }

// Body is the JSON a webhook receives: the event, without any secret.
type Body struct {
	ID             gid.ID         `json:"id"`
	Type           string         `json:"type"`
	OrganizationID gid.ID         `json:"organizationId"`
	SessionID      *gid.ID        `json:"sessionId"`
	OccurredAt     time.Time      `json:"occurredAt"`
	Data           map[string]any `json:"data"`
}

// payload renders an event as a webhook body.
func payload(ev *ent.Event) ([]byte, error) {
	data := ev.Payload
	if data == nil {
		data = map[string]any{}
	}
	return json.Marshal(Body{ID: ev.ID, Type: string(ev.Type), OrganizationID: ev.OrganizationID,
		SessionID: ev.SessionID, OccurredAt: ev.OccurredAt.UTC(), Data: data})
}

// attempt sends one claimed delivery and records the outcome.
func (w *Worker) attempt(ctx context.Context, d claimed) {
	sys := viewer.System(context.WithoutCancel(ctx), "webhook-worker")
	var o outcome
	hook, err := w.s.client.Webhook.Get(sys, d.WebhookID)
	if err == nil {
		o = w.send(ctx, hook, d)
	} else if ent.IsNotFound(err) {
		return // deleted meanwhile, with its deliveries
	} else {
		o = outcome{err: "loading the webhook: " + err.Error()}
	}
	var gaveUp bool
	record := func() (err error) { gaveUp, err = w.record(sys, hook, d, o); return err }
	if err := retryDB(sys, record); err != nil {
		// The lease runs out and another attempt follows: nothing is lost.
		w.s.opts.Log.Error("recording a webhook delivery", "delivery", d.ID, "err", err)
	}
	w.observe(o, gaveUp)
}

// observe counts a finished attempt (a cancelled one does not count: it is made again).
func (w *Worker) observe(o outcome, gaveUp bool) {
	m := w.s.opts.Metrics
	switch {
	case o.aborted:
		return
	case o.ok():
		m.WebhookAttempt(metrics.WebhookSuccess, o.took)
	case o.status != 0:
		m.WebhookAttempt(metrics.WebhookHTTPError, o.took)
	default:
		m.WebhookAttempt(metrics.WebhookError, o.took)
	}
	if gaveUp {
		m.WebhookDeliveryFailed()
	}
}

// retryDB retries a short database write a few times (SQLite may be busy).
func retryDB(ctx context.Context, fn func() error) error {
	var err error
	for i := range 3 {
		if err = fn(); err == nil {
			return nil
		}
		time.Sleep(time.Duration(i+1) * 100 * time.Millisecond)
	}
	return err
}

// send POSTs the delivery's event, signed with the webhook's secrets.
func (w *Worker) send(ctx context.Context, hook *ent.Webhook, d claimed) outcome {
	sys := viewer.System(context.WithoutCancel(ctx), "webhook-worker")
	ev, err := w.s.client.Event.Get(sys, d.EventID)
	if err != nil {
		return outcome{err: "loading the event: " + err.Error()}
	}
	body, err := payload(ev)
	if err != nil {
		return outcome{err: "encoding the event: " + err.Error()}
	}
	keys, err := w.s.signingKeys(hook)
	if err != nil {
		// Not the endpoint's fault: this replica has another WAGATE_SECRET_KEY than the one
		// that sealed the secret. Another replica may have the right one; counting the
		// attempt would fail and finally disable a healthy endpoint.
		w.s.opts.Log.Error("cannot decrypt a webhook's signing secret: is WAGATE_SECRET_KEY the same on every replica?",
			"webhook", hook.ID, "delivery", d.ID, "err", err)
		return outcome{aborted: true, holdOff: keyHoldOff}
	}
	now := w.s.now()
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(body))
	if err != nil {
		return outcome{err: "building the request: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "wagate-webhooks/1")
	req.Header.Set(HeaderID, string(ev.ID))
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, SignatureHeader(keys, string(ev.ID), now, body))
	sent := time.Now()
	resp, err := w.http.Do(req)
	if err != nil {
		if parent.Err() != nil {
			return outcome{aborted: true} // the worker is stopping
		}
		return outcome{err: describe(err), took: time.Since(sent)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	took := time.Since(sent)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return outcome{status: resp.StatusCode, took: took}
	}
	msg := "HTTP " + resp.Status
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		msg += " (redirects are not followed)"
	}
	return outcome{status: resp.StatusCode, err: msg, took: took}
}

// describe turns a transport error into a message for the delivery log.
func describe(err error) string {
	switch {
	case errors.Is(err, errBlocked):
		return unwrapAll(err).Error()
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer within the timeout"
	}
	return err.Error()
}

// unwrapAll returns the innermost error of a chain of single wraps that still carries
// errBlocked's message.
func unwrapAll(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil || !errors.Is(next, errBlocked) || next == errBlocked {
			return err
		}
		err = next
	}
}

// keyHoldOff is how long a delivery whose secret this worker cannot decrypt waits before it
// is tried again, by any worker.
const keyHoldOff = time.Minute

// signingKeys are the keys a request is signed with: the current secret, and the previous
// one while a rotation's overlap lasts.
func (s *Service) signingKeys(hook *ent.Webhook) ([][]byte, error) {
	cur, err := s.opts.Keys.Open(hook.SecretEncrypted, string(hook.ID))
	if err != nil {
		return nil, err
	}
	keys := [][]byte{cur}
	if hook.PreviousSecretEncrypted != nil && hook.PreviousSecretExpiresAt != nil && s.now().Before(*hook.PreviousSecretExpiresAt) {
		// A previous secret sealed under an older WAGATE_SECRET_KEY (rotated after the key
		// changed) is left out: the new secret alone still signs.
		if prev, err := s.opts.Keys.Open(*hook.PreviousSecretEncrypted, string(hook.ID)); err == nil {
			keys = append(keys, prev)
		}
	}
	return keys, nil
}

// wait is the delay before the retry after the given failed attempt of a round (1-based),
// and false when the round is over.
func (w *Worker) wait(n int) (time.Duration, bool) {
	if n < 1 || n > len(w.opts.Schedule) {
		return 0, false
	}
	d := w.opts.Schedule[n-1]
	if j := w.opts.Jitter; j > 0 {
		d = time.Duration(float64(d) * (1 + j*(2*rand.Float64()-1)))
	}
	return d, true
}

// record writes an attempt's outcome, unless the delivery was claimed again meanwhile (its
// lease ran out): then that later attempt owns it. gaveUp reports that the delivery is now
// FAILED.
func (w *Worker) record(ctx context.Context, hook *ent.Webhook, d claimed, o outcome) (gaveUp bool, err error) {
	now := w.s.now()
	err = database.InTx(ctx, w.s.client, func(ctx context.Context, c *ent.Client) error {
		mine := c.WebhookDelivery.Update().Where(webhookdelivery.ID(d.ID),
			webhookdelivery.Attempts(d.Attempts), webhookdelivery.StatusEQ(webhookdelivery.StatusPENDING))
		if o.aborted {
			mine.AddAttempts(-1).ClearLeasedUntil()
			if o.holdOff > 0 {
				mine.SetNextAttemptAt(now.Add(o.holdOff))
			}
			return mine.Exec(ctx)
		}
		mine.SetLastAttemptAt(now).ClearLeasedUntil().SetNillableLastStatusCode(nonZero(o.status))
		if o.ok() {
			mine.SetStatus(webhookdelivery.StatusSUCCEEDED).ClearLastError().ClearNextAttemptAt()
		} else {
			mine.SetLastError(truncate(o.err, 500))
			if wait, ok := w.wait(d.Attempts - d.RoundStart); ok {
				mine.SetNextAttemptAt(now.Add(wait))
			} else {
				mine.SetStatus(webhookdelivery.StatusFAILED).ClearNextAttemptAt()
				gaveUp = true
			}
		}
		n, err := mine.Save(ctx)
		if n == 0 {
			gaveUp = false
		}
		if err != nil || n == 0 || hook == nil {
			return err
		}
		return w.health(ctx, c, hook.ID, o, now)
	})
	return gaveUp && err == nil, err
}

// health keeps the endpoint's failingSince, and disables an endpoint failing for too long.
func (w *Worker) health(ctx context.Context, c *ent.Client, id gid.ID, o outcome, now time.Time) error {
	if o.ok() {
		return c.Webhook.Update().Where(webhook.ID(id), webhook.FailingSinceNotNil()).ClearFailingSince().Exec(ctx)
	}
	if err := c.Webhook.Update().Where(webhook.ID(id), webhook.FailingSinceIsNil()).SetFailingSince(now).Exec(ctx); err != nil {
		return err
	}
	reason := fmt.Sprintf("failing continuously for %s", w.opts.DisableAfter)
	n, err := c.Webhook.Update().Where(webhook.ID(id), webhook.Enabled(true),
		webhook.FailingSinceLTE(now.Add(-w.opts.DisableAfter))).
		SetEnabled(false).SetDisabledReason(reason).Save(ctx)
	if err != nil || n == 0 {
		return err
	}
	hook, err := c.Webhook.Get(ctx, id)
	if err != nil {
		return err
	}
	w.s.opts.Log.Warn("webhook disabled", "webhook", id, "failingSince", hook.FailingSince, "reason", reason)
	return audit.Record(ctx, c, audit.Entry{OrgID: hook.OrganizationID, Action: "webhook.disable", TargetType: "Webhook",
		TargetID: id, Details: map[string]any{"reason": reason, "failingSince": hook.FailingSince}})
}

func nonZero(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
