package bridge

import (
	"net"
	"sync"
	"testing"
	"time"
)

// TestStopWithSilentCore: a core that accepts connections and never answers
// must not hold up the bridge's stop. franz-go keeps a request queued behind
// a connection handshake whatever its context says; until the bridge closed
// its admin client as soon as its context ended, this bridge never stopped
// (and the edge's SIGTERM took 6–8 s against such a core).
func TestStopWithSilentCore(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() { // accept and never answer; ends when ln closes
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	silence := func() { // lets a hung bridge go, so a failure ends the test
		ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}
	t.Cleanup(silence)

	e := openEdge(t, t.TempDir(), 2)
	for i := 0; i < 20; i++ {
		if err := e.appendReading("dev-1", uint64(i), 10); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testBridgeConfig(ln.Addr().String())
	cfg.RequestTimeout = 30 * time.Second // the default
	rb := startBridge(t, cfg, e)
	waitFor(t, 10*time.Second, "the bridge connected to the silent core", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(conns) > 0
	})
	time.Sleep(200 * time.Millisecond) // its requests are queued behind the handshake

	stopped := make(chan struct{})
	began := time.Now()
	go func() { rb.stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Logf("stopped in %v", time.Since(began).Round(time.Millisecond))
	case <-time.After(5 * time.Second): // the fixed bridge stops in milliseconds
		silence()
		select {
		case <-stopped:
		case <-time.After(30 * time.Second):
		}
		t.Fatal("bridge still running 5 s after its context ended, waiting on a core that never answers")
	}
}
