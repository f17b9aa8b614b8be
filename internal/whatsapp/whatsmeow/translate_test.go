package whatsmeow

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"go.mau.fi/whatsmeow/proto/waCommon"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/wagate/wagate/internal/whatsapp"
)

var (
	me        = types.NewADJID("15550000001", 0, 17)
	alice     = types.NewJID("15550000002", types.DefaultUserServer)
	aliceDev  = types.NewADJID("15550000002", 0, 3)
	aliceLID  = types.NewJID("123456789012345", types.HiddenUserServer)
	group     = types.NewJID("120363000000000001", types.GroupServer)
	sent      = time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC)
	mediaKey  = bytes.Repeat([]byte{7}, 32)
	sha       = bytes.Repeat([]byte{1}, 32)
	encSHA    = bytes.Repeat([]byte{2}, 32)
	quoteInfo = &waE2E.ContextInfo{StanzaID: proto.String("3EB0QUOTED")}
)

// dm is a direct message from Alice's phone (device 3), with her LID known.
func dm() types.MessageInfo {
	return types.MessageInfo{MessageSource: types.MessageSource{Chat: alice, Sender: aliceDev, SenderAlt: aliceLID},
		ID: "3EB0MSG", PushName: "Alice", Timestamp: sent}
}

func inGroup() types.MessageInfo {
	return types.MessageInfo{MessageSource: types.MessageSource{Chat: group, Sender: aliceLID, SenderAlt: alice, IsGroup: true},
		ID: "3EB0GRP", PushName: "Alice", Timestamp: sent}
}

// message builds the event as whatsmeow does after decrypting: raw, then unwrapped.
func message(info types.MessageInfo, raw *waE2E.Message) *events.Message {
	return (&events.Message{Info: info, RawMessage: raw}).UnwrapRaw()
}

// fromAlice is the Inbound every dm() message starts as.
func fromAlice(kind whatsapp.MessageKind) whatsapp.Inbound {
	return whatsapp.Inbound{ID: "3EB0MSG", Chat: alice.String(), ChatAlt: aliceLID.String(), Sender: alice.String(),
		SenderAlt: aliceLID.String(), PushName: "Alice", Timestamp: sent, Kind: kind}
}

func withMedia(in whatsapp.Inbound, mime, name string) whatsapp.Inbound {
	in.Media = &whatsapp.MediaRef{MimeType: mime, FileName: name, Size: 1234, SHA256: sha}
	return in
}

func status(s whatsapp.Status, reason string) whatsapp.StatusChanged {
	return whatsapp.StatusChanged{Status: s, Reason: reason, At: now}
}

func TestTranslate(t *testing.T) {
	type tc struct {
		name string
		evt  any
		want whatsapp.Event // nil: nothing reported
		raw  string         // for OTHER: a field the raw JSON must contain
	}
	text := func(modify func(*whatsapp.Inbound)) whatsapp.Inbound {
		in := fromAlice(whatsapp.KindText)
		modify(&in)
		return in
	}
	fromMe := dm()
	fromMe.Chat, fromMe.Sender, fromMe.SenderAlt, fromMe.RecipientAlt, fromMe.IsFromMe = alice, me, types.EmptyJID, aliceLID, true

	messages := []tc{
		{name: "conversation", evt: message(dm(), &waE2E.Message{Conversation: proto.String("hi")}),
			want: text(func(in *whatsapp.Inbound) { in.Text = "hi" })},
		{name: "ephemeral text is unwrapped", evt: message(dm(), &waE2E.Message{EphemeralMessage: &waE2E.FutureProofMessage{
			Message: &waE2E.Message{Conversation: proto.String("eph")}}}),
			want: text(func(in *whatsapp.Inbound) { in.Text = "eph" })},
		{name: "sent from our phone", evt: message(fromMe, &waE2E.Message{Conversation: proto.String("mine")}),
			want: text(func(in *whatsapp.Inbound) {
				in.Text, in.FromMe, in.Sender, in.SenderAlt = "mine", true, types.NewJID("15550000001", types.DefaultUserServer).String(), ""
			})},
		{name: "group reply", evt: message(inGroup(), &waE2E.Message{ExtendedTextMessage: &waE2E.ExtendedTextMessage{
			Text: proto.String("agreed"), ContextInfo: quoteInfo}}),
			want: whatsapp.Inbound{ID: "3EB0GRP", Chat: group.String(), Sender: aliceLID.String(), SenderAlt: alice.String(),
				IsGroup: true, PushName: "Alice", Timestamp: sent, Kind: whatsapp.KindText, Text: "agreed", ReplyTo: "3EB0QUOTED"}},
		{name: "image", evt: message(dm(), &waE2E.Message{ImageMessage: &waE2E.ImageMessage{Caption: proto.String("look"),
			Mimetype: proto.String("image/jpeg"), URL: proto.String("https://mmg.whatsapp.net/x"), DirectPath: proto.String("/v/x"),
			MediaKey: mediaKey, FileSHA256: sha, FileEncSHA256: encSHA, FileLength: proto.Uint64(1234),
			JPEGThumbnail: []byte("thumb"), ContextInfo: quoteInfo}}),
			want: withMedia(text(func(in *whatsapp.Inbound) { in.Kind, in.Text, in.ReplyTo = whatsapp.KindImage, "look", "3EB0QUOTED" }), "image/jpeg", "")},
		{name: "video", evt: message(dm(), &waE2E.Message{VideoMessage: &waE2E.VideoMessage{Caption: proto.String("clip"),
			Mimetype: proto.String("video/mp4"), DirectPath: proto.String("/v/y"), MediaKey: mediaKey, FileSHA256: sha,
			FileEncSHA256: encSHA, FileLength: proto.Uint64(1234)}}),
			want: withMedia(text(func(in *whatsapp.Inbound) { in.Kind, in.Text = whatsapp.KindVideo, "clip" }), "video/mp4", "")},
		{name: "round video", evt: message(dm(), &waE2E.Message{PtvMessage: &waE2E.VideoMessage{
			Mimetype: proto.String("video/mp4"), DirectPath: proto.String("/v/p"), MediaKey: mediaKey, FileSHA256: sha,
			FileEncSHA256: encSHA, FileLength: proto.Uint64(1234)}}),
			want: withMedia(fromAlice(whatsapp.KindVideo), "video/mp4", "")},
		{name: "voice note", evt: message(dm(), &waE2E.Message{AudioMessage: &waE2E.AudioMessage{PTT: proto.Bool(true),
			Mimetype: proto.String("audio/ogg; codecs=opus"), DirectPath: proto.String("/v/a"), MediaKey: mediaKey,
			FileSHA256: sha, FileEncSHA256: encSHA, FileLength: proto.Uint64(1234)}}),
			want: withMedia(fromAlice(whatsapp.KindAudio), "audio/ogg; codecs=opus", "")},
		{name: "document with caption", evt: message(dm(), &waE2E.Message{DocumentWithCaptionMessage: &waE2E.FutureProofMessage{
			Message: &waE2E.Message{DocumentMessage: &waE2E.DocumentMessage{Caption: proto.String("the report"),
				FileName: proto.String("report.pdf"), Mimetype: proto.String("application/pdf"), DirectPath: proto.String("/v/d"),
				MediaKey: mediaKey, FileSHA256: sha, FileEncSHA256: encSHA, FileLength: proto.Uint64(1234)}}}}),
			want: withMedia(text(func(in *whatsapp.Inbound) { in.Kind, in.Text = whatsapp.KindDocument, "the report" }), "application/pdf", "report.pdf")},
		{name: "sticker", evt: message(dm(), &waE2E.Message{StickerMessage: &waE2E.StickerMessage{Mimetype: proto.String("image/webp"),
			DirectPath: proto.String("/v/s"), MediaKey: mediaKey, FileSHA256: sha, FileEncSHA256: encSHA, FileLength: proto.Uint64(1234)}}),
			want: withMedia(fromAlice(whatsapp.KindSticker), "image/webp", "")},
		{name: "location", evt: message(dm(), &waE2E.Message{LocationMessage: &waE2E.LocationMessage{
			DegreesLatitude: proto.Float64(52.52), DegreesLongitude: proto.Float64(13.405), Name: proto.String("Berlin"),
			Address: proto.String("Alexanderplatz")}}),
			want: text(func(in *whatsapp.Inbound) {
				in.Kind, in.Latitude, in.Longitude, in.Name, in.Text = whatsapp.KindLocation, 52.52, 13.405, "Berlin", "Alexanderplatz"
			})},
		{name: "contact", evt: message(dm(), &waE2E.Message{ContactMessage: &waE2E.ContactMessage{DisplayName: proto.String("Bob"),
			Vcard: proto.String("BEGIN:VCARD\nFN:Bob\nEND:VCARD")}}),
			want: text(func(in *whatsapp.Inbound) {
				in.Kind, in.Name, in.Text = whatsapp.KindContact, "Bob", "BEGIN:VCARD\nFN:Bob\nEND:VCARD"
			})},
		{name: "reaction", evt: message(dm(), &waE2E.Message{ReactionMessage: &waE2E.ReactionMessage{
			Key: &waCommon.MessageKey{ID: proto.String("3EB0TARGET"), FromMe: proto.Bool(true)}, Text: proto.String("👍")}}),
			want: text(func(in *whatsapp.Inbound) {
				in.Kind, in.TargetID, in.Text = whatsapp.KindReaction, "3EB0TARGET", "👍"
			})},
		{name: "reaction removed", evt: message(dm(), &waE2E.Message{ReactionMessage: &waE2E.ReactionMessage{
			Key: &waCommon.MessageKey{ID: proto.String("3EB0TARGET")}, Text: proto.String("")}}),
			want: text(func(in *whatsapp.Inbound) { in.Kind, in.TargetID = whatsapp.KindReaction, "3EB0TARGET" })},
		{name: "poll v1", evt: message(dm(), &waE2E.Message{PollCreationMessage: &waE2E.PollCreationMessage{Name: proto.String("Lunch?"),
			Options: []*waE2E.PollCreationMessage_Option{{OptionName: proto.String("Pizza")}, {OptionName: proto.String("Sushi")}}}}),
			want: text(func(in *whatsapp.Inbound) {
				in.Kind, in.Text, in.Options = whatsapp.KindPoll, "Lunch?", []string{"Pizza", "Sushi"}
			})},
		{name: "poll v3", evt: message(dm(), &waE2E.Message{PollCreationMessageV3: &waE2E.PollCreationMessage{Name: proto.String("When?"),
			Options: []*waE2E.PollCreationMessage_Option{{OptionName: proto.String("Now")}}}}),
			want: text(func(in *whatsapp.Inbound) { in.Kind, in.Text, in.Options = whatsapp.KindPoll, "When?", []string{"Now"} })},
		{name: "revoke", evt: message(dm(), &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{
			Type: waE2E.ProtocolMessage_REVOKE.Enum(), Key: &waCommon.MessageKey{ID: proto.String("3EB0GONE")}}}),
			want: text(func(in *whatsapp.Inbound) { in.Kind, in.Revoke, in.TargetID = whatsapp.KindOther, true, "3EB0GONE" })},
		{name: "edit", evt: message(dm(), &waE2E.Message{EditedMessage: &waE2E.FutureProofMessage{Message: &waE2E.Message{
			ProtocolMessage: &waE2E.ProtocolMessage{Type: waE2E.ProtocolMessage_MESSAGE_EDIT.Enum(),
				Key:           &waCommon.MessageKey{ID: proto.String("3EB0OLD")},
				EditedMessage: &waE2E.Message{Conversation: proto.String("fixed typo")}}}}}),
			want: text(func(in *whatsapp.Inbound) { in.Edit, in.TargetID, in.Text = true, "3EB0OLD", "fixed typo" })},
		{name: "unmodelled kind", evt: message(dm(), &waE2E.Message{ListMessage: &waE2E.ListMessage{Title: proto.String("Menu")}}),
			want: fromAlice(whatsapp.KindOther), raw: "listMessage"},
		{name: "sender key only", evt: message(inGroup(), &waE2E.Message{SenderKeyDistributionMessage: &waE2E.SenderKeyDistributionMessage{
			GroupID: proto.String(group.String())}})},
		{name: "other protocol message", evt: message(fromMe, &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{
			Type: waE2E.ProtocolMessage_APP_STATE_SYNC_KEY_SHARE.Enum()}})},
	}

	receipt := func(typ types.ReceiptType) *events.Receipt {
		return &events.Receipt{MessageSource: types.MessageSource{Chat: alice, Sender: aliceDev},
			MessageIDs: []string{"3EB0A", "3EB0B"}, Timestamp: sent, Type: typ}
	}
	wantReceipt := func(k whatsapp.ReceiptKind) whatsapp.Receipt {
		return whatsapp.Receipt{Chat: alice.String(), Sender: alice.String(), IDs: []string{"3EB0A", "3EB0B"}, Kind: k, Timestamp: sent}
	}
	others := []tc{
		{name: "delivered", evt: receipt(types.ReceiptTypeDelivered), want: wantReceipt(whatsapp.ReceiptDelivered)},
		{name: "read", evt: receipt(types.ReceiptTypeRead), want: wantReceipt(whatsapp.ReceiptRead)},
		{name: "read on our phone", evt: receipt(types.ReceiptTypeReadSelf), want: wantReceipt(whatsapp.ReceiptRead)},
		{name: "played", evt: receipt(types.ReceiptTypePlayed), want: wantReceipt(whatsapp.ReceiptPlayed)},
		{name: "retry receipt", evt: receipt(types.ReceiptTypeRetry)},
		{name: "sender receipt", evt: receipt(types.ReceiptTypeSender)},
		{name: "presence", evt: &events.Presence{From: alice, LastSeen: sent},
			want: whatsapp.Presence{From: alice.String(), Online: true, LastSeen: sent, Timestamp: now}},
		{name: "offline", evt: &events.Presence{From: alice, Unavailable: true},
			want: whatsapp.Presence{From: alice.String(), Timestamp: now}},
		{name: "typing", evt: &events.ChatPresence{MessageSource: types.MessageSource{Chat: group, Sender: aliceDev},
			State: types.ChatPresenceComposing},
			want: whatsapp.ChatState{Chat: group.String(), Sender: alice.String(), State: "composing"}},
		{name: "recording", evt: &events.ChatPresence{MessageSource: types.MessageSource{Chat: alice, Sender: alice},
			State: types.ChatPresenceComposing, Media: types.ChatPresenceMediaAudio},
			want: whatsapp.ChatState{Chat: alice.String(), Sender: alice.String(), State: "recording"}},
		{name: "paused", evt: &events.ChatPresence{MessageSource: types.MessageSource{Chat: alice, Sender: alice},
			State: types.ChatPresencePaused},
			want: whatsapp.ChatState{Chat: alice.String(), Sender: alice.String(), State: "paused"}},
		{name: "group renamed, members joined", evt: &events.GroupInfo{JID: group, Sender: &aliceDev, Timestamp: sent,
			Name: &types.GroupName{Name: "Team"}, Join: []types.JID{aliceLID}, Announce: &types.GroupAnnounce{IsAnnounce: true}},
			want: whatsapp.GroupUpdate{Group: group.String(), Sender: alice.String(),
				Changes: map[string]any{"name": "Team", "joined": []string{aliceLID.String()}, "announce": true}}},
		{name: "group notice with nothing modelled", evt: &events.GroupInfo{JID: group, Timestamp: sent}},
		{name: "joined a group", evt: &events.JoinedGroup{Reason: "invite", Sender: &alice, GroupInfo: types.GroupInfo{JID: group,
			GroupName: types.GroupName{Name: "Team"}, GroupTopic: types.GroupTopic{Topic: "Plans"},
			Participants: []types.GroupParticipant{{JID: alice}}}},
			want: whatsapp.GroupUpdate{Group: group.String(), Sender: alice.String(), Changes: map[string]any{
				"selfJoined": true, "name": "Team", "topic": "Plans", "participants": []string{alice.String()}, "reason": "invite"}}},
		{name: "call offer", evt: &events.CallOffer{BasicCallMeta: types.BasicCallMeta{From: aliceDev, CallID: "C1", Timestamp: sent}},
			want: whatsapp.Call{From: alice.String(), CallID: "C1", Kind: "offer", Timestamp: sent}},
		{name: "group video call", evt: &events.CallOfferNotice{BasicCallMeta: types.BasicCallMeta{From: aliceDev, CallID: "C2",
			GroupJID: group, Timestamp: sent}, Media: "video", Type: "group"},
			want: whatsapp.Call{From: alice.String(), CallID: "C2", Video: true, Group: group.String(), Kind: "offer", Timestamp: sent}},
		{name: "call ended", evt: &events.CallTerminate{BasicCallMeta: types.BasicCallMeta{From: aliceDev, CallID: "C1", Timestamp: sent},
			Reason: "timeout"},
			want: whatsapp.Call{From: alice.String(), CallID: "C1", Kind: "terminate", Timestamp: sent}},
	}

	connection := []tc{
		{name: "paired", evt: &events.PairSuccess{ID: me, LID: types.JID{User: "98765432109876", Device: 17, Server: types.HiddenUserServer}, BusinessName: "Shop"},
			want: whatsapp.Paired{DeviceJID: "15550000001:17@s.whatsapp.net", Phone: "+15550000001", LID: "98765432109876@lid", PushName: "Shop"}},
		{name: "connected", evt: &events.Connected{}, want: status(whatsapp.StatusConnected, "")},
		{name: "disconnected", evt: &events.Disconnected{}, want: status(whatsapp.StatusDisconnected, "connection lost; reconnecting")},
		{name: "keep-alive timeout", evt: &events.KeepAliveTimeout{ErrorCount: 3},
			want: status(whatsapp.StatusDisconnected, "keep-alive failed 3 times; reconnecting")},
		{name: "keep-alive restored", evt: &events.KeepAliveRestored{}, want: status(whatsapp.StatusConnected, "keep-alive restored")},
		{name: "logged out", evt: &events.LoggedOut{Reason: events.ConnectFailureLoggedOut},
			want: status(whatsapp.StatusLoggedOut, "the phone unlinked this device (401: logged out from another device)")},
		{name: "replaced", evt: &events.StreamReplaced{},
			want: status(whatsapp.StatusReplaced, "another client connected with this device's credentials")},
		{name: "outdated", evt: &events.ClientOutdated{},
			want: status(whatsapp.StatusOutdated, "WhatsApp rejected client version "+store.GetWAVersion().String()+" as outdated")},
		{name: "banned", evt: &events.TemporaryBan{Code: events.TempBanSentToTooManyPeople, Expire: time.Hour},
			want: status(whatsapp.StatusBanned, "You've been temporarily banned: 101: you sent too many messages to people who don't have you in their address books. The ban expires in 1h0m0s")},
		{name: "connect failure", evt: &events.ConnectFailure{Reason: events.ConnectFailureGeneric, Message: "bad request"},
			want: status(whatsapp.StatusFailed, "connect failure: 400: unknown error: bad request")},
		{name: "connect failure meaning logged out", evt: &events.ConnectFailure{Reason: events.ConnectFailureMainDeviceGone},
			want: status(whatsapp.StatusLoggedOut, "connect failure: 403: primary device was logged out")},
		{name: "QR codes (reported through the QR channel)", evt: &events.QR{Codes: []string{"a"}}},
		{name: "offline sync", evt: &events.OfflineSyncCompleted{Count: 3}},
	}

	e := sqliteEngine(t, Options{})
	r, rec := openRuntime(t, e, fakePaired(t, e, me))
	for _, group := range []struct {
		name  string
		cases []tc
	}{{"message", messages}, {"event", others}, {"connection", connection}} {
		t.Run(group.name, func(t *testing.T) {
			for _, c := range group.cases {
				t.Run(c.name, func(t *testing.T) {
					rec.reset()
					if failed := dispatch(r, c.evt); failed {
						t.Fatal("handler reported failure")
					}
					got := rec.all()
					if c.want == nil {
						if len(got) != 0 {
							t.Fatalf("reported %#v, want nothing", got)
						}
						return
					}
					if len(got) != 1 {
						t.Fatalf("reported %#v, want one %T", got, c.want)
					}
					ev := normalize(t, got[0], c.raw)
					if !reflect.DeepEqual(ev, c.want) {
						t.Fatalf("got  %#v\nwant %#v", ev, c.want)
					}
				})
			}
		})
	}
}

// normalize checks the parts of an Inbound that are opaque (the media descriptor, the raw
// JSON) and blanks them for comparison.
func normalize(t *testing.T, ev whatsapp.Event, raw string) whatsapp.Event {
	t.Helper()
	in, ok := ev.(whatsapp.Inbound)
	if !ok {
		return ev
	}
	if in.Media != nil {
		m, err := decodeDescriptor(in.Media.Descriptor)
		if err != nil {
			t.Fatalf("descriptor: %v", err)
		}
		if !bytes.Equal(m.GetMediaKey(), mediaKey) || !bytes.Equal(m.GetFileEncSHA256(), encSHA) || m.GetDirectPath() == "" {
			t.Fatalf("descriptor lost download fields: %v", m)
		}
		media := *in.Media
		media.Descriptor = nil
		in.Media = &media
	}
	if raw != "" {
		if !json.Valid(in.Raw) || !bytes.Contains(in.Raw, []byte(raw)) {
			t.Fatalf("raw %s lacks %q", in.Raw, raw)
		}
		in.Raw = nil
	}
	return in
}

func TestSinkFailureAsksForRedelivery(t *testing.T) {
	e := sqliteEngine(t, Options{})
	r, rec := openRuntime(t, e, fakePaired(t, e, me))
	msg := message(dm(), &waE2E.Message{Conversation: proto.String("hi")})

	rec.setFail(errors.New("database unavailable"))
	if !dispatch(r, msg) {
		t.Fatal("a message the sink refused was reported handled")
	}
	if dispatch(r, &events.OfflineSyncCompleted{}) {
		t.Fatal("an event the gateway ignores was reported failed")
	}
	rec.setFail(nil)
	if dispatch(r, msg) {
		t.Fatal("the redelivered message failed again")
	}
	if got := rec.all(); len(got) != 1 {
		t.Fatalf("stored %d events, want the redelivered message", len(got))
	}
}
