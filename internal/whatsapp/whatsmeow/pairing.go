package whatsmeow

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.mau.fi/whatsmeow"

	"github.com/wagate/wagate/internal/whatsapp"
)

// qrPairing is a QR pairing in progress: a goroutine forwarding whatsmeow's QR channel.
type qrPairing struct {
	cancel    context.CancelFunc
	done      chan struct{} // closed when the forwarding goroutine ended
	firstCode chan struct{} // closed at the first QR code: the pairing socket is up
	codeOnce  sync.Once
	reason    string // why the runtime stopped it; guarded by runtime.mu
}

// pairAndConnect starts QR pairing of an unpaired device. Callers hold r.life.
func (r *runtime) pairAndConnect() error {
	cli, err := r.beginPairing()
	if err != nil || cli == nil {
		return err
	}
	r.eng.lookupVersion(r.ctx, r.log)
	// A failed pairing connect is reported to the person waiting for a QR code, not
	// retried in the background.
	cli.InitialAutoReconnect = false
	if err := cli.ConnectContext(r.ctx); err != nil && !errors.Is(err, whatsmeow.ErrAlreadyConnected) {
		r.stopPairing("could not reach WhatsApp: " + err.Error())
		r.status(whatsapp.StatusDisconnected, "connecting failed: "+err.Error())
		return fmt.Errorf("connecting to WhatsApp to pair: %w", err)
	}
	return nil
}

// beginPairing registers the QR channel (whatsmeow wants it before the connection opens) and
// reports PAIRING. It returns a nil client when pairing is already running.
func (r *runtime) beginPairing() (*whatsmeow.Client, error) {
	r.mu.Lock()
	if r.pair != nil {
		r.mu.Unlock()
		return nil, nil
	}
	var old *whatsmeow.Client
	var oldHandler uint32
	if r.cli.Store.Account != nil {
		// Paired once, then logged out: whatsmeow deleted the device's rows and its stores
		// still point at them, so pairing again needs a new device.
		old, oldHandler = r.replaceClient(r.eng.container.NewDevice())
	}
	pctx, cancel := context.WithCancel(r.ctx)
	ch, err := r.cli.GetQRChannel(pctx)
	if err != nil {
		r.mu.Unlock()
		cancel()
		return nil, fmt.Errorf("starting QR pairing: %w", err)
	}
	p := &qrPairing{cancel: cancel, done: make(chan struct{}), firstCode: make(chan struct{})}
	r.pair = p
	cli := r.cli
	r.mu.Unlock()
	if old != nil {
		tearDown(old, oldHandler)
	}
	r.status(whatsapp.StatusPairing, "waiting for a QR scan or a pairing code")
	go r.forwardQR(pctx, p, ch)
	return cli, nil
}

// forwardQR turns the QR channel into QRCode events until pairing ends. The channel must
// be drained without pause: whatsmeow abandons pairing when a code does not fit.
func (r *runtime) forwardQR(ctx context.Context, p *qrPairing, ch <-chan whatsmeow.QRChannelItem) {
	defer close(p.done)
	for {
		select {
		case <-ctx.Done():
			r.endPairing(p, whatsapp.PairingEnded{})
			return
		case item, ok := <-ch:
			if !ok {
				r.endPairing(p, whatsapp.PairingEnded{Reason: "pairing ended unexpectedly"})
				return
			}
			switch item.Event {
			case whatsmeow.QRChannelEventCode:
				if ctx.Err() != nil {
					continue // stopped: the next round ends it
				}
				p.codeOnce.Do(func() { close(p.firstCode) })
				r.emit(whatsapp.QRCode{Code: item.Code, Expires: r.eng.opts.Now().Add(item.Timeout)})
			case whatsmeow.QRChannelScannedWithoutMultidevice.Event:
				r.log.Info("QR code scanned by a phone without multi-device; the same code can be scanned again")
			case whatsmeow.QRChannelSuccess.Event:
				r.endPairing(p, whatsapp.PairingEnded{Paired: true})
				return
			case whatsmeow.QRChannelTimeout.Event:
				// whatsmeow closed the connection itself and reports nothing else.
				if r.endPairing(p, whatsapp.PairingEnded{Reason: "timeout"}) {
					r.status(whatsapp.StatusDisconnected, "the QR codes expired before a scan")
				}
				return
			case whatsmeow.QRChannelEventError:
				if r.endPairing(p, whatsapp.PairingEnded{Reason: "pairing failed: " + item.Error.Error()}) {
					r.client().Disconnect()
					r.status(whatsapp.StatusDisconnected, "pairing failed")
				}
				return
			case whatsmeow.QRChannelClientOutdated.Event:
				// The ClientOutdated event itself reports the OUTDATED status.
				r.endPairing(p, whatsapp.PairingEnded{Reason: "WhatsApp rejected this client version as outdated"})
				return
			default:
				// Connected, LoggedOut, a ban or a connect failure: their own events report
				// the status.
				r.endPairing(p, whatsapp.PairingEnded{Reason: "pairing interrupted (" + item.Event + ")"})
				return
			}
		}
	}
}

// endPairing clears p and reports how it ended; a reason set by stopPairing wins over any
// failure. It reports false, and nothing, once the runtime is closing.
func (r *runtime) endPairing(p *qrPairing, ended whatsapp.PairingEnded) bool {
	r.mu.Lock()
	if r.pair == p {
		r.pair = nil
	}
	if p.reason != "" && !ended.Paired {
		ended = whatsapp.PairingEnded{Reason: p.reason}
	}
	r.mu.Unlock()
	if r.ctx.Err() != nil {
		return false
	}
	r.emit(ended)
	return true
}

// stopPairing ends a running pairing with reason and waits until it reported that. Callers
// hold r.life.
func (r *runtime) stopPairing(reason string) {
	r.mu.Lock()
	p := r.pair
	if p == nil {
		r.mu.Unlock()
		return
	}
	p.reason = reason
	r.mu.Unlock()
	p.cancel()
	<-p.done
	// A QR channel cancelled before its first code stays registered with the client, and
	// would cut a later connection when codes arrive; a new client leaves it behind.
	r.mu.Lock()
	old, oldHandler := r.replaceClient(r.cli.Store)
	r.mu.Unlock()
	tearDown(old, oldHandler)
}

// RequestPairingCode implements whatsapp.Runtime. whatsmeow can only ask for a code once
// the pairing socket is up, which the first QR code shows; it waits for that.
func (r *runtime) RequestPairingCode(ctx context.Context, phone string) (string, error) {
	phone, err := whatsapp.NormalizePhone(phone)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	cli, p := r.cli, r.pair
	r.mu.Unlock()
	switch {
	case cli.Store.ID != nil:
		return "", whatsapp.ErrAlreadyPaired
	case p == nil:
		return "", fmt.Errorf("%w: connect the session to start pairing first", whatsapp.ErrNotConnected)
	}
	select {
	case <-p.firstCode:
	case <-p.done:
		return "", fmt.Errorf("%w: pairing ended", whatsapp.ErrNotConnected)
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for the pairing connection: %w", ctx.Err())
	}
	code, err := cli.PairPhone(ctx, phone[1:], true, whatsmeow.PairClientChrome, "Chrome (Linux)")
	if err != nil {
		return "", fmt.Errorf("requesting a pairing code: %w", mapError(err))
	}
	return code, nil
}
