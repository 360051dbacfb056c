package bridge_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tributary-io/tributary/bridge"
	"github.com/tributary-io/tributary/internal/testkit"
)

// The real tributary-edge binary, bridged to a core, is killed with SIGKILL
// ten times while a device publishes QoS 1 readings (re-sending whatever was
// not acknowledged once the edge is back). The core ends up with every
// reading exactly once, in order.
func TestEdgeBinarySIGKILL(t *testing.T) {
	bin, coreAddr, core := bridge.EdgeBinaryTest(t)
	core.Start()
	mqttAddr := testkit.FreeAddr(t)
	cfgPath := writeEdgeConfig(t, t.TempDir(), mqttAddr, "-", coreAddr, "")
	startEdge := func() *exec.Cmd {
		cmd := exec.Command(bin, "-config", cfgPath, "-log-level", "warn")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	// The device: publishes seq 0, 1, 2, … of two devices alternately and
	// re-sends a reading until the edge acknowledges it.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	acked := make(chan map[string]uint64, 1)
	stopPub := make(chan struct{})
	go func() {
		next := map[string]uint64{}
		defer func() { acked <- next }()
		var c paho.Client
		for i := 0; ; i++ {
			dev := fmt.Sprintf("proc-%d", i%2)
			payload := fmt.Sprintf(`{"device":%q,"seq":%d,"ts":%d,"temp":20.5}`, dev, next[dev], 1700000000000+int64(i))
			for {
				select {
				case <-stopPub:
					return
				case <-ctx.Done():
					return
				default:
				}
				if c == nil || !c.IsConnected() {
					o := paho.NewClientOptions().AddBroker("tcp://" + mqttAddr).SetClientID("proc-dev").
						SetConnectTimeout(time.Second).SetAutoReconnect(false).SetCleanSession(true)
					c = paho.NewClient(o)
					if tok := c.Connect(); !tok.WaitTimeout(2*time.Second) || tok.Error() != nil {
						c = nil
						time.Sleep(20 * time.Millisecond)
						continue
					}
				}
				tok := c.Publish("sensors/"+dev+"/reading", 1, false, payload)
				if tok.WaitTimeout(2*time.Second) && tok.Error() == nil {
					next[dev]++
					break
				}
				c.Disconnect(0)
				c = nil
			}
		}
	}()

	var prev int64
	for cycle := 0; cycle < 10; cycle++ {
		cmd := startEdge()
		// Kill it once it is visibly forwarding, at a random moment after.
		testkit.Poll(20*time.Second, func() bool { return core.Records(bridge.Stream) > prev })
		time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		now := core.Records(bridge.Stream)
		if now <= prev {
			t.Fatalf("cycle %d: nothing reached the core", cycle)
		}
		prev = now
	}
	cmd := startEdge()
	testkit.Eventually(t, 20*time.Second, "the restarted edge to forward", func() bool {
		return core.Records(bridge.Stream) > prev
	})
	close(stopPub)
	want := <-acked
	var total int64
	for _, n := range want {
		total += int64(n)
	}
	testkit.Eventually(t, 30*time.Second, "the core to hold every acknowledged reading", func() bool {
		return core.Records(bridge.Stream) >= total
	})
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait()
	v := bridge.JudgeCore(t, core, coreAddr, want, nil)
	if !v.Clean() {
		t.Fatalf("core after 10 SIGKILLs: %+v (acknowledged %v)", v, want)
	}
	t.Logf("core holds %d readings after 10 SIGKILLs of the edge binary: lost=0 duplicated=0 out-of-order=0", v.Records())
}
