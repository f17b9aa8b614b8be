package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"time"

	stdsql "database/sql"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/chat"
	"github.com/wagate/wagate/ent/message"
	"github.com/wagate/wagate/ent/session"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/viewer"
)

// Deliver implements Sink: it persists what a runtime reports. An error means the event was
// not stored, so an engine that can makes WhatsApp deliver it again.
func (m *Manager) Deliver(ctx context.Context, sessionID string, ev Event) error {
	ctx = viewer.System(ctx, "session-runtime")
	id := gid.ID(sessionID)
	var err error
	switch ev := ev.(type) {
	case StatusChanged:
		err = m.statusChanged(ctx, id, ev)
	case QRCode:
		exp := ev.Expires
		m.pairing.publish(id, PairingUpdate{Type: PairingQRCode, Code: ev.Code, ExpiresAt: &exp})
	case PairingEnded:
		switch {
		case ev.Paired:
			m.pairing.publish(id, PairingUpdate{Type: PairingPaired})
		case ev.Reason == "timeout":
			m.pairing.publish(id, PairingUpdate{Type: PairingExpired, Reason: "the QR codes expired before a scan"})
		default:
			m.pairing.publish(id, PairingUpdate{Type: PairingFailed, Reason: ev.Reason})
		}
	case Paired:
		err = m.client.Session.UpdateOneID(id).SetDeviceJid(ev.DeviceJID).SetPhoneNumber(ev.Phone).
			SetNillableLid(nonEmpty(ev.LID)).SetNillablePushName(nonEmpty(ev.PushName)).Exec(ctx)
	case Inbound:
		err = m.inbound(ctx, id, ev)
	case Receipt:
		err = m.receipt(ctx, id, ev)
	default:
		// Presence, chat state, group and call events are not stored yet; the event log
		// records them once it exists.
		m.log.Debug("session event", "session", id, "type", fmt.Sprintf("%T", ev))
	}
	if err != nil {
		m.log.Error("storing session event", "session", id, "type", fmt.Sprintf("%T", ev), "err", err)
	}
	return err
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (m *Manager) statusChanged(ctx context.Context, id gid.ID, ev StatusChanged) error {
	upd := m.client.Session.UpdateOneID(id).SetStatus(session.Status(ev.Status)).SetStatusReason(ev.Reason)
	switch {
	case ev.Status == StatusConnected:
		upd.SetLastConnectedAt(ev.At)
	case ev.Status == StatusLoggedOut:
		upd.ClearDeviceJid().SetAutoconnect(false)
	case ev.Status.Terminal():
		upd.SetAutoconnect(false)
	}
	if err := upd.Exec(ctx); err != nil {
		if ent.IsNotFound(err) {
			return nil // deleted meanwhile
		}
		return err
	}
	if ev.Status == StatusConnected {
		m.Wake(id)
	}
	return nil
}

// orgOf returns a session's organization.
func (m *Manager) orgOf(ctx context.Context, id gid.ID) (gid.ID, error) {
	m.mu.Lock()
	l, ok := m.live[id]
	m.mu.Unlock()
	if ok {
		return l.org, nil
	}
	s, err := m.client.Session.Get(ctx, id)
	if err != nil {
		return "", err
	}
	return s.OrganizationID, nil
}

// inbound stores a received message and its chat in one transaction. A message WhatsApp
// delivers twice is stored once.
func (m *Manager) inbound(ctx context.Context, id gid.ID, in Inbound) error {
	org, err := m.orgOf(ctx, id)
	if err != nil {
		return err
	}
	return database.InTx(ctx, m.client, func(ctx context.Context, c *ent.Client) error {
		if in.Edit || in.Revoke {
			return m.amend(ctx, c, id, in)
		}
		name := ""
		if !in.IsGroup && !in.FromMe {
			name = in.PushName
		}
		err := c.Chat.Create().SetOrganizationID(org).SetSessionID(id).SetJid(in.Chat).SetName(name).
			SetIsGroup(in.IsGroup).SetLastMessageAt(in.Timestamp).SetUnreadCount(unread(in)).
			OnConflictColumns(chat.FieldSessionID, chat.FieldJid).
			Update(func(u *ent.ChatUpsert) {
				u.SetLastMessageAt(in.Timestamp).SetUpdatedAt(time.Now())
				if name != "" {
					u.SetName(name)
				}
				if !in.FromMe {
					u.AddUnreadCount(1)
				}
			}).Exec(ctx)
		if err != nil {
			return fmt.Errorf("storing chat: %w", err)
		}
		direction := message.DirectionINBOUND
		status := message.StatusDELIVERED
		if in.FromMe {
			direction, status = message.DirectionOUTBOUND, message.StatusSENT
		}
		create := c.Message.Create().SetOrganizationID(org).SetSessionID(id).SetChatJid(in.Chat).
			SetSenderJid(in.Sender).SetNillableSenderPhone(nonEmpty(PhoneOf(firstPhone(in.Sender, in.SenderAlt)))).
			SetPushName(in.PushName).SetFromMe(in.FromMe).SetDirection(direction).SetKind(message.Kind(in.Kind)).
			SetNillableText(nonEmpty(in.Text)).SetStatus(status).SetWaMessageID(in.ID).SetTimestamp(in.Timestamp).
			SetNillableReplyTo(nonEmpty(in.ReplyTo)).SetNillableTargetWaID(nonEmpty(in.TargetID)).
			SetExtra(extra(in))
		if in.Media != nil {
			create.SetMediaDescriptor(in.Media.Descriptor).SetNillableMediaMime(nonEmpty(in.Media.MimeType)).
				SetNillableMediaName(nonEmpty(in.Media.FileName)).SetMediaSize(in.Media.Size)
		}
		err = create.OnConflictColumns(message.FieldSessionID, message.FieldWaMessageID).DoNothing().Exec(ctx)
		if err != nil && !errors.Is(err, stdsql.ErrNoRows) { // DoNothing on a duplicate reports no rows
			return fmt.Errorf("storing message: %w", err)
		}
		return nil
	})
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
func (m *Manager) amend(ctx context.Context, c *ent.Client, id gid.ID, in Inbound) error {
	upd := c.Message.Update().Where(message.SessionID(id), message.WaMessageID(in.TargetID))
	if in.Revoke {
		upd.SetRevoked(true).ClearText()
	} else {
		upd.SetEdited(true).SetText(in.Text)
	}
	return upd.Exec(ctx)
}

// statusRank orders message statuses; receipts only ever move a message forward.
var statusRank = map[message.Status]int{
	message.StatusPENDING: 0, message.StatusSENT: 1, message.StatusDELIVERED: 2, message.StatusREAD: 3,
}

func (m *Manager) receipt(ctx context.Context, id gid.ID, r Receipt) error {
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
	return m.client.Message.Update().
		Where(message.SessionID(id), message.WaMessageIDIn(r.IDs...), message.DirectionEQ(message.DirectionOUTBOUND),
			message.StatusIn(below...)).
		SetStatus(to).Exec(ctx)
}
