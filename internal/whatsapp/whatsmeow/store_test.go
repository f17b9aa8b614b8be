package whatsmeow

import (
	"context"
	"errors"
	"testing"

	"go.mau.fi/whatsmeow/types"

	"github.com/wagate/wagate/internal/whatsapp"
)

func TestStoreLifecycle(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			db := openDB(t, dialect)
			e := newEngine(t, db, dialect, Options{})
			// A second engine (a restart) finds the schema current.
			newEngine(t, db, dialect, Options{})

			device := fakePaired(t, e, types.NewADJID("15550000001", 0, 17))
			fakePaired(t, e, types.NewADJID("15550000001", 0, 18)) // a second companion of the same phone
			r, rec := openRuntime(t, e, device)
			if got := r.client().Store.ID; got == nil || got.String() != device {
				t.Fatalf("opened device %v, want %s", got, device)
			}
			openRuntime(t, e, "") // a fresh device is stored only once paired
			if all, err := e.container.GetAllDevices(ctx); err != nil || len(all) != 2 {
				t.Fatalf("stored devices: %d, %v; want the 2 paired ones", len(all), err)
			}

			// Offline, Logout forgets the credentials; the other companion stays.
			if err := r.Logout(ctx); err != nil {
				t.Fatalf("Logout: %v", err)
			}
			rec.waitFor(t, "LOGGED_OUT", isStatus(whatsapp.StatusLoggedOut))
			jid, _ := types.ParseJID(device)
			if dev, err := e.container.GetDevice(ctx, jid); err != nil || dev != nil {
				t.Fatalf("device after Logout: %v, %v; want it deleted", dev, err)
			}
			if all, _ := e.container.GetAllDevices(ctx); len(all) != 1 {
				t.Fatalf("%d devices after Logout, want 1", len(all))
			}
			if err := r.Logout(ctx); !errors.Is(err, whatsapp.ErrNotPaired) {
				t.Fatalf("second Logout: %v, want ErrNotPaired", err)
			}

			// Pairing again uses a new device: the deleted one's stores point at gone rows.
			old := r.client().Store
			if _, err := r.beginPairing(); err != nil {
				t.Fatalf("pairing after Logout: %v", err)
			}
			if fresh := r.client().Store; fresh == old || fresh.Account != nil || fresh.ID != nil {
				t.Fatal("pairing after Logout reused the deleted device")
			}

			// A session whose device vanished reports LOGGED_OUT instead of connecting.
			gone, goneRec := openRuntime(t, e, device)
			if err := gone.Connect(ctx); err != nil {
				t.Fatalf("Connect of a vanished device: %v", err)
			}
			evs := goneRec.all()
			if len(evs) != 1 || !isStatus(whatsapp.StatusLoggedOut)(evs[0]) {
				t.Fatalf("Connect of a vanished device reported %#v, want LOGGED_OUT only", evs)
			}
			if _, err := gone.Send(ctx, whatsapp.Outbound{ID: "3EB0A", To: "15550000002@s.whatsapp.net", Kind: whatsapp.KindText, Text: "x"}); !errors.Is(err, whatsapp.ErrNotPaired) {
				t.Fatalf("Send of a vanished device: %v, want ErrNotPaired", err)
			}
		})
	}
}

func TestOpenRefusesNonDeviceAddresses(t *testing.T) {
	e := sqliteEngine(t, Options{})
	for _, bad := range []string{"15550000001", "120363000000000001@g.us"} {
		if _, err := e.Open(context.Background(), whatsapp.SessionConfig{SessionID: "s", DeviceJID: bad}, &recorder{}); err == nil {
			t.Errorf("Open(%q) succeeded", bad)
		}
	}
}

func TestNewRefusesUnknownDialect(t *testing.T) {
	if _, err := New(context.Background(), nil, "mysql", Options{Log: quietLog()}); err == nil {
		t.Fatal("New accepted dialect mysql")
	}
}
