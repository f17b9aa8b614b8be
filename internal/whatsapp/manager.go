package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/session"
	"github.com/wagate/wagate/internal/events"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/viewer"
)

// ManagerOptions tune the manager.
type ManagerOptions struct {
	Log *slog.Logger
	// StartConcurrency bounds how many sessions connect at once at start-up; 0 means 4.
	StartConcurrency int
	// StartJitter spreads start-up connects over up to this long; 0 means none.
	StartJitter time.Duration
	// RetryEvery is how often the outbox is retried without a wake-up; 0 means 30 s.
	RetryEvery time.Duration
	// MaxAttempts is how often a message is tried before it FAILs; 0 means 5.
	MaxAttempts int
	Now         func() time.Time
	// Events is the event log every stored event is appended to.
	Events *events.Log
}

// Manager owns the live runtimes of this process: it connects sessions, persists what their
// engines report, and sends what the outbox holds.
type Manager struct {
	client  *ent.Client
	engines map[string]Engine
	opts    ManagerOptions
	log     *slog.Logger

	ctx    context.Context // parent of every runtime's work; never a request's
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	live map[gid.ID]*live

	pairing broadcaster
}

type live struct {
	rt    Runtime
	org   gid.ID
	wake  chan struct{}
	stop  chan struct{}
	drain sync.Mutex // one outbox drain at a time
}

// NewManager returns a manager for the given engines.
func NewManager(client *ent.Client, engines []Engine, opts ManagerOptions) *Manager {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.StartConcurrency <= 0 {
		opts.StartConcurrency = 4
	}
	if opts.RetryEvery <= 0 {
		opts.RetryEvery = 30 * time.Second
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Events == nil {
		opts.Events = events.New(client, opts.Log)
	}
	ctx, cancel := context.WithCancel(viewer.System(context.Background(), "session-runtime"))
	m := &Manager{client: client, engines: map[string]Engine{}, opts: opts, log: opts.Log,
		ctx: ctx, cancel: cancel, live: map[gid.ID]*live{}}
	for _, e := range engines {
		m.engines[e.Name()] = e
	}
	return m
}

// Engine returns the engine with the given name.
func (m *Manager) Engine(name string) (Engine, bool) {
	e, ok := m.engines[name]
	return e, ok
}

// Start reconnects every paired session that was connected, a few at a time.
func (m *Manager) Start(ctx context.Context) error {
	sessions, err := m.client.Session.Query().
		Where(session.Autoconnect(true), session.DeviceJidNotNil(),
			session.StatusNotIn(session.StatusLOGGED_OUT, session.StatusREPLACED, session.StatusBANNED,
				session.StatusOUTDATED, session.StatusFAILED)).
		All(viewer.System(ctx, "session-start"))
	if err != nil {
		return fmt.Errorf("listing sessions to start: %w", err)
	}
	sem := make(chan struct{}, m.opts.StartConcurrency)
	for _, s := range sessions {
		sem <- struct{}{}
		m.wg.Add(1)
		go func() {
			defer func() { <-sem; m.wg.Done() }()
			if j := m.opts.StartJitter; j > 0 {
				select {
				case <-time.After(rand.N(j)):
				case <-m.ctx.Done():
					return
				}
			}
			if err := m.connect(s); err != nil {
				m.log.Warn("starting session", "session", s.ID, "err", err)
			}
		}()
	}
	m.log.Info("sessions starting", "count", len(sessions))
	return nil
}

// Stop closes every runtime (without logging out) and waits for their goroutines.
func (m *Manager) Stop() {
	m.cancel()
	m.mu.Lock()
	all := m.live
	m.live = map[gid.ID]*live{}
	m.mu.Unlock()
	for _, l := range all {
		close(l.stop)
		l.rt.Close()
	}
	m.wg.Wait()
}

// runtime returns the session's live runtime, opening it if needed.
func (m *Manager) runtime(s *ent.Session) (*live, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.live[s.ID]; ok {
		return l, nil
	}
	if m.ctx.Err() != nil {
		return nil, errors.New("shutting down")
	}
	e, ok := m.engines[string(s.Engine)]
	if !ok {
		return nil, fmt.Errorf("engine %s is not available in this server", s.Engine)
	}
	cfg := SessionConfig{SessionID: string(s.ID)}
	if s.DeviceJid != nil {
		cfg.DeviceJID = *s.DeviceJid
	}
	rt, err := e.Open(m.ctx, cfg, m)
	if err != nil {
		return nil, fmt.Errorf("opening session %s: %w", s.ID, err)
	}
	l := &live{rt: rt, org: s.OrganizationID, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	m.live[s.ID] = l
	m.wg.Add(1)
	go m.sendLoop(s.ID, l)
	return l, nil
}

func (m *Manager) connect(s *ent.Session) error {
	l, err := m.runtime(s)
	if err != nil {
		return err
	}
	return l.rt.Connect(m.ctx)
}

// Connect connects a session, pairing it first when it has no device yet. Whether it
// reconnects after a restart is the session's autoconnect flag, which the caller saves.
func (m *Manager) Connect(_ context.Context, s *ent.Session) error {
	return m.connect(s)
}

// Disconnect closes a session's connection and keeps its pairing.
func (m *Manager) Disconnect(ctx context.Context, s *ent.Session) error {
	l, err := m.runtime(s)
	if err != nil {
		return err
	}
	return l.rt.Disconnect(ctx)
}

// Logout unlinks the session's device.
func (m *Manager) Logout(ctx context.Context, s *ent.Session) error {
	l, err := m.runtime(s)
	if err != nil {
		return err
	}
	return l.rt.Logout(ctx)
}

// Remove stops a session's runtime before it is deleted, unlinking its device when paired.
func (m *Manager) Remove(ctx context.Context, s *ent.Session) {
	if s.DeviceJid != nil {
		if err := m.Logout(ctx, s); err != nil && !errors.Is(err, ErrNotPaired) {
			m.log.Warn("logging out a deleted session", "session", s.ID, "err", err)
		}
	}
	m.mu.Lock()
	l, ok := m.live[s.ID]
	delete(m.live, s.ID)
	m.mu.Unlock()
	if ok {
		close(l.stop)
		l.rt.Close()
	}
}

// RequestPairingCode starts pairing by phone number.
func (m *Manager) RequestPairingCode(ctx context.Context, s *ent.Session, phone string) (string, error) {
	l, err := m.runtime(s)
	if err != nil {
		return "", err
	}
	return l.rt.RequestPairingCode(ctx, phone)
}

// MarkRead marks messages read on WhatsApp.
func (m *Manager) MarkRead(ctx context.Context, s *ent.Session, chat, sender string, ids []string) error {
	l, err := m.connected(s)
	if err != nil {
		return err
	}
	return l.rt.MarkRead(ctx, chat, sender, ids, m.opts.Now())
}

// Download fetches a message's media through its session.
func (m *Manager) Download(ctx context.Context, s *ent.Session, ref MediaRef) ([]byte, error) {
	l, err := m.runtime(s)
	if err != nil {
		return nil, err
	}
	return l.rt.Download(ctx, ref)
}

// Runtime returns the live runtime of a connected session.
func (m *Manager) Runtime(s *ent.Session) (Runtime, error) {
	l, err := m.connected(s)
	if err != nil {
		return nil, err
	}
	return l.rt, nil
}

func (m *Manager) connected(s *ent.Session) (*live, error) {
	m.mu.Lock()
	l, ok := m.live[s.ID]
	m.mu.Unlock()
	if !ok || s.Status != session.StatusCONNECTED {
		return nil, ErrNotConnected
	}
	return l, nil
}

// Wake makes the session send its pending messages now.
func (m *Manager) Wake(id gid.ID) {
	m.mu.Lock()
	l, ok := m.live[id]
	m.mu.Unlock()
	if ok {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// SubscribePairing streams a session's pairing updates until the final one, or until
// cancel is called.
func (m *Manager) SubscribePairing(id gid.ID) (<-chan *PairingUpdate, func()) {
	return m.pairing.subscribe(id)
}

// LogFailure logs a background action on a session that failed.
func (m *Manager) LogFailure(what string, id gid.ID, err error) {
	m.log.Warn(what, "session", id, "err", err)
}
