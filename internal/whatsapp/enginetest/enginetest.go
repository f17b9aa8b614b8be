// Package enginetest is the contract every whatsapp.Engine meets: one suite, run in full
// against engines that can connect here (the sandbox) and in its offline part against the
// whatsmeow engine, which cannot reach WhatsApp from a test.
package enginetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/wagate/wagate/internal/whatsapp"
)

// Harness describes the engine under test.
type Harness struct {
	Engine whatsapp.Engine
	// PairedDevice returns the device JID of a paired but unconnected device the engine can
	// open.
	PairedDevice func(t *testing.T) string
	// Online engines really connect and pair; others run the offline part only.
	Online bool
}

// Recorder is a Sink that keeps every event, per session.
type Recorder struct {
	mu     sync.Mutex
	events map[string][]whatsapp.Event
	// Fail makes Deliver report failure (the event "was not stored").
	Fail bool
}

// Deliver implements whatsapp.Sink.
func (r *Recorder) Deliver(_ context.Context, session string, ev whatsapp.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Fail {
		return errors.New("recorder told to fail")
	}
	if r.events == nil {
		r.events = map[string][]whatsapp.Event{}
	}
	r.events[session] = append(r.events[session], ev)
	return nil
}

// Events returns what session received so far.
func (r *Recorder) Events(session string) []whatsapp.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]whatsapp.Event(nil), r.events[session]...)
}

// WaitFor waits until session received an event matching match, and returns it.
func (r *Recorder) WaitFor(t *testing.T, session, what string, match func(whatsapp.Event) bool) whatsapp.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, ev := range r.Events(session) {
			if match(ev) {
				return ev
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s among %v", session, what, r.Events(session))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Status matches a StatusChanged to s.
func Status(s whatsapp.Status) func(whatsapp.Event) bool {
	return func(ev whatsapp.Event) bool {
		sc, ok := ev.(whatsapp.StatusChanged)
		return ok && sc.Status == s
	}
}

// Run runs the contract.
func Run(t *testing.T, h Harness) {
	t.Run("offline", func(t *testing.T) { offline(t, h) })
	if h.Online {
		t.Run("online", func(t *testing.T) { online(t, h) })
	}
}

func notReady(err error) bool {
	return errors.Is(err, whatsapp.ErrNotConnected) || errors.Is(err, whatsapp.ErrNotPaired)
}

func offline(t *testing.T, h Harness) {
	ctx := context.Background()
	rec := &Recorder{}
	fresh, err := h.Engine.Open(ctx, whatsapp.SessionConfig{SessionID: "ses_fresh"}, rec)
	if err != nil {
		t.Fatalf("Open unpaired: %v", err)
	}
	defer fresh.Close()
	if _, err := fresh.Send(ctx, whatsapp.Outbound{ID: "3EB0AA", To: "4915112345678@s.whatsapp.net", Kind: whatsapp.KindText, Text: "x"}); !notReady(err) {
		t.Errorf("Send on an unpaired session: %v, want not connected/paired", err)
	}
	if err := fresh.MarkRead(ctx, "4915112345678@s.whatsapp.net", "4915112345678@s.whatsapp.net", []string{"X"}, time.Now()); !notReady(err) {
		t.Errorf("MarkRead on an unpaired session: %v", err)
	}
	if _, err := fresh.RequestPairingCode(ctx, "+4915112345678"); !errors.Is(err, whatsapp.ErrNotConnected) {
		t.Errorf("RequestPairingCode before Connect: %v, want ErrNotConnected", err)
	}
	if err := fresh.Logout(ctx); !errors.Is(err, whatsapp.ErrNotPaired) {
		t.Errorf("Logout of an unpaired session: %v, want ErrNotPaired", err)
	}

	device := h.PairedDevice(t)
	paired, err := h.Engine.Open(ctx, whatsapp.SessionConfig{SessionID: "ses_paired", DeviceJID: device}, rec)
	if err != nil {
		t.Fatalf("Open paired %s: %v", device, err)
	}
	defer paired.Close()
	if _, err := paired.Send(ctx, whatsapp.Outbound{ID: "3EB0AB", To: "4915112345678@s.whatsapp.net", Kind: whatsapp.KindText, Text: "x"}); !errors.Is(err, whatsapp.ErrNotConnected) {
		t.Errorf("Send on a paired, unconnected session: %v, want ErrNotConnected", err)
	}
	if _, err := paired.RequestPairingCode(ctx, "+4915112345678"); err == nil {
		t.Error("RequestPairingCode on a paired session succeeded")
	}
}

// pair connects an unpaired session and waits until it is CONNECTED; it returns its number.
func pair(t *testing.T, h Harness, rec *Recorder, id string) (whatsapp.Runtime, string) {
	t.Helper()
	rt, err := h.Engine.Open(context.Background(), whatsapp.SessionConfig{SessionID: id}, rec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	if err := rt.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec.WaitFor(t, id, "PAIRING", Status(whatsapp.StatusPairing))
	rec.WaitFor(t, id, "a QR code", func(ev whatsapp.Event) bool { qr, ok := ev.(whatsapp.QRCode); return ok && qr.Code != "" })
	p := rec.WaitFor(t, id, "Paired", func(ev whatsapp.Event) bool { _, ok := ev.(whatsapp.Paired); return ok }).(whatsapp.Paired)
	rec.WaitFor(t, id, "PairingEnded", func(ev whatsapp.Event) bool { e, ok := ev.(whatsapp.PairingEnded); return ok && e.Paired })
	rec.WaitFor(t, id, "CONNECTED", Status(whatsapp.StatusConnected))
	if p.DeviceJID == "" || whatsapp.PhoneOf(p.DeviceJID) != p.Phone {
		t.Fatalf("paired device %q and phone %q disagree", p.DeviceJID, p.Phone)
	}
	return rt, p.Phone
}

func online(t *testing.T, h Harness) {
	ctx := context.Background()
	rec := &Recorder{}
	a, aPhone := pair(t, h, rec, "ses_a")
	b, bPhone := pair(t, h, rec, "ses_b")
	bJID, _ := whatsapp.ChatJID(bPhone)
	aJID, _ := whatsapp.ChatJID(aPhone)

	res, err := a.Send(ctx, whatsapp.Outbound{ID: "3EB0C0FFEE", To: bJID, Kind: whatsapp.KindText, Text: "hello"})
	if err != nil || res.ID != "3EB0C0FFEE" {
		t.Fatalf("Send: %+v %v (the caller's message ID must be kept)", res, err)
	}
	in := rec.WaitFor(t, "ses_b", "the message", func(ev whatsapp.Event) bool {
		m, ok := ev.(whatsapp.Inbound)
		return ok && m.ID == "3EB0C0FFEE"
	}).(whatsapp.Inbound)
	if in.Text != "hello" || in.Chat != aJID || in.Sender != aJID || in.FromMe || in.Kind != whatsapp.KindText {
		t.Fatalf("received %+v", in)
	}
	rec.WaitFor(t, "ses_a", "the delivered receipt", func(ev whatsapp.Event) bool {
		r, ok := ev.(whatsapp.Receipt)
		return ok && r.Kind == whatsapp.ReceiptDelivered && len(r.IDs) == 1 && r.IDs[0] == "3EB0C0FFEE"
	})
	if err := b.MarkRead(ctx, aJID, aJID, []string{"3EB0C0FFEE"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	rec.WaitFor(t, "ses_a", "the read receipt", func(ev whatsapp.Event) bool {
		r, ok := ev.(whatsapp.Receipt)
		return ok && r.Kind == whatsapp.ReceiptRead && r.IDs[0] == "3EB0C0FFEE"
	})

	// Media round trip.
	img := []byte("\x89PNG fake image bytes")
	if _, err := a.Send(ctx, whatsapp.Outbound{ID: "3EB0IMG", To: bJID, Kind: whatsapp.KindImage, Text: "look",
		Media: img, MimeType: "image/png", FileName: "x.png"}); err != nil {
		t.Fatal(err)
	}
	pic := rec.WaitFor(t, "ses_b", "the image", func(ev whatsapp.Event) bool {
		m, ok := ev.(whatsapp.Inbound)
		return ok && m.ID == "3EB0IMG"
	}).(whatsapp.Inbound)
	if pic.Media == nil || pic.Media.MimeType != "image/png" || pic.Media.Size != int64(len(img)) {
		t.Fatalf("media: %+v", pic.Media)
	}
	if got, err := b.Download(ctx, *pic.Media); err != nil || string(got) != string(img) {
		t.Fatalf("Download: %q %v", got, err)
	}

	// A recipient that is offline gets the message when it comes back.
	if err := b.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	rec.WaitFor(t, "ses_b", "DISCONNECTED", Status(whatsapp.StatusDisconnected))
	if _, err := b.Send(ctx, whatsapp.Outbound{ID: "3EB0X", To: aJID, Kind: whatsapp.KindText, Text: "x"}); !errors.Is(err, whatsapp.ErrNotConnected) {
		t.Fatalf("Send while disconnected: %v", err)
	}
	if _, err := a.Send(ctx, whatsapp.Outbound{ID: "3EB0LATER", To: bJID, Kind: whatsapp.KindText, Text: "while you were away"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	rec.WaitFor(t, "ses_b", "the queued message", func(ev whatsapp.Event) bool {
		m, ok := ev.(whatsapp.Inbound)
		return ok && m.ID == "3EB0LATER"
	})

	// Unknown recipients and bad addresses are errors of the send.
	if _, err := a.Send(ctx, whatsapp.Outbound{ID: "3EB0NOPE", To: "19990000000@s.whatsapp.net", Kind: whatsapp.KindText, Text: "x"}); !errors.Is(err, whatsapp.ErrRecipientNotFound) {
		t.Fatalf("Send to a number not on the network: %v", err)
	}

	// Logout ends the pairing; pairing again gives a session that works.
	if err := b.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	rec.WaitFor(t, "ses_b", "LOGGED_OUT", Status(whatsapp.StatusLoggedOut))
	if err := b.Logout(ctx); !errors.Is(err, whatsapp.ErrNotPaired) {
		t.Fatalf("second Logout: %v", err)
	}
}
