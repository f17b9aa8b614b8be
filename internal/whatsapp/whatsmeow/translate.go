package whatsmeow

import (
	"fmt"
	"time"

	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/wagate/wagate/internal/whatsapp"
)

// translate maps a whatsmeow event to the engine-neutral one; ok is false for events the
// gateway does not report (QR codes arrive through the QR channel instead). now stamps
// status changes and presence, which carry no time of their own.
func translate(evt any, now time.Time) (ev whatsapp.Event, ok bool) {
	switch e := evt.(type) {
	case *events.Message:
		return inbound(e)
	case *events.Receipt:
		return receipt(e)
	case *events.Presence:
		return whatsapp.Presence{From: jid(e.From), Online: !e.Unavailable, LastSeen: e.LastSeen, Timestamp: now}, true
	case *events.ChatPresence:
		return chatState(e), true
	case *events.GroupInfo:
		return groupInfo(e)
	case *events.JoinedGroup:
		return joinedGroup(e), true
	case *events.CallOffer:
		video := false
		if e.Data != nil {
			_, video = e.Data.GetOptionalChildByTag("video")
		}
		return call(e.BasicCallMeta, "offer", video), true
	case *events.CallOfferNotice:
		return call(e.BasicCallMeta, "offer", e.Media == "video"), true
	case *events.CallTerminate:
		return call(e.BasicCallMeta, "terminate", false), true
	case *events.PairSuccess:
		return whatsapp.Paired{DeviceJID: e.ID.String(), Phone: "+" + e.ID.User, LID: jid(e.LID), PushName: e.BusinessName}, true
	}
	if s, reason, ok := connection(evt); ok {
		return whatsapp.StatusChanged{Status: s, Reason: reason, At: now}, true
	}
	return nil, false
}

// connection maps the events that change a session's state.
func connection(evt any) (whatsapp.Status, string, bool) {
	switch e := evt.(type) {
	case *events.Connected:
		return whatsapp.StatusConnected, "", true
	case *events.KeepAliveRestored:
		return whatsapp.StatusConnected, "keep-alive restored", true
	case *events.Disconnected:
		return whatsapp.StatusDisconnected, "connection lost; reconnecting", true
	case *events.KeepAliveTimeout:
		return whatsapp.StatusDisconnected, fmt.Sprintf("keep-alive failed %d times; reconnecting", e.ErrorCount), true
	case *events.LoggedOut:
		return whatsapp.StatusLoggedOut, "the phone unlinked this device (" + e.Reason.String() + ")", true
	case *events.StreamReplaced:
		return whatsapp.StatusReplaced, "another client connected with this device's credentials", true
	case *events.ClientOutdated:
		return whatsapp.StatusOutdated, "WhatsApp rejected client version " + store.GetWAVersion().String() + " as outdated", true
	case *events.TemporaryBan:
		return whatsapp.StatusBanned, e.String(), true
	case *events.ConnectFailure:
		if e.Reason.IsLoggedOut() {
			return whatsapp.StatusLoggedOut, e.PermanentDisconnectDescription(), true
		}
		reason := e.PermanentDisconnectDescription()
		if e.Message != "" {
			reason += ": " + e.Message
		}
		return whatsapp.StatusFailed, reason, true
	case *events.CATRefreshError:
		return whatsapp.StatusFailed, "refreshing the crypto auth token failed: " + e.Error.Error(), true
	}
	return "", "", false
}

// receipt maps delivered, read and played receipts; the others (retries, our own devices'
// acknowledgements) say nothing about a message's state.
func receipt(e *events.Receipt) (whatsapp.Receipt, bool) {
	var kind whatsapp.ReceiptKind
	switch e.Type {
	case types.ReceiptTypeDelivered:
		kind = whatsapp.ReceiptDelivered
	case types.ReceiptTypeRead, types.ReceiptTypeReadSelf:
		kind = whatsapp.ReceiptRead
	case types.ReceiptTypePlayed:
		kind = whatsapp.ReceiptPlayed
	default:
		return whatsapp.Receipt{}, false
	}
	return whatsapp.Receipt{Chat: jid(e.Chat), Sender: jid(e.Sender), IDs: append([]string(nil), e.MessageIDs...),
		Kind: kind, Timestamp: e.Timestamp}, true
}

func chatState(e *events.ChatPresence) whatsapp.ChatState {
	state := string(e.State)
	if e.State == types.ChatPresenceComposing && e.Media == types.ChatPresenceMediaAudio {
		state = "recording"
	}
	return whatsapp.ChatState{Chat: jid(e.Chat), Sender: jid(e.Sender), State: state}
}

// groupInfo reports what changed; a notification with nothing the gateway models (community
// links, unknown nodes) is dropped.
func groupInfo(e *events.GroupInfo) (whatsapp.GroupUpdate, bool) {
	c := map[string]any{}
	if e.Name != nil {
		c["name"] = e.Name.Name
	}
	if e.Topic != nil {
		c["topic"] = e.Topic.Topic
	}
	if e.Locked != nil {
		c["locked"] = e.Locked.IsLocked
	}
	if e.Announce != nil {
		c["announce"] = e.Announce.IsAnnounce
	}
	if e.Ephemeral != nil {
		c["disappearingTimer"] = e.Ephemeral.DisappearingTimer
	}
	if e.MembershipApprovalMode != nil {
		c["joinApprovalRequired"] = e.MembershipApprovalMode.IsJoinApprovalRequired
	}
	if e.Delete != nil {
		c["deleted"], c["deleteReason"] = e.Delete.Deleted, e.Delete.DeleteReason
	}
	if e.NewInviteLink != nil {
		c["inviteLink"] = *e.NewInviteLink
	}
	if e.Suspended || e.Unsuspended {
		c["suspended"] = e.Suspended
	}
	for key, members := range map[string][]types.JID{"joined": e.Join, "left": e.Leave, "promoted": e.Promote, "demoted": e.Demote} {
		if len(members) > 0 {
			c[key] = jids(members)
		}
	}
	if len(c) == 0 {
		return whatsapp.GroupUpdate{}, false
	}
	return whatsapp.GroupUpdate{Group: jid(e.JID), Sender: jidPtr(e.Sender), Changes: c}, true
}

// joinedGroup reports that this account joined or was added to a group, with its metadata.
func joinedGroup(e *events.JoinedGroup) whatsapp.GroupUpdate {
	members := make([]string, 0, len(e.Participants))
	for _, p := range e.Participants {
		members = append(members, jid(p.JID))
	}
	c := map[string]any{"selfJoined": true, "name": e.Name, "topic": e.Topic, "participants": members}
	if e.Reason != "" {
		c["reason"] = e.Reason
	}
	return whatsapp.GroupUpdate{Group: jid(e.JID), Sender: jidPtr(e.Sender), Changes: c}
}

func call(m types.BasicCallMeta, kind string, video bool) whatsapp.Call {
	return whatsapp.Call{From: jid(m.From), CallID: m.CallID, Video: video, Group: jid(m.GroupJID), Kind: kind, Timestamp: m.Timestamp}
}

// jid is the address of a person or chat: without the device part, "" when empty.
func jid(j types.JID) string {
	if j.IsEmpty() {
		return ""
	}
	return j.ToNonAD().String()
}

func jidPtr(j *types.JID) string {
	if j == nil {
		return ""
	}
	return jid(*j)
}

func jids(js []types.JID) []string {
	out := make([]string, len(js))
	for i, j := range js {
		out[i] = jid(j)
	}
	return out
}
