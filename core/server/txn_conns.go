package server

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// markerConnsPerBroker bounds the idle connections kept to one broker for
// WriteTxnMarkers; more may be open at once, the rest are closed after use.
const markerConnsPerBroker = 4

// markerConns keeps connections to other brokers for transaction markers,
// so a commit does not pay a dial (and a TLS handshake and SCRAM login
// where the inter-broker listener asks for them) per request.
type markerConns struct {
	mu     sync.Mutex
	idle   map[int32][]idleConn
	closed bool
}

type idleConn struct {
	addr string
	c    *replConn
}

// get returns an idle connection to broker id at addr (reused true) or a
// new one.
func (m *markerConns) get(ctx context.Context, s *Server, id int32, addr string) (c *replConn, reused bool, err error) {
	m.mu.Lock()
	list := m.idle[id]
	for len(list) > 0 {
		ic := list[len(list)-1]
		list = list[:len(list)-1]
		if ic.addr == addr {
			m.idle[id] = list
			m.mu.Unlock()
			return ic.c, true, nil
		}
		ic.c.close() // the broker moved
	}
	delete(m.idle, id)
	m.mu.Unlock()
	c, err = dialReplica(ctx, s, id, addr)
	return c, false, err
}

// ask is one round trip to broker id at addr on a kept connection when
// there is one, tried again on a new one if the kept one fails (the broker
// may have restarted since); resp is read afresh on each try.
func (m *markerConns) ask(ctx context.Context, s *Server, id int32, addr string, req kmsg.Request, resp kmsg.Response) error {
	timeout := s.cfg.Replication.AckTimeout + 5*time.Second
	for attempt := 0; ; attempt++ {
		conn, reused, err := m.get(ctx, s, id, addr)
		if err != nil {
			return err
		}
		if err = conn.do(ctx, req, resp, timeout); err == nil {
			m.put(id, addr, conn)
			return nil
		}
		conn.close()
		if !reused || attempt > 0 || ctx.Err() != nil {
			return err
		}
	}
}

// put keeps c for the next markers to broker id, or closes it.
func (m *markerConns) put(id int32, addr string, c *replConn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || len(m.idle[id]) >= markerConnsPerBroker {
		c.close()
		return
	}
	if m.idle == nil {
		m.idle = map[int32][]idleConn{}
	}
	m.idle[id] = append(m.idle[id], idleConn{addr: addr, c: c})
}

// close closes every idle connection; later puts close theirs.
func (m *markerConns) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for _, list := range m.idle {
		for _, ic := range list {
			ic.c.close()
		}
	}
	m.idle = nil
}
