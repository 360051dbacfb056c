package bridge

import (
	"testing"
	"time"

	"github.com/tributary-io/tributary/internal/testkit"
)

// TestSendsWhileAcksAreOutstanding: records the edge fsyncs while a batch
// awaits the core's acknowledgement go out at once (up to eagerInFlight).
// The forwarder used to block reading the oldest response, so each new
// fsync group waited a whole core round trip (an fsync on the core, a
// replication round trip on RF=3) before it was even sent.
func TestSendsWhileAcksAreOutstanding(t *testing.T) {
	t.Parallel()
	core, px := startProxiedCore(t)
	e := openEdge(t, t.TempDir(), 1)
	rb := startBridge(t, testBridgeConfig(px.addr()), e)

	appendAndWait := func(seq uint64, want int64) {
		t.Helper()
		if err := e.appendReading("dev-1", seq, 10); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 10*time.Second, "the core to hold the reading", func() bool { return core.records(stream) == want })
	}
	// The first batch of a session goes alone (epoch check); once the core
	// has acknowledged it, the pipeline opens to max_in_flight.
	appendAndWait(0, 1)
	rb.waitCaughtUp(t, 10*time.Second)

	px.holdBack.Store(true) // the core appends, its answers wait in the proxy
	appendAndWait(1, 2)
	appendAndWait(2, 3) // a later fsync group, sent with reading 1 unacknowledged
	if st := rb.Status(); st.Backlog() == 0 {
		t.Fatalf("backlog 0 while the core's answers are held: %+v", st)
	}
	// With two in flight, later records wait for an acknowledgement.
	if err := e.appendReading("dev-1", 3, 10); err != nil {
		t.Fatal(err)
	}

	px.holdBack.Store(false)
	rb.waitCaughtUp(t, 10*time.Second)
	cur, ok, err := e.store.Cursor(CursorName(stream, 0))
	if err != nil || !ok || cur != 4 {
		t.Fatalf("cursor %d (ok %v, err %v), want 4", cur, ok, err)
	}
	if v := verifyCore(t, core, core.addr, map[string]uint64{"dev-1": 4}); v.lost != 0 || v.duplicated != 0 || v.outOfOrder != 0 {
		t.Fatalf("lost=%d duplicated=%d out-of-order=%d", v.lost, v.duplicated, v.outOfOrder)
	}
}
