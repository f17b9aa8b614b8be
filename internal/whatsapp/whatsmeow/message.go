package whatsmeow

import (
	"strings"

	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/wagate/wagate/internal/whatsapp"
)

// inbound maps a decrypted message. Messages that only carry protocol traffic (key shares,
// history sync notices, sender keys) are whatsmeow's business and are not reported.
func inbound(e *events.Message) (whatsapp.Inbound, bool) {
	msg := e.Message
	if msg == nil {
		return whatsapp.Inbound{}, false
	}
	info := e.Info
	in := whatsapp.Inbound{
		ID: info.ID, Chat: jid(info.Chat), Sender: jid(info.Sender), SenderAlt: jid(info.SenderAlt),
		FromMe: info.IsFromMe, IsGroup: info.IsGroup, PushName: info.PushName, Timestamp: info.Timestamp,
	}
	// In a direct chat the other addressing form of the chat is the peer's: the sender's
	// when they wrote, the recipient's when we did.
	if !info.IsGroup {
		in.ChatAlt = in.SenderAlt
		if info.IsFromMe {
			in.ChatAlt = jid(info.RecipientAlt)
		}
	}
	if pm := msg.GetProtocolMessage(); pm != nil {
		switch pm.GetType() {
		case waE2E.ProtocolMessage_REVOKE:
			in.Kind, in.Revoke, in.TargetID = whatsapp.KindOther, true, pm.GetKey().GetID()
			return in, true
		case waE2E.ProtocolMessage_MESSAGE_EDIT:
			in.Edit, in.TargetID = true, pm.GetKey().GetID()
			if !content(&in, pm.GetEditedMessage()) {
				in.Kind = whatsapp.KindOther
			}
			return in, true
		}
		return whatsapp.Inbound{}, false
	}
	if content(&in, msg) {
		// Older edits carry the new content directly, under the edited message's ID.
		if e.IsEdit {
			in.Edit, in.TargetID = true, info.ID
		}
		return in, true
	}
	if controlOnly(msg) {
		return whatsapp.Inbound{}, false
	}
	in.Kind = whatsapp.KindOther
	raw := e.RawMessage
	if raw == nil {
		raw = msg
	}
	// Marshaling a message that was just decoded cannot fail; an empty Raw is all a
	// failure would cost.
	in.Raw, _ = protojson.Marshal(raw)
	return in, true
}

// content fills the kind-specific fields of in from msg; it reports false for kinds the
// gateway does not model.
func content(in *whatsapp.Inbound, msg *waE2E.Message) bool {
	var sub interface{ GetContextInfo() *waE2E.ContextInfo }
	switch {
	case msg.Conversation != nil:
		in.Kind, in.Text = whatsapp.KindText, msg.GetConversation()
	case msg.ExtendedTextMessage != nil:
		m := msg.ExtendedTextMessage
		in.Kind, in.Text, sub = whatsapp.KindText, m.GetText(), m
	case msg.ImageMessage != nil:
		m := msg.ImageMessage
		in.Kind, in.Text, sub = whatsapp.KindImage, m.GetCaption(), m
		in.Media = mediaRef(descImage, m, m.GetMimetype(), "", m.GetFileLength(), m.GetFileSHA256())
	case msg.VideoMessage != nil || msg.PtvMessage != nil:
		m := msg.VideoMessage
		if m == nil {
			m = msg.PtvMessage
		}
		in.Kind, in.Text, sub = whatsapp.KindVideo, m.GetCaption(), m
		in.Media = mediaRef(descVideo, m, m.GetMimetype(), "", m.GetFileLength(), m.GetFileSHA256())
	case msg.AudioMessage != nil:
		m := msg.AudioMessage
		in.Kind, sub = whatsapp.KindAudio, m
		in.Media = mediaRef(descAudio, m, m.GetMimetype(), "", m.GetFileLength(), m.GetFileSHA256())
	case msg.DocumentMessage != nil:
		m := msg.DocumentMessage
		in.Kind, in.Text, sub = whatsapp.KindDocument, m.GetCaption(), m
		in.Media = mediaRef(descDocument, m, m.GetMimetype(), m.GetFileName(), m.GetFileLength(), m.GetFileSHA256())
	case msg.StickerMessage != nil:
		m := msg.StickerMessage
		in.Kind, sub = whatsapp.KindSticker, m
		in.Media = mediaRef(descSticker, m, m.GetMimetype(), "", m.GetFileLength(), m.GetFileSHA256())
	case msg.LocationMessage != nil:
		m := msg.LocationMessage
		in.Kind, sub = whatsapp.KindLocation, m
		in.Latitude, in.Longitude, in.Name, in.Text = m.GetDegreesLatitude(), m.GetDegreesLongitude(), m.GetName(), m.GetAddress()
	case msg.LiveLocationMessage != nil:
		m := msg.LiveLocationMessage
		in.Kind, sub = whatsapp.KindLocation, m
		in.Latitude, in.Longitude, in.Text = m.GetDegreesLatitude(), m.GetDegreesLongitude(), m.GetCaption()
	case msg.ContactMessage != nil:
		m := msg.ContactMessage
		in.Kind, in.Name, in.Text, sub = whatsapp.KindContact, m.GetDisplayName(), m.GetVcard(), m
	case msg.ContactsArrayMessage != nil:
		m := msg.ContactsArrayMessage
		cards := make([]string, 0, len(m.GetContacts()))
		for _, c := range m.GetContacts() {
			cards = append(cards, c.GetVcard())
		}
		in.Kind, in.Name, in.Text, sub = whatsapp.KindContact, m.GetDisplayName(), strings.Join(cards, "\n"), m
	case msg.ReactionMessage != nil:
		m := msg.ReactionMessage
		in.Kind, in.TargetID, in.Text = whatsapp.KindReaction, m.GetKey().GetID(), m.GetText()
	case poll(msg) != nil:
		m := poll(msg)
		in.Kind, in.Text, sub = whatsapp.KindPoll, m.GetName(), m
		for _, o := range m.GetOptions() {
			in.Options = append(in.Options, o.GetOptionName())
		}
	default:
		return false
	}
	if sub != nil {
		in.ReplyTo = sub.GetContextInfo().GetStanzaID()
	}
	return true
}

// poll returns a poll creation of any version; they share one message type.
func poll(msg *waE2E.Message) *waE2E.PollCreationMessage {
	for _, p := range []*waE2E.PollCreationMessage{msg.PollCreationMessage, msg.PollCreationMessageV2,
		msg.PollCreationMessageV3, msg.PollCreationMessageV5} {
		if p != nil {
			return p
		}
	}
	return nil
}

// controlOnly reports whether msg carries nothing but encryption bookkeeping.
func controlOnly(msg *waE2E.Message) bool {
	rest := proto.Clone(msg).(*waE2E.Message)
	rest.SenderKeyDistributionMessage, rest.MessageContextInfo = nil, nil
	return proto.Size(rest) == 0
}
