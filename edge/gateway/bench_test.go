package gateway

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/tributary-io/tributary/internal/testkit"
)

// The ingest benchmarks run the real tributary-edge binary and, side by side
// under the same load, Debian's mosquitto (default config, no persistence).
// They publish one at a time per connection (paced by the acknowledgement);
// the pipelined comparison is `tributary-bench` (benchmarks/cmd):
//
//	go test -run '^$' -bench Ingest -benchtime 20000x ./edge/gateway/
//
// Each iteration is one 100-byte CBOR reading; they are spread over the
// connections. QoS 0 ends with a QoS 1 publish per connection, whose PUBACK
// (connections are processed in order) proves every QoS 0 reading before it
// was appended. Reported: msgs/s, and the broker's peak RSS (VmHWM).

type benchBroker struct {
	name     string
	cmd      *exec.Cmd
	addr     string
	httpAddr string
}

func buildEdge(b *testing.B) string {
	b.Helper()
	return testkit.BuildBinary(b, "edge/cmd/tributary-edge")
}

func startBroker(b *testing.B, kind, edgeBin string) *benchBroker {
	return startBrokerWith(b, kind, edgeBin, "")
}

// startBrokerWith adds extra YAML to the edge's config.
func startBrokerWith(b *testing.B, kind, edgeBin, extra string) *benchBroker {
	b.Helper()
	dir := b.TempDir()
	addr := testkit.FreeAddr(b)
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	var cmd *exec.Cmd
	httpAddr := ""
	switch kind {
	case "edge":
		httpAddr = testkit.FreeAddr(b)
		cfg := fmt.Sprintf("data_dir: %s\nlog_level: error\nmqtt:\n  address: %s\nhttp:\n  address: %s\nauth:\n  allow_anonymous: true\n%s", filepath.Join(dir, "data"), addr, httpAddr, extra)
		path := filepath.Join(dir, "edge.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			b.Fatal(err)
		}
		cmd = exec.Command(edgeBin, "-config", path)
	case "mosquitto":
		bin, err := exec.LookPath("mosquitto")
		if err != nil {
			b.Skip("mosquitto not installed")
		}
		path := filepath.Join(dir, "mosquitto.conf")
		if err := os.WriteFile(path, []byte("listener "+port+" 127.0.0.1\nallow_anonymous true\npersistence false\nmax_connections -1\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		cmd = exec.Command(bin, "-c", path)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", kind, err)
	}
	br := &benchBroker{name: kind, cmd: cmd, addr: addr, httpAddr: httpAddr}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, _, err := dialRaw(b, addr, 4, "probe", "", ""); err == nil {
			c.conn.Close()
			return br
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s did not listen", kind)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reading100 is a 100-byte CBOR reading (the fleet's usual encoding).
func reading100(dev string, seq int) []byte {
	m := map[string]any{"device": dev, "seq": uint64(seq), "ts": int64(1_700_000_000_000), "temp": 21.5, "hum": 40.25, "vib": 0.01}
	p, _ := cbor.Marshal(m)
	if pad := 100 - len(p) - 4; pad > 0 { // "fw" key and text header take 4 bytes
		m["fw"] = strings.Repeat("x", pad)
		p, _ = cbor.Marshal(m)
	}
	return p
}

func BenchmarkIngest(b *testing.B) {
	edgeBin := buildEdge(b)
	for _, conns := range []int{100, 1000} {
		for _, qos := range []byte{0, 1} {
			for _, kind := range []string{"edge", "mosquitto"} {
				b.Run(fmt.Sprintf("%s/conns=%d/qos=%d", kind, conns, qos), func(b *testing.B) {
					br := startBroker(b, kind, edgeBin)
					clients := make([]*rawClient, conns)
					for i := range clients {
						c, code, err := dialRaw(b, br.addr, 4, fmt.Sprintf("bench-%d", i), "", "")
						if err != nil || code != 0 {
							b.Fatalf("connect %d: %v %d", i, err, code)
						}
						clients[i] = c
					}
					per := (b.N + conns - 1) / conns
					// Each reading has its own seq, or the edge would take the
					// copies for re-sends and store only the first. Encoded
					// before the clock starts, so the load generator's CPU
					// (shared with the broker) stays out of the comparison.
					bodies := make([][][]byte, conns)
					for i := range bodies {
						bodies[i] = make([][]byte, per+1)
						for s := range bodies[i] {
							bodies[i][s] = reading100(fmt.Sprintf("dev-%06d", i), s)
						}
					}
					b.ResetTimer()
					start := time.Now()
					err := inParallel(conns, func(i int) error {
						c, dev := clients[i], fmt.Sprintf("dev-%06d", i)
						topic := "sensors/" + dev + "/reading"
						for s := 0; s < per; s++ {
							if _, err := c.publish(topic, bodies[i][s], qos, "", 30*time.Second); err != nil {
								return err
							}
						}
						if qos == 0 { // fence: all earlier QoS 0 readings are processed
							if _, err := c.publish(topic, bodies[i][per], 1, "", 60*time.Second); err != nil {
								return err
							}
						}
						return nil
					})
					elapsed := time.Since(start)
					b.StopTimer()
					if err != nil {
						b.Fatalf("%s: %v", kind, err)
					}
					for _, c := range clients {
						c.conn.Close()
					}
					b.ReportMetric(float64(per*conns)/elapsed.Seconds(), "msgs/s")
					b.ReportMetric(testkit.PeakRSS(br.cmd.Process.Pid), "peakRSS_MB")
				})
			}
		}
	}
}

// BenchmarkEdgeRSS runs 1,000 devices at 10 QoS 1 readings/s each for 10 s
// against the edge and reports its peak RSS (target ≤ 40 MB).
func BenchmarkEdgeRSS(b *testing.B) {
	edgeBin := buildEdge(b)
	for _, limit := range []int{0, 24} {
		b.Run(fmt.Sprintf("memory_limit_mb=%d", limit), func(b *testing.B) { edgeRSS(b, edgeBin, limit) })
	}
}

func edgeRSS(b *testing.B, edgeBin string, limit int) {
	for i := 0; i < b.N; i++ {
		br := startBrokerWith(b, "edge", edgeBin, fmt.Sprintf("memory_limit_mb: %d\n", limit))
		const devices, rate, seconds = 1000, 10, 10
		var wg sync.WaitGroup
		var mu sync.Mutex
		var failed error
		for d := 0; d < devices; d++ {
			c, _, err := dialRaw(b, br.addr, 4, fmt.Sprintf("rss-%d", d), "", "")
			if err != nil {
				b.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.conn.Close()
				dev := fmt.Sprintf("dev-%06d", d)
				tick := time.NewTicker(time.Second / rate)
				defer tick.Stop()
				for s := 0; s < rate*seconds; s++ {
					<-tick.C
					if _, err := c.publish("sensors/"+dev+"/reading", reading100(dev, s), 1, "", 30*time.Second); err != nil {
						mu.Lock()
						failed = err
						mu.Unlock()
						return
					}
				}
			}()
		}
		var maxHeap, maxStack float64
		sampled := make(chan struct{})
		go func() { // sample while the load runs; the peak is what matters
			defer close(sampled)
			for s := 0; s < seconds-1; s++ {
				time.Sleep(time.Second)
				h, st := testkit.GoMem(br.httpAddr)
				maxHeap, maxStack = max(maxHeap, h), max(maxStack, st)
			}
		}()
		wg.Wait()
		<-sampled
		if failed != nil {
			b.Fatal(failed)
		}
		heap, stack := maxHeap, maxStack
		b.ReportMetric(testkit.PeakRSS(br.cmd.Process.Pid), "peakRSS_MB")
		b.ReportMetric(heap, "heap_MB")
		b.ReportMetric(stack, "stack_MB")
	}
}
