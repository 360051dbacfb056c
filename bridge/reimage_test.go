package bridge

import (
	"strings"
	"testing"
	"time"

	"github.com/tributary-io/tributary/internal/testkit"
)

// TestReimagedEdgeWithSameIDLosesNothing: a gateway whose SD card died is
// re-imaged with the same configured edge_id and starts again at offset 0.
// Its readings must reach the core; under the old install's producer ids
// the core took them for re-sends of the old ones (same sequences) and
// dropped them.
func TestReimagedEdgeWithSameIDLosesNothing(t *testing.T) {
	t.Parallel()
	core, addr := startCore(t)
	cfg := testBridgeConfig(addr)
	cfg.EdgeID = "gw-1"
	old := openEdge(t, t.TempDir(), 1)
	for s := uint64(0); s < 1000; s++ {
		if err := old.appendReading("old", s, 50); err != nil {
			t.Fatal(err)
		}
	}
	rb := startBridge(t, cfg, old)
	rb.waitCaughtUp(t, 20*time.Second)
	rb.stop()
	fresh := openEdge(t, t.TempDir(), 1) // the new card, its gateway started
	rb = startBridge(t, cfg, fresh)
	for s := uint64(0); s < 500; s++ {
		if err := fresh.appendReading("new", s, 50); err != nil {
			t.Fatal(err)
		}
	}
	rb.waitCaughtUp(t, 20*time.Second)
	v := judgeCore(t, core, addr, map[string]uint64{"old": 1000, "new": 500}, nil)
	if v.lost != 0 || v.duplicated != 0 {
		t.Fatalf("core: %d lost, %d duplicated; want neither", v.lost, v.duplicated)
	}
}

// TestIncarnationKeepsEarlierInstallsIDs: an install with any bridge
// state, or with records in its logs (an earlier version's, or a meta.db
// lost under them), keeps forwarding under the edge id alone, so the core
// still recognises its re-sends; only a new install gets an incarnation,
// kept across restarts.
func TestIncarnationKeepsEarlierInstallsIDs(t *testing.T) {
	t.Parallel()
	cfg := testBridgeConfig("127.0.0.1:1")
	cfg.EdgeID = "gw-1"
	source := func(e *testEdge) string {
		b, err := New(cfg, e.topics, e.store, nil, testkit.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		b.admin.cl.Close() // never run
		return b.source()
	}
	for name, prepare := range map[string]func(e *testEdge) error{
		"retention held":   func(e *testEdge) error { return e.store.PutValue(heldKey, []byte("2026-11-01T00:00:00Z")) },
		"a saved cursor":   func(e *testEdge) error { return e.store.PutCursor(CursorName(stream, 0), 10) },
		"records, no meta": func(e *testEdge) error { return e.appendReading("d", 0, 10) },
	} {
		earlier := openEdge(t, t.TempDir(), 1)
		if err := prepare(earlier); err != nil {
			t.Fatal(err)
		}
		if got := source(earlier); got != "gw-1" {
			t.Fatalf("an install with %s forwards as %q, want the edge id alone", name, got)
		}
	}
	fresh := openEdge(t, t.TempDir(), 1)
	first := source(fresh)
	if !strings.HasPrefix(first, "gw-1#") || len(first) <= len("gw-1#") {
		t.Fatalf("a new store forwards as %q, want the edge id and an incarnation", first)
	}
	if again := source(fresh); again != first {
		t.Fatalf("after a restart the store forwards as %q, before as %q", again, first)
	}
}
