// Package whatsapp is the boundary between wagate and WhatsApp: the Engine interface that
// the real (whatsmeow) and the sandbox engines implement, with no library type crossing it,
// and the Manager that owns the live session runtimes.
package whatsapp

import (
	"context"
	"errors"
	"time"
)

// Status is a session's connection state; the values are those of the API's SessionStatus.
type Status string

// The session state machine: NEW → PAIRING → CONNECTING → CONNECTED ⇄ DISCONNECTED, and the
// terminal states, from which a session never reconnects by itself.
const (
	StatusNew          Status = "NEW"
	StatusPairing      Status = "PAIRING"
	StatusConnecting   Status = "CONNECTING"
	StatusConnected    Status = "CONNECTED"
	StatusDisconnected Status = "DISCONNECTED"
	StatusLoggedOut    Status = "LOGGED_OUT"
	StatusReplaced     Status = "REPLACED"
	StatusBanned       Status = "BANNED"
	StatusOutdated     Status = "OUTDATED"
	StatusFailed       Status = "FAILED"
)

// Terminal reports whether s needs a person (re-pairing, an upgrade, an appeal) before the
// session can connect again.
func (s Status) Terminal() bool {
	switch s {
	case StatusLoggedOut, StatusReplaced, StatusBanned, StatusOutdated, StatusFailed:
		return true
	}
	return false
}

// Errors engines return; the API maps them to clear codes.
var (
	ErrNotConnected       = errors.New("the session is not connected")
	ErrNotPaired          = errors.New("the session is not paired with a phone")
	ErrAlreadyPaired      = errors.New("the session is already paired")
	ErrInvalidRecipient   = errors.New("invalid recipient")
	ErrRecipientNotFound  = errors.New("the recipient is not on WhatsApp")
	ErrInvalidPhoneNumber = errors.New("invalid phone number: use international format, e.g. +4915112345678")
	ErrMediaExpired       = errors.New("the media has expired on WhatsApp's servers")
	ErrRateLimited        = errors.New("rate limited by WhatsApp")
	// ErrUnsendable marks a message the engine can never send as given (a kind it does not
	// support, media missing): retrying cannot help.
	ErrUnsendable = errors.New("the message cannot be sent")
)

// Engine creates session runtimes.
type Engine interface {
	// Name is the API's Engine value, e.g. "SANDBOX".
	Name() string
	// Open builds the runtime of one session without connecting it. An empty DeviceJID means
	// a fresh, unpaired device. Events of the runtime go to sink until Close.
	Open(ctx context.Context, cfg SessionConfig, sink Sink) (Runtime, error)
}

// SessionConfig identifies a session to its engine.
type SessionConfig struct {
	SessionID string
	// DeviceJID is the linked device's address, persisted at pairing ("" when unpaired).
	DeviceJID string
}

// Runtime is one live session. Its network lifetime belongs to the runtime, never to the
// context of the call that connected it.
type Runtime interface {
	// Connect starts the connection; an unpaired session starts QR pairing, whose codes
	// arrive as QRCode events.
	Connect(ctx context.Context) error
	// Disconnect closes the connection and keeps the pairing.
	Disconnect(ctx context.Context) error
	// Logout unlinks the device from the phone and forgets its credentials.
	Logout(ctx context.Context) error
	// RequestPairingCode pairs by phone number instead of QR: the user types the returned
	// code ("ABCD-EFGH") on the phone. The session must be connecting for pairing.
	RequestPairingCode(ctx context.Context, phone string) (string, error)
	// Send sends a message with the caller's message ID, so a retry never sends twice.
	Send(ctx context.Context, m Outbound) (SendResult, error)
	// MarkRead marks messages of one sender in a chat as read.
	MarkRead(ctx context.Context, chat, sender string, ids []string, at time.Time) error
	// Download fetches the media a message refers to.
	Download(ctx context.Context, media MediaRef) ([]byte, error)
	// Close stops the runtime without logging out.
	Close()
}

// Sink receives a runtime's events. Deliver must be fast and durable: an error means the
// event was not stored, and the engine makes WhatsApp deliver it again where it can.
type Sink interface {
	Deliver(ctx context.Context, sessionID string, ev Event) error
}

// BatchSink is a Sink that stores the messages a session received together (a backlog) in
// one go, in order, all or none: much faster than one by one. Engines use it when their
// sink has it.
type BatchSink interface {
	Sink
	DeliverAll(ctx context.Context, sessionID string, msgs []Inbound) error
}
