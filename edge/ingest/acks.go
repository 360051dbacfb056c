package ingest

import (
	"context"
	"fmt"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Deferred acknowledgements. mochi handles a connection's packets one at a
// time in its read loop and writes the PUBACK when OnPublish returns, so a
// hook that waits for the fsync lets each device have one QoS 1 publish in
// flight: throughput is devices ÷ fsync latency however many the device
// pipelines. With deferred acks the hook queues the record and returns
// packets.ErrRejectPacket (mochi then sends nothing); once the record is
// durable the partition writer marks its PUBACK ready and, after settling
// the whole batch, writes each connection's ready PUBACKs in one write, in
// the order the publishes arrived (MQTT 4.6). Up to maxUnacked may be out
// per connection before the read loop waits (mochi's receive maximum for
// MQTT 5 clients; it also bounds the memory a burst from 1,000 devices can
// queue). A record that cannot be stored gets no PUBACK (MQTT 3.1.1) or one
// with a failure code (MQTT 5), as in the read loop.
//
// Deferral only applies to non-retained QoS 0 and 1 publishes while no
// client has ever subscribed: mochi would forward a publish to local
// subscribers only after OnPublish succeeds, so once anyone subscribes the
// hook goes back to storing in the read loop. A deferred QoS 0 publish needs
// no acknowledgement: its read loop goes on to the next packet while the
// partition's writer appends it in a larger batch (the partition queue is
// bounded by maxDeferred; beyond it publishers wait).
const maxUnacked = 32

// clientAcks orders one connection's deferred PUBACKs. The slots are a
// ring, reused once their PUBACK is written, so reserving one costs no
// allocation. It starts small and doubles as the connection keeps more
// publishes unacknowledged, up to maxUnacked: a fixed ring of 32 slots was
// 1 KB per publishing device, most of it unused by devices that wait for
// each PUBACK (+4 MB heap in the 1,000-device RSS row).
type clientAcks struct {
	cl      *mqtt.Client
	resends *resendWindow // nil: no re-send window to update
	mu      sync.Mutex
	ring    []ackSlot     // a power of two long, at most maxUnacked
	head    uint32        // ticket of the oldest slot not yet flushed
	n       uint32        // slots reserved and not yet flushed
	dirty   bool          // a slot was settled since the last flush
	buf     []byte        // PUBACK encoding buffer, reused
	space   chan struct{} // signalled when a slot is released
}

// ackTicket names a reserved slot (it counts reservations; the slot is
// ring[ticket % maxUnacked]).
type ackTicket uint32

type ackSlot struct {
	id   uint16
	done bool
	send bool
	code packets.Code
}

func (a *clientAcks) slot(t ackTicket) *ackSlot { return &a.ring[uint32(t)%uint32(len(a.ring))] }

// grow doubles the ring (a.mu held). Tickets count on across the move: the
// n outstanding ones, consecutive, land on distinct slots of any ring at
// least n long, and a power-of-two length keeps that true when the uint32
// count wraps.
func (a *clientAcks) grow() {
	ring := make([]ackSlot, max(4, 2*len(a.ring)))
	for t := a.head; t != a.head+a.n; t++ {
		ring[t%uint32(len(ring))] = *a.slot(ackTicket(t))
	}
	a.ring = ring
}

func (h *Hook) acksFor(cl *mqtt.Client) *clientAcks {
	if v, ok := h.acks.Load(cl); ok {
		return v.(*clientAcks)
	}
	v, _ := h.acks.LoadOrStore(cl, &clientAcks{cl: cl, resends: h.resends, space: make(chan struct{}, 1)})
	return v.(*clientAcks)
}

// reserve queues a slot for packet id, waiting while maxUnacked are out.
func (a *clientAcks) reserve(ctx context.Context, id uint16) (ackTicket, error) {
	for {
		a.mu.Lock()
		if a.n < maxUnacked {
			if a.n == uint32(len(a.ring)) {
				a.grow()
			}
			t := ackTicket(a.head + a.n)
			a.n++
			*a.slot(t) = ackSlot{id: id}
			a.mu.Unlock()
			return t, nil
		}
		a.mu.Unlock()
		select {
		case <-a.space:
		case <-ctx.Done():
			return 0, fmt.Errorf("wait for acknowledgements: %w", ctx.Err())
		}
	}
}

// waitEmpty returns once every deferred PUBACK of the connection is out, so
// an acknowledgement sent from the read loop cannot overtake them.
func (a *clientAcks) waitEmpty(ctx context.Context) {
	for {
		a.mu.Lock()
		n := a.n
		a.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-a.space:
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond): // space is one slot; another waiter may take the signal
		}
	}
}

// ready marks a slot settled. The first settle since the last flush adds
// the connection to fl, whose flush writes the PUBACKs now at the head.
func (a *clientAcks) ready(t ackTicket, send bool, code packets.Code, fl *ackFlush) {
	a.mu.Lock()
	s := a.slot(t)
	s.done, s.send, s.code = true, send, code
	first := !a.dirty
	a.dirty = true
	a.mu.Unlock()
	if first {
		fl.conns = append(fl.conns, a)
	}
}

// ackFlush collects the connections with PUBACKs ready to write.
type ackFlush struct{ conns []*clientAcks }

// flush writes each collected connection's ready PUBACKs.
func (fl *ackFlush) flush() {
	for i, a := range fl.conns {
		a.flush()
		fl.conns[i] = nil
	}
	fl.conns = fl.conns[:0]
}

// ackWriteTimeout bounds a PUBACK write: the writer that flushes is some
// publisher's read loop leading its partition, and a device that stopped
// reading its socket must not stall every other device's acknowledgements.
const ackWriteTimeout = 5 * time.Second

// flush writes every settled PUBACK at the head of the queue, in order. The
// plain ones (success, or MQTT 3.1.1, whose PUBACK has no code) go out in
// one write of 4 bytes each, straight to the connection under the client's
// lock (the lock mochi's own writes take): a syscall per connection and
// fsync rather than per PUBACK. One carrying an MQTT 5 failure code goes
// through mochi's encoder, after the plain ones before it.
func (a *clientAcks) flush() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dirty = false
	buf := a.buf[:0]
	released := false
	for a.n > 0 && a.slot(ackTicket(a.head)).done {
		head := *a.slot(ackTicket(a.head))
		a.head++
		a.n--
		released = true
		if !head.send {
			continue
		}
		if head.code.Code == packets.CodeSuccess.Code {
			buf = append(buf, packets.Puback<<4, 2, byte(head.id>>8), byte(head.id))
			continue
		}
		a.writeAcks(buf)
		buf = buf[:0]
		ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: head.id,
			ReasonCode: head.code.Code, Created: time.Now().Unix()}
		if head.code.Code >= packets.ErrUnspecifiedError.Code {
			ack.Properties.ReasonString = head.code.Reason
		}
		// An error means the connection is gone; the device re-sends.
		_ = a.cl.WritePacket(ack)
	}
	a.writeAcks(buf)
	a.buf = buf[:0]
	if released {
		select {
		case a.space <- struct{}{}:
		default:
		}
	}
}

// writeAcks writes plain PUBACKs (4 bytes each, a.mu held). Their packet
// ids are then free for the client to reuse, so the re-send window lets go
// of them first: a device may send its next publish with an id as soon as
// it reads the PUBACK, before the write returns here.
func (a *clientAcks) writeAcks(buf []byte) {
	if a.resends != nil && !a.cl.Closed() {
		for i := 0; i+4 <= len(buf); i += 4 {
			a.resends.drop(a.cl.ID, uint16(buf[i+2])<<8|uint16(buf[i+3]))
		}
	}
	a.write(buf)
}

// write sends encoded PUBACKs (a.mu held). A failed or timed-out write
// closes the connection; the device re-sends what it has not seen acked.
func (a *clientAcks) write(buf []byte) {
	if len(buf) == 0 || a.cl.Closed() || a.cl.Net.Conn == nil {
		return
	}
	a.cl.Lock()
	conn := a.cl.Net.Conn
	_ = conn.SetWriteDeadline(time.Now().Add(ackWriteTimeout))
	_, err := conn.Write(buf)
	_ = conn.SetWriteDeadline(time.Time{})
	a.cl.Unlock()
	if err != nil {
		a.cl.Stop(fmt.Errorf("write PUBACKs: %w", err))
	}
}

// EnableDeferredAcks turns on deferred acknowledgements (the gateway does,
// unless configured off; unit tests of the read-loop path leave them off).
func (h *Hook) EnableDeferredAcks() { h.deferAcks = true }

// OnSubscribe notes that local subscribers exist (see maxUnacked).
func (h *Hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	h.subscribed.Store(true)
	return pk
}

// OnDisconnect forgets the connection's ack queue; PUBACKs still due are
// written to a closed connection and dropped, and the device re-sends.
func (h *Hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if expire && h.resends != nil {
		h.resends.forget(cl.ID)
	}
	h.acks.Delete(cl)
}
