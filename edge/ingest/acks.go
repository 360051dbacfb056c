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
// packets.ErrRejectPacket (mochi then sends nothing); the writer calls back
// once the record is durable and the PUBACK is written here, in the order
// the publishes arrived (MQTT 4.6), up to maxUnacked per connection before
// the read loop waits (mochi's receive maximum for MQTT 5 clients; it also
// bounds the memory a burst from 1,000 devices can queue). A record that
// cannot be stored gets no PUBACK (MQTT 3.1.1) or one with a failure code
// (MQTT 5), as in the read loop.
//
// Deferral only applies to non-retained QoS 1 publishes while no client has
// ever subscribed: mochi would forward a publish to local subscribers only
// after OnPublish succeeds, so once anyone subscribes the hook goes back to
// acknowledging in the read loop. QoS 0 is not deferred: measured, queueing
// it behind one writer per partition was slower and held far more memory
// than letting each publisher wait for the write of its batch.
const maxUnacked = 32

// clientAcks orders one connection's deferred PUBACKs.
type clientAcks struct {
	cl    *mqtt.Client
	mu    sync.Mutex
	q     []*ackSlot
	space chan struct{} // signalled when a slot is released
}

type ackSlot struct {
	id   uint16
	done bool
	send bool
	code packets.Code
}

func (h *Hook) acksFor(cl *mqtt.Client) *clientAcks {
	if v, ok := h.acks.Load(cl); ok {
		return v.(*clientAcks)
	}
	v, _ := h.acks.LoadOrStore(cl, &clientAcks{cl: cl, space: make(chan struct{}, 1)})
	return v.(*clientAcks)
}

// reserve queues a slot for packet id, waiting while maxUnacked are out.
func (a *clientAcks) reserve(ctx context.Context, id uint16) (*ackSlot, error) {
	for {
		a.mu.Lock()
		if len(a.q) < maxUnacked {
			s := &ackSlot{id: id}
			a.q = append(a.q, s)
			a.mu.Unlock()
			return s, nil
		}
		a.mu.Unlock()
		select {
		case <-a.space:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for acknowledgements: %w", ctx.Err())
		}
	}
}

// waitEmpty returns once every deferred PUBACK of the connection is out, so
// an acknowledgement sent from the read loop cannot overtake them.
func (a *clientAcks) waitEmpty(ctx context.Context) {
	for {
		a.mu.Lock()
		n := len(a.q)
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

// complete settles a slot and writes every settled PUBACK at the head.
func (a *clientAcks) complete(s *ackSlot, send bool, code packets.Code) {
	a.mu.Lock()
	s.done, s.send, s.code = true, send, code
	released := false
	for len(a.q) > 0 && a.q[0].done {
		head := a.q[0]
		a.q[0] = nil
		a.q = a.q[1:]
		released = true
		if !head.send {
			continue
		}
		ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: head.id,
			ReasonCode: head.code.Code, Created: time.Now().Unix()}
		if head.code.Code >= packets.ErrUnspecifiedError.Code {
			ack.Properties.ReasonString = head.code.Reason
		}
		// An error means the connection is gone; the device re-sends.
		_ = a.cl.WritePacket(ack)
	}
	if len(a.q) == 0 {
		a.q = nil
	}
	a.mu.Unlock()
	if released {
		select {
		case a.space <- struct{}{}:
		default:
		}
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
	h.acks.Delete(cl)
}
