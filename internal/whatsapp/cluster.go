package whatsapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/pprof"
	"time"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/predicate"
	"github.com/wagate/wagate/ent/session"
	"github.com/wagate/wagate/ent/sessioncommand"
	"github.com/wagate/wagate/internal/cluster"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/gid"
)

// Cluster lets the managers of several replicas share one PostgreSQL database. Each
// session runs on exactly one replica, the holder of its advisory lock; any replica
// accepts requests, and those for a session another replica runs travel as command rows.
type Cluster struct {
	Bus   *cluster.Bus
	Locks *cluster.Locks
	// ClaimEvery is how often a replica looks for sessions nobody runs (a replica that died
	// leaves its sessions so); 0 means 2 s. Takeover takes about this long.
	ClaimEvery time.Duration
	// CommandTimeout bounds how long a request waits for another replica; 0 means 30 s.
	CommandTimeout time.Duration
}

// Notification channels between replicas.
const (
	// chanSession carries a session ID: its row, its commands or its outbox changed.
	chanSession = "wagate_session"
	// chanCommandDone carries a command ID whose result is written.
	chanCommandDone = "wagate_command_done"
	// chanPairing carries a pairingNote.
	chanPairing = "wagate_pairing"
)

type pairingNote struct {
	Session gid.ID        `json:"s"`
	Update  PairingUpdate `json:"u"`
}

// ErrOwnerUnavailable means the replica running a session did not answer in time.
var ErrOwnerUnavailable = errors.New("the server running this session did not answer in time; try again")

// errorNames are the engine errors that survive a trip between replicas.
var errorNames = map[string]error{
	"not_connected": ErrNotConnected, "not_paired": ErrNotPaired, "already_paired": ErrAlreadyPaired,
	"invalid_recipient": ErrInvalidRecipient, "recipient_not_found": ErrRecipientNotFound,
	"invalid_phone": ErrInvalidPhoneNumber, "media_expired": ErrMediaExpired,
	"rate_limited": ErrRateLimited, "unsendable": ErrUnsendable,
}

func errorName(err error) string {
	for name, e := range errorNames {
		if errors.Is(err, e) {
			return name
		}
	}
	return ""
}

// command kinds.
const (
	cmdConnect     = "connect"
	cmdDisconnect  = "disconnect"
	cmdLogout      = "logout"
	cmdPairingCode = "pairing_code"
	cmdMarkRead    = "mark_read"
	cmdDownload    = "download"
	cmdSimulate    = "simulate"
	// cmdSimulateMany injects several messages at once; replicas older than it know only
	// cmdSimulate, which Simulate uses for one message.
	cmdSimulateMany = "simulate-many"
)

type (
	markReadArgs struct {
		Chat, Sender string
		IDs          []string
		At           time.Time
	}
	simulateArgs Simulated
)

// startCluster subscribes to the other replicas and starts claiming sessions.
func (m *Manager) startCluster() error {
	c := m.opts.Cluster
	for ch, fn := range map[string]func(string){
		chanSession: func(p string) { m.poke(gid.ID(p)) },
		chanCommandDone: func(p string) {
			m.wmu.Lock()
			w := m.waiters[gid.ID(p)]
			m.wmu.Unlock()
			if w != nil {
				select {
				case w <- struct{}{}:
				default:
				}
			}
		},
		chanPairing: func(p string) {
			var n pairingNote
			if json.Unmarshal([]byte(p), &n) == nil {
				m.pairing.publish(n.Session, n.Update)
			}
		},
	} {
		if err := c.Bus.Handle(ch, fn); err != nil {
			return err
		}
	}
	c.Bus.OnResync(func() { m.poke("") })
	m.wg.Add(1)
	go m.claimLoop()
	return nil
}

// poke asks the claim loop to look at a session now ("" for all of them).
func (m *Manager) poke(id gid.ID) {
	select {
	case m.pokes <- id:
	default: // full: a full scan comes soon and covers it
		select {
		case m.pokes <- "":
		default:
		}
	}
}

// LoopLabel is a pprof label the contexts of the claim loop's work carry, with the value
// "claim", so that whatever sees a statement's context (a driver wrapper, a test counting the
// statements a request or a received message costs) can tell the scans apart. The goroutine
// itself is not labelled: the sessions it starts would inherit the label.
const LoopLabel = "wagate.loop"

// claimLoop runs the sessions nobody runs, carries out the commands of the sessions this
// replica runs, and stops everything when the locks are lost.
func (m *Manager) claimLoop() {
	defer m.wg.Done()
	ctx := pprof.WithLabels(m.ctx, pprof.Labels(LoopLabel, "claim"))
	every := m.opts.Cluster.ClaimEvery
	if every <= 0 {
		every = 2 * time.Second
	}
	// Replicas started together should not all scan at the same instant.
	t := time.NewTimer(rand.N(every / 4))
	defer t.Stop()
	// Taken once and renewed only after handling: a loss during a scan closes the channel
	// held here, even though Lost then already returns a fresh one.
	lost := m.opts.Cluster.Locks.Lost()
	for {
		select {
		case <-ctx.Done():
			return
		case <-lost:
			lost = m.opts.Cluster.Locks.Lost()
			m.dropAll()
		case id := <-m.pokes:
			if id == "" {
				m.scan(ctx)
			} else {
				m.reconcile(ctx, id)
			}
		case <-t.C:
			m.scan(ctx)
			t.Reset(every/2 + rand.N(every))
		}
	}
}

// wantsToRun selects the sessions that should be running somewhere.
func wantsToRun() []predicate.Session {
	return []predicate.Session{session.Autoconnect(true), session.DeviceJidNotNil(),
		session.StatusNotIn(session.StatusLOGGED_OUT, session.StatusREPLACED, session.StatusBANNED,
			session.StatusOUTDATED, session.StatusFAILED)}
}

// wantsConnection is wantsToRun for one session.
func wantsConnection(s *ent.Session) bool {
	return s.Autoconnect && s.DeviceJid != nil && !Status(s.Status).Terminal()
}

// scan claims every session that should run or has commands waiting and that no replica
// runs, and hands waiting commands to the sessions this replica runs. A session running here
// with no command waiting is left alone (its outbox has a timer of its own): an idle replica
// costs the database a few queries per scan, not two for each of its sessions.
func (m *Manager) scan(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pending := sessioncommand.StatusEQ(sessioncommand.StatusPENDING)
	want, err := m.client.Session.Query().Where(session.Or(
		session.And(wantsToRun()...),
		session.HasCommandsWith(pending),
	)).All(ctx)
	if err != nil {
		m.logScanError(err)
		return
	}
	commanded, err := m.client.SessionCommand.Query().Where(pending).Unique(true).
		Select(sessioncommand.FieldSessionID).Strings(ctx)
	if err != nil {
		m.logScanError(err)
		return
	}
	waiting := make(map[gid.ID]bool, len(commanded))
	for _, id := range commanded {
		waiting[gid.ID(id)] = true
	}
	for _, s := range want {
		if _, isLive := m.lookup(s.ID); isLive && !waiting[s.ID] && m.stillOwned(s.ID) {
			continue
		}
		m.claim(ctx, s)
	}
	// Sessions deleted through another replica stop here.
	ids := m.liveIDs()
	if len(ids) == 0 {
		return
	}
	existing, err := m.client.Session.Query().Where(session.IDIn(ids...)).IDs(ctx)
	if err != nil {
		m.logScanError(err)
		return
	}
	for _, id := range missing(ids, existing) {
		m.stopDeleted(id)
	}
}

func (m *Manager) logScanError(err error) {
	if m.ctx.Err() == nil {
		m.log.Error("looking for sessions to run", "err", err)
	}
}

func missing(all, present []gid.ID) []gid.ID {
	seen := make(map[gid.ID]bool, len(present))
	for _, id := range present {
		seen[id] = true
	}
	var out []gid.ID
	for _, id := range all {
		if !seen[id] {
			out = append(out, id)
		}
	}
	return out
}

// reconcile looks at one session after a hint about it.
func (m *Manager) reconcile(ctx context.Context, id gid.ID) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := m.client.Session.Get(ctx, id)
	switch {
	case ent.IsNotFound(err):
		m.stopDeleted(id)
	case err != nil:
		m.logScanError(err)
	default:
		if _, isLive := m.lookup(id); !isLive && !m.hasWork(ctx, s) {
			return // a hint for a session that nobody needs to run (an outbox that waits)
		}
		m.claim(ctx, s)
	}
}

// hasWork reports whether s should run somewhere: it wants to be connected or has
// commands waiting.
func (m *Manager) hasWork(ctx context.Context, s *ent.Session) bool {
	if wantsConnection(s) {
		return true
	}
	pending, err := m.client.SessionCommand.Query().Where(sessioncommand.SessionID(s.ID),
		sessioncommand.StatusEQ(sessioncommand.StatusPENDING)).Exist(ctx)
	return err == nil && pending
}

// claim makes sure s runs here if nobody else runs it and it has something to do, then
// wakes its worker (commands, outbox).
func (m *Manager) claim(ctx context.Context, s *ent.Session) {
	l, isLive := m.lookup(s.ID)
	if isLive && !m.stillOwned(s.ID) {
		isLive = false
	}
	if !isLive {
		var err error
		if l, err = m.own(ctx, s, wantsConnection(s)); err != nil || l == nil {
			if err != nil {
				m.log.Warn("claiming session", "session", s.ID, "err", err)
			}
			return
		}
	}
	l.poke()
}

// own opens s's runtime here if this replica can take its lock, and connects it when
// connect is set; nil when another replica runs it.
func (m *Manager) own(ctx context.Context, s *ent.Session, connect bool) (*live, error) {
	if c := m.opts.Cluster; c != nil {
		ok, err := c.Locks.TryAcquire(ctx, string(s.ID))
		if err != nil || !ok {
			return nil, err
		}
	}
	l, err := m.runtime(s)
	if err != nil {
		if m.opts.Cluster != nil {
			m.opts.Cluster.Locks.Release(ctx, string(s.ID))
		}
		return nil, err
	}
	if connect {
		if err := l.rt.Connect(m.ctx); err != nil {
			m.log.Warn("connecting a claimed session", "session", s.ID, "err", err)
		}
	}
	return l, nil
}

// dropAll stops every runtime without logging out: another replica takes them over.
func (m *Manager) dropAll() {
	m.log.Warn("stopped every session after losing their locks", "count", m.closeAll())
}

// stopDeleted unlinks and stops the runtime of a session deleted through any replica.
func (m *Manager) stopDeleted(id gid.ID) {
	l, ok := m.lookup(id)
	if !ok {
		return
	}
	if err := l.rt.Logout(m.ctx); err != nil && !errors.Is(err, ErrNotPaired) {
		m.log.Warn("logging out a deleted session", "session", id, "err", err)
	}
	m.drop(id)
}

// ask has the replica that runs s carry a command out, running s here first if nobody
// runs it. With wait false it returns once the command is stored.
func (m *Manager) ask(ctx context.Context, s *ent.Session, kind string, args any, wait bool) (json.RawMessage, error) {
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("encoding a %s command: %w", kind, err)
	}
	l, ok := m.lookup(s.ID)
	if !ok {
		// A session taken over on demand (its replica died) reconnects as it would have.
		if l, err = m.own(ctx, s, m.opts.Cluster != nil && kind != cmdConnect && wantsConnection(s)); err != nil {
			return nil, err
		}
	}
	if l != nil {
		return m.execute(ctx, l, kind, raw)
	}
	return m.send(ctx, s.ID, kind, raw, wait)
}

// send stores a command for the replica that runs the session, and waits for its result.
func (m *Manager) send(ctx context.Context, id gid.ID, kind string, raw json.RawMessage, wait bool) (json.RawMessage, error) {
	sys := m.sys(database.Outside(ctx))
	var cmd *ent.SessionCommand
	err := database.InTx(sys, m.client, func(ctx context.Context, c *ent.Client) error {
		var err error
		if cmd, err = c.SessionCommand.Create().SetSessionID(id).SetKind(kind).SetArgs(raw).Save(ctx); err != nil {
			return err
		}
		return cluster.Notify(ctx, c, chanSession, string(id))
	})
	if err != nil || !wait {
		return nil, err
	}
	done := make(chan struct{}, 1)
	m.wmu.Lock()
	m.waiters[cmd.ID] = done
	m.wmu.Unlock()
	defer func() {
		m.wmu.Lock()
		delete(m.waiters, cmd.ID)
		m.wmu.Unlock()
	}()
	timeout := m.opts.Cluster.CommandTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	// Unclaimed commands are withdrawn when the caller stops waiting, so they never run
	// late; one already running finishes, but nobody waits for it.
	withdraw := func() {
		_ = m.client.SessionCommand.Update().Where(sessioncommand.ID(cmd.ID),
			sessioncommand.StatusEQ(sessioncommand.StatusPENDING)).SetStatus(sessioncommand.StatusEXPIRED).Exec(sys)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := time.NewTicker(500 * time.Millisecond) // in case the answer's hint is lost
	defer poll.Stop()
	for {
		select {
		case <-done:
		case <-poll.C:
		case <-deadline.C:
			withdraw()
			return nil, ErrOwnerUnavailable
		case <-ctx.Done():
			withdraw()
			return nil, ctx.Err()
		}
		cur, err := m.client.SessionCommand.Get(sys, cmd.ID)
		if ent.IsNotFound(err) {
			return nil, ErrNotConnected // the session was deleted
		}
		if err != nil {
			return nil, fmt.Errorf("reading a %s command: %w", kind, err)
		}
		switch cur.Status {
		case sessioncommand.StatusDONE:
			return cur.Result, nil
		case sessioncommand.StatusFAILED:
			if e, ok := errorNames[cur.ErrorName]; ok {
				return nil, e
			}
			return nil, errors.New(cur.Error)
		}
	}
}

// stillOwned reports whether this replica may still run the session: with a cluster, its
// lock must be held. A session whose lock went with a broken connection stops here.
func (m *Manager) stillOwned(id gid.ID) bool {
	if m.opts.Cluster == nil || m.opts.Cluster.Locks.Held(string(id)) {
		return true
	}
	m.drop(id)
	return false
}

// runCommands carries out the session's waiting commands, oldest first.
func (m *Manager) runCommands(id gid.ID, l *live) {
	if m.opts.Cluster == nil {
		return
	}
	ctx := m.ctx
	cmds, err := m.client.SessionCommand.Query().Where(sessioncommand.SessionID(id),
		sessioncommand.StatusEQ(sessioncommand.StatusPENDING)).
		Order(ent.Asc(sessioncommand.FieldCreatedAt), ent.Asc(sessioncommand.FieldID)).All(ctx)
	if err != nil {
		m.logScanError(err)
		return
	}
	for _, cmd := range cmds {
		n, err := m.client.SessionCommand.Update().Where(sessioncommand.ID(cmd.ID),
			sessioncommand.StatusEQ(sessioncommand.StatusPENDING)).SetStatus(sessioncommand.StatusRUNNING).Save(ctx)
		if err != nil || n == 0 {
			continue // withdrawn by its caller
		}
		res, runErr := m.execute(ctx, l, cmd.Kind, cmd.Args)
		err = database.InTx(ctx, m.client, func(ctx context.Context, c *ent.Client) error {
			upd := c.SessionCommand.UpdateOneID(cmd.ID)
			if runErr != nil {
				upd.SetStatus(sessioncommand.StatusFAILED).SetError(runErr.Error()).SetErrorName(errorName(runErr))
			} else {
				upd.SetStatus(sessioncommand.StatusDONE).SetResult(res)
			}
			if err := upd.Exec(ctx); err != nil {
				return err
			}
			return cluster.Notify(ctx, c, chanCommandDone, string(cmd.ID))
		})
		if err != nil && ctx.Err() == nil {
			m.log.Error("recording a command's result", "command", cmd.ID, "err", err)
		}
	}
}

// execute carries a command out on a runtime of this replica.
func (m *Manager) execute(ctx context.Context, l *live, kind string, args json.RawMessage) (json.RawMessage, error) {
	switch kind {
	case cmdConnect:
		return nil, l.rt.Connect(m.ctx) // the connection outlives the request
	case cmdDisconnect:
		return nil, l.rt.Disconnect(ctx)
	case cmdLogout:
		return nil, l.rt.Logout(ctx)
	case cmdPairingCode:
		phone, err := decode[string](kind, args)
		if err != nil {
			return nil, err
		}
		return result(l.rt.RequestPairingCode(ctx, phone))
	case cmdMarkRead:
		a, err := decode[markReadArgs](kind, args)
		if err != nil {
			return nil, err
		}
		return nil, l.rt.MarkRead(ctx, a.Chat, a.Sender, a.IDs, a.At)
	case cmdDownload:
		ref, err := decode[MediaRef](kind, args)
		if err != nil {
			return nil, err
		}
		return result(l.rt.Download(ctx, ref))
	case cmdSimulate:
		a, err := decode[simulateArgs](kind, args)
		if err != nil {
			return nil, err
		}
		ids, err := m.inject(ctx, l, []Simulated{Simulated(a)})
		if err != nil {
			return nil, err
		}
		return result(ids[0], nil)
	case cmdSimulateMany:
		msgs, err := decode[[]Simulated](kind, args)
		if err != nil {
			return nil, err
		}
		return result(m.inject(ctx, l, msgs))
	}
	return nil, fmt.Errorf("unknown session command %q", kind)
}

// inject makes a session of this replica receive simulated text messages.
func (m *Manager) inject(ctx context.Context, l *live, msgs []Simulated) ([]string, error) {
	inj, ok := m.engines[l.engine].(Injector)
	if !ok {
		return nil, fmt.Errorf("engine %s does not simulate messages", l.engine)
	}
	in := make([]Injected, len(msgs))
	for i, s := range msgs {
		in[i] = Injected{From: s.From, In: Inbound{Kind: KindText, Text: s.Text, PushName: "Simulated"}}
	}
	return inj.Inject(ctx, l.rt, in)
}

func decode[T any](kind string, args json.RawMessage) (T, error) {
	var v T
	if err := json.Unmarshal(args, &v); err != nil {
		return v, fmt.Errorf("decoding a %s command: %w", kind, err)
	}
	return v, nil
}

func result[T any](v T, err error) (json.RawMessage, error) {
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}
