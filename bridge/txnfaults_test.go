package bridge

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tributary-io/tributary/internal/testkit"
)

// advertised is a listener that names another address as its own: kfake
// tells clients to connect to whatever its listener's Addr says, so this
// puts the test's proxy in every connection, as the core's advertised
// address does in TestConnectionFaultsMidBatch.
type advertised struct {
	net.Listener
	as net.Addr
}

func (l advertised) Addr() net.Addr { return l.as }

// restartableKfake is one kfake broker keeping its state (logs, producer
// ids, transactions) in a directory, reachable only through a proxy, that
// the test can stop and start again on the same port.
type restartableKfake struct {
	t    *testing.T
	px   *proxy
	opts []kfake.Opt
	c    *kfake.Cluster
}

func startRestartableKfake(t *testing.T) *restartableKfake {
	addr := testkit.FreeAddr(t)
	_, ps, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(ps)
	if err != nil {
		t.Fatal(err)
	}
	px := newProxy(t, addr)
	k := &restartableKfake{t: t, px: px}
	k.opts = []kfake.Opt{
		kfake.NumBrokers(1), kfake.DataDir(t.TempDir()), kfake.Ports(port),
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			return advertised{ln, px.ln.Addr()}, nil
		}),
	}
	k.start()
	t.Cleanup(k.stop)
	return k
}

func (k *restartableKfake) start() {
	// The port was just freed by stop; binding it again may take a moment.
	testkit.Eventually(k.t, 10*time.Second, "kfake to listen on its port again", func() bool {
		c, err := kfake.NewCluster(k.opts...)
		if err == nil {
			k.c = c
		}
		return err == nil
	})
}

func (k *restartableKfake) stop() {
	if k.c != nil {
		k.c.Close()
		k.c = nil
	}
}

// The exactly-once Kafka mode against kfake while the target goes away:
// kfake is stopped and started again on the same port (its state kept in
// its data directory) twice, and the TCP connections to it are cut —
// reset in the middle of requests at random and all at once — in between.
// read_committed shows every reading exactly once.
func TestExactlyOnceKfakeDownAndCuts(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts kfake with a data directory")
	}
	t.Parallel()
	k := startRestartableKfake(t)
	e := openEdge(t, t.TempDir(), 2)
	cfg := exactlyOnceConfig(k.px.addr())
	cfg.RequestTimeout = 2 * time.Second
	rb := startBridge(t, cfg, e)
	in := e.startIngest(devices("kd", 4), nil, 20, 5*time.Millisecond)
	t.Cleanup(func() { in.cancel(); <-in.done }) // before the edge closes, should the test fail
	cursors := func() int64 {
		var n int64
		for _, p := range rb.Status().Partitions {
			n += p.Cursor
		}
		return n
	}
	progress := func(what string) {
		at := cursors()
		testkit.Eventually(t, 60*time.Second, "forwarding after "+what, func() bool { return cursors() > at+100 })
	}
	progress("the start")
	for round := range 4 {
		switch round % 2 {
		case 0:
			retries := totalRetries(rb.Status())
			k.stop()
			// Down until the bridge has failed against it, not just a blip.
			testkit.Eventually(t, 30*time.Second, "a retry while kfake is down", func() bool {
				return totalRetries(rb.Status()) > retries
			})
			k.start()
			progress("kfake restarted")
		case 1:
			k.px.resetProb.Store(100) // 1% of 2 KiB chunks
			progress("resets mid-request")
			k.px.resetAll()
			progress("every connection reset")
			k.px.resetProb.Store(0)
		}
	}
	want := in.stop(t)
	rb.waitCaughtUp(t, 60*time.Second)
	if k.px.resets.Load() == 0 {
		t.Fatal("the proxy never reset a connection mid-request")
	}
	t.Logf("proxy resets mid-request: %d, bridge retries: %d", k.px.resets.Load(), totalRetries(rb.Status()))
	mustExactlyOnce(t, judgeCommitted(t, k.px.addr(), stream, want))
}
