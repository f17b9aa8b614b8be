package whatsmeow

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/wagate/wagate/internal/whatsapp"
)

var codes = []string{"ref1,k,i,a", "ref2,k,i,a", "ref3,k,i,a", "ref4,k,i,a", "ref5,k,i,a", "ref6,k,i,a"}

func TestNotReadyErrors(t *testing.T) {
	ctx := context.Background()
	e := sqliteEngine(t, Options{})
	text := whatsapp.Outbound{ID: "3EB0A", To: "+1 555 000 0002", Kind: whatsapp.KindText, Text: "hi"}

	fresh, _ := openRuntime(t, e, "")
	if _, err := fresh.Send(ctx, text); !errors.Is(err, whatsapp.ErrNotPaired) {
		t.Errorf("Send unpaired: %v, want ErrNotPaired", err)
	}
	if err := fresh.MarkRead(ctx, alice.String(), "", []string{"X"}, now); !errors.Is(err, whatsapp.ErrNotPaired) {
		t.Errorf("MarkRead unpaired: %v, want ErrNotPaired", err)
	}
	if _, err := fresh.RequestPairingCode(ctx, "+4915112345678"); !errors.Is(err, whatsapp.ErrNotConnected) {
		t.Errorf("RequestPairingCode before Connect: %v, want ErrNotConnected", err)
	}
	if err := fresh.Logout(ctx); !errors.Is(err, whatsapp.ErrNotPaired) {
		t.Errorf("Logout unpaired: %v, want ErrNotPaired", err)
	}

	paired, _ := openRuntime(t, e, fakePaired(t, e, me))
	if _, err := paired.Send(ctx, text); !errors.Is(err, whatsapp.ErrNotConnected) {
		t.Errorf("Send offline: %v, want ErrNotConnected", err)
	}
	if err := paired.MarkRead(ctx, group.String(), alice.String(), []string{"X"}, now); !errors.Is(err, whatsapp.ErrNotConnected) {
		t.Errorf("MarkRead offline: %v, want ErrNotConnected", err)
	}
	if _, err := paired.RequestPairingCode(ctx, "+4915112345678"); !errors.Is(err, whatsapp.ErrAlreadyPaired) {
		t.Errorf("RequestPairingCode paired: %v, want ErrAlreadyPaired", err)
	}
	device := text
	device.To = aliceDev.String()
	if _, err := paired.Send(ctx, device); !errors.Is(err, whatsapp.ErrInvalidRecipient) {
		t.Errorf("Send to a device address: %v, want ErrInvalidRecipient", err)
	}
	if err := paired.MarkRead(ctx, "not a chat", "", []string{"X"}, now); err == nil {
		t.Error("MarkRead accepted an invalid chat")
	}
}

// startPairing runs Connect's pairing part, without the connection the test cannot open.
func startPairing(t *testing.T, r *runtime) {
	t.Helper()
	cli, err := r.beginPairing()
	if err != nil || cli == nil {
		t.Fatalf("beginPairing: %v, %v", cli, err)
	}
}

func TestQRPairing(t *testing.T) {
	ctx := context.Background()
	e := sqliteEngine(t, Options{})
	r, rec := openRuntime(t, e, "")
	startPairing(t, r)
	if cli, err := r.beginPairing(); err != nil || cli != nil {
		t.Fatalf("a second pairing started while one runs: %v, %v", cli, err)
	}
	dispatch(r, &events.QR{Codes: codes})
	rec.waitFor(t, "the first QR code", func(ev whatsapp.Event) bool { _, ok := ev.(whatsapp.QRCode); return ok })

	if _, err := r.RequestPairingCode(ctx, "12"); !errors.Is(err, whatsapp.ErrInvalidPhoneNumber) {
		t.Errorf("RequestPairingCode with a bad number: %v", err)
	}
	// The pairing socket is not really there: whatsmeow's request fails as not connected.
	if _, err := r.RequestPairingCode(ctx, "+49 151 1234 5678"); !errors.Is(err, whatsapp.ErrNotConnected) {
		t.Errorf("RequestPairingCode without a socket: %v, want ErrNotConnected", err)
	}

	dispatch(r, &events.PairSuccess{ID: me, LID: types.JID{User: "98765432109876", Device: 17, Server: types.HiddenUserServer}})
	rec.waitFor(t, "PairingEnded", isPairingEnded)
	want := []whatsapp.Event{
		status(whatsapp.StatusPairing, "waiting for a QR scan or a pairing code"),
		whatsapp.QRCode{Code: codes[0], Expires: now.Add(60 * time.Second)},
		whatsapp.Paired{DeviceJID: me.String(), Phone: "+15550000001", LID: "98765432109876@lid"},
		whatsapp.PairingEnded{Paired: true},
	}
	if got := rec.all(); !reflect.DeepEqual(got, want) {
		t.Fatalf("pairing reported\n%#v\nwant\n%#v", got, want)
	}
}

func TestQRTimeout(t *testing.T) {
	e := sqliteEngine(t, Options{})
	r, rec := openRuntime(t, e, "")
	startPairing(t, r)
	dispatch(r, &events.QR{Codes: codes})
	rec.waitFor(t, "the first QR code", func(ev whatsapp.Event) bool { _, ok := ev.(whatsapp.QRCode); return ok })
	// The server closing the pairing socket ends the QR channel with "timeout".
	dispatch(r, &events.Disconnected{})
	ended := rec.waitFor(t, "PairingEnded", isPairingEnded)
	if ended != (whatsapp.PairingEnded{Reason: "timeout"}) {
		t.Fatalf("pairing ended with %#v, want timeout", ended)
	}
	rec.waitFor(t, "DISCONNECTED", func(ev whatsapp.Event) bool {
		s, ok := ev.(whatsapp.StatusChanged)
		return ok && s.Status == whatsapp.StatusDisconnected && s.Reason == "the QR codes expired before a scan"
	})
	if _, err := r.RequestPairingCode(context.Background(), "+4915112345678"); !errors.Is(err, whatsapp.ErrNotConnected) {
		t.Fatalf("RequestPairingCode after the pairing ended: %v, want ErrNotConnected", err)
	}
}

func TestDisconnectStopsPairing(t *testing.T) {
	ctx := context.Background()
	e := sqliteEngine(t, Options{})
	r, rec := openRuntime(t, e, "")
	for _, withCodes := range []bool{false, true} {
		rec.reset()
		startPairing(t, r)
		before := r.client()
		if withCodes {
			dispatch(r, &events.QR{Codes: codes})
			rec.waitFor(t, "a QR code", func(ev whatsapp.Event) bool { _, ok := ev.(whatsapp.QRCode); return ok })
		}
		if err := r.Disconnect(ctx); err != nil {
			t.Fatal(err)
		}
		got := rec.all()
		tail := got[len(got)-2:]
		want := []whatsapp.Event{whatsapp.PairingEnded{Reason: "pairing stopped"}, status(whatsapp.StatusDisconnected, "disconnected on request")}
		if !reflect.DeepEqual(tail, want) {
			t.Fatalf("codes=%v: Disconnect reported %#v, want %#v", withCodes, got, want)
		}
		// The QR channel of the stopped pairing stays with the old client.
		if r.client() == before || r.client().Store != before.Store {
			t.Fatalf("codes=%v: Disconnect kept the pairing client or lost the device", withCodes)
		}
	}
}

func TestCloseIsQuiet(t *testing.T) {
	e := sqliteEngine(t, Options{})
	r, rec := openRuntime(t, e, "")
	startPairing(t, r)
	dispatch(r, &events.QR{Codes: codes})
	rec.waitFor(t, "a QR code", func(ev whatsapp.Event) bool { _, ok := ev.(whatsapp.QRCode); return ok })
	r.Close()
	for _, ev := range rec.all() {
		if isPairingEnded(ev) {
			t.Fatalf("Close reported %#v", ev)
		}
	}
	if err := r.Connect(context.Background()); !errors.Is(err, errClosed) {
		t.Fatalf("Connect after Close: %v", err)
	}
}
