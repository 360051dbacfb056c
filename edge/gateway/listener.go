package gateway

import (
	"net"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// safeCloseListener wraps a mochi listener so that closing it ends every
// connection it accepted, without mochi's listener closer. Two ways mochi's
// own Server.Close can hang for ever while devices come and go:
//
//   - its closer calls Clients.GetByListener, which takes the clients map's
//     read lock twice (once directly, once through Len); when a device
//     connects or disconnects between the two — Clients.Add or Delete waiting
//     for the write lock — the second read lock queues behind the writer, the
//     writer waits for the first, and nothing moves again
//     (mochi-mqtt/server#488, unfixed in v2.7.9);
//   - it disconnects the listener's clients before it closes the listener,
//     then waits for every attached client to end: a device that connects in
//     between, or was still sending CONNECT when the clients were listed, is
//     never disconnected and keeps the stop waiting as long as it stays.
//
// So the wrapper tracks the connections it hands to mochi, refuses new ones
// once closing, tells every attached client that the server is going away
// (MQTT 5 DISCONNECT 0x8B) from one snapshot taken under a single read lock,
// and then closes whatever is still open.
type safeCloseListener struct {
	listeners.Listener
	srv *mqtt.Server
	// maxPacket is mochi's Maximum Packet Size (see sizeGuardConn).
	maxPacket uint32

	mu      sync.Mutex
	closing bool
	conns   map[net.Conn]struct{}
}

// addListener adds ln to srv behind safeCloseListener.
func addListener(srv *mqtt.Server, ln listeners.Listener) error {
	return srv.AddListener(&safeCloseListener{Listener: ln, srv: srv, conns: map[net.Conn]struct{}{},
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

// Close stops the listener and ends its connections, ignoring mochi's closer.
func (l *safeCloseListener) Close(listeners.CloseFn) {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	l.Listener.Close(l.disconnectClients)
	l.disconnectClients(l.ID()) // those attached since the first pass
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

// disconnectClients tells every open client of the listener id that the
// server is going away and closes it, as mochi's closer would.
func (l *safeCloseListener) disconnectClients(id string) {
	for _, cl := range l.srv.Clients.GetAll() {
		if cl.Net.Listener == id && !cl.Closed() {
			_ = l.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}
