package mail

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Outbox sends messages in the background, so a slow or unreachable mail server never
// holds up an API request, and retries transient failures.
type Outbox struct {
	sender Sender
	log    *slog.Logger
	queue  chan Message
	wg     sync.WaitGroup
	stop   chan struct{}
	// backoff is the wait before each retry.
	backoff []time.Duration
}

// NewOutbox starts an outbox delivering through sender.
func NewOutbox(sender Sender, log *slog.Logger) *Outbox {
	o := &Outbox{
		sender:  sender,
		log:     log,
		queue:   make(chan Message, 1024),
		stop:    make(chan struct{}),
		backoff: []time.Duration{2 * time.Second, 10 * time.Second, time.Minute},
	}
	o.wg.Add(1)
	go o.run()
	return o
}

// Send queues m; it fails only when the queue is full.
func (o *Outbox) Send(_ context.Context, m Message) error {
	select {
	case o.queue <- m:
		return nil
	default:
		o.log.Error("e-mail queue full; message dropped", "to", m.To, "subject", m.Subject)
		return errQueueFull
	}
}

var errQueueFull = errors.New("the e-mail queue is full")

func (o *Outbox) run() {
	defer o.wg.Done()
	for {
		select {
		case m := <-o.queue:
			o.deliver(m)
		case <-o.stop:
			for { // drain what is queued, without retries
				select {
				case m := <-o.queue:
					o.attempt(m)
				default:
					return
				}
			}
		}
	}
}

func (o *Outbox) attempt(m Message) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return o.sender.Send(ctx, m)
}

func (o *Outbox) deliver(m Message) {
	for i := 0; ; i++ {
		err := o.attempt(m)
		if err == nil {
			return
		}
		if i == len(o.backoff) {
			o.log.Error("e-mail not delivered; giving up", "to", m.To, "subject", m.Subject, "err", err)
			return
		}
		o.log.Warn("e-mail not delivered; retrying", "to", m.To, "attempt", i+1, "err", err)
		select {
		case <-time.After(o.backoff[i]):
		case <-o.stop:
			return
		}
	}
}

// Close stops the outbox after one last attempt at whatever is queued.
func (o *Outbox) Close() {
	close(o.stop)
	o.wg.Wait()
}
