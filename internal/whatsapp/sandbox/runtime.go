package sandbox

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/wagate/wagate/internal/whatsapp"
)

// runtime is one sandbox session.
type runtime struct {
	net  *Network
	id   string
	sink whatsapp.Sink

	mu      sync.Mutex
	device  string // device JID once paired
	digits  string // the virtual number once paired
	online  bool
	pairing chan struct{} // closed to stop a running pairing
}

func (r *runtime) emit(ev whatsapp.Event) {
	// Sink errors mean "not stored"; the virtual network has no redelivery, so it logs
	// nothing and drops, as a phone offline for too long would.
	_ = r.sink.Deliver(context.Background(), r.id, ev)
}

func (r *runtime) status(s whatsapp.Status, reason string) {
	r.emit(whatsapp.StatusChanged{Status: s, Reason: reason, At: r.net.opts.Now()})
}

// Connect implements whatsapp.Runtime.
func (r *runtime) Connect(context.Context) error {
	r.mu.Lock()
	if r.online || r.pairing != nil {
		r.mu.Unlock()
		return nil
	}
	if r.device == "" {
		stop := make(chan struct{})
		r.pairing = stop
		r.mu.Unlock()
		r.net.enqueue(func() { r.status(whatsapp.StatusPairing, "waiting for a QR scan or a pairing code") })
		go r.showCodes(stop, "")
		return nil
	}
	r.mu.Unlock()
	r.net.enqueue(func() {
		r.status(whatsapp.StatusConnecting, "")
		r.goOnline()
	})
	return nil
}

// goOnline registers the number on the network and hands over what arrived meanwhile.
func (r *runtime) goOnline() {
	r.mu.Lock()
	r.online = true
	digits := r.digits
	r.mu.Unlock()
	r.net.mu.Lock()
	r.net.phones[digits] = r
	waiting := r.net.waiting[digits]
	delete(r.net.waiting, digits)
	r.net.mu.Unlock()
	r.status(whatsapp.StatusConnected, "")
	for _, handover := range waiting {
		handover(r)
	}
}

// showCodes rotates QR codes until the virtual phone scans one (after PairAfter), or until
// pairing is stopped. With a phone number, it pairs that number (pairing code flow).
func (r *runtime) showCodes(stop chan struct{}, phone string) {
	opts := r.net.opts
	pairAt := opts.Now().Add(opts.PairAfter)
	for seq := 0; ; seq++ {
		now := opts.Now()
		code := fmt.Sprintf("sandbox@%s,%d,%x", r.id, seq, sha256.Sum256([]byte(r.id+fmt.Sprint(seq, now.UnixNano()))))
		r.net.enqueue(func() { r.emit(whatsapp.QRCode{Code: code, Expires: now.Add(opts.QRValidity)}) })
		wait := opts.QRValidity
		if until := pairAt.Sub(now); until < wait {
			wait = until
		}
		select {
		case <-stop:
			return
		case <-time.After(max(wait, 0)):
		}
		if !opts.Now().Before(pairAt) {
			r.completePairing(stop, phone)
			return
		}
	}
}

func (r *runtime) completePairing(stop chan struct{}, phone string) {
	n := r.net
	n.mu.Lock()
	digits := strings.TrimPrefix(phone, "+")
	if digits == "" {
		digits = fmt.Sprint(n.next)
		n.next++
	}
	device := digits + ":1@" + whatsapp.UserServer
	n.devices[device] = digits
	n.mu.Unlock()

	r.mu.Lock()
	if r.pairing != stop {
		r.mu.Unlock()
		return // stopped meanwhile
	}
	r.pairing = nil
	r.device, r.digits = device, digits
	r.mu.Unlock()
	n.enqueue(func() {
		r.emit(whatsapp.Paired{DeviceJID: device, Phone: "+" + digits, PushName: "Sandbox " + digits[len(digits)-4:]})
		r.emit(whatsapp.PairingEnded{Paired: true})
		r.goOnline()
	})
}

// Disconnect implements whatsapp.Runtime.
func (r *runtime) Disconnect(context.Context) error {
	r.goOffline(whatsapp.StatusDisconnected, "disconnected on request")
	return nil
}

func (r *runtime) goOffline(s whatsapp.Status, reason string) {
	wasPairing := r.stop()
	r.net.enqueue(func() {
		if wasPairing {
			r.emit(whatsapp.PairingEnded{Reason: "pairing stopped"})
		}
		r.status(s, reason)
	})
}

// Logout implements whatsapp.Runtime.
func (r *runtime) Logout(context.Context) error {
	r.mu.Lock()
	paired := r.device != ""
	device := r.device
	r.mu.Unlock()
	if !paired {
		return whatsapp.ErrNotPaired
	}
	r.goOffline(whatsapp.StatusLoggedOut, "logged out on request")
	r.net.mu.Lock()
	delete(r.net.devices, device)
	r.net.mu.Unlock()
	r.mu.Lock()
	r.device, r.digits = "", ""
	r.mu.Unlock()
	return nil
}

// RequestPairingCode implements whatsapp.Runtime: the virtual phone "types" the code after
// PairAfter.
func (r *runtime) RequestPairingCode(_ context.Context, phone string) (string, error) {
	phone, err := whatsapp.NormalizePhone(phone)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.device != "":
		return "", whatsapp.ErrAlreadyPaired
	case r.pairing == nil:
		return "", whatsapp.ErrNotConnected
	}
	if r.net.lookup(phone[1:]) != nil {
		return "", fmt.Errorf("%s is already linked to another sandbox session", phone)
	}
	close(r.pairing)
	stop := make(chan struct{})
	r.pairing = stop
	go r.showCodes(stop, phone)
	h := sha256.Sum256([]byte(phone))
	const letters = "ABCDEFGHJKLMNPQRSTVWXYZ23456789"
	var code [9]byte
	for i, j := 0, 0; i < 9; i++ {
		if i == 4 {
			code[i] = '-'
			continue
		}
		code[i] = letters[int(h[j])%len(letters)]
		j++
	}
	return string(code[:]), nil
}

// Send implements whatsapp.Runtime: the peer receives the message, and the sender a
// delivered receipt, once the peer is online.
func (r *runtime) Send(_ context.Context, m whatsapp.Outbound) (whatsapp.SendResult, error) {
	r.mu.Lock()
	online, from := r.online, r.digits
	r.mu.Unlock()
	if !online {
		return whatsapp.SendResult{}, whatsapp.ErrNotConnected
	}
	user, server, _ := strings.Cut(m.To, "@")
	if server != whatsapp.UserServer {
		return whatsapp.SendResult{}, fmt.Errorf("%w: the sandbox has no groups", whatsapp.ErrInvalidRecipient)
	}
	n := r.net
	if !n.isNumber(user) {
		return whatsapp.SendResult{}, fmt.Errorf("%w: %s is not a sandbox number", whatsapp.ErrRecipientNotFound, "+"+user)
	}
	now := n.opts.Now()
	in := whatsapp.Inbound{
		ID: m.ID, Chat: jidOf(from), Sender: jidOf(from), Timestamp: now, Kind: m.Kind, Text: m.Text,
		ReplyTo: m.ReplyTo, TargetID: m.TargetID, PushName: "Sandbox " + from[len(from)-4:],
	}
	if len(m.Media) > 0 {
		desc := fmt.Sprintf("sandbox-media:%x", sha256.Sum256(append([]byte(m.ID), m.Media...)))
		n.mu.Lock()
		n.media[desc] = append([]byte(nil), m.Media...)
		n.mu.Unlock()
		sum := sha256.Sum256(m.Media)
		in.Media = &whatsapp.MediaRef{Descriptor: []byte(desc), MimeType: m.MimeType, FileName: m.FileName,
			Size: int64(len(m.Media)), SHA256: sum[:]}
	}
	n.enqueue(func() { n.deliver(r, user, in) })
	return whatsapp.SendResult{ID: m.ID, Timestamp: now}, nil
}

// isNumber reports whether digits is a paired sandbox number (online or not).
func (n *Network) isNumber(digits string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, d := range n.devices {
		if d == digits {
			return true
		}
	}
	return false
}

// deliver hands in to the number's session now, or when it next comes online.
func (n *Network) deliver(from *runtime, to string, in whatsapp.Inbound) {
	handover := func(target *runtime) {
		if err := target.sink.Deliver(context.Background(), target.id, in); err != nil {
			return // not stored: no delivered receipt, as on WhatsApp
		}
		from.emit(whatsapp.Receipt{Chat: jidOf(to), Sender: jidOf(to), IDs: []string{in.ID},
			Kind: whatsapp.ReceiptDelivered, Timestamp: n.opts.Now()})
	}
	n.mu.Lock()
	peer := n.phones[to]
	if peer == nil {
		n.waiting[to] = append(n.waiting[to], handover)
	}
	n.mu.Unlock()
	if peer != nil {
		handover(peer)
	}
}

// MarkRead implements whatsapp.Runtime: the sender gets read receipts.
func (r *runtime) MarkRead(_ context.Context, chat, sender string, ids []string, at time.Time) error {
	r.mu.Lock()
	online, me := r.online, r.digits
	r.mu.Unlock()
	if !online {
		return whatsapp.ErrNotConnected
	}
	if sender == "" {
		sender = chat
	}
	peerDigits, _, _ := strings.Cut(sender, "@")
	r.net.enqueue(func() {
		if peer := r.net.lookup(peerDigits); peer != nil {
			peer.emit(whatsapp.Receipt{Chat: jidOf(me), Sender: jidOf(me), IDs: ids, Kind: whatsapp.ReceiptRead, Timestamp: at})
		}
	})
	return nil
}

// Download implements whatsapp.Runtime.
func (r *runtime) Download(_ context.Context, media whatsapp.MediaRef) ([]byte, error) {
	r.net.mu.Lock()
	defer r.net.mu.Unlock()
	b, ok := r.net.media[string(media.Descriptor)]
	if !ok {
		return nil, whatsapp.ErrMediaExpired
	}
	return append([]byte(nil), b...), nil
}

// Close implements whatsapp.Runtime.
func (r *runtime) Close() { r.stop() }

// stop ends pairing and takes the number off the network; it reports whether pairing ran.
func (r *runtime) stop() (wasPairing bool) {
	r.mu.Lock()
	wasPairing = r.pairing != nil
	if wasPairing {
		close(r.pairing)
		r.pairing = nil
	}
	r.online = false
	digits := r.digits
	r.mu.Unlock()
	r.net.mu.Lock()
	if r.net.phones[digits] == r {
		delete(r.net.phones, digits)
	}
	r.net.mu.Unlock()
	return wasPairing
}
