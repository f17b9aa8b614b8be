package whatsmeow

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lib/pq"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/store/sqlstore"
)

// whatsmeow keeps the announced version, the device name and the Postgres array helper in
// package variables that every client reads while connecting. They are set once, before
// any client of this process connects; an engine that asks for different values fails
// instead of silently changing what running sessions announce.
var process struct {
	sync.Mutex
	version    string
	deviceName string
	lookup     sync.Once
}

func configureProcess(dialect string, opts Options) error {
	process.Lock()
	defer process.Unlock()
	switch dialect {
	case "postgres":
		sqlstore.PostgresArrayWrapper = pq.Array
	case "sqlite":
	default:
		return fmt.Errorf("unsupported database dialect %q for the WhatsApp store: want postgres or sqlite", dialect)
	}
	if v := opts.WAVersion; v != "" && v != process.version {
		if process.version != "" {
			return fmt.Errorf("the WhatsApp version is already pinned to %s in this process", process.version)
		}
		parsed, err := store.ParseVersion(v)
		if err != nil {
			return fmt.Errorf("parsing the WhatsApp version pin: %w", err)
		}
		setWAVersion(parsed)
		process.version = v
	}
	if n := opts.DeviceName; n != "" && n != process.deviceName {
		if process.deviceName != "" {
			return fmt.Errorf("the device name is already %q in this process", process.deviceName)
		}
		store.DeviceProps.Os = &n
		process.deviceName = n
	}
	return nil
}

// setWAVersion also updates the login payload: this whatsmeow version's SetWAVersion only
// changes the hash, and the server would still see the old version.
func setWAVersion(v store.WAVersionContainer) {
	store.SetWAVersion(v)
	store.BaseClientPayload.UserAgent.AppVersion = v.ProtoAppVersion()
}

// lookupVersion adopts web.whatsapp.com's current version, once per process, when it is
// newer than the one in use. Concurrent first connects wait for it, so none reads the
// version while it changes.
func (e *Engine) lookupVersion(ctx context.Context, log *slog.Logger) {
	if !e.opts.LookupVersion {
		return
	}
	process.lookup.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		latest, err := whatsmeow.GetLatestVersion(ctx, e.opts.HTTPClient)
		if err != nil {
			log.Warn("looking up the current WhatsApp web version; keeping the built-in one",
				"version", store.GetWAVersion().String(), "err", err)
			return
		}
		if current := store.GetWAVersion(); current.LessThan(*latest) {
			setWAVersion(*latest)
			log.Info("using the current WhatsApp web version", "version", latest.String(), "was", current.String())
		}
	})
}
