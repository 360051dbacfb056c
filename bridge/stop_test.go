package bridge

import (
	"testing"
	"time"

	"github.com/tributary-io/tributary/internal/testkit"
)

// TestStopWithSilentCore: a core that accepts connections and never answers
// must not hold up the bridge's stop. franz-go keeps a request queued behind
// a connection handshake whatever its context says; until the bridge closed
// its admin client as soon as its context ended, this bridge never stopped
// (and the edge's SIGTERM took 6–8 s against such a core).
func TestStopWithSilentCore(t *testing.T) {
	t.Parallel()
	_, addr := startCore(t)
	px := newProxy(t, addr)
	px.stalled.Store(true) // accepts, forwards nothing: a core that never answers

	e := openEdge(t, t.TempDir(), 2)
	for i := 0; i < 20; i++ {
		if err := e.appendReading("dev-1", uint64(i), 10); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testBridgeConfig(px.addr())
	cfg.RequestTimeout = 30 * time.Second // the default
	rb := startBridge(t, cfg, e)
	testkit.Eventually(t, 10*time.Second, "the bridge connected to the silent core", func() bool {
		px.mu.Lock()
		defer px.mu.Unlock()
		return len(px.conns) > 0
	})
	time.Sleep(200 * time.Millisecond) // its requests are queued behind the handshake

	stopped := make(chan struct{})
	began := time.Now()
	go func() { rb.stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Logf("stopped in %v", time.Since(began).Round(time.Millisecond))
	case <-time.After(5 * time.Second): // the fixed bridge stops in milliseconds
		px.close() // lets the hung bridge go, so the failure ends the test
		select {
		case <-stopped:
		case <-time.After(30 * time.Second):
		}
		t.Fatal("bridge still running 5 s after its context ended, waiting on a core that never answers")
	}
}
