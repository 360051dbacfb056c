package gateway

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// safeCloseListener wraps a mochi listener so that closing it never calls
// mochi's Clients.GetByListener. That method takes the clients map's read
// lock twice (once directly, once through Len); when a client connects or
// disconnects between the two — Clients.Add or Delete waiting for the write
// lock — the second read lock queues behind the writer, the writer waits for
// the first, and Server.Close hangs for ever (mochi-mqtt/server issue #488,
// unfixed in v2.7.9). Devices dropping off while a gateway stops is ordinary,
// so the gateway disconnects a closing listener's clients itself, from one
// snapshot taken under a single read lock.
type safeCloseListener struct {
	listeners.Listener
	srv *mqtt.Server
}

// Close closes the listener, ignoring mochi's closer for its own.
func (l safeCloseListener) Close(listeners.CloseFn) {
	l.Listener.Close(l.disconnectClients)
}

// disconnectClients tells every open client of the listener id that the
// server is going away and closes it, as mochi's closer would.
func (l safeCloseListener) disconnectClients(id string) {
	for _, cl := range l.srv.Clients.GetAll() {
		if cl.Net.Listener == id && !cl.Closed() {
			_ = l.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// addListener adds ln to srv behind safeCloseListener.
func addListener(srv *mqtt.Server, ln listeners.Listener) error {
	return srv.AddListener(safeCloseListener{Listener: ln, srv: srv})
}
