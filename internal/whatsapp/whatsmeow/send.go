package whatsmeow

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"google.golang.org/protobuf/proto"

	"github.com/wagate/wagate/internal/whatsapp"
)

// ready fails fast with the neutral error when cli cannot talk to WhatsApp, rather than
// letting whatsmeow time out on a socket that is not there.
func ready(cli *whatsmeow.Client) error {
	if cli.Store.ID == nil {
		return whatsapp.ErrNotPaired
	}
	if !cli.IsConnected() || !cli.IsLoggedIn() {
		return whatsapp.ErrNotConnected
	}
	return nil
}

// address parses a chat or sender; device addresses are refused.
func address(s string) (types.JID, error) {
	norm, err := whatsapp.ChatJID(s)
	if err != nil {
		return types.EmptyJID, err
	}
	j, err := types.ParseJID(norm)
	if err != nil {
		return types.EmptyJID, fmt.Errorf("%w: %v", whatsapp.ErrInvalidRecipient, err)
	}
	return j, nil
}

// Send implements whatsapp.Runtime. The caller's message ID goes to WhatsApp, so a retry of
// a send that did go out is recognised as the same message.
func (r *runtime) Send(ctx context.Context, m whatsapp.Outbound) (whatsapp.SendResult, error) {
	to, err := address(m.To)
	if err != nil {
		return whatsapp.SendResult{}, err
	}
	cli := r.client()
	if err := ready(cli); err != nil {
		return whatsapp.SendResult{}, err
	}
	msg, err := build(ctx, cli, to, m)
	if err != nil {
		return whatsapp.SendResult{}, err
	}
	resp, err := cli.SendMessage(ctx, to, msg, whatsmeow.SendRequestExtra{ID: m.ID})
	if err != nil {
		return whatsapp.SendResult{}, fmt.Errorf("sending message %s: %w", m.ID, mapError(err))
	}
	return whatsapp.SendResult{ID: resp.ID, Timestamp: resp.Timestamp}, nil
}

func build(ctx context.Context, cli *whatsmeow.Client, to types.JID, m whatsapp.Outbound) (*waE2E.Message, error) {
	switch m.Kind {
	case whatsapp.KindText:
		return textMessage(m), nil
	case whatsapp.KindReaction:
		return reactionMessage(cli, to, m)
	case whatsapp.KindImage, whatsapp.KindVideo, whatsapp.KindAudio, whatsapp.KindDocument, whatsapp.KindSticker:
		if len(m.Media) == 0 {
			return nil, fmt.Errorf("%w: a %s message needs media", whatsapp.ErrUnsendable, m.Kind)
		}
		up, err := cli.Upload(ctx, m.Media, uploadType(m.Kind))
		if err != nil {
			return nil, fmt.Errorf("uploading media: %w", mapError(err))
		}
		return mediaMessage(m, up), nil
	}
	return nil, fmt.Errorf("%w: the WhatsApp engine cannot send %s messages", whatsapp.ErrUnsendable, m.Kind)
}

func textMessage(m whatsapp.Outbound) *waE2E.Message {
	if m.ReplyTo == "" {
		return &waE2E.Message{Conversation: proto.String(m.Text)}
	}
	return &waE2E.Message{ExtendedTextMessage: &waE2E.ExtendedTextMessage{Text: proto.String(m.Text), ContextInfo: reply(m)}}
}

// reply quotes m.ReplyTo by ID; phones show the quote from their own copy of it.
func reply(m whatsapp.Outbound) *waE2E.ContextInfo {
	if m.ReplyTo == "" {
		return nil
	}
	return &waE2E.ContextInfo{StanzaID: proto.String(m.ReplyTo)}
}

// reactionMessage reacts to TargetID; an empty TargetSender means one of our own messages.
func reactionMessage(cli *whatsmeow.Client, chat types.JID, m whatsapp.Outbound) (*waE2E.Message, error) {
	if m.TargetID == "" {
		return nil, fmt.Errorf("%w: a reaction needs the ID of the message it reacts to", whatsapp.ErrUnsendable)
	}
	sender := types.EmptyJID
	if !m.TargetFromMe && m.TargetSender != "" {
		s, err := address(m.TargetSender)
		if err != nil {
			return nil, fmt.Errorf("the reacted message's sender: %w", err)
		}
		sender = s
	}
	return cli.BuildReaction(chat, sender, m.TargetID, m.Text), nil
}

func uploadType(k whatsapp.MessageKind) whatsmeow.MediaType {
	switch k {
	case whatsapp.KindVideo:
		return whatsmeow.MediaVideo
	case whatsapp.KindAudio:
		return whatsmeow.MediaAudio
	case whatsapp.KindDocument:
		return whatsmeow.MediaDocument
	}
	return whatsmeow.MediaImage // images and stickers
}

// mediaMessage describes uploaded media; phones refuse media without a MIME type, so one is
// sniffed when the caller gave none.
func mediaMessage(m whatsapp.Outbound, up whatsmeow.UploadResponse) *waE2E.Message {
	mime := m.MimeType
	if mime == "" {
		mime = http.DetectContentType(m.Media)
	}
	caption := optional(m.Text)
	switch m.Kind {
	case whatsapp.KindVideo:
		return &waE2E.Message{VideoMessage: &waE2E.VideoMessage{Caption: caption, Mimetype: &mime, ContextInfo: reply(m),
			URL: &up.URL, DirectPath: &up.DirectPath, MediaKey: up.MediaKey, FileEncSHA256: up.FileEncSHA256,
			FileSHA256: up.FileSHA256, FileLength: &up.FileLength}}
	case whatsapp.KindAudio:
		return &waE2E.Message{AudioMessage: &waE2E.AudioMessage{Mimetype: &mime, ContextInfo: reply(m),
			URL: &up.URL, DirectPath: &up.DirectPath, MediaKey: up.MediaKey, FileEncSHA256: up.FileEncSHA256,
			FileSHA256: up.FileSHA256, FileLength: &up.FileLength}}
	case whatsapp.KindDocument:
		return &waE2E.Message{DocumentMessage: &waE2E.DocumentMessage{Caption: caption, Mimetype: &mime,
			FileName: optional(m.FileName), Title: optional(m.FileName), ContextInfo: reply(m),
			URL: &up.URL, DirectPath: &up.DirectPath, MediaKey: up.MediaKey, FileEncSHA256: up.FileEncSHA256,
			FileSHA256: up.FileSHA256, FileLength: &up.FileLength}}
	case whatsapp.KindSticker:
		return &waE2E.Message{StickerMessage: &waE2E.StickerMessage{Mimetype: &mime, ContextInfo: reply(m),
			URL: &up.URL, DirectPath: &up.DirectPath, MediaKey: up.MediaKey, FileEncSHA256: up.FileEncSHA256,
			FileSHA256: up.FileSHA256, FileLength: &up.FileLength}}
	}
	return &waE2E.Message{ImageMessage: &waE2E.ImageMessage{Caption: caption, Mimetype: &mime, ContextInfo: reply(m),
		URL: &up.URL, DirectPath: &up.DirectPath, MediaKey: up.MediaKey, FileEncSHA256: up.FileEncSHA256,
		FileSHA256: up.FileSHA256, FileLength: &up.FileLength}}
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// MarkRead implements whatsapp.Runtime.
func (r *runtime) MarkRead(ctx context.Context, chat, sender string, ids []string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	chatJID, err := address(chat)
	if err != nil {
		return err
	}
	senderJID := types.EmptyJID
	if sender != "" {
		if senderJID, err = address(sender); err != nil {
			return err
		}
	}
	cli := r.client()
	if err := ready(cli); err != nil {
		return err
	}
	if err := cli.MarkRead(ctx, ids, at, chatJID, senderJID); err != nil {
		return fmt.Errorf("marking messages read: %w", mapError(err))
	}
	return nil
}
