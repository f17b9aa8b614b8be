package whatsmeow

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mau.fi/whatsmeow/proto/waAdv"
	"go.mau.fi/whatsmeow/types"
	_ "modernc.org/sqlite" // driver "sqlite"

	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/testdb"
	"github.com/wagate/wagate/internal/whatsapp"
)

// now is the engine clock in tests.
var now = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// recorder is a Sink that keeps what it receives, or refuses it while fail is set.
type recorder struct {
	mu     sync.Mutex
	events []whatsapp.Event
	fail   error
}

func (r *recorder) Deliver(_ context.Context, _ string, ev whatsapp.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.events = append(r.events, ev)
	return nil
}

func (r *recorder) all() []whatsapp.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = nil
}

func (r *recorder) setFail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

// waitFor returns the first event matching match, waiting for asynchronous deliveries.
func (r *recorder) waitFor(t *testing.T, what string, match func(whatsapp.Event) bool) whatsapp.Event {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		for _, ev := range r.all() {
			if match(ev) {
				return ev
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s among %#v", what, r.all())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func isStatus(s whatsapp.Status) func(whatsapp.Event) bool {
	return func(ev whatsapp.Event) bool {
		sc, ok := ev.(whatsapp.StatusChanged)
		return ok && sc.Status == s
	}
}

func isPairingEnded(ev whatsapp.Event) bool {
	_, ok := ev.(whatsapp.PairingEnded)
	return ok
}

// openDB returns a fresh database of the dialect; PostgreSQL comes from testdb, which skips
// when no server is reachable (and fails in CI).
func openDB(t *testing.T, dialect string) *sql.DB {
	t.Helper()
	if dialect == "postgres" {
		return testdb.Open(t, "postgres", database.Options{}).SQL
	}
	dsn := "file:" + filepath.ToSlash(filepath.Join(t.TempDir(), "wa.db")) +
		"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEngine(t *testing.T, db *sql.DB, dialect string, opts Options) *Engine {
	t.Helper()
	if opts.Log == nil {
		opts.Log = quietLog()
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return now }
	}
	e, err := New(context.Background(), db, dialect, opts)
	if err != nil {
		t.Fatalf("New(%s): %v", dialect, err)
	}
	return e
}

func sqliteEngine(t *testing.T, opts Options) *Engine {
	t.Helper()
	return newEngine(t, openDB(t, "sqlite"), "sqlite", opts)
}

// fakePaired stores a device as pairing would, with a dummy account identity that
// satisfies the store's constraints, and returns its address.
func fakePaired(t *testing.T, e *Engine, id types.JID) string {
	t.Helper()
	d := e.container.NewDevice()
	d.ID = &id
	d.PushName = "Fake " + id.User
	d.Account = &waAdv.ADVSignedDeviceIdentity{Details: []byte{1}, AccountSignature: make([]byte, 64),
		AccountSignatureKey: make([]byte, 32), DeviceSignature: make([]byte, 64)}
	if err := d.Save(context.Background()); err != nil {
		t.Fatalf("saving fake device: %v", err)
	}
	return id.String()
}

func openRuntime(t *testing.T, e *Engine, deviceJID string) (*runtime, *recorder) {
	t.Helper()
	rec := &recorder{}
	rt, err := e.Open(context.Background(), whatsapp.SessionConfig{SessionID: "ses_test", DeviceJID: deviceJID}, rec)
	if err != nil {
		t.Fatalf("Open(%q): %v", deviceJID, err)
	}
	t.Cleanup(rt.Close)
	return rt.(*runtime), rec
}

// dispatch feeds evt through whatsmeow's own dispatcher, as a received frame would be.
func dispatch(r *runtime, evt any) (handlerFailed bool) {
	return r.client().DangerousInternals().DispatchEvent(evt)
}
