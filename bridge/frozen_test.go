package bridge

import (
	"os/exec"
	"testing"
	"time"

	"github.com/tributary-io/tributary/internal/testkit"
)

// Issue 12, scenario 4: the core partition's leader is frozen (SIGSTOP: its
// sockets stay open, nothing answers). The cluster moves leadership within
// seconds, but the forwarder waited for its read deadline (request_timeout
// + 5 s = 35 s here) before it looked at metadata again. Now a request
// unanswered for half a second makes it ask who leads, and it re-routes as soon
// as the answer changes. Afterwards the core holds every reading once.
func TestForwarderLeavesFrozenLeader(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs a 3-broker core as processes")
	}
	cluster := startBinaryCluster(t, 1)
	addrs := cluster.Addrs()
	ctx := testkit.Context(t, 120*time.Second)

	e := openEdge(t, t.TempDir(), 1)
	cfg := testBridgeConfig(addrs...)
	cfg.RequestTimeout = 30 * time.Second // the default: the stall it used to cost
	rb := startBridge(t, cfg, e)
	in := e.startIngest(devices("fz", 4), map[string]uint64{}, 20, 10*time.Millisecond)
	testkit.Eventually(t, 30*time.Second, "forwarding to start", func() bool { return cursorOf(rb) > 200 })

	st, err := testkit.PartitionStates(ctx, addrs, stream)
	if err != nil || st[0].Leader < 1 {
		t.Fatalf("no leader: %v %v", st, err)
	}
	victim := cluster.Brokers[st[0].Leader-1]
	var others []string
	for _, b := range cluster.Brokers {
		if b != victim {
			others = append(others, b.Addr)
		}
	}
	victim.Freeze()
	frozen := time.Now()
	atFreeze := cursorOf(rb)
	var elected, resumed time.Duration
	testkit.Eventually(t, cfg.RequestTimeout, "a new leader and forwarding resumed within the request timeout of the leader's freeze", func() bool {
		if elected == 0 {
			if st, err := testkit.PartitionStates(ctx, others, stream); err == nil && st[0].Leader > 0 && st[0].Leader != victim.ID {
				elected = time.Since(frozen)
			}
		}
		// A cursor past what was in flight at the freeze: records
		// appended after it were acknowledged by the new leader.
		if resumed == 0 && cursorOf(rb) > atFreeze+200 {
			resumed = time.Since(frozen)
		}
		return elected != 0 && resumed != 0
	})
	t.Logf("leader broker %d frozen: new leader after %v, forwarding resumed after %v (before: request_timeout + 5 s = 35 s)",
		victim.ID, elected.Round(time.Millisecond), resumed.Round(time.Millisecond))
	victim.Thaw()
	want := in.stop(t)
	rb.waitCaughtUp(t, 60*time.Second)
	var total int64
	for _, n := range want {
		total += int64(n)
	}
	v := judgeRecords(t, addrs, stream, total, want, nil)
	if v.lost != 0 || v.duplicated != 0 || v.outOfOrder != 0 || v.unexpected != 0 {
		t.Fatalf("core after the freeze: %+v", v)
	}
}

// startBinaryCluster runs three tributary-core binaries as one cluster
// holding the stream topic, its partitions replicated on all three.
func startBinaryCluster(t *testing.T, partitions int32) *testkit.CoreCluster {
	bin := testkit.BuildBinary(t, "core/cmd/tributary-core")
	cluster := testkit.StartCoreCluster(t, 3, func(config string) *exec.Cmd {
		return exec.Command(bin, "-config", config, "-http-addr=", "-log-level", "info")
	})
	if err := testkit.CreateClusterTopic(testkit.Context(t, 60*time.Second), cluster.Addrs(), stream, partitions, 3); err != nil {
		t.Fatal(err)
	}
	return cluster
}

func cursorOf(rb *runningBridge) int64 {
	var c int64
	for _, p := range rb.Status().Partitions {
		c += p.Cursor
	}
	return c
}
