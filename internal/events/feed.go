package events

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/event"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/viewer"
)

// ringSize is how many recent events a feed keeps for its subscribers. A subscriber that
// falls further behind reads the table on its own until it catches up, so a slow one costs
// only itself; the ring only has to cover the lag of subscribers that keep up.
const ringSize = 256

// feeds are this replica's readers of organization logs: one per organization that has
// subscribers here, woken when its log grows.
type feeds struct {
	mu sync.Mutex
	m  map[gid.ID]*feed
}

// get returns the organization's feed, nil when it has no subscribers here.
func (fs *feeds) get(org gid.ID) *feed {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.m[org]
}

// notify wakes the organization's feed, if it has one here, for the events up to seq (0:
// not known). Events commit in sequence order and a read sees every committed one, so a
// feed that has read seq already has nothing to read for it.
func (fs *feeds) notify(org gid.ID, seq int64) {
	f := fs.get(org)
	if f == nil {
		return
	}
	f.mu.Lock()
	seen := seq > 0 && f.head >= seq
	f.mu.Unlock()
	if !seen {
		f.kick()
	}
}

// offer hands the organization's feed, if it has one here, an event just committed on this
// replica. The feed takes it when it is the next one it lacks; one it has read already is
// dropped; one after a gap (an event committed elsewhere, or a concurrent commit's event
// not handed over yet) makes it read the table, which has both.
func (fs *feeds) offer(org gid.ID, e *ent.Event) {
	f := fs.get(org)
	if f == nil {
		return
	}
	f.mu.Lock()
	took := f.add([]*ent.Event{e}) == 1
	gap := !took && e.Seq > f.head
	f.mu.Unlock()
	if gap {
		f.kick()
	}
}

// notifyAll wakes every feed: hints may have been lost.
func (fs *feeds) notifyAll() {
	fs.mu.Lock()
	all := make([]*feed, 0, len(fs.m))
	for _, f := range fs.m {
		all = append(all, f)
	}
	fs.mu.Unlock()
	for _, f := range all {
		f.kick()
	}
}

// feed reads one organization's new events once for all of this replica's subscribers of
// it: one query per wake-up instead of one per subscriber, and one shared Delivery per
// event, so what one subscriber rendered can serve its cohort (see Delivery.Render). It
// holds no goroutine while idle: a wake-up starts a short-lived reader.
type feed struct {
	l    *Log
	org  gid.ID
	ctx  context.Context // ends when the last subscriber leaves
	stop context.CancelFunc

	mu   sync.Mutex
	head int64      // the last sequence number read: every event up to it is committed
	ring []Delivery // the latest events read, ascending and contiguous, ending at head
	// advanced is closed when head moves, then replaced: a broadcast to waiting subscribers.
	advanced chan struct{}
	subs     int         // subscribers sharing the feed; the last to leave stops it
	reading  bool        // a reader is running
	again    bool        // woken while reading: read once more
	resync   *time.Timer // reads without a hint, in case one was lost
}

// join returns the organization's feed, starting it for the first subscriber.
func (l *Log) join(org gid.ID) (*feed, error) {
	fs := &l.feeds
	// Held while the head is read: a hint for a commit after the read waits for the feed
	// to be registered, and one for a commit before it is covered by the head.
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f := fs.m[org]; f != nil {
		f.mu.Lock()
		f.subs++
		f.mu.Unlock()
		return f, nil
	}
	ctx, stop := context.WithCancel(viewer.System(context.Background(), "event-log"))
	head, err := l.head(ctx, org)
	if err != nil {
		stop()
		return nil, err
	}
	f := &feed{l: l, org: org, ctx: ctx, stop: stop, head: head, advanced: make(chan struct{}), subs: 1}
	f.mu.Lock()
	f.resync = time.AfterFunc(l.Resync, f.tick)
	f.mu.Unlock()
	if fs.m == nil {
		fs.m = map[gid.ID]*feed{}
	}
	fs.m[org] = f
	return f, nil
}

// leave drops a subscriber; the last one stops the feed.
func (f *feed) leave() {
	fs := &f.l.feeds
	fs.mu.Lock()
	f.mu.Lock()
	f.subs--
	last := f.subs == 0
	if last {
		f.resync.Stop()
		f.stop() // a reader still running ends with its query
	}
	f.mu.Unlock()
	if last {
		delete(fs.m, f.org)
	}
	fs.mu.Unlock()
}

// tick is the resync timer's: read, and read again after the next period.
func (f *feed) tick() {
	f.kick()
	f.mu.Lock()
	if f.ctx.Err() == nil {
		f.resync.Reset(f.l.Resync)
	}
	f.mu.Unlock()
}

// kick makes the feed read its organization's new events: a reader starts, or the running
// one reads once more when done, so a burst of hints costs one or two reads.
func (f *feed) kick() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reading {
		f.again = true
		return
	}
	f.reading = true
	go f.drain()
}

func (f *feed) drain() {
	for {
		err := f.read(f.ctx)
		f.mu.Lock()
		if err != nil && f.ctx.Err() == nil {
			// Subscribers keep waiting rather than end: this retry, or the next hint, reads again.
			f.l.log.Error("reading the event log", "org", f.org, "err", err)
			f.resync.Reset(time.Second)
		}
		if !f.again || f.ctx.Err() != nil {
			f.reading = false
			f.mu.Unlock()
			return
		}
		f.again = false
		f.mu.Unlock()
	}
}

// read appends the events committed after head. Sequence numbers commit in order (the
// counter row lock orders the writers), so the rows after head that a query sees are a
// gap-free run: nothing can commit later below the highest one read.
func (f *feed) read(ctx context.Context) error {
	for {
		f.mu.Lock()
		head := f.head
		f.mu.Unlock()
		evs, err := f.l.client.Event.Query().
			Where(event.OrganizationID(f.org), event.SeqGT(head)).
			Order(ent.Asc(event.FieldSeq)).Limit(batch).All(ctx)
		if err != nil || len(evs) == 0 {
			return err
		}
		f.mu.Lock()
		f.add(evs) // events handed over meanwhile (offer) are skipped
		f.mu.Unlock()
		if len(evs) < batch {
			return nil
		}
	}
}

// add appends the events that continue the ring, in order, stopping at a gap, and wakes
// the subscribers if any was added; it returns how many. f.mu must be held.
func (f *feed) add(evs []*ent.Event) int {
	n := 0
	for _, e := range evs {
		if e.Seq <= f.head {
			continue
		}
		if e.Seq != f.head+1 {
			break
		}
		f.ring = append(f.ring, Delivery{Event: e, memo: &memo{}})
		f.head = e.Seq
		n++
	}
	if n == 0 {
		return 0
	}
	if over := len(f.ring) - ringSize; over > 0 {
		clear(f.ring[:over])
		f.ring = append(f.ring[:0], f.ring[over:]...)
	}
	close(f.advanced)
	f.advanced = make(chan struct{})
	return n
}

// since returns the events after seq the ring holds. ok is false when the ring no longer
// reaches back to seq (the caller must read the table); an empty result with ok means seq
// is the head, and advanced is closed when that changes.
func (f *feed) since(seq int64, max int) (ds []Delivery, head int64, advanced <-chan struct{}, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if seq >= f.head {
		return nil, f.head, f.advanced, true
	}
	if len(f.ring) == 0 || f.ring[0].Event.Seq > seq+1 {
		return nil, f.head, f.advanced, false
	}
	from := int(seq + 1 - f.ring[0].Event.Seq)
	to := min(len(f.ring), from+max)
	return append([]Delivery(nil), f.ring[from:to]...), f.head, f.advanced, true
}

// backfill returns evs, the events after some sequence number that a subscriber behind the
// ring read from the table, as deliveries. While the ring has room, those just before its
// first event join it, shared like the ones the feed reads: the subscribers that replay the
// log next (a dashboard's tabs, everyone reconnecting after a deploy) find them in the ring,
// rather than each reading the table and rendering every event on its own.
func (f *feed) backfill(evs []*ent.Event) []Delivery {
	ds := make([]Delivery, len(evs))
	for i, e := range evs {
		ds[i] = Delivery{Event: e}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	end := f.head // the ring ends at the head
	if len(f.ring) > 0 {
		end = f.ring[0].Event.Seq - 1
	}
	last := slices.IndexFunc(evs, func(e *ent.Event) bool { return e.Seq == end })
	first := max(last+1-(ringSize-len(f.ring)), 0)
	if last < 0 || first > last || evs[last].Seq-evs[first].Seq != int64(last-first) {
		return ds
	}
	for i := first; i <= last; i++ {
		ds[i].memo = &memo{}
	}
	f.ring = slices.Concat(ds[first:last+1], f.ring) // its own array: subscribers clear theirs
	return ds
}

// Delivery is an event handed to a subscriber. Subscribers that get the same event from
// their organization's feed share its Delivery.
type Delivery struct {
	Event *ent.Event
	memo  *memo // nil when the subscriber read the event on its own
}

type memo struct {
	mu       sync.Mutex
	rendered map[string]*rendering
}

type rendering struct {
	done  chan struct{}
	v     any
	share bool
}

// Render returns what render returns for this event, computed once per key among the
// subscribers sharing the Delivery (the others wait for it rather than all render at once
// when the event arrives): a key must capture everything the result depends on besides
// the event. render reports whether its result may be shared; when not, each renders its own.
func (d Delivery) Render(key string, render func() (any, bool)) any {
	if d.memo == nil {
		v, _ := render()
		return v
	}
	d.memo.mu.Lock()
	r, rendered := d.memo.rendered[key]
	if !rendered {
		if d.memo.rendered == nil {
			d.memo.rendered = map[string]*rendering{}
		}
		r = &rendering{done: make(chan struct{})}
		d.memo.rendered[key] = r
	}
	d.memo.mu.Unlock()
	if rendered {
		<-r.done
		if r.share {
			return r.v
		}
		v, _ := render()
		return v
	}
	defer close(r.done) // also when render panics: the waiters then render on their own
	v, share := render()
	r.v, r.share = v, share
	return v
}
