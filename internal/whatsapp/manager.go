package whatsapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/session"
	"github.com/wagate/wagate/internal/cluster"
	"github.com/wagate/wagate/internal/database"
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
	// Cluster shares sessions with other replicas; nil runs every session here.
	Cluster *Cluster
	// IngestLanes is how many transactions storing what engines report (Deliver) and what
	// sends came to (the outbox) may run at once, each for its share of the organizations;
	// 0 means 1.
	IngestLanes int
	// BulkInbound stores received messages many at a time, in one statement per batch
	// (see bulkInbound). PostgreSQL only.
	BulkInbound bool
}

// Manager owns the live runtimes of this process: it connects sessions, persists what their
// engines report, and sends what the outbox holds.
type Manager struct {
	client  *ent.Client
	ingest  *database.GroupCommitter // stores what engines report, and send outcomes, with their events
	bulk    *bulkInbound             // nil: received messages are stored one by one
	engines map[string]Engine
	opts    ManagerOptions
	log     *slog.Logger

	ctx    context.Context // parent of every runtime's work; never a request's
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	live  map[gid.ID]*live
	pokes chan gid.ID // sessions the claim loop should look at

	// waiters are the commands sent to other replicas, by ID. Their own lock: the
	// notification goroutine takes it, and must never wait behind a runtime being opened.
	wmu     sync.Mutex
	waiters map[gid.ID]chan struct{}

	pairing broadcaster
}

type live struct {
	rt     Runtime
	org    gid.ID
	engine string
	wake   chan struct{}
	stop   chan struct{}
	drain  sync.Mutex // one outbox drain at a time
}

// poke wakes the session's worker: commands, then the outbox.
func (l *live) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *live) close() {
	close(l.stop)
	l.rt.Close()
}

// Injector is an engine that can make a session receive messages (the sandbox).
type Injector interface {
	// Inject makes the session receive msgs, in order and together (as a backlog arrives),
	// and returns their WhatsApp message IDs.
	Inject(ctx context.Context, rt Runtime, msgs []Injected) ([]string, error)
}

// Injected is a message to inject: its sender's number, and the message (the engine gives
// it its ID, addresses and time).
type Injected struct {
	From string
	In   Inbound
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
	m := &Manager{client: client, ingest: database.NewGroupCommitter(client, database.GroupCommitOptions{Lanes: opts.IngestLanes, Log: opts.Log}),
		engines: map[string]Engine{}, opts: opts, log: opts.Log,
		ctx: ctx, cancel: cancel, live: map[gid.ID]*live{}, waiters: map[gid.ID]chan struct{}{},
		pokes: make(chan gid.ID, 256)}
	if opts.BulkInbound {
		m.bulk = &bulkInbound{log: opts.Events}
	}
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

// Start reconnects every paired session that was connected, a few at a time. With a
// Cluster, it starts claiming the sessions no replica runs instead.
func (m *Manager) Start(ctx context.Context) error {
	if m.opts.Cluster != nil {
		return m.startCluster()
	}
	sessions, err := m.client.Session.Query().Where(wantsToRun()...).All(viewer.System(ctx, "session-start"))
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
			if _, err := m.ask(m.ctx, s, cmdConnect, nil, false); err != nil {
				m.log.Warn("starting session", "session", s.ID, "err", err)
			}
		}()
	}
	m.log.Info("sessions starting", "count", len(sessions))
	return nil
}

// Stop closes every runtime (without logging out), waits for their goroutines, and gives
// up their locks so other replicas take them over at once.
func (m *Manager) Stop() {
	m.cancel()
	m.closeAll()
	m.wg.Wait()
	if m.opts.Cluster != nil {
		m.opts.Cluster.Locks.Close()
	}
}

// closeAll closes every runtime of this replica and returns how many there were.
func (m *Manager) closeAll() int {
	m.mu.Lock()
	all := m.live
	m.live = map[gid.ID]*live{}
	m.mu.Unlock()
	for _, l := range all {
		l.close()
	}
	return len(all)
}

// runtime opens the session's runtime; the caller holds its lock. Opening loads the device
// from the database, so it happens outside the manager's mutex.
func (m *Manager) runtime(s *ent.Session) (*live, error) {
	if l, ok := m.lookup(s.ID); ok {
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
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.live[s.ID]; ok { // opened meanwhile by another caller
		rt.Close()
		return l, nil
	}
	if m.ctx.Err() != nil {
		rt.Close()
		return nil, errors.New("shutting down")
	}
	l := &live{rt: rt, org: s.OrganizationID, engine: e.Name(), wake: make(chan struct{}, 1), stop: make(chan struct{})}
	m.live[s.ID] = l
	m.wg.Add(1)
	go m.sendLoop(s.ID, l)
	return l, nil
}

func (m *Manager) lookup(id gid.ID) (*live, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.live[id]
	return l, ok
}

func (m *Manager) liveIDs() []gid.ID {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]gid.ID, 0, len(m.live))
	for id := range m.live {
		ids = append(ids, id)
	}
	return ids
}

// drop stops a session's runtime here and gives its lock up.
func (m *Manager) drop(id gid.ID) {
	m.mu.Lock()
	l, ok := m.live[id]
	delete(m.live, id)
	m.mu.Unlock()
	if ok {
		l.close()
		if m.opts.Cluster != nil {
			m.opts.Cluster.Locks.Release(m.ctx, string(id))
		}
	}
}

func (m *Manager) sys(ctx context.Context) context.Context {
	return viewer.System(ctx, "session-runtime")
}

// Connect connects a session, pairing it first when it has no device yet. Whether it
// reconnects after a restart is the session's autoconnect flag, which the caller saves.
func (m *Manager) Connect(ctx context.Context, s *ent.Session) error {
	_, err := m.ask(ctx, s, cmdConnect, nil, false)
	return err
}

// Disconnect closes a session's connection and keeps its pairing.
func (m *Manager) Disconnect(ctx context.Context, s *ent.Session) error {
	_, err := m.ask(ctx, s, cmdDisconnect, nil, false)
	return err
}

// Logout unlinks the session's device.
func (m *Manager) Logout(ctx context.Context, s *ent.Session) error {
	_, err := m.ask(ctx, s, cmdLogout, nil, false)
	return err
}

// Remove stops a session's runtime after its row is deleted, unlinking its device when
// paired. The replica that runs it does so when it sees the row gone.
func (m *Manager) Remove(ctx context.Context, s *ent.Session) {
	l, ok := m.lookup(s.ID)
	if !ok && s.DeviceJid != nil {
		var err error
		if l, err = m.own(ctx, s, false); err != nil {
			m.log.Warn("removing a deleted session", "session", s.ID, "err", err)
		}
	}
	if l != nil {
		m.stopDeleted(s.ID)
		return
	}
	if m.opts.Cluster != nil {
		if err := cluster.Notify(m.sys(ctx), m.client, chanSession, string(s.ID)); err != nil {
			m.log.Warn("telling replicas a session is deleted", "session", s.ID, "err", err)
		}
	}
}

// RequestPairingCode starts pairing by phone number.
func (m *Manager) RequestPairingCode(ctx context.Context, s *ent.Session, phone string) (string, error) {
	var code string
	return code, m.call(ctx, s, cmdPairingCode, phone, &code)
}

// MarkRead marks messages read on WhatsApp.
func (m *Manager) MarkRead(ctx context.Context, s *ent.Session, chat, sender string, ids []string) error {
	if s.Status != session.StatusCONNECTED {
		return ErrNotConnected
	}
	return m.call(ctx, s, cmdMarkRead, markReadArgs{Chat: chat, Sender: sender, IDs: ids, At: m.opts.Now()}, nil)
}

// Download fetches a message's media through its session.
func (m *Manager) Download(ctx context.Context, s *ent.Session, ref MediaRef) ([]byte, error) {
	var data []byte
	return data, m.call(ctx, s, cmdDownload, ref, &data)
}

// Simulated is a text message a simulation makes a session receive.
type Simulated struct{ From, Text string }

// Simulate makes a connected session of an Injector engine receive text messages, in order
// and together, and returns their WhatsApp message IDs and the messages as stored when this
// replica stored them in bulk (nil otherwise: the caller reads them).
func (m *Manager) Simulate(ctx context.Context, s *ent.Session, msgs []Simulated) ([]string, []*ent.Message, error) {
	if s.Status != session.StatusCONNECTED {
		return nil, nil, ErrNotConnected
	}
	// The sandbox delivers in the caller's goroutine, with its ctx: the bulk writer leaves
	// the rows it wrote in the slot, so that the mutation need not read them back.
	slot := &storedSlot{}
	ctx = context.WithValue(ctx, storedKey{}, slot)
	var ids []string
	var err error
	if len(msgs) == 1 { // the command older replicas know
		var id string
		err = m.call(ctx, s, cmdSimulate, simulateArgs(msgs[0]), &id)
		ids = []string{id}
	} else {
		err = m.call(ctx, s, cmdSimulateMany, msgs, &ids)
	}
	if err != nil {
		return nil, nil, err
	}
	stored := make([]*ent.Message, len(ids))
	for i, id := range ids {
		if stored[i] = slot.msgs[id]; stored[i] == nil {
			return ids, nil, nil
		}
	}
	return ids, stored, nil
}

// storedKey carries a storedSlot in a context.
type storedKey struct{}

// storedSlot receives the messages a delivery stored in bulk, by WhatsApp message ID. Its
// writer, the group committer's lane, is done with it when the delivery returns.
type storedSlot struct{ msgs map[string]*ent.Message }

func (s *storedSlot) add(m *ent.Message) {
	if s.msgs == nil {
		s.msgs = map[string]*ent.Message{}
	}
	s.msgs[m.WaMessageID] = m
}

// call asks for a command and decodes its result into out (nil: none expected).
func (m *Manager) call(ctx context.Context, s *ent.Session, kind string, args, out any) error {
	res, err := m.ask(ctx, s, kind, args, true)
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(res, out); err != nil {
		return fmt.Errorf("decoding the result of a %s command: %w", kind, err)
	}
	return nil
}

// Wake makes the session send its pending messages now, wherever it runs.
func (m *Manager) Wake(id gid.ID) {
	if l, ok := m.lookup(id); ok {
		l.poke()
		return
	}
	if m.opts.Cluster != nil {
		if err := cluster.Notify(m.sys(m.ctx), m.client, chanSession, string(id)); err != nil {
			m.log.Warn("waking a session on another replica", "session", id, "err", err)
		}
	}
}

// SubscribePairing streams a session's pairing updates until the final one, or until
// cancel is called.
func (m *Manager) SubscribePairing(id gid.ID) (<-chan *PairingUpdate, func()) {
	return m.pairing.subscribe(id)
}

// publishPairing tells the pairing subscribers of every replica.
func (m *Manager) publishPairing(id gid.ID, u PairingUpdate) {
	if m.opts.Cluster == nil {
		m.pairing.publish(id, u)
		return
	}
	b, _ := json.Marshal(pairingNote{Session: id, Update: u})
	if err := cluster.Notify(m.sys(m.ctx), m.client, chanPairing, string(b)); err != nil {
		m.log.Warn("publishing a pairing update", "session", id, "err", err)
	}
}

// LogFailure logs a background action on a session that failed.
func (m *Manager) LogFailure(what string, id gid.ID, err error) {
	m.log.Warn(what, "session", id, "err", err)
}
