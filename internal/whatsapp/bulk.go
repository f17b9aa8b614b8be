package whatsapp

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/event"
	"github.com/wagate/wagate/ent/message"
	"github.com/wagate/wagate/ent/webhookdelivery"
	"github.com/wagate/wagate/internal/events"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/viewer"
)

// bulkInbound stores received messages on PostgreSQL many at a time, in one statement that
// commits on its own: for each message not stored before, the message, its chat, its event
// numbered by the organization's counter, and its webhook deliveries; then one notification
// per organization. It writes exactly what received.store and events.Log.Append write for
// one message (a test compares the two), in one round trip for a whole batch instead of
// eight for each message.
//
// The statement bypasses ent's privacy policies and hooks, like the system task it
// replaces (Deliver runs as the "session-runtime" system viewer, allowed everything); none
// of the hooks wagate installs watches messages, chats or events.
type bulkInbound struct {
	log *events.Log
}

// bulkRow is one received message as the statement reads it (jsonb_to_recordset).
type bulkRow struct {
	Ord      int               `json:"ord"`
	Msg      gid.ID            `json:"msg"`
	Org      gid.ID            `json:"org"`
	Session  gid.ID            `json:"ses"`
	Chat     string            `json:"chat"`
	Sender   string            `json:"sender"`
	Phone    *string           `json:"phone"`
	Push     string            `json:"push"`
	FromMe   bool              `json:"from_me"`
	Dir      message.Direction `json:"dir"`
	Kind     MessageKind       `json:"kind"`
	Text     *string           `json:"body"`
	Status   message.Status    `json:"status"`
	WA       string            `json:"wa"`
	TS       time.Time         `json:"ts"`
	Reply    *string           `json:"reply"`
	Target   *string           `json:"target"`
	Mime     *string           `json:"mime"`
	MName    *string           `json:"mname"`
	MSize    *int64            `json:"msize"`
	MDesc    []byte            `json:"mdesc"` // base64 in JSON
	Extra    map[string]any    `json:"extra"`
	ChatID   gid.ID            `json:"cid"`
	ChatName string            `json:"cname"`
	Group    bool              `json:"grp"`
	Unread   int               `json:"unread"`
	Event    gid.ID            `json:"eid"`
	Type     event.Type        `json:"etype"`
	Payload  map[string]any    `json:"payload"`
	At       time.Time         `json:"at"`
	Hooks    []bulkHook        `json:"hooks,omitempty"`
}

// bulkHook is a webhook delivery to write if the webhook is still enabled and wants the event.
type bulkHook struct {
	ID      gid.ID `json:"id"`
	Webhook gid.ID `json:"wh"`
}

// bulkStatement writes a batch. Every data-modifying part runs once, on one snapshot, and
// the later parts read the earlier ones' RETURNING rows: "m" holds the messages inserted
// (not those stored before), and everything else follows from those. An organization's
// counter row, locked by "n" until the commit, orders its writers as in Append; the
// counters are locked in the order of their organizations, so two statements cannot
// deadlock. A chat that several messages of the batch go to is written once, as if they
// had been stored one after the other.
const bulkStatement = `WITH input AS (
	SELECT * FROM jsonb_to_recordset($1::jsonb) AS i(ord int, msg text, org text, ses text, chat text, sender text,
		phone text, push text, from_me boolean, dir text, kind text, body text, status text, wa text, ts timestamptz,
		reply text, target text, mime text, mname text, msize bigint, mdesc text, extra jsonb, cid text, cname text,
		grp boolean, unread bigint, eid text, etype text, payload jsonb, at timestamptz, hooks jsonb)
), m AS (
	INSERT INTO messages (id, created_at, updated_at, organization_id, session_id, chat_jid, sender_jid, sender_phone,
		push_name, from_me, direction, kind, text, status, wa_message_id, timestamp, reply_to, target_wa_id, edited,
		revoked, media_mime, media_name, media_size, media_descriptor, extra, attempts)
	SELECT msg, at, at, org, ses, chat, sender, phone, push, from_me, dir, kind, body, status, wa, ts, reply, target,
		false, false, mime, mname, msize, decode(mdesc, 'base64'), extra, 0
	FROM input ORDER BY ord
	ON CONFLICT (session_id, wa_message_id) DO NOTHING
	RETURNING id
), kept AS (
	SELECT input.*, row_number() OVER (PARTITION BY org ORDER BY ord) AS k, count(*) OVER (PARTITION BY org) AS total
	FROM input JOIN m ON m.id = input.msg
), c AS (
	INSERT INTO chats (id, created_at, updated_at, organization_id, session_id, jid, name, is_group, last_message_at,
		unread_count)
	SELECT (array_agg(cid ORDER BY ord))[1], max(at), max(at), org, ses, chat,
		coalesce((array_agg(cname ORDER BY ord DESC) FILTER (WHERE cname <> ''))[1], ''),
		(array_agg(grp ORDER BY ord))[1], (array_agg(ts ORDER BY ord DESC))[1], sum(unread)
	FROM kept GROUP BY org, ses, chat
	ON CONFLICT (session_id, jid) DO UPDATE SET last_message_at = EXCLUDED.last_message_at,
		updated_at = EXCLUDED.updated_at, unread_count = chats.unread_count + EXCLUDED.unread_count,
		name = CASE WHEN EXCLUDED.name <> '' THEN EXCLUDED.name ELSE chats.name END
), n AS (
	INSERT INTO event_counters (id, last_seq)
	SELECT org, count(*) FROM kept GROUP BY org ORDER BY org
	ON CONFLICT (id) DO UPDATE SET last_seq = event_counters.last_seq + EXCLUDED.last_seq
	RETURNING id, last_seq
), e AS (
	INSERT INTO events (id, seq, type, payload, occurred_at, created_at, organization_id, session_id, message_id)
	SELECT kept.eid, n.last_seq - kept.total + kept.k, kept.etype, kept.payload, kept.ts, kept.at, kept.org, kept.ses,
		kept.msg
	FROM kept JOIN n ON n.id = kept.org
	RETURNING id, organization_id, seq, type
), d AS (
	INSERT INTO webhook_deliveries (id, created_at, updated_at, status, attempts, round_start, next_attempt_at,
		webhook_id, event_id, organization_id)
	SELECT h.id, kept.at, kept.at, 'PENDING', 0, 0, kept.at, h.wh, e.id, e.organization_id
	FROM e JOIN kept ON kept.eid = e.id CROSS JOIN LATERAL jsonb_to_recordset(kept.hooks) AS h(id text, wh text)
	JOIN webhooks w ON w.id = h.wh AND w.enabled AND w.event_types ? e.type
	RETURNING 1
), woken AS (
	SELECT pg_notify($2, organization_id || ':' || max(seq) || ':' || $3) FROM e WHERE $2 <> '' GROUP BY organization_id
)
SELECT id, seq, (SELECT count(*) FROM d), (SELECT count(*) FROM woken) FROM e`

// WriteBulk implements database.BulkWriter: items are []received, each the messages a
// session received together, in order.
func (b *bulkInbound) WriteBulk(ctx context.Context, client *ent.Client, items []any) error {
	var all []received
	for _, item := range items {
		all = append(all, item.([]received)...)
	}
	rows := make([]bulkRow, len(all))
	targets := map[gid.ID][]events.Target{}
	for i, r := range all {
		row, err := b.row(ctx, r, targets)
		if err != nil {
			return err
		}
		row.Ord = i
		rows[i] = row
	}
	input, err := json.Marshal(rows)
	if err != nil {
		return fmt.Errorf("encoding messages: %w", err)
	}
	conv := b.log.Bulk()
	res, err := client.QueryContext(viewer.System(ctx, "session-runtime"), bulkStatement, string(input), conv.Channel, conv.Sender)
	if err != nil {
		return fmt.Errorf("storing messages: %w", err)
	}
	defer res.Close()
	seqs := make(map[gid.ID]int64, len(rows))
	var deliveries int64
	for res.Next() {
		var id gid.ID
		var seq, woken int64
		if err := res.Scan(&id, &seq, &deliveries, &woken); err != nil {
			return fmt.Errorf("storing messages: %w", err)
		}
		seqs[id] = seq
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("storing messages: %w", err)
	}
	if err := res.Close(); err != nil {
		return fmt.Errorf("storing messages: %w", err)
	}
	// Committed: hand the events to this replica's subscribers, in sequence order.
	evs := make([]*ent.Event, 0, len(seqs))
	for i, row := range rows {
		seq, ok := seqs[row.Event]
		if !ok {
			continue // stored before
		}
		if r := all[i]; r.stored != nil {
			r.stored.add(client.Message.Bind(row.message()))
		}
		session, msg := row.Session, row.Msg
		evs = append(evs, client.Event.Bind(&ent.Event{ID: row.Event, OrganizationID: row.Org, Seq: seq, Type: row.Type,
			SessionID: &session, MessageID: &msg, Payload: row.Payload, OccurredAt: row.TS, CreatedAt: row.At}))
	}
	b.log.Committed(evs) // in order: rows are, and so are their numbers within an organization

	if deliveries > 0 && b.log.Webhooks != nil {
		b.log.Webhooks.Enqueued()
	}
	return nil
}

// message is the message row as the statement writes it, and as it reads back.
func (row bulkRow) message() *ent.Message {
	m := &ent.Message{ID: row.Msg, CreatedAt: row.At, UpdatedAt: row.At, OrganizationID: row.Org,
		SessionID: row.Session, ChatJid: row.Chat, SenderJid: row.Sender, SenderPhone: row.Phone,
		PushName: row.Push, FromMe: row.FromMe, Direction: row.Dir, Kind: message.Kind(row.Kind), Text: row.Text,
		Status: row.Status, WaMessageID: row.WA, Timestamp: row.TS, ReplyTo: row.Reply, TargetWaID: row.Target,
		MediaMime: row.Mime, MediaName: row.MName, MediaSize: row.MSize}
	m.Extra, _ = events.Canonical(row.Extra) // JSON of strings, numbers and lists: it encodes
	// ent reads a NULL bytes column as a pointer to a nil slice.
	m.MediaDescriptor, m.MediaData = &row.MDesc, new([]byte)
	return m
}

// row is r as the statement reads it, with the deliveries to write for the webhooks of its
// organization that want its event (targets caches them for the batch).
func (b *bulkInbound) row(ctx context.Context, r received, targets map[gid.ID][]events.Target) (bulkRow, error) {
	in := r.in
	row := bulkRow{Msg: r.msg, Org: r.org, Session: r.session, Chat: in.Chat, Sender: in.Sender, Phone: r.senderPhone,
		Push: in.PushName, FromMe: in.FromMe, Dir: r.direction, Kind: in.Kind, Text: nonEmpty(in.Text),
		Status: r.status, WA: in.ID, TS: in.Timestamp, Reply: nonEmpty(in.ReplyTo), Target: nonEmpty(in.TargetID),
		Extra: r.extra, ChatID: r.chat, ChatName: r.chatName, Group: in.IsGroup, Unread: unread(in),
		Event: r.event, Type: r.typ, Payload: r.entry().Payload, At: r.at}
	if in.Media != nil {
		row.Mime, row.MName, row.MSize, row.MDesc = nonEmpty(in.Media.MimeType), nonEmpty(in.Media.FileName),
			&in.Media.Size, in.Media.Descriptor
	}
	if b.log.Webhooks == nil {
		return row, nil
	}
	ts, ok := targets[r.org]
	if !ok {
		var err error
		if ts, err = b.log.Webhooks.Targets(ctx, r.org); err != nil {
			return bulkRow{}, err
		}
		targets[r.org] = ts
	}
	for _, t := range ts {
		if slices.Contains(t.Types, string(r.typ)) {
			row.Hooks = append(row.Hooks, bulkHook{ID: webhookdelivery.DefaultID(), Webhook: t.Webhook})
		}
	}
	return row, nil
}
