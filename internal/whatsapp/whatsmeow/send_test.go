package whatsmeow

import (
	"errors"
	"fmt"
	"testing"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"

	"github.com/wagate/wagate/internal/whatsapp"
)

func TestTextMessage(t *testing.T) {
	plain := textMessage(whatsapp.Outbound{Kind: whatsapp.KindText, Text: "hi"})
	if plain.GetConversation() != "hi" || plain.ExtendedTextMessage != nil {
		t.Errorf("plain text: %v", plain)
	}
	reply := textMessage(whatsapp.Outbound{Kind: whatsapp.KindText, Text: "yes", ReplyTo: "3EB0Q"})
	if reply.GetExtendedTextMessage().GetText() != "yes" || reply.GetExtendedTextMessage().GetContextInfo().GetStanzaID() != "3EB0Q" {
		t.Errorf("reply: %v", reply)
	}
}

func TestMediaMessage(t *testing.T) {
	up := whatsmeow.UploadResponse{URL: "https://mmg.whatsapp.net/u", DirectPath: "/v/u", MediaKey: mediaKey,
		FileEncSHA256: encSHA, FileSHA256: sha, FileLength: 42}
	type media interface {
		whatsmeow.DownloadableMessage
		GetMimetype() string
		GetURL() string
		GetContextInfo() *waE2E.ContextInfo
	}
	for _, c := range []struct {
		kind    whatsapp.MessageKind
		get     func(*waE2E.Message) media
		caption func(*waE2E.Message) string
	}{
		{whatsapp.KindImage, func(m *waE2E.Message) media { return m.GetImageMessage() }, func(m *waE2E.Message) string { return m.GetImageMessage().GetCaption() }},
		{whatsapp.KindVideo, func(m *waE2E.Message) media { return m.GetVideoMessage() }, func(m *waE2E.Message) string { return m.GetVideoMessage().GetCaption() }},
		{whatsapp.KindAudio, func(m *waE2E.Message) media { return m.GetAudioMessage() }, nil},
		{whatsapp.KindDocument, func(m *waE2E.Message) media { return m.GetDocumentMessage() }, func(m *waE2E.Message) string { return m.GetDocumentMessage().GetCaption() }},
		{whatsapp.KindSticker, func(m *waE2E.Message) media { return m.GetStickerMessage() }, nil},
	} {
		out := whatsapp.Outbound{Kind: c.kind, Text: "cap", ReplyTo: "3EB0Q", Media: []byte("GIF89a..."), FileName: "f.bin"}
		msg := mediaMessage(out, up)
		m := c.get(msg)
		if m == nil || m.GetURL() != up.URL || m.GetDirectPath() != up.DirectPath || string(m.GetMediaKey()) != string(mediaKey) {
			t.Errorf("%s: %v", c.kind, msg)
			continue
		}
		if m.GetMimetype() != "image/gif" {
			t.Errorf("%s: sniffed MIME type %q", c.kind, m.GetMimetype())
		}
		if m.GetContextInfo().GetStanzaID() != "3EB0Q" {
			t.Errorf("%s: reply lost", c.kind)
		}
		if c.caption != nil && c.caption(msg) != "cap" {
			t.Errorf("%s: caption lost", c.kind)
		}
	}
	doc := mediaMessage(whatsapp.Outbound{Kind: whatsapp.KindDocument, Media: []byte("%PDF"), MimeType: "application/pdf", FileName: "a.pdf"}, up)
	if d := doc.GetDocumentMessage(); d.GetFileName() != "a.pdf" || d.GetMimetype() != "application/pdf" || d.Caption != nil {
		t.Errorf("document: %v", d)
	}
}

func TestReactionMessage(t *testing.T) {
	e := sqliteEngine(t, Options{})
	r, _ := openRuntime(t, e, fakePaired(t, e, me))
	cli := r.client()
	theirs, err := reactionMessage(cli, group, whatsapp.Outbound{Kind: whatsapp.KindReaction, Text: "👍", TargetID: "3EB0T", TargetSender: alice.String()})
	if err != nil {
		t.Fatal(err)
	}
	key := theirs.GetReactionMessage().GetKey()
	if key.GetFromMe() || key.GetID() != "3EB0T" || key.GetParticipant() != alice.String() || theirs.GetReactionMessage().GetText() != "👍" {
		t.Errorf("reaction to Alice's message: %v", theirs)
	}
	mine, err := reactionMessage(cli, alice, whatsapp.Outbound{Kind: whatsapp.KindReaction, Text: "", TargetID: "3EB0M", TargetFromMe: true})
	if err != nil || !mine.GetReactionMessage().GetKey().GetFromMe() {
		t.Errorf("removing a reaction to our message: %v, %v", mine, err)
	}
	if _, err := reactionMessage(cli, alice, whatsapp.Outbound{Kind: whatsapp.KindReaction, Text: "x"}); err == nil {
		t.Error("a reaction without a target was built")
	}
	if _, err := build(t.Context(), cli, alice, whatsapp.Outbound{Kind: whatsapp.KindPoll}); err == nil {
		t.Error("an unsupported kind was built")
	}
	if _, err := build(t.Context(), cli, alice, whatsapp.Outbound{Kind: whatsapp.KindImage}); err == nil {
		t.Error("an image without media was built")
	}
}

func TestMapError(t *testing.T) {
	for _, c := range []struct {
		in   error
		want error
	}{
		{whatsmeow.ErrNotLoggedIn, whatsapp.ErrNotPaired},
		{fmt.Errorf("failed to get device list: %w", whatsmeow.ErrNotConnected), whatsapp.ErrNotConnected},
		{&whatsmeow.IQError{Code: 429, Text: "rate-overlimit"}, whatsapp.ErrRateLimited},
		{whatsmeow.ErrRecipientADJID, whatsapp.ErrInvalidRecipient},
		{whatsmeow.ErrPhoneNumberIsNotInternational, whatsapp.ErrInvalidPhoneNumber},
		{whatsmeow.ErrMediaDownloadFailedWith410, whatsapp.ErrMediaExpired},
	} {
		got := mapError(c.in)
		if !errors.Is(got, c.want) {
			t.Errorf("mapError(%v) = %v, want %v", c.in, got, c.want)
		}
		var iq *whatsmeow.IQError
		if errors.As(got, &iq) {
			t.Errorf("mapError(%v) lets whatsmeow's error type through", c.in)
		}
	}
	other := errors.New("boom")
	if mapError(other) != other {
		t.Error("mapError changed an unknown error")
	}
}
