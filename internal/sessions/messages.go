package sessions

import (
	"cmp"
	"context"
	"entgo.io/contrib/entgql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/chat"
	"github.com/wagate/wagate/ent/message"
	"github.com/wagate/wagate/ent/session"
	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/audit"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/page"
	"github.com/wagate/wagate/internal/rule"
	"github.com/wagate/wagate/internal/viewer"
	"github.com/wagate/wagate/internal/whatsapp"
)

// SendMessageInput is a message to send.
type SendMessageInput struct {
	SessionID gid.ID
	To        string
	Text      *string
	Media     *graphql.Upload
	Caption   *string
	// ReplyTo is the ID of the message answered.
	ReplyTo *gid.ID
	// IdempotencyKey makes retries safe: the same key returns the same message.
	IdempotencyKey *string
}

const maxTextLen = 65536

// SendMessage queues a message in the session's outbox and returns it PENDING; the session
// sends it and its status follows (SENT, DELIVERED, READ or FAILED).
func (s *Service) SendMessage(ctx context.Context, in SendMessageInput) (*ent.Message, error) {
	v := viewer.FromContext(ctx)
	if err := rule.Require(v, viewer.PermSendMessages); err != nil {
		return nil, err
	}
	if in.IdempotencyKey != nil && (*in.IdempotencyKey == "" || len(*in.IdempotencyKey) > 200) {
		return nil, apperr.Invalid("idempotencyKey", "idempotencyKey must have 1 to 200 characters")
	}
	to, err := whatsapp.ChatJID(in.To)
	if err != nil {
		return nil, apperr.Invalid("to", "%v", err)
	}
	kind, text, media, err := s.content(in)
	if err != nil {
		return nil, err
	}
	var msg *ent.Message
	err = s.tx(ctx, func(ctx context.Context, c *ent.Client) error {
		ses, err := c.Session.Get(ctx, in.SessionID)
		if err != nil {
			return err
		}
		if in.IdempotencyKey != nil {
			prev, err := c.Message.Query().Where(message.SessionID(ses.ID), message.IdempotencyKey(*in.IdempotencyKey)).Only(ctx)
			if err == nil {
				msg = prev // a retry: the message already exists
				return nil
			}
			if !ent.IsNotFound(err) {
				return err
			}
		}
		if wait := s.pacer.Take(ses.ID.String()); wait > 0 {
			return &apperr.Error{Code: apperr.RateLimited, RetryAfter: wait, Message: fmt.Sprintf(
				"this session sends at most %d messages a minute: try again in %s", s.opts.SendPerMinute, wait.Round(time.Second))}
		}
		create := s.outbound(ctx, c, ses.ID, to, kind).SetNillableText(text).SetNillableIdempotencyKey(in.IdempotencyKey)
		if in.ReplyTo != nil {
			target, err := c.Message.Query().Where(message.ID(*in.ReplyTo), message.SessionID(ses.ID)).Only(ctx)
			if err != nil {
				return apperr.Invalid("replyTo", "replyTo must be a message of this session")
			}
			create.SetReplyTo(target.WaMessageID)
		}
		if media != nil {
			create.SetMediaData(media.data).SetMediaMime(media.mime).SetMediaSize(int64(len(media.data)))
			if media.name != "" {
				create.SetMediaName(media.name)
			}
		}
		if msg, err = create.Save(ctx); err != nil {
			return err
		}
		err = audit.Record(ctx, c, audit.Entry{Action: "message.send", TargetType: "Message", TargetID: msg.ID,
			Details: map[string]any{"session": ses.ID, "to": to, "kind": kind}})
		if err != nil {
			return err
		}
		database.AfterCommit(ctx, func() { s.manager.Wake(ses.ID) })
		return nil
	})
	if ent.IsConstraintError(err) && in.IdempotencyKey != nil {
		// A concurrent retry with the same key won the race: answer with its message.
		return database.Client(ctx, s.client).Message.Query().
			Where(message.SessionID(in.SessionID), message.IdempotencyKey(*in.IdempotencyKey)).Only(ctx)
	}
	return msg, err
}

// outbound starts a PENDING outgoing message: its WhatsApp ID is chosen now, so a retry
// after a crash sends it under the same ID; it records who sent it.
func (s *Service) outbound(ctx context.Context, c *ent.Client, session gid.ID, chat string, kind message.Kind) *ent.MessageCreate {
	create := c.Message.Create().SetSessionID(session).SetChatJid(chat).SetFromMe(true).
		SetDirection(message.DirectionOUTBOUND).SetKind(kind).SetStatus(message.StatusPENDING).
		SetWaMessageID(newWAMessageID()).SetTimestamp(s.opts.Now())
	switch v := viewer.FromContext(ctx); {
	case v.IsUser():
		create.SetSentByID(v.UserID)
	case v.Kind == viewer.KindAPIKey:
		create.SetSentByAPIKeyID(v.APIKeyID)
	}
	return create
}

type upload struct {
	data       []byte
	mime, name string
}

// content checks the text and attachment of a message and derives its kind.
func (s *Service) content(in SendMessageInput) (message.Kind, *string, *upload, error) {
	if in.Media == nil {
		if in.Text == nil || strings.TrimSpace(*in.Text) == "" {
			return "", nil, nil, apperr.Invalid("text", "give text or media")
		}
		if !utf8.ValidString(*in.Text) || len(*in.Text) > maxTextLen {
			return "", nil, nil, apperr.Invalid("text", "the text must be valid UTF-8 of at most %d bytes", maxTextLen)
		}
		return message.KindTEXT, in.Text, nil, nil
	}
	if in.Media.Size > s.opts.MaxMediaBytes {
		return "", nil, nil, apperr.Invalid("media", "the attachment is larger than %d bytes", s.opts.MaxMediaBytes)
	}
	data, err := io.ReadAll(io.LimitReader(in.Media.File, s.opts.MaxMediaBytes+1))
	if err != nil {
		return "", nil, nil, apperr.Invalid("media", "reading the attachment: %v", err)
	}
	if int64(len(data)) > s.opts.MaxMediaBytes {
		return "", nil, nil, apperr.Invalid("media", "the attachment is larger than %d bytes", s.opts.MaxMediaBytes)
	}
	if len(data) == 0 {
		return "", nil, nil, apperr.Invalid("media", "the attachment is empty")
	}
	mime := in.Media.ContentType
	if mime == "" || mime == "application/octet-stream" {
		mime = http.DetectContentType(data)
	}
	mime, _, _ = strings.Cut(mime, ";")
	caption := in.Caption
	if caption == nil {
		caption = in.Text
	}
	return mediaKind(mime), caption, &upload{data: data, mime: mime, name: in.Media.Filename}, nil
}

func mediaKind(mime string) message.Kind {
	switch {
	case mime == "image/webp":
		return message.KindSTICKER
	case strings.HasPrefix(mime, "image/"):
		return message.KindIMAGE
	case strings.HasPrefix(mime, "video/"):
		return message.KindVIDEO
	case strings.HasPrefix(mime, "audio/"):
		return message.KindAUDIO
	}
	return message.KindDOCUMENT
}

// MarkReadInput names messages of one chat to mark read.
type MarkReadInput struct {
	SessionID  gid.ID
	ChatJID    string
	MessageIDs []gid.ID
}

// MarkRead marks received messages read on WhatsApp (their senders see blue ticks).
func (s *Service) MarkRead(ctx context.Context, in MarkReadInput) (bool, error) {
	if err := rule.Require(viewer.FromContext(ctx), viewer.PermSendMessages); err != nil {
		return false, err
	}
	if len(in.MessageIDs) == 0 || len(in.MessageIDs) > 100 {
		return false, apperr.Invalid("messageIDs", "give 1 to 100 message ids")
	}
	c := database.Client(ctx, s.client)
	ses, err := c.Session.Get(ctx, in.SessionID)
	if err != nil {
		return false, err
	}
	msgs, err := c.Message.Query().Where(message.IDIn(in.MessageIDs...), message.SessionID(ses.ID),
		message.ChatJid(in.ChatJID), message.DirectionEQ(message.DirectionINBOUND)).All(ctx)
	if err != nil {
		return false, err
	}
	if len(msgs) != len(in.MessageIDs) {
		return false, apperr.New(apperr.NotFound, "some messages are not received messages of this chat")
	}
	bySender := map[string][]string{}
	for _, m := range msgs {
		bySender[m.SenderJid] = append(bySender[m.SenderJid], m.WaMessageID)
	}
	for sender, ids := range bySender {
		if err := s.manager.MarkRead(ctx, ses, in.ChatJID, sender, ids); err != nil {
			return false, engineError(err, "sessionID")
		}
	}
	err = c.Chat.Update().Where(chat.SessionID(ses.ID), chat.Jid(in.ChatJID)).SetUnreadCount(0).
		Exec(viewer.System(ctx, "mark-read"))
	return err == nil, err
}

// ReactInput reacts to a message; an empty emoji removes the reaction.
type ReactInput struct {
	SessionID gid.ID
	ChatJID   string
	MessageID gid.ID
	Emoji     string
}

// React sends a reaction, queued like any message.
func (s *Service) React(ctx context.Context, in ReactInput) (*ent.Message, error) {
	v := viewer.FromContext(ctx)
	if err := rule.Require(v, viewer.PermSendMessages); err != nil {
		return nil, err
	}
	if utf8.RuneCountInString(in.Emoji) > 10 {
		return nil, apperr.Invalid("emoji", "emoji must be one emoji, or empty to remove a reaction")
	}
	var msg *ent.Message
	err := s.tx(ctx, func(ctx context.Context, c *ent.Client) error {
		target, err := c.Message.Query().Where(message.ID(in.MessageID), message.SessionID(in.SessionID),
			message.ChatJid(in.ChatJID)).WithSession().Only(ctx)
		if err != nil {
			return err
		}
		create := s.outbound(ctx, c, in.SessionID, in.ChatJID, message.KindREACTION).SetText(in.Emoji).
			SetTargetWaID(target.WaMessageID)
		if msg, err = create.Save(ctx); err != nil {
			return err
		}
		database.AfterCommit(ctx, func() { s.manager.Wake(in.SessionID) })
		return audit.Record(ctx, c, audit.Entry{Action: "message.react", TargetType: "Message", TargetID: target.ID,
			Details: map[string]any{"emoji": in.Emoji}})
	})
	return msg, err
}

// SimulateIncomingMessageInput is a message a sandbox session receives from a number.
type SimulateIncomingMessageInput struct {
	SessionID gid.ID
	From      string
	Text      string
}

// SimulateIncomingMessagesInput is messages a sandbox session receives together, in order
// (a backlog, as a phone that was offline receives it).
type SimulateIncomingMessagesInput struct {
	SessionID gid.ID
	Messages  []SimulatedMessageInput
}

// SimulatedMessageInput is one of them.
type SimulatedMessageInput struct {
	From string
	Text string
}

// MaxSimulatedMessages bounds the messages of one simulation.
const MaxSimulatedMessages = 100

// SimulateIncomingMessage makes a connected sandbox session receive a text message.
func (s *Service) SimulateIncomingMessage(ctx context.Context, in SimulateIncomingMessageInput) (*ent.Message, error) {
	msgs, err := s.simulate(ctx, in.SessionID, []SimulatedMessageInput{{From: in.From, Text: in.Text}}, "")
	if err != nil {
		return nil, err
	}
	return msgs[0], nil
}

// SimulateIncomingMessages makes a connected sandbox session receive text messages, stored
// together (all or none), in order.
func (s *Service) SimulateIncomingMessages(ctx context.Context, in SimulateIncomingMessagesInput) ([]*ent.Message, error) {
	if n := len(in.Messages); n == 0 || n > MaxSimulatedMessages {
		return nil, apperr.Invalid("messages", "give 1 to %d messages, not %d", MaxSimulatedMessages, n)
	}
	return s.simulate(ctx, in.SessionID, in.Messages, "messages")
}

// simulate validates and injects msgs; errors about one of them name its field under list
// ("messages[2].text"), or the field itself when list is "".
func (s *Service) simulate(ctx context.Context, sessionID gid.ID, msgs []SimulatedMessageInput, list string) ([]*ent.Message, error) {
	c := database.Client(ctx, s.client)
	ses, err := s.manage(ctx, c, sessionID)
	if err != nil {
		return nil, err
	}
	if ses.Engine != session.EngineSANDBOX || s.sandbox == nil {
		return nil, apperr.Invalid("sessionID", "only SANDBOX sessions receive simulated messages")
	}
	field := func(i int, name string) string {
		if list == "" {
			return name
		}
		return fmt.Sprintf("%s[%d].%s", list, i, name)
	}
	sim := make([]whatsapp.Simulated, len(msgs))
	for i, m := range msgs {
		if strings.TrimSpace(m.Text) == "" || len(m.Text) > maxTextLen || !utf8.ValidString(m.Text) {
			return nil, apperr.Invalid(field(i, "text"), "the text must be 1 to %d bytes of UTF-8", maxTextLen)
		}
		if _, err := whatsapp.ChatJID(m.From); err != nil {
			return nil, apperr.Invalid(field(i, "from"), "%v", err)
		}
		sim[i] = whatsapp.Simulated{From: m.From, Text: m.Text}
	}
	ids, stored, err := s.manager.Simulate(ctx, ses, sim)
	if err != nil {
		return nil, engineError(err, cmp.Or(list, "from"))
	}
	if stored != nil {
		return stored, nil
	}
	found, err := c.Message.Query().Where(message.SessionID(ses.ID), message.WaMessageIDIn(ids...)).All(ctx)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*ent.Message, len(found))
	for _, m := range found {
		byID[m.WaMessageID] = m
	}
	out := make([]*ent.Message, len(ids))
	for i, id := range ids {
		if out[i] = byID[id]; out[i] == nil {
			return nil, fmt.Errorf("simulated message %s was not stored", id)
		}
	}
	return out, nil
}

// Messages pages a session's messages, newest first, optionally of one chat.
func (s *Service) Messages(ctx context.Context, ses *ent.Session, chatJID *string, p page.Args) (*ent.MessageConnection, error) {
	p, err := p.BoundedBy(page.ByTime)
	if err != nil {
		return nil, err
	}
	q := ses.QueryMessages().Unique(false) // see Chats
	if chatJID != nil {
		q.Where(message.ChatJid(*chatJID))
	}
	newestFirst := &ent.MessageOrder{Field: ent.MessageOrderFieldTimestamp, Direction: entgql.OrderDirectionDesc}
	return q.Paginate(ctx, p.After, p.First, p.Before, p.Last, ent.WithMessageOrder(newestFirst))
}

// Chats pages a session's chats, most recent first.
func (s *Service) Chats(ctx context.Context, ses *ent.Session, p page.Args) (*ent.ChatConnection, error) {
	p, err := p.BoundedBy(page.ByTime)
	if err != nil {
		return nil, err
	}
	recent := &ent.ChatOrder{Field: ent.ChatOrderFieldLastMessageAt, Direction: entgql.OrderDirectionDesc}
	// Unique(false): a foreign-key edge lists no row twice, and the DISTINCT ent adds to
	// edge queries makes PostgreSQL sort every matching row before applying the LIMIT.
	return ses.QueryChats().Unique(false).Paginate(ctx, p.After, p.First, p.Before, p.Last, ent.WithChatOrder(recent))
}

// Media returns a message's attachment: held locally until sent, otherwise downloaded
// through the session from WhatsApp.
func (s *Service) Media(ctx context.Context, id gid.ID) (data []byte, mime, name string, err error) {
	msg, err := database.Client(ctx, s.client).Message.Query().Where(message.ID(id)).WithSession().Only(ctx)
	if err != nil {
		return nil, "", "", err
	}
	if msg.MediaMime == nil {
		return nil, "", "", apperr.New(apperr.NotFound, "this message has no attachment")
	}
	mime = *msg.MediaMime
	if msg.MediaName != nil {
		name = *msg.MediaName
	}
	// ent reads a NULL bytes column as a pointer to an empty slice: test the length.
	if msg.MediaData != nil && len(*msg.MediaData) > 0 {
		return *msg.MediaData, mime, name, nil
	}
	if msg.MediaDescriptor == nil || len(*msg.MediaDescriptor) == 0 {
		return nil, "", "", apperr.New(apperr.NotFound, "the attachment is no longer available")
	}
	data, err = s.manager.Download(ctx, msg.Edges.Session, whatsapp.MediaRef{Descriptor: *msg.MediaDescriptor, MimeType: mime})
	if errors.Is(err, whatsapp.ErrMediaExpired) {
		return nil, "", "", apperr.Wrap(apperr.NotFound, err, "the attachment has expired on WhatsApp's servers")
	}
	return data, mime, name, engineError(err, "id")
}
