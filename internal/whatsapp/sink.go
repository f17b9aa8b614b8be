package whatsapp

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/chat"
	"github.com/wagate/wagate/ent/event"
	"github.com/wagate/wagate/ent/message"
	"github.com/wagate/wagate/ent/session"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/events"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/viewer"
)

// Deliver implements Sink: it persists what a runtime reports, together with its entry in
// the organization's event log, in one transaction. An error means the event was not
// stored, so an engine that can makes WhatsApp deliver it again.
//
// Events delivered at the same time — by different sessions, or concurrent requests to
// simulate a message — are stored together (a group commit, each event rolled back alone if
// it fails; received messages in one bulk statement on PostgreSQL, see bulkInbound): an
// organization's event counter row, locked from the append to the commit, is then held once
// for many events instead of once per event. A session's events, each delivered after the
// previous one returned, stay in order.
func (m *Manager) Deliver(ctx context.Context, sessionID string, ev Event) error {
	ctx = viewer.System(ctx, "session-runtime")
	ev = withoutNUL(ev)
	id := gid.ID(sessionID)
	org, err := m.orgOf(ctx, id)
	if org == "" || err != nil {
		return err
	}
	switch ev := ev.(type) {
	case QRCode:
		exp := ev.Expires
		m.publishPairing(id, PairingUpdate{Type: PairingQRCode, Code: ev.Code, ExpiresAt: &exp})
	case PairingEnded:
		switch {
		case ev.Paired:
			m.publishPairing(id, PairingUpdate{Type: PairingPaired})
		case ev.Reason == "timeout":
			m.publishPairing(id, PairingUpdate{Type: PairingExpired, Reason: "the QR codes expired before a scan"})
		default:
			m.publishPairing(id, PairingUpdate{Type: PairingFailed, Reason: ev.Reason})
		}
		return nil // PAIRED is logged with the pairing itself
	}
	if in, ok := ev.(Inbound); ok {
		err = m.receive(ctx, org, id, []Inbound{in})
	} else {
		err = m.ingest.Do(ctx, string(org), func(ctx context.Context, c *ent.Client) error {
			return m.appendTo(ctx, c, org, id, func(ctx context.Context, c *ent.Client) (*events.Entry, error) {
				return m.store(ctx, c, org, id, ev)
			})
		})
	}
	if err != nil {
		m.log.Error("storing session event", "session", id, "type", fmt.Sprintf("%T", ev), "err", err)
	}
	return err
}

// DeliverAll implements BatchSink: it stores messages a session received together, in order,
// all or none.
func (m *Manager) DeliverAll(ctx context.Context, sessionID string, msgs []Inbound) error {
	ctx = viewer.System(ctx, "session-runtime")
	msgs = withoutNUL(msgs)
	id := gid.ID(sessionID)
	org, err := m.orgOf(ctx, id)
	if org == "" || err != nil {
		return err
	}
	err = m.receive(ctx, org, id, msgs)
	if err != nil {
		m.log.Error("storing received messages", "session", id, "messages", len(msgs), "err", err)
	}
	return err
}

// receive stores messages session id of org received, in order, in one unit of the group
// committer: in bulk when it can (see bulkInbound), one by one otherwise.
func (m *Manager) receive(ctx context.Context, org, id gid.ID, msgs []Inbound) error {
	// One by one in the group committer's transaction: the way for edits and revocations,
	// and for a batch whose bulk statement failed.
	oneByOne := func(ctx context.Context, c *ent.Client) error {
		for _, in := range msgs {
			err := m.appendTo(ctx, c, org, id, func(ctx context.Context, c *ent.Client) (*events.Entry, error) {
				return m.inbound(ctx, c, org, id, in)
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
	if m.bulk == nil || slices.ContainsFunc(msgs, func(in Inbound) bool { return in.Edit || in.Revoke }) {
		return m.ingest.Do(ctx, string(org), oneByOne)
	}
	rs := make([]received, len(msgs))
	slot, _ := ctx.Value(storedKey{}).(*storedSlot)
	for i, in := range msgs {
		rs[i] = newReceived(org, id, in)
		rs[i].stored = slot
	}
	return m.ingest.DoBulk(ctx, string(org), m.bulk, rs, oneByOne)
}

// appendTo runs store, and appends the event-log entry it returns (nil: none) to the log of
// session id of org.
func (m *Manager) appendTo(ctx context.Context, c *ent.Client, org, id gid.ID, store func(context.Context, *ent.Client) (*events.Entry, error)) error {
	entry, err := store(ctx, c)
	if err != nil || entry == nil {
		return err
	}
	entry.Org, entry.Session = org, id
	_, err = m.opts.Events.Append(ctx, c, *entry)
	return err
}

// store applies ev to the session's rows and returns its event-log entry (nil: none).
func (m *Manager) store(ctx context.Context, c *ent.Client, org, id gid.ID, ev Event) (*events.Entry, error) {
	now := m.opts.Now()
	switch ev := ev.(type) {
	case StatusChanged:
		return m.statusChanged(ctx, c, id, ev)
	case QRCode:
		// The code itself stays out of the log: whoever scans it links their phone to the
		// session, and the log is readable by MEMBERs and sent to webhooks, while pairing
		// is for ADMINs (sessionPairing).
		return &events.Entry{Type: event.TypeQR_CODE, OccurredAt: now,
			Payload: map[string]any{"expiresAt": ev.Expires}}, nil
	case Paired:
		err := c.Session.UpdateOneID(id).SetDeviceJid(ev.DeviceJID).SetPhoneNumber(ev.Phone).
			SetNillableLid(nonEmpty(ev.LID)).SetNillablePushName(nonEmpty(ev.PushName)).Exec(ctx)
		return &events.Entry{Type: event.TypePAIRED, OccurredAt: now,
			Payload: map[string]any{"phoneNumber": ev.Phone, "pushName": ev.PushName}}, err
	case Inbound:
		return m.inbound(ctx, c, org, id, ev)
	case Receipt:
		return m.receipt(ctx, c, org, id, ev)
	case Presence:
		return &events.Entry{Type: event.TypePRESENCE, OccurredAt: orNow(ev.Timestamp, now),
			Payload: map[string]any{"from": ev.From, "online": ev.Online, "lastSeen": ev.LastSeen}}, nil
	case ChatState:
		return &events.Entry{Type: event.TypeCHAT_STATE, OccurredAt: now,
			Payload: map[string]any{"chatJID": ev.Chat, "senderJID": ev.Sender, "state": ev.State}}, nil
	case GroupUpdate:
		return &events.Entry{Type: event.TypeGROUP_UPDATE, OccurredAt: now,
			Payload: map[string]any{"groupJID": ev.Group, "senderJID": ev.Sender, "changes": ev.Changes}}, nil
	case Call:
		return &events.Entry{Type: event.TypeCALL, OccurredAt: orNow(ev.Timestamp, now),
			Payload: map[string]any{"from": ev.From, "callID": ev.CallID, "video": ev.Video, "groupJID": ev.Group, "kind": ev.Kind}}, nil
	}
	m.log.Debug("unhandled session event", "session", id, "type", fmt.Sprintf("%T", ev))
	return nil, nil
}

func orNow(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return t
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (m *Manager) statusChanged(ctx context.Context, c *ent.Client, id gid.ID, ev StatusChanged) (*events.Entry, error) {
	upd := c.Session.UpdateOneID(id).SetStatus(session.Status(ev.Status)).SetStatusReason(ev.Reason)
	switch {
	case ev.Status == StatusConnected:
		upd.SetLastConnectedAt(ev.At)
	case ev.Status == StatusLoggedOut:
		upd.ClearDeviceJid().SetAutoconnect(false)
	case ev.Status.Terminal():
		upd.SetAutoconnect(false)
	}
	if err := upd.Exec(ctx); err != nil {
		return nil, err
	}
	if ev.Status == StatusConnected {
		database.AfterCommit(ctx, func() { m.Wake(id) })
	}
	return &events.Entry{Type: event.TypeSESSION_STATUS, OccurredAt: orNow(ev.At, m.opts.Now()),
		Payload: map[string]any{"status": ev.Status, "reason": ev.Reason}}, nil
}

// orgOf returns a session's organization; "" and no error when the session was deleted
// meanwhile, so that what its runtime reported is dropped.
func (m *Manager) orgOf(ctx context.Context, id gid.ID) (gid.ID, error) {
	m.mu.Lock()
	l, ok := m.live[id]
	m.mu.Unlock()
	if ok {
		return l.org, nil
	}
	s, err := m.client.Session.Get(ctx, id)
	if ent.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return s.OrganizationID, nil
}

// inbound stores a received message and its chat. A message WhatsApp delivers twice is
// stored, and logged, once.
func (m *Manager) inbound(ctx context.Context, c *ent.Client, org, id gid.ID, in Inbound) (*events.Entry, error) {
	if in.Edit || in.Revoke {
		return m.amend(ctx, c, id, in)
	}
	return newReceived(org, id, in).store(ctx, c)
}

// received is what storing a received message writes — the message, its chat, its event —
// worked out once for both ways of writing it: store, one message in a transaction, and
// bulkInbound, many messages in one statement.
type received struct {
	msg, event, chat gid.ID // the IDs of the rows to insert
	org, session     gid.ID
	in               Inbound
	direction        message.Direction
	status           message.Status
	typ              event.Type
	chatName         string // "" leaves the chat's name as it is
	senderPhone      *string
	extra            map[string]any
	at               time.Time // when it was stored (created_at)
	// stored, when set, receives the message as bulkInbound wrote it (not when the message
	// was stored before).
	stored *storedSlot
}

func newReceived(org, session gid.ID, in Inbound) received {
	r := received{msg: message.DefaultID(), event: event.DefaultID(), chat: chat.DefaultID(), org: org, session: session, in: in,
		direction: message.DirectionINBOUND, status: message.StatusDELIVERED, typ: event.TypeMESSAGE_RECEIVED,
		senderPhone: nonEmpty(PhoneOf(firstPhone(in.Sender, in.SenderAlt))), extra: extra(in),
		at: events.DBTime(time.Now())}
	if in.FromMe { // sent from the phone itself
		r.direction, r.status, r.typ = message.DirectionOUTBOUND, message.StatusSENT, event.TypeMESSAGE_SENT
	}
	if !in.IsGroup && !in.FromMe {
		r.chatName = in.PushName
	}
	r.in.Timestamp = events.DBTime(in.Timestamp)
	return r
}

// entry is the message's event-log entry. Its payload holds JSON's own types only (strings,
// a bool), so it is in events.Canonical form already.
func (r received) entry() *events.Entry {
	in := r.in
	return &events.Entry{Org: r.org, Session: r.session, Type: r.typ, Message: r.msg, OccurredAt: in.Timestamp,
		Payload: map[string]any{
			"messageId": string(r.msg), "waMessageId": in.ID, "chatJID": in.Chat, "senderJID": in.Sender,
			"kind": string(in.Kind), "text": in.Text, "fromMe": in.FromMe,
		}}
}

// store writes the message and its chat with c, and returns the event-log entry to append
// (nil when the message was stored before).
func (r received) store(ctx context.Context, c *ent.Client) (*events.Entry, error) {
	in := r.in
	create := c.Message.Create().SetID(r.msg).SetCreatedAt(r.at).SetUpdatedAt(r.at).
		SetOrganizationID(r.org).SetSessionID(r.session).SetChatJid(in.Chat).
		SetSenderJid(in.Sender).SetNillableSenderPhone(r.senderPhone).
		SetPushName(in.PushName).SetFromMe(in.FromMe).SetDirection(r.direction).SetKind(message.Kind(in.Kind)).
		SetNillableText(nonEmpty(in.Text)).SetStatus(r.status).SetWaMessageID(in.ID).SetTimestamp(in.Timestamp).
		SetNillableReplyTo(nonEmpty(in.ReplyTo)).SetNillableTargetWaID(nonEmpty(in.TargetID)).
		SetExtra(r.extra)
	if in.Media != nil {
		create.SetMediaDescriptor(in.Media.Descriptor).SetNillableMediaMime(nonEmpty(in.Media.MimeType)).
			SetNillableMediaName(nonEmpty(in.Media.FileName)).SetMediaSize(in.Media.Size)
	}
	// A message seen before inserts nothing, and returns no row (one statement instead of a
	// look-up first: this runs for every message received).
	_, err := create.OnConflictColumns(message.FieldSessionID, message.FieldWaMessageID).DoNothing().ID(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("storing message: %w", err)
	}
	err = c.Chat.Create().SetID(r.chat).SetCreatedAt(r.at).SetUpdatedAt(r.at).
		SetOrganizationID(r.org).SetSessionID(r.session).SetJid(in.Chat).SetName(r.chatName).
		SetIsGroup(in.IsGroup).SetLastMessageAt(in.Timestamp).SetUnreadCount(unread(in)).
		OnConflictColumns(chat.FieldSessionID, chat.FieldJid).
		Update(func(u *ent.ChatUpsert) {
			u.SetLastMessageAt(in.Timestamp).SetUpdatedAt(r.at)
			if r.chatName != "" {
				u.SetName(r.chatName)
			}
			if !in.FromMe {
				u.AddUnreadCount(1)
			}
		}).Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("storing chat: %w", err)
	}
	return r.entry(), nil
}

func unread(in Inbound) int {
	if in.FromMe {
		return 0
	}
	return 1
}

// firstPhone prefers the phone-number form of an address over its LID.
func firstPhone(jids ...string) string {
	for _, j := range jids {
		if PhoneOf(j) != "" {
			return j
		}
	}
	return ""
}

// extra keeps what the message row has no column for.
func extra(in Inbound) map[string]any {
	x := map[string]any{}
	if in.ChatAlt != "" {
		x["chatAlt"] = in.ChatAlt
	}
	if in.SenderAlt != "" {
		x["senderAlt"] = in.SenderAlt
	}
	if in.Kind == KindLocation {
		x["latitude"], x["longitude"], x["name"] = in.Latitude, in.Longitude, in.Name
	}
	if in.Kind == KindContact && in.Name != "" {
		x["displayName"] = in.Name
	}
	if len(in.Options) > 0 {
		x["options"] = in.Options
	}
	if len(in.Raw) > 0 {
		x["raw"] = string(in.Raw)
	}
	return x
}

// amend applies an edit or a revoke to the message it targets.
func (m *Manager) amend(ctx context.Context, c *ent.Client, id gid.ID, in Inbound) (*events.Entry, error) {
	upd := c.Message.Update().Where(message.SessionID(id), message.WaMessageID(in.TargetID))
	change := "edited"
	if in.Revoke {
		upd.SetRevoked(true).ClearText()
		change = "revoked"
	} else {
		upd.SetEdited(true).SetText(in.Text)
	}
	if err := upd.Exec(ctx); err != nil {
		return nil, err
	}
	return &events.Entry{Type: event.TypeMESSAGE_STATUS, OccurredAt: in.Timestamp, Payload: map[string]any{
		"waMessageIds": []string{in.TargetID}, "change": change, "text": in.Text, "chatJID": in.Chat,
	}}, nil
}

// statusRank orders message statuses; receipts only ever move a message forward.
var statusRank = map[message.Status]int{
	message.StatusPENDING: 0, message.StatusSENT: 1, message.StatusDELIVERED: 2, message.StatusREAD: 3,
}

func (m *Manager) receipt(ctx context.Context, c *ent.Client, org, id gid.ID, r Receipt) (*events.Entry, error) {
	// A receipt can overtake the sender's own record of the send (the recipient answers
	// fast, or the sending replica died before writing it): the receipt proves the send,
	// so it records it, and the log keeps its MESSAGE_SENT before the status change.
	unrecorded, err := c.Message.Query().Where(message.SessionID(id), message.WaMessageIDIn(r.IDs...),
		message.DirectionEQ(message.DirectionOUTBOUND), message.StatusEQ(message.StatusPENDING)).All(ctx)
	if err != nil {
		return nil, err
	}
	for _, msg := range unrecorded {
		// Conditional: the sender may record it concurrently, and only one of the two logs it.
		n, err := c.Message.Update().Where(message.ID(msg.ID), message.StatusEQ(message.StatusPENDING)).
			SetStatus(message.StatusSENT).ClearMediaData().Save(ctx)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			continue
		}
		if _, err := m.opts.Events.Append(ctx, c, sentEntry(org, msg, msg.Timestamp)); err != nil {
			return nil, err
		}
	}
	to := message.StatusDELIVERED
	if r.Kind == ReceiptRead || r.Kind == ReceiptPlayed {
		to = message.StatusREAD
	}
	var below []message.Status
	for s, rank := range statusRank {
		if rank < statusRank[to] {
			below = append(below, s)
		}
	}
	n, err := c.Message.Update().
		Where(message.SessionID(id), message.WaMessageIDIn(r.IDs...), message.DirectionEQ(message.DirectionOUTBOUND),
			message.StatusIn(below...)).
		SetStatus(to).Save(ctx)
	if err != nil || n == 0 {
		return nil, err // nothing moved forward: nothing to report
	}
	return &events.Entry{Type: event.TypeMESSAGE_STATUS, OccurredAt: orNow(r.Timestamp, m.opts.Now()), Payload: map[string]any{
		"waMessageIds": r.IDs, "status": to, "chatJID": r.Chat,
	}}, nil
}
