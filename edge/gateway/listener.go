package gateway

import (
	"net"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// safeCloseListener wraps a mochi listener so that closing it ends every
// connection it accepted. mochi's listener closer disconnects the clients
// registered on the listener and then closes the listener: a device that
// connects in between, or was still sending CONNECT when the clients were
// listed (it is registered only once CONNECT is handled), is never
// disconnected, and Server.Close waits for it as long as it stays.
//
// So the wrapper tracks the connections it hands to mochi, refuses new ones
// once closing, lets mochi's closer tell every registered client that the
// server is going away (MQTT 5 DISCONNECT 0x8B), runs it once more for those
// registered meanwhile, and then closes whatever is still open.
//
// The closer itself used to deadlock when a device connected or
// disconnected at the wrong moment (Clients.GetByListener took its read lock
// twice, mochi-mqtt/server#488); the patched copy in third_party/mochi takes
// it once (patch 0002), so the wrapper no longer replaces it.
type safeCloseListener struct {
	listeners.Listener

	// maxPacket is mochi's Maximum Packet Size (see sizeGuardConn).
	maxPacket uint32

	mu      sync.Mutex
	closing bool
	conns   map[net.Conn]struct{}
}

// addListener adds ln to srv behind safeCloseListener.
func addListener(srv *mqtt.Server, ln listeners.Listener) error {
	return srv.AddListener(&safeCloseListener{Listener: ln, conns: map[net.Conn]struct{}{},
		maxPacket: srv.Options.Capabilities.MaximumPacketSize})
}

// Serve serves the wrapped listener, tracking each connection while mochi
// runs it.
func (l *safeCloseListener) Serve(establish listeners.EstablishFn) {
	l.Listener.Serve(func(id string, c net.Conn) error {
		l.mu.Lock()
		if l.closing {
			l.mu.Unlock()
			c.Close()
			return nil
		}
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
		}()
		return establish(id, guardPacketSize(c, l.maxPacket))
	})
}

// Close stops the listener and ends its connections: the registered
// clients through mochi's closer, the rest by closing them.
func (l *safeCloseListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	l.Listener.Close(closeClients)
	closeClients(l.ID()) // those registered since the first pass
	l.mu.Lock()
	open := make([]net.Conn, 0, len(l.conns))
	for c := range l.conns {
		open = append(open, c)
	}
	l.mu.Unlock()
	for _, c := range open { // still in CONNECT, or attaching right now
		c.Close()
	}
}
