package whatsmeow

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"go.mau.fi/whatsmeow/store"
)

func TestVersionPin(t *testing.T) {
	const pin = "2.3000.1099999999"
	db := openDB(t, "sqlite")
	newEngine(t, db, "sqlite", Options{WAVersion: pin})
	if got := store.GetWAVersion().String(); got != pin {
		t.Fatalf("announced version %s, want %s", got, pin)
	}
	// The login payload carries the version too; whatsmeow's SetWAVersion leaves it behind.
	if v := store.BaseClientPayload.GetUserAgent().GetAppVersion(); v.GetTertiary() != 1099999999 {
		t.Fatalf("login payload version %v", v)
	}
	newEngine(t, db, "sqlite", Options{WAVersion: pin}) // the same pin again is fine
	if _, err := New(t.Context(), db, "sqlite", Options{Log: quietLog(), WAVersion: "2.3000.1"}); err == nil {
		t.Fatal("a second, different pin was accepted")
	}
	if _, err := New(t.Context(), db, "sqlite", Options{Log: quietLog(), WAVersion: "2.x"}); err == nil {
		t.Fatal("a malformed pin was accepted")
	}
}

func TestWALogger(t *testing.T) {
	var buf bytes.Buffer
	l := newWALogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})), "Client").Sub("Socket")
	l.Debugf("frame %d", 1)
	l.Warnf("reconnecting in %s", "2s")
	out := buf.String()
	if strings.Contains(out, "frame") || !strings.Contains(out, `msg="reconnecting in 2s"`) || !strings.Contains(out, "module=Client/Socket") {
		t.Fatalf("log output %q", out)
	}
}
