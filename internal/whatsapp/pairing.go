package whatsapp

import (
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/wagate/wagate/internal/gid"
)

// PairingUpdateType is the API's PairingUpdateType.
type PairingUpdateType string

// Pairing update types.
const (
	PairingQRCode  PairingUpdateType = "QR_CODE"
	PairingPaired  PairingUpdateType = "PAIRED"
	PairingExpired PairingUpdateType = "EXPIRED"
	PairingFailed  PairingUpdateType = "FAILED"
)

// MarshalGQL implements graphql.Marshaler.
func (t PairingUpdateType) MarshalGQL(w io.Writer) {
	_, _ = io.WriteString(w, strconv.Quote(string(t)))
}

// UnmarshalGQL implements graphql.Unmarshaler.
func (t *PairingUpdateType) UnmarshalGQL(v any) error {
	s, _ := v.(string)
	switch PairingUpdateType(s) {
	case PairingQRCode, PairingPaired, PairingExpired, PairingFailed:
		*t = PairingUpdateType(s)
		return nil
	}
	return fmt.Errorf("%q is not a PairingUpdateType", s)
}

// PairingUpdate is one step of pairing a session.
type PairingUpdate struct {
	Type      PairingUpdateType
	Code      string
	ExpiresAt *time.Time
	Reason    string
}

// broadcaster fans pairing updates out to the subscribers of a session. A subscriber that
// does not keep up loses QR codes rather than holding up the session (a code is useless once
// the next one exists); the final update closes every subscription of the session.
type broadcaster struct {
	mu   sync.Mutex
	subs map[gid.ID]map[chan *PairingUpdate]struct{}
}

func (b *broadcaster) subscribe(id gid.ID) (<-chan *PairingUpdate, func()) {
	ch := make(chan *PairingUpdate, 16)
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[gid.ID]map[chan *PairingUpdate]struct{}{}
	}
	if b.subs[id] == nil {
		b.subs[id] = map[chan *PairingUpdate]struct{}{}
	}
	b.subs[id][ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[id][ch]; ok {
			delete(b.subs[id], ch)
			close(ch)
		}
		if len(b.subs[id]) == 0 {
			delete(b.subs, id)
		}
	}
}

func (b *broadcaster) publish(id gid.ID, u PairingUpdate) {
	b.mu.Lock()
	defer b.mu.Unlock()
	final := u.Type != PairingQRCode
	for ch := range b.subs[id] {
		if final {
			// Room is kept for it: drop the oldest QR code if the buffer is full.
			select {
			case ch <- &u:
			default:
				select {
				case <-ch:
				default:
				}
				ch <- &u
			}
			close(ch)
			continue
		}
		select {
		case ch <- &u:
		default:
		}
	}
	if final {
		delete(b.subs, id)
	}
}
