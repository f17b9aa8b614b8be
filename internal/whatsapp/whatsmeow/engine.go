// Package whatsmeow is the real WhatsApp engine: whatsapp.Engine on top of
// go.mau.fi/whatsmeow, with the device store in the application's own database. Every
// whatsmeow type stays inside this package.
package whatsmeow

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types"

	"github.com/wagate/wagate/internal/whatsapp"
)

// Options tune the engine.
type Options struct {
	Log *slog.Logger
	// WAVersion pins the WhatsApp web version announced to the server ("2.3000.1031080782"),
	// for when WhatsApp rejects the library's built-in version as outdated. Process-wide.
	WAVersion string
	// LookupVersion fetches the current web version from web.whatsapp.com before the first
	// connect and uses it when newer than the built-in (or pinned) one. A failed lookup is
	// logged and ignored.
	LookupVersion bool
	// DeviceName is the name the phone lists under "Linked devices". Process-wide.
	DeviceName string
	// HTTPClient, when set, downloads media (and looks up the version).
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Engine implements whatsapp.Engine with whatsmeow. One engine serves every session of the
// process; its devices live in one store container on the shared pool.
type Engine struct {
	container *sqlstore.Container
	opts      Options
	log       *slog.Logger
}

// New opens the device store on db (dialect "postgres" or "sqlite") and upgrades its
// schema. The caller keeps owning db: the engine never closes it.
func New(ctx context.Context, db *sql.DB, dialect string, opts Options) (*Engine, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Log.With("engine", "whatsmeow")
	if err := configureProcess(dialect, opts); err != nil {
		return nil, err
	}
	container := sqlstore.NewWithDB(db, dialect, newWALogger(log, "Store"))
	if err := container.Upgrade(ctx); err != nil {
		return nil, fmt.Errorf("upgrading the WhatsApp device store: %w", err)
	}
	return &Engine{container: container, opts: opts, log: log}, nil
}

// Name implements whatsapp.Engine.
func (*Engine) Name() string { return "WHATSAPP" }

// Open implements whatsapp.Engine. A device JID the store no longer knows belongs to a device
// the phone unlinked meanwhile (whatsmeow deletes it then): the runtime reports LOGGED_OUT on
// Connect, and pairs a fresh device on the Connect after that.
func (e *Engine) Open(ctx context.Context, cfg whatsapp.SessionConfig, sink whatsapp.Sink) (whatsapp.Runtime, error) {
	dev, gone, err := e.device(ctx, cfg.DeviceJID)
	if err != nil {
		return nil, err
	}
	return newRuntime(ctx, e, cfg.SessionID, dev, gone, sink), nil
}

// device loads the session's device, or makes a fresh one that is saved only once paired.
func (e *Engine) device(ctx context.Context, deviceJID string) (dev *store.Device, gone bool, err error) {
	if deviceJID == "" {
		return e.container.NewDevice(), false, nil
	}
	jid, err := types.ParseJID(deviceJID)
	if err != nil || jid.Server != types.DefaultUserServer || jid.User == "" {
		return nil, false, fmt.Errorf("%q is not a WhatsApp device address", deviceJID)
	}
	dev, err = e.container.GetDevice(ctx, jid)
	if err != nil {
		return nil, false, fmt.Errorf("loading WhatsApp device %s: %w", deviceJID, err)
	}
	if dev == nil {
		return e.container.NewDevice(), true, nil
	}
	return dev, false, nil
}
