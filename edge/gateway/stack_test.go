package gateway

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// maxConnStack is the most stack a publishing connection may cost. mochi
// v2.7.9 passed the ~800-byte packets.Packet by value through ~15 KB of
// frames, so every read goroutine grew to 32 KB, and kept a 4 KB write
// goroutine per connection (36.5 KB per connection here; 36–46 MB of stacks
// at 1,000 devices). The patched copy in third_party/mochi (PATCHES.md)
// passes it by pointer and starts a writer only when there is something to
// write, and the ingest hook takes publishes by reference (PublishRefHook),
// so a publishing connection is one 8 KB read goroutine (8.6 KB measured:
// 16.2 KB while the hook still took the packet by value). Stacks are powers
// of two, so the budget sits halfway to the next size: a read path that
// grows to 16 KB again fails.
const maxConnStack = 12 << 10

// TestPublishPathStack fails if the goroutines of a connection grow their
// stacks past maxConnStack in total while many devices publish
// QoS 0 and QoS 1 readings through the whole edge (mochi, the ingest hook,
// decoding, the deferred append and PUBACK).
//
// Stacks are measured as the growth of the runtime's stack memory divided
// by the number of connections (the test's own goroutines do not grow with
// them). The runtime halves an idle goroutine's stack
// at each GC, which would hide one doubling, so the measurement runs in a
// child process (a non-race build) with stack shrinking off
// (GODEBUG=gcshrinkstackoff=1).
func TestPublishPathStack(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts 400 connections")
	}
	if os.Getenv("TRIBUTARY_STACK_CHILD") == "" {
		// A child "go test", not this binary: under -race (make test) frames
		// and the stack guard are larger than in the binaries we ship.
		goTool, err := exec.LookPath("go")
		if err != nil {
			t.Skip("needs the go command to build the measured test binary")
		}
		cmd := exec.Command(goTool, "test", "-run=^TestPublishPathStack$", "-count=1") // local directory mode: its output is shown
		// Not -race either when GOFLAGS asks for it.
		goflags := strings.ReplaceAll(os.Getenv("GOFLAGS"), "-race", "")
		cmd.Env = append(os.Environ(), "TRIBUTARY_STACK_CHILD=1", "GODEBUG=gcshrinkstackoff=1", "GOFLAGS="+goflags)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("stack measurement failed: %v\n%s", err, out)
		}
		t.Logf("%s", out)
		return
	}

	const conns, workers, rounds = 400, 8, 5
	g, _ := startGateway(t, testConfig(t))
	// A stream exists before the measurement starts, so its writer and
	// acker goroutines do not count against the connections.
	warm := connectRaw(t, g.MQTTAddr(), 4, "warm")
	if _, err := warm.publish("sensors/warm/reading", cborReading(t, "warm", 0, time.Now().UnixMilli()), 1, "", 5*time.Second); err != nil {
		t.Fatal(err)
	}

	stacks0, goroutines0 := stackMemory()
	cs := connectMany(t, g.MQTTAddr(), "dev", conns)
	// A fixed number of workers drives the devices, so the test's own
	// goroutines do not grow with the connections either.
	err := inParallel(workers, func(w int) error {
		for r := range rounds {
			for i := w; i < conns; i += workers {
				dev := fmt.Sprintf("dev-%d", i)
				qos := byte(r % 2)
				if _, err := cs[i].publish("sensors/"+dev+"/reading", cborReading(t, dev, uint64(r), time.Now().UnixMilli()), qos, "", 5*time.Second); err != nil {
					return fmt.Errorf("%s round %d: %w", dev, r, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A last QoS 1 publish per device proves its QoS 0 readings were
	// processed (a connection's packets are handled in order).
	for i, c := range cs {
		dev := fmt.Sprintf("dev-%d", i)
		if _, err := c.publish("sensors/"+dev+"/reading", cborReading(t, dev, rounds, time.Now().UnixMilli()), 1, "", 5*time.Second); err != nil {
			t.Fatalf("%s fence: %v", dev, err)
		}
	}
	stacks1, goroutines1 := stackMemory()
	perGoroutine := float64(stacks1-stacks0) / float64(goroutines1-goroutines0)
	perConn := float64(stacks1-stacks0) / conns
	fmt.Printf("%d connections: %d more goroutines, %.1f KB more stack memory: %.2f KB per goroutine, %.2f KB per connection\n",
		conns, goroutines1-goroutines0, float64(stacks1-stacks0)/1024, perGoroutine/1024, perConn/1024)
	if perConn > maxConnStack {
		t.Errorf("a connection's goroutines grew their stacks to %.1f KB on the publish path, over the %d KB budget",
			perConn/1024, maxConnStack>>10)
	}
}

// stackMemory is the runtime's stack memory in use (after a GC has
// returned free stack spans) and the number of goroutines.
func stackMemory() (stackBytes uint64, goroutines int) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.StackInuse, runtime.NumGoroutine()
}
