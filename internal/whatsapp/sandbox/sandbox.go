// Package sandbox is an in-process virtual WhatsApp network: sandbox sessions pair at once
// (or after showing QR codes for a while), get virtual numbers, message each other with
// delivered and read receipts, and accept simulated inbound traffic. It goes through the
// same Manager, storage and API as the real engine, so demos and tests need no phone.
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/wagate/wagate/internal/whatsapp"
)

// Options tune the network's timing.
type Options struct {
	// PairAfter is how long an unpaired session shows QR codes before the virtual phone
	// "scans" one; 0 pairs right after the first code.
	PairAfter time.Duration
	// QRValidity is how long each QR code lasts before the next one replaces it.
	QRValidity time.Duration
	// FirstNumber is the first virtual number handed out; numbers count up from it.
	FirstNumber uint64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Network is the virtual WhatsApp network; it implements whatsapp.Engine.
type Network struct {
	opts Options

	mu      sync.Mutex
	next    uint64
	phones  map[string]*runtime         // by number digits, while paired
	devices map[string]string           // device JID → number digits (survives restarts of a runtime)
	media   map[string][]byte           // media descriptor → bytes
	waiting map[string][]func(*runtime) // deliveries for offline numbers
	queue   []func()                    // deliveries, in order
	wake    chan struct{}
	closed  chan struct{}
	done    chan struct{}
}

// New starts a network.
func New(opts Options) *Network {
	if opts.QRValidity <= 0 {
		opts.QRValidity = 20 * time.Second
	}
	if opts.FirstNumber == 0 {
		opts.FirstNumber = 15550000001
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	n := &Network{
		opts:    opts,
		next:    opts.FirstNumber,
		phones:  map[string]*runtime{},
		devices: map[string]string{},
		media:   map[string][]byte{},
		waiting: map[string][]func(*runtime){},
		wake:    make(chan struct{}, 1),
		closed:  make(chan struct{}),
		done:    make(chan struct{}),
	}
	go n.deliverLoop()
	return n
}

// Name implements whatsapp.Engine.
func (*Network) Name() string { return "SANDBOX" }

// Close stops the network's delivery loop.
func (n *Network) Close() {
	close(n.closed)
	<-n.done
}

// enqueue schedules a delivery; deliveries happen in order on one goroutine, like frames on
// a socket, and never inside the caller's locks.
func (n *Network) enqueue(f func()) {
	n.mu.Lock()
	n.queue = append(n.queue, f)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *Network) deliverLoop() {
	defer close(n.done)
	for {
		n.mu.Lock()
		q := n.queue
		n.queue = nil
		n.mu.Unlock()
		for _, f := range q {
			f()
		}
		if len(q) > 0 {
			continue
		}
		select {
		case <-n.wake:
		case <-n.closed:
			return
		}
	}
}

// Open implements whatsapp.Engine.
func (n *Network) Open(_ context.Context, cfg whatsapp.SessionConfig, sink whatsapp.Sink) (whatsapp.Runtime, error) {
	r := &runtime{net: n, id: cfg.SessionID, sink: sink}
	if cfg.DeviceJID != "" {
		n.mu.Lock()
		digits, ok := n.devices[cfg.DeviceJID]
		if !ok {
			// A device of an earlier process: the virtual network keeps nothing across
			// restarts, so re-attach the number encoded in the device address.
			digits = strings.SplitN(strings.SplitN(cfg.DeviceJID, "@", 2)[0], ":", 2)[0]
			n.devices[cfg.DeviceJID] = digits
		}
		n.mu.Unlock()
		r.device, r.digits = cfg.DeviceJID, digits
	}
	return r, nil
}

// Inject implements whatsapp.Injector: it delivers simulated inbound messages to a connected
// session, synchronously, in order and together when the session's sink takes messages in
// batches, and returns their message IDs.
func (n *Network) Inject(ctx context.Context, rt whatsapp.Runtime, msgs []whatsapp.Injected) ([]string, error) {
	r, ok := rt.(*runtime)
	if !ok {
		return nil, fmt.Errorf("not a sandbox runtime")
	}
	ins := make([]whatsapp.Inbound, len(msgs))
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		sender, err := whatsapp.ChatJID(m.From)
		if err != nil {
			return nil, err
		}
		in := m.In
		in.ID = newMessageID()
		in.Chat, in.Sender = sender, sender
		if in.Timestamp.IsZero() {
			in.Timestamp = n.opts.Now()
		}
		if in.Kind == "" {
			in.Kind = whatsapp.KindText
		}
		ins[i], ids[i] = in, in.ID
	}
	r.mu.Lock()
	online := r.online
	r.mu.Unlock()
	if !online {
		return nil, whatsapp.ErrNotConnected
	}
	if b, ok := r.sink.(whatsapp.BatchSink); ok {
		return ids, b.DeliverAll(ctx, r.id, ins)
	}
	for _, in := range ins {
		if err := r.sink.Deliver(ctx, r.id, in); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// lookup returns the runtime of a number, if paired.
func (n *Network) lookup(digits string) *runtime {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.phones[digits]
}

// newMessageID returns an ID shaped like WhatsApp's; random, so that messages injected
// within the same nanosecond (a burst) never share one, which would store one of them only.
func newMessageID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	return "3EB0" + strings.ToUpper(hex.EncodeToString(b[:]))
}

func jidOf(digits string) string { return digits + "@" + whatsapp.UserServer }
