package whatsapp

import "time"

// Event is one of the event types below.
type Event interface{ event() }

// StatusChanged reports a state change, with why.
type StatusChanged struct {
	Status Status
	Reason string
	At     time.Time
}

// QRCode is a pairing code to show as a QR image; it is replaced when Expires passes.
type QRCode struct {
	Code    string
	Expires time.Time
}

// PairingEnded reports how pairing finished: Paired, or a failure with Reason.
type PairingEnded struct {
	Paired bool
	Reason string
}

// Paired reports a successful pairing.
type Paired struct {
	DeviceJID string // the linked device, e.g. 4915112345678:12@s.whatsapp.net
	Phone     string // E.164, e.g. +4915112345678
	LID       string
	PushName  string
}

// MessageKind is the API's MessageKind.
type MessageKind string

// Message kinds.
const (
	KindText     MessageKind = "TEXT"
	KindImage    MessageKind = "IMAGE"
	KindVideo    MessageKind = "VIDEO"
	KindAudio    MessageKind = "AUDIO"
	KindDocument MessageKind = "DOCUMENT"
	KindSticker  MessageKind = "STICKER"
	KindLocation MessageKind = "LOCATION"
	KindContact  MessageKind = "CONTACT"
	KindReaction MessageKind = "REACTION"
	KindPoll     MessageKind = "POLL"
	KindOther    MessageKind = "OTHER"
)

// MediaRef is what an engine needs to download a message's media later: an opaque
// descriptor plus what the API shows.
type MediaRef struct {
	Descriptor []byte
	MimeType   string
	FileName   string
	Size       int64
	SHA256     []byte
}

// Inbound is a message received (or sent from the phone itself, FromMe).
type Inbound struct {
	ID        string
	Chat      string // chat JID; a group or a person
	ChatAlt   string // the other addressing form (phone number ↔ LID), when known
	Sender    string
	SenderAlt string
	FromMe    bool
	IsGroup   bool
	PushName  string
	Timestamp time.Time
	Kind      MessageKind
	Text      string // text, or the media caption
	ReplyTo   string // ID of the quoted message
	Media     *MediaRef
	// Reaction: TargetID and the emoji in Text ("" removes a reaction).
	TargetID string
	// Location
	Latitude, Longitude float64
	// Contact: vCard in Text, display name in Name. Poll: question in Text, options.
	Name    string
	Options []string
	// Edit or revoke of TargetID.
	Edit   bool
	Revoke bool
	// Raw is the message as JSON, for kinds the API does not model.
	Raw []byte
}

// ReceiptKind is what a receipt says about messages.
type ReceiptKind string

// Receipt kinds.
const (
	ReceiptDelivered ReceiptKind = "DELIVERED"
	ReceiptRead      ReceiptKind = "READ"
	ReceiptPlayed    ReceiptKind = "PLAYED"
)

// Receipt reports messages delivered to or read by a chat participant.
type Receipt struct {
	Chat, Sender string
	IDs          []string
	Kind         ReceiptKind
	Timestamp    time.Time
}

// Presence is a contact's availability.
type Presence struct {
	From      string
	Online    bool
	LastSeen  time.Time
	Timestamp time.Time
}

// ChatState is typing or recording in a chat.
type ChatState struct {
	Chat, Sender string
	State        string // "composing", "recording" or "paused"
}

// GroupUpdate is a change to a group: its name, topic, or participants.
type GroupUpdate struct {
	Group   string
	Sender  string
	Changes map[string]any
}

// Call is an incoming call (the gateway cannot take it).
type Call struct {
	From, CallID string
	Video        bool
	Group        string
	Kind         string // "offer", "terminate", …
	Timestamp    time.Time
}

func (StatusChanged) event() {}
func (QRCode) event()        {}
func (PairingEnded) event()  {}
func (Paired) event()        {}
func (Inbound) event()       {}
func (Receipt) event()       {}
func (Presence) event()      {}
func (ChatState) event()     {}
func (GroupUpdate) event()   {}
func (Call) event()          {}

// Outbound is a message to send.
type Outbound struct {
	ID      string // the WhatsApp message ID, chosen before sending
	To      string // chat JID
	Kind    MessageKind
	Text    string // text, or the caption of media
	ReplyTo string
	// Media bytes for IMAGE, VIDEO, AUDIO, DOCUMENT, STICKER.
	Media    []byte
	MimeType string
	FileName string
	// Reaction: the emoji in Text on TargetID, sent by TargetSender ("" for our own).
	TargetID     string
	TargetSender string
	TargetFromMe bool
}

// SendResult is the server's answer to a send.
type SendResult struct {
	ID        string
	Timestamp time.Time
}
