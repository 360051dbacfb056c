// Package systest starts the whole system in one process for end-to-end
// tests that need every tier at once: a core broker (a cluster of one, so
// the cluster metrics exist too), an edge gateway with its bridge to that
// core, devices publishing over MQTT and a consumer group. The dashboards,
// alert rules and web consoles are tested against it.
package systest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/bridge"
	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/core/server"
	"github.com/tributary-io/tributary/edge/gateway"
	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/internal/testkit/coretest"
	"github.com/tributary-io/tributary/internal/testkit/edgetest"
)

// Options choose what Start turns on.
type Options struct {
	// Console serves the core's console (on a port of its own, pointed at
	// the edge) and the edge's (http.console).
	Console bool
	// MaxPayloadBytes, if set, bounds the edge's payloads (so a test can
	// provoke a refusal).
	MaxPayloadBytes int
}

// System is a running core, edge and bridge; Start stops it when the test
// ends.
type System struct {
	t    testing.TB
	Core *server.Server
	Edge *gateway.Gateway
	mqtt paho.Client
}

// Start starts the edge first (so its bridge retries until the core is
// up, as on a real gateway after a power cut), then the core.
func Start(t testing.TB, opts Options) *System {
	t.Helper()
	s := &System{t: t}
	kafkaAddr, serfAddr := testkit.FreeAddr(t), testkit.FreeAddr(t)

	ecfg := edgetest.Config(t)
	ecfg.EdgeID = "edge-systest"
	ecfg.HTTP.Address = "127.0.0.1:0"
	ecfg.HTTP.Console = opts.Console
	if opts.MaxPayloadBytes > 0 {
		ecfg.Ingest.MaxPayloadBytes = opts.MaxPayloadBytes
	}
	ecfg.Ingest.BudgetBytes = 256 << 20
	bcfg := bridge.Config{Brokers: []string{kafkaAddr}, BackoffMin: 20 * time.Millisecond,
		BackoffMax: 200 * time.Millisecond, ScanInterval: 100 * time.Millisecond}
	g, b := edgetest.Start(t, ecfg, bcfg, testkit.Logger(t))
	s.Edge = g
	opt := paho.NewClientOptions().AddBroker("tcp://" + g.MQTTAddr()).SetClientID("systest").SetAutoReconnect(false)
	s.mqtt = paho.NewClient(opt)
	if tok := s.mqtt.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt connect: %v", tok.Error())
	}
	t.Cleanup(func() { s.mqtt.Disconnect(100) })
	// A first reading while the core is down: the bridge retries, as on a
	// gateway that boots before its network.
	if err := s.Publish("sensors/d0/env", Reading("d0", 0, 19)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the bridge to retry", func() bool {
		ps := b.Status().Partitions
		return len(ps) > 0 && ps[0].Retries > 0
	})

	ccfg := server.Config{
		DataDir:           filepath.Join(t.TempDir(), "core"),
		KafkaAddr:         kafkaAddr,
		HTTPAddr:          "127.0.0.1:0",
		NodeID:            1,
		DefaultPartitions: 2,
		Groups:            server.GroupsConfig{InitialRebalanceDelay: -1},
		Replication:       server.ReplicationConfig{ShutdownHandover: -1},
		Cluster: &cluster.Config{
			RaftAddr:                 testkit.FreeAddr(t),
			RPCAddr:                  testkit.FreeAddr(t),
			SerfAddr:                 serfAddr,
			Join:                     []string{serfAddr},
			BootstrapExpect:          1,
			OffsetsPartitions:        3,
			OffsetsReplicationFactor: 1,
			ReconcileInterval:        200 * time.Millisecond,
			Raft:                     cluster.RaftTimings{HeartbeatTimeout: time.Second, ElectionTimeout: time.Second, LeaderLeaseTimeout: 500 * time.Millisecond},
		},
	}
	if opts.Console {
		ccfg.ConsoleAddr = "127.0.0.1:0"
		ccfg.ConsoleEdges = []string{"http://" + g.HTTPAddr()}
	}
	core := coretest.Start(t, ccfg, nil)
	s.Core = core
	testkit.Eventually(t, 30*time.Second, "the core ready", func() bool { return core.Readiness().Ready })
	return s
}

// Publish sends one payload at QoS 1 and waits for its acknowledgement.
func (s *System) Publish(topic string, payload []byte) error {
	tok := s.mqtt.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(10 * time.Second) {
		return errors.New("publish: no acknowledgement in 10s")
	}
	return tok.Error()
}

// PublishQoS0 sends one payload at QoS 0 (nothing to wait for).
func (s *System) PublishQoS0(topic string, payload []byte) {
	s.mqtt.Publish(topic, 0, false, payload).WaitTimeout(5 * time.Second)
}

// Background publishes a reading of device to topic every interval until
// the returned stop is called (or the test ends), so rates are not zero
// while a page is looked at.
func (s *System) Background(topic, device string, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-tick.C:
				_ = s.Publish(topic, Reading(device, 100000+i, 20+float64(i%10)/4))
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(done); wg.Wait() }) }
	s.t.Cleanup(stop)
	return stop
}

// Reading is a JSON reading as devices send them.
func Reading(device string, seq int, temp float64) []byte {
	return fmt.Appendf(nil, `{"device":%q,"seq":%d,"ts":%d,"temp":%.2f,"hum":%.1f}`,
		device, seq, time.Now().UnixMilli(), temp, 40+float64(seq%7))
}

// Traffic publishes n readings per device to each MQTT topic prefix
// (sensors/<device>/env style), then waits until the core has them all.
func (s *System) Traffic(streams []string, devices []string, n int) {
	s.t.Helper()
	for i := range n {
		for _, st := range streams {
			for j, d := range devices {
				temp := 20 + 3*float64(j) + 2*float64(i%10)/10 + float64(i%3)
				if err := s.Publish(st+"/"+d+"/env", Reading(d, i, temp)); err != nil {
					s.t.Fatalf("publish %s %s %d: %v", st, d, i, err)
				}
			}
		}
	}
	want := int64(n * len(devices))
	for _, st := range streams {
		testkit.Eventually(s.t, 30*time.Second, "the core to hold every "+st+" reading", func() bool {
			return s.CoreRecords(st) >= want
		})
	}
}

// CoreRecords counts the records of a core topic from its partitions.
func (s *System) CoreRecords(topic string) int64 {
	var n int64
	for _, p := range s.Core.Partitions() {
		if p.Topic == topic {
			n += p.HighWatermark - p.StartOffset
		}
	}
	return n
}

// ConsumeAndCommit reads n records of topic in group and commits them,
// then leaves the group (its committed offsets stay, so lag shows as more
// arrives).
func (s *System) ConsumeAndCommit(group, topic string, n int) {
	s.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Core.Addr()), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := 0
	for got < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(*kgo.Record) { got++ })
	}
	if got < n {
		s.t.Fatalf("group %s consumed %d of %d from %s", group, got, n, topic)
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		s.t.Fatalf("commit: %v", err)
	}
}

// Scrape returns the sample names on an HTTP listener's /metrics.
func Scrape(t testing.TB, addr string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, line := range strings.Split(testkit.Metrics(t, addr), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}
