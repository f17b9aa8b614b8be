package whatsapp

import (
	"context"
	"errors"
	"time"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/event"
	"github.com/wagate/wagate/ent/message"
	"github.com/wagate/wagate/internal/events"
	"github.com/wagate/wagate/internal/gid"
)

// sendLoop sends the session's pending messages when woken (after a sendMessage commits, or
// when the session connects) and retries every RetryEvery.
func (m *Manager) sendLoop(id gid.ID, l *live) {
	defer m.wg.Done()
	t := time.NewTicker(m.opts.RetryEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-m.ctx.Done():
			return
		case <-l.wake:
		case <-t.C:
		}
		if !m.stillOwned(id) {
			return
		}
		m.runCommands(id, l)
		m.drain(id, l)
	}
}

// permanent errors fail a message at once; others are retried.
func permanent(err error) bool {
	return errors.Is(err, ErrInvalidRecipient) || errors.Is(err, ErrRecipientNotFound) || errors.Is(err, ErrUnsendable)
}

func (m *Manager) drain(id gid.ID, l *live) {
	l.drain.Lock()
	defer l.drain.Unlock()
	ctx := m.ctx
	for ctx.Err() == nil {
		pending, err := m.client.Message.Query().
			Where(message.SessionID(id), message.DirectionEQ(message.DirectionOUTBOUND), message.StatusEQ(message.StatusPENDING)).
			Order(ent.Asc(message.FieldCreatedAt), ent.Asc(message.FieldID)).Limit(50).All(ctx)
		if err != nil {
			m.log.Error("reading the outbox", "session", id, "err", err)
			return
		}
		if len(pending) == 0 {
			return
		}
		for _, msg := range pending {
			if !m.sendOne(ctx, l, msg) {
				return // not connected: wait for the next wake-up
			}
		}
	}
}

// sendOne sends one message and records the outcome; it reports false when the session
// cannot send now.
func (m *Manager) sendOne(ctx context.Context, l *live, msg *ent.Message) bool {
	out := Outbound{ID: msg.WaMessageID, To: msg.ChatJid, Kind: MessageKind(msg.Kind)}
	if msg.Text != nil {
		out.Text = *msg.Text
	}
	if msg.ReplyTo != nil {
		out.ReplyTo = *msg.ReplyTo
	}
	if msg.TargetWaID != nil {
		out.TargetID = *msg.TargetWaID
		if target, err := m.client.Message.Query().
			Where(message.SessionID(msg.SessionID), message.WaMessageID(*msg.TargetWaID)).Only(ctx); err == nil {
			out.TargetSender, out.TargetFromMe = target.SenderJid, target.FromMe
		}
	}
	if msg.MediaData != nil && len(*msg.MediaData) > 0 { // NULL reads as an empty slice
		out.Media = *msg.MediaData
		if msg.MediaMime != nil {
			out.MimeType = *msg.MediaMime
		}
		if msg.MediaName != nil {
			out.FileName = *msg.MediaName
		}
	}
	res, err := l.rt.Send(ctx, out)
	if errors.Is(err, ErrNotConnected) {
		return false
	}
	if rerr := m.recordSend(ctx, l.org, msg, res, err); rerr != nil {
		m.log.Error("recording a send", "message", msg.ID, "err", rerr)
	}
	return err == nil || permanent(err) // a transient failure waits for the next round
}

// sentEntry is the MESSAGE_SENT event of msg.
func sentEntry(org gid.ID, msg *ent.Message, at time.Time) events.Entry {
	return events.Entry{Org: org, Session: msg.SessionID, Message: msg.ID, Type: event.TypeMESSAGE_SENT, OccurredAt: at,
		Payload: map[string]any{"messageId": msg.ID, "waMessageId": msg.WaMessageID, "chatJID": msg.ChatJid,
			"kind": msg.Kind, "status": message.StatusSENT}}
}

// recordSend stores the outcome of sending msg, and logs SENT and FAILED in the event log,
// in one transaction — shared, like Deliver's, with the other events of the organization's
// lane: a receipt for msg stored in the same batch as another event of the organization
// would otherwise hold the organization's event counter while waiting for msg's row, which
// this transaction would hold while waiting for the counter.
func (m *Manager) recordSend(ctx context.Context, org gid.ID, msg *ent.Message, res SendResult, sendErr error) error {
	attempts := msg.Attempts + 1
	failed := sendErr != nil && (permanent(sendErr) || attempts >= m.opts.MaxAttempts)
	if failed {
		m.log.Warn("message failed", "message", msg.ID, "err", sendErr)
	}
	return m.ingest.Do(ctx, string(org), func(ctx context.Context, c *ent.Client) error {
		upd := c.Message.Update().Where(message.ID(msg.ID), message.StatusEQ(message.StatusPENDING)).SetAttempts(attempts)
		var entry events.Entry
		switch {
		case sendErr == nil:
			upd.SetStatus(message.StatusSENT).SetTimestamp(res.Timestamp).ClearMediaData()
			entry = sentEntry(org, msg, res.Timestamp)
		case failed:
			upd.SetStatus(message.StatusFAILED).SetError(sendErr.Error()).ClearMediaData()
			entry = events.Entry{Org: org, Session: msg.SessionID, Message: msg.ID, Type: event.TypeMESSAGE_STATUS, OccurredAt: m.opts.Now(), Payload: map[string]any{
				"messageId": msg.ID, "waMessageIds": []string{msg.WaMessageID}, "chatJID": msg.ChatJid,
				"status": message.StatusFAILED, "error": sendErr.Error(),
			}}
		default:
			return upd.Exec(ctx) // retried later: nothing to report yet
		}
		n, err := upd.Save(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil // already recorded, by a receipt or an earlier round
		}
		_, err = m.opts.Events.Append(ctx, c, entry)
		return err
	})
}
