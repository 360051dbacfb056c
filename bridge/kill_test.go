package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

const (
	childEnv     = "TRIBUTARY_BRIDGE_TEST_CHILD"
	childDirEnv  = "TRIBUTARY_BRIDGE_TEST_EDGE_DIR"
	childCoreEnv = "TRIBUTARY_BRIDGE_TEST_CORE"
	killEdgeID   = "edge-kill"
)

// runChildEdge is the edge process the SIGKILL test starts and kills: it
// ingests readings (continuing every device's numbering from its log) and
// forwards them, until it is killed. It gives up on its own after a while so
// that an abandoned child cannot outlive the test run.
func runChildEdge() int {
	e, err := openEdgeDir(os.Getenv(childDirEnv), 2, storage.LogConfig{}, testkit.Discard())
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open edge:", err)
		return 1
	}
	next, err := scanDevices(e)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: scan:", err)
		return 1
	}
	in := e.startIngest(devices("kill", 4), next, 20, 5*time.Millisecond)
	defer in.cancel()
	cfg := testBridgeConfig(os.Getenv(childCoreEnv))
	if os.Getenv(childTxnEnv) != "" {
		cfg = exactlyOnceConfig(os.Getenv(childCoreEnv))
	}
	cfg.EdgeID = killEdgeID
	b, err := New(cfg, e.topics, e.store, nil, testkit.Discard())
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: bridge:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = b.Run(ctx)
	return 0
}

// scanDevices reads the whole edge stream and returns, per device, the seq
// after the highest one stored.
func scanDevices(e *testEdge) (map[string]uint64, error) {
	next := map[string]uint64{}
	for p := int32(0); p < e.partitions; p++ {
		l, err := e.topics.Partition(stream, p)
		if err != nil {
			return nil, err
		}
		for off := l.StartOffset(); off < l.NextOffset(); {
			raw, err := l.Read(off, 1<<20, -1)
			if err != nil {
				return nil, fmt.Errorf("read %d at %d: %w", p, off, err)
			}
			err = recordbatch.Split(raw, func(h recordbatch.Header, b []byte) error {
				recs, err := recordbatch.Records(b)
				if err != nil {
					return err
				}
				for _, r := range recs {
					var rd reading
					if err := json.Unmarshal(r.Value, &rd); err != nil {
						return err
					}
					next[rd.Device] = max(next[rd.Device], rd.Seq+1)
				}
				off = h.NextOffset()
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	return next, nil
}

// killChildTenTimes starts the child edge process (TestMain, with env) ten
// times and SIGKILLs it each time at a random moment below jitter once
// progress, the records it has forwarded where names where, has grown;
// each run must have forwarded some. It returns the last progress.
func killChildTenTimes(t *testing.T, env []string, jitter time.Duration, where string, progress func() int64) int64 {
	t.Helper()
	var prev int64
	for cycle := range 10 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it once it is visibly forwarding, at a random moment after.
		// (A loaded CI machine starts processes slowly; no progress is
		// reported with the child's output below.)
		testkit.Poll(20*time.Second, func() bool { return progress() > prev })
		time.Sleep(time.Duration(rand.Int64N(int64(jitter))))
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.Success() {
			t.Fatalf("cycle %d: child ended with %v before it was killed: %s", cycle, err, stderr.String())
		}
		now := progress()
		if now <= prev {
			t.Fatalf("cycle %d: no progress %s (%d records): %s", cycle, where, now, stderr.String())
		}
		prev = now
	}
	return prev
}

// The edge process is killed with SIGKILL while it ingests and forwards,
// ten times; a final run drains the rest. The core ends up with every
// reading exactly once, in order.
func TestSIGKILLWhileForwarding(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts child processes")
	}
	core, addr := startCore(t)
	dir := t.TempDir()
	prev := killChildTenTimes(t, []string{childEnv + "=1", childDirEnv + "=" + dir, childCoreEnv + "=" + addr},
		150*time.Millisecond, "on the core", func() int64 { return core.records(stream) })
	e := openEdge(t, dir, 2)
	want, err := scanDevices(e)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(want))
	for d := range want {
		names = append(names, d)
	}
	slices.Sort(names)
	if len(names) != 4 {
		t.Fatalf("devices in the edge log: %v", names)
	}
	cfg := testBridgeConfig(addr)
	cfg.EdgeID = killEdgeID
	rb := startBridge(t, cfg, e)
	rb.waitCaughtUp(t, 30*time.Second)
	t.Logf("edge log holds %v readings after 10 kills; core had %d before the final drain", want, prev)
	verifyCore(t, core, addr, want)
}
