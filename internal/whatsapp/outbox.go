package whatsapp

import (
	"context"
	"errors"
	"time"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/message"
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
	switch {
	case errors.Is(err, ErrNotConnected):
		return false
	case err != nil:
		attempts := msg.Attempts + 1
		upd := m.client.Message.UpdateOneID(msg.ID).SetAttempts(attempts)
		if permanent(err) || attempts >= m.opts.MaxAttempts {
			upd.SetStatus(message.StatusFAILED).SetError(err.Error()).ClearMediaData()
			m.log.Warn("message failed", "message", msg.ID, "err", err)
		}
		if uerr := upd.Exec(ctx); uerr != nil {
			m.log.Error("recording a send failure", "message", msg.ID, "err", uerr)
		}
		return permanent(err) // a transient failure waits for the next round
	}
	err = m.client.Message.Update().Where(message.ID(msg.ID), message.StatusEQ(message.StatusPENDING)).
		SetStatus(message.StatusSENT).SetTimestamp(res.Timestamp).SetAttempts(msg.Attempts + 1).ClearMediaData().
		Exec(ctx)
	if err != nil {
		m.log.Error("recording a sent message", "message", msg.ID, "err", err)
	}
	return true
}
