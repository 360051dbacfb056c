package bridge_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/bridge"
	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/internal/testkit/edgetest"
)

// The real edge gateway with the bridge attached the way tributary-edge
// attaches it: readings published over MQTT (QoS 1) reach the core once each,
// with the edge's headers and the gateway's edge id.
func TestEdgeGatewayToCore(t *testing.T) {
	t.Parallel()
	core, addr := bridge.StartTestCore(t)

	g, b := edgetest.Start(t, edgetest.Config(t), bridge.TestBridgeConfig(addr), testkit.Logger(t))

	o := paho.NewClientOptions().AddBroker("tcp://" + g.MQTTAddr()).SetClientID("bridge-test").
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	want := map[string]uint64{}
	for s := 0; s < 300; s++ {
		for d := 0; d < 3; d++ {
			dev := fmt.Sprintf("gw-%03d", d)
			payload := fmt.Sprintf(`{"device":%q,"seq":%d,"ts":%d,"temp":21.5,"hum":40.1,"vib":0.02}`, dev, s, time.Now().UnixMilli())
			tok := c.Publish("sensors/"+dev+"/reading", 1, false, payload)
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("publish %s/%d: %v", dev, s, tok.Error())
			}
			want[dev]++
		}
	}
	testkit.Eventually(t, 30*time.Second, "the bridge to forward the stream", func() bool {
		st := b.Status()
		for _, p := range st.Partitions {
			if p.Stream == bridge.Stream {
				return st.Backlog() == 0 && core.Records(bridge.Stream) == 900
			}
		}
		return false
	})
	var mu sync.Mutex
	var bad []string
	v := bridge.JudgeCore(t, core, addr, want, func(r *kgo.Record) {
		mu.Lock()
		defer mu.Unlock()
		for _, k := range []string{"content-type", "mqtt-topic", "device", bridge.HeaderEdgeID, bridge.HeaderEdgeOffset} {
			if _, ok := bridge.RecordHeader(r, k); !ok && len(bad) < 5 {
				bad = append(bad, "missing header "+k)
			}
		}
		if id, _ := bridge.RecordHeader(r, bridge.HeaderEdgeID); id != g.EdgeID() && len(bad) < 5 {
			bad = append(bad, "edge-id "+id)
		}
	})
	if len(bad) > 0 {
		t.Fatalf("headers: %v", bad)
	}
	if !v.Clean() || v.Records() != 900 {
		t.Fatalf("core: %+v", v)
	}
}
