package gateway

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/tributary-io/tributary/internal/testkit"
)

// TestListenerCloseEndsItsClients: every MQTT listener is wrapped, and
// closing one disconnects its clients (and only its clients) through the
// closer mochi passes — safe since third_party/mochi patch 0002 fixed its
// double read lock (mochi-mqtt/server#488) — once when the listener stops
// and once more for clients registered meanwhile. (It was
// TestListenersCloseWithoutMochiCloser while the wrapper had to bypass that
// closer.) Deterministic; the stress tests below are the end-to-end check.
func TestListenerCloseEndsItsClients(t *testing.T) {
	t.Parallel()
	g, _, _ := startWithAllListeners(t)
	for _, id := range []string{"tcp", "tls", "ws"} {
		l, ok := g.server.Listeners.Get(id)
		if !ok {
			t.Fatalf("listener %s missing", id)
		}
		if _, ok := l.(*safeCloseListener); !ok {
			t.Errorf("listener %s is a %T, not wrapped in safeCloseListener", id, l)
		}
	}
	c := connectRaw(t, g.MQTTAddr(), 5, "on-tcp")
	// mochi's closer, as Server.Close passes it.
	var closed []string
	closer := func(id string) {
		closed = append(closed, id)
		for _, cl := range g.server.Clients.GetByListener(id) {
			_ = g.server.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
	l, _ := g.server.Listeners.Get("tls")
	l.Close(closer)
	if _, _, err := c.read(200 * time.Millisecond); !errors.Is(err, errNoAck) {
		t.Fatalf("closing the TLS listener touched a TCP client: %v", err)
	}
	l, _ = g.server.Listeners.Get("tcp")
	l.Close(closer)
	if err := expectServerGoingAway(c); err != nil {
		t.Fatalf("TCP client after its listener closed: %v", err)
	}
	if want := []string{"tls", "tls", "tcp", "tcp"}; fmt.Sprint(closed) != fmt.Sprint(want) {
		t.Errorf("closer called for %v, want %v", closed, want)
	}
}

// TestStopWhileClientsDisconnect stops gateways while devices drop off. With
// mochi's own listener closer a disconnect at the wrong moment hung Close for
// ever (mochi-mqtt/server#488; it hung TestHealthzReportsReadOnlyPartition
// about once in 60 runs); the gateway's closer must not, and must still tell
// every device left connected that the server is going away.
func TestStopWhileClientsDisconnect(t *testing.T) {
	t.Parallel()
	const rounds, leavers, stayers = 6, 100, 6
	began := time.Now()
	for round := 0; round < rounds && time.Since(began) < 60*time.Second; round++ {
		t.Run(fmt.Sprintf("round%d", round), func(t *testing.T) {
			g, stop := startGateway(t, testConfig(t))
			leave := connectMany(t, g.MQTTAddr(), "leaver", leavers)
			stay := connectMany(t, g.MQTTAddr(), "stayer", stayers)
			// The leavers hang up while the gateway stops.
			var wg sync.WaitGroup
			for i, c := range leave {
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(time.Duration(i%25) * 100 * time.Microsecond)
					c.conn.Close()
				}()
			}
			stop() // fails the test, with the goroutines, if it hangs
			wg.Wait()
			for i, c := range stay {
				if err := expectServerGoingAway(c); err != nil {
					t.Errorf("stayer %d (MQTT %d): %v", i, c.version, err)
				}
			}
		})
		if t.Failed() {
			return
		}
	}
}

// connectMany connects n raw clients named prefix-i, alternating MQTT 3.1.1
// and 5.
func connectMany(t *testing.T, addr, prefix string, n int) []*rawClient {
	t.Helper()
	cs := make([]*rawClient, n)
	for i := range cs {
		c, code, err := dialRaw(t, addr, byte(4+i%2), fmt.Sprintf("%s-%d", prefix, i), "", "")
		if err != nil || code != 0 {
			t.Fatalf("connect %s %d: %#x %v", prefix, i, code, err)
		}
		cs[i] = c
	}
	return cs
}

// expectServerGoingAway reads what a client still connected at shutdown
// gets: for MQTT 5, DISCONNECT with reason 0x8B (server shutting down); for
// 3.1.1, which has no server DISCONNECT, perhaps a bare one (mochi sends it
// to both, as its own closer does); then the end of the connection.
func expectServerGoingAway(c *rawClient) error { return expectClosed(c, true) }

// expectClosed reads what a client gets at shutdown: if told (or, when
// mustTell, necessarily, for MQTT 5) a DISCONNECT 0x8B, then the end of the
// connection.
func expectClosed(c *rawClient, mustTell bool) error {
	fh, body, err := c.read(5 * time.Second)
	told := err == nil && fh.Type == packets.Disconnect
	switch {
	case mustTell && c.version == 5 && err != nil:
		return fmt.Errorf("want DISCONNECT 0x8B, got %w", err)
	case (mustTell || told) && c.version == 5 && (fh.Type != packets.Disconnect || len(body) < 1 || body[0] != packets.ErrServerShuttingDown.Code):
		return fmt.Errorf("want DISCONNECT 0x8B, got type %d body % x", fh.Type, body)
	case told:
		fh, _, err = c.read(5 * time.Second)
	}
	if err == nil {
		return fmt.Errorf("want the connection closed, got packet type %d", fh.Type)
	}
	if errors.Is(err, errNoAck) {
		return errors.New("connection still open 5s after the gateway stopped")
	}
	if !errors.Is(err, io.EOF) && !isConnReset(err) {
		return fmt.Errorf("want the connection closed, got %w", err)
	}
	return nil
}

// isConnReset reports a connection the peer reset rather than closed.
func isConnReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// TestStopWhileDevicesConnect stops a gateway while devices keep connecting:
// mochi's Server.Close waits for every attached client, and one that got in
// after the listener's clients were disconnected (or was still sending
// CONNECT then) kept it waiting as long as the device stayed. Every
// connection the gateway accepted must be closed when it stops.
func TestStopWhileDevicesConnect(t *testing.T) {
	t.Parallel()
	const dialers = 8
	g, stop := startGateway(t, testConfig(t))
	addr := g.MQTTAddr()
	var (
		mu    sync.Mutex
		conns []*rawClient
		wg    sync.WaitGroup
	)
	halt := make(chan struct{})
	for d := 0; d < dialers; d++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ { // bounded; ends when the listener is gone
				select {
				case <-halt:
					return
				default:
				}
				c, code, err := dialRaw(t, addr, byte(4+i%2), fmt.Sprintf("joiner-%d-%d", d, i), "", "")
				if c == nil && err != nil {
					return
				}
				if code == 0 && err == nil {
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
				}
			}
		}()
	}
	// Stop while devices are connecting, once some got in.
	testkit.Eventually(t, 10*time.Second, "devices connected", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(conns) >= dialers
	})
	stop() // fails the test, with the goroutines, if it hangs
	close(halt)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(conns) == 0 {
		t.Fatal("no device connected before the stop")
	}
	// Devices attached when the gateway stopped are told why; one caught
	// mid-handshake may only see its connection end.
	for i, c := range conns {
		if err := expectClosed(c, false); err != nil {
			t.Errorf("device %d of %d (MQTT %d): %v", i, len(conns), c.version, err)
			return
		}
	}
}
