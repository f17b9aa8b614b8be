package whatsmeow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/store"

	"github.com/wagate/wagate/internal/whatsapp"
)

var errClosed = errors.New("the session runtime is closed")

// runtime is one session: a whatsmeow client on the session's device.
type runtime struct {
	eng  *Engine
	id   string
	sink whatsapp.Sink
	log  *slog.Logger

	// ctx lives until Close. It parents the websocket and event delivery, so neither ends
	// with the request that happened to connect the session.
	ctx    context.Context
	cancel context.CancelFunc

	life sync.Mutex // one of Connect, Disconnect, Logout, Close at a time

	mu        sync.Mutex
	cli       *whatsmeow.Client
	handlerID uint32
	gone      bool       // the stored device vanished: the next Connect reports LOGGED_OUT
	pair      *qrPairing // the QR pairing in progress
}

func newRuntime(ctx context.Context, e *Engine, id string, dev *store.Device, gone bool, sink whatsapp.Sink) *runtime {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &runtime{eng: e, id: id, sink: sink, log: e.log.With("session", id), ctx: rctx, cancel: cancel, gone: gone}
	r.cli, r.handlerID = r.newClient(dev)
	return r
}

func (r *runtime) newClient(dev *store.Device) (*whatsmeow.Client, uint32) {
	cli := whatsmeow.NewClient(dev, newWALogger(r.log, "Client"))
	cli.EnableAutoReconnect = true
	// Acknowledge a message only once every handler returned, so that a message the sink
	// could not store is not acknowledged and WhatsApp delivers it again.
	cli.SynchronousAck = true
	cli.BackgroundEventCtx = r.ctx
	if hc := r.eng.opts.HTTPClient; hc != nil {
		cli.SetMediaHTTPClient(hc)
	}
	return cli, cli.AddEventHandlerWithSuccessStatus(r.handle)
}

// replaceClient puts a new client on dev and returns the old one with its handler, to be
// torn down outside r.mu. Callers hold r.mu.
func (r *runtime) replaceClient(dev *store.Device) (old *whatsmeow.Client, oldHandler uint32) {
	old, oldHandler = r.cli, r.handlerID
	r.cli, r.handlerID = r.newClient(dev)
	return old, oldHandler
}

func tearDown(cli *whatsmeow.Client, handler uint32) {
	cli.RemoveEventHandler(handler)
	cli.Disconnect()
}

func (r *runtime) client() *whatsmeow.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cli
}

// handle receives every whatsmeow event. Returning false tells whatsmeow the event was not
// handled, which withholds the acknowledgement of a message so that it comes again.
func (r *runtime) handle(evt any) bool {
	ev, ok := translate(evt, r.eng.opts.Now())
	if !ok {
		return true
	}
	if err := r.sink.Deliver(r.ctx, r.id, ev); err != nil {
		r.log.Warn("session event not stored; WhatsApp will deliver it again where it can",
			"type", fmt.Sprintf("%T", ev), "err", err)
		return false
	}
	return true
}

// emit reports an event the runtime itself produces; there is nothing to redeliver it.
func (r *runtime) emit(ev whatsapp.Event) {
	if err := r.sink.Deliver(r.ctx, r.id, ev); err != nil {
		r.log.Warn("reporting a session event", "type", fmt.Sprintf("%T", ev), "err", err)
	}
}

func (r *runtime) status(s whatsapp.Status, reason string) {
	r.emit(whatsapp.StatusChanged{Status: s, Reason: reason, At: r.eng.opts.Now()})
}

// Connect implements whatsapp.Runtime.
func (r *runtime) Connect(context.Context) error {
	r.life.Lock()
	defer r.life.Unlock()
	if r.ctx.Err() != nil {
		return errClosed
	}
	r.mu.Lock()
	gone := r.gone
	r.gone = false
	cli := r.cli
	r.mu.Unlock()
	if gone {
		r.status(whatsapp.StatusLoggedOut, "the phone unlinked this device; connect again to pair a new one")
		return nil
	}
	if cli.IsConnected() {
		return nil
	}
	if cli.Store.ID == nil {
		return r.pairAndConnect()
	}
	r.status(whatsapp.StatusConnecting, "")
	r.eng.lookupVersion(r.ctx, r.log)
	// A network blip while the server starts should not leave the session down until
	// someone connects it by hand: whatsmeow keeps retrying in the background.
	cli.InitialAutoReconnect = true
	if err := cli.ConnectContext(r.ctx); err != nil && !errors.Is(err, whatsmeow.ErrAlreadyConnected) {
		r.status(whatsapp.StatusDisconnected, "connecting failed: "+err.Error())
		return fmt.Errorf("connecting to WhatsApp: %w", err)
	}
	return nil
}

// Disconnect implements whatsapp.Runtime. whatsmeow reports nothing for a disconnect it was
// asked for, so the runtime does.
func (r *runtime) Disconnect(context.Context) error {
	r.life.Lock()
	defer r.life.Unlock()
	r.stopPairing("pairing stopped")
	r.client().Disconnect()
	r.status(whatsapp.StatusDisconnected, "disconnected on request")
	return nil
}

// Logout implements whatsapp.Runtime. Offline, the phone cannot be told; the credentials are
// deleted anyway, since a session that cannot connect (banned, outdated, replaced) could
// otherwise never be unlinked, and the phone lists the device until it is removed there.
func (r *runtime) Logout(ctx context.Context) error {
	r.life.Lock()
	defer r.life.Unlock()
	cli := r.client()
	if cli.Store.ID == nil {
		return whatsapp.ErrNotPaired
	}
	reason := "logged out on request"
	if err := cli.Logout(ctx); err != nil {
		if !errors.Is(err, whatsmeow.ErrNotConnected) {
			return fmt.Errorf("logging out: %w", mapError(err))
		}
		cli.Disconnect()
		if err := cli.Store.Delete(ctx); err != nil {
			return fmt.Errorf("deleting the device's credentials: %w", err)
		}
		reason = "logged out while offline; remove the device under Linked devices on the phone"
	}
	r.status(whatsapp.StatusLoggedOut, reason)
	return nil
}

// Close implements whatsapp.Runtime.
func (r *runtime) Close() {
	r.life.Lock()
	defer r.life.Unlock()
	r.cancel()
	r.mu.Lock()
	p, cli, handler := r.pair, r.cli, r.handlerID
	r.mu.Unlock()
	if p != nil {
		<-p.done // ends quietly: the runtime context is gone
	}
	tearDown(cli, handler)
}
