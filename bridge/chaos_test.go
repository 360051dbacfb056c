package bridge_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tributary-io/tributary/bridge"
	"github.com/tributary-io/tributary/internal/testkit"
)

// Issue 12, scenario 1: the real edge binary with tiny retention (32 KiB,
// 16 KiB segments, retention every 200 ms) and the core down takes 1,500
// QoS 1 readings into each of 4 new streams. Before the retention hold, the
// bridge's forwarders were created by its 2 s scan and retention removed
// most of each new stream first, silently: the core ended with ~185 of 1,500
// per stream. Now every acknowledged reading reaches the core once the core
// is back.
func TestEdgeBinaryRetentionKeepsUnforwarded(t *testing.T) {
	bin, coreAddr, core := bridge.EdgeBinaryTest(t) // the core starts only after ingest
	mqttAddr := testkit.FreeAddr(t)
	cfgPath := writeEdgeConfig(t, t.TempDir(), mqttAddr, "-", coreAddr, `maintain_interval: 200ms
log:
  segment_bytes: 16384
  retention_bytes: 32768
  durability: {mode: interval, interval: 5ms}
`)
	edge := startEdgeProc(t, bin, cfgPath, mqttAddr)

	const perStream = 1500
	streams := []string{"s1", "s2", "s3", "s4"}
	var wg sync.WaitGroup
	errs := make(chan error, len(streams))
	for _, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- publishReadings(mqttAddr, s, perStream)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Let retention run several times over the full logs while the core
	// is still down.
	time.Sleep(time.Second)
	core.Start()
	for _, s := range streams {
		waitSettled(t, func() int64 { return core.Records(s) }, perStream)
	}
	for _, s := range streams {
		v := bridge.JudgeTopic(t, core, coreAddr, s, map[string]uint64{"dev-" + s: perStream}, nil)
		if !v.Clean() {
			t.Errorf("stream %s on the core: %+v", s, v)
		}
	}
	// Retention works again once the core has the records.
	testkit.Eventually(t, 10*time.Second, "retention after forwarding", func() bool {
		return edge.logged("retention removed records") != ""
	})
	edge.stop()
	if l := edge.logged("dropped on the edge before they were forwarded"); l != "" {
		t.Errorf("edge reported a loss: %s", l)
	}
}

// edgeProc is a running tributary-edge process whose stderr is kept.
type edgeProc struct {
	cmd     *exec.Cmd
	mu      sync.Mutex
	lines   []string
	logDone chan struct{}
	stopped bool
}

// startEdgeProc starts the edge binary with cfgPath and waits until its
// MQTT listener accepts connections; the test's end stops it.
// writeEdgeConfig writes dir/edge.yaml for an edge binary: data in
// dir/data, MQTT on mqttAddr, HTTP on httpAddr ("-": off), devices without
// credentials, a bridge to coreAddr that retries every 20-200 ms, and the
// test's own sections (extra) between them. It returns the file's path.
func writeEdgeConfig(t *testing.T, dir, mqttAddr, httpAddr, coreAddr, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`data_dir: %s
mqtt:
  address: %s
http:
  address: %q
auth:
  allow_anonymous: true
%sbridge:
  brokers: [%s]
  backoff_min: 20ms
  backoff_max: 200ms
  request_timeout: 3s
`, filepath.Join(dir, "data"), mqttAddr, httpAddr, extra, coreAddr)
	path := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func startEdgeProc(t *testing.T, bin, cfgPath, mqttAddr string) *edgeProc {
	t.Helper()
	e := &edgeProc{cmd: exec.Command(bin, "-config", cfgPath, "-log-level", "info"), logDone: make(chan struct{})}
	stderr, err := e.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(e.logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			e.mu.Lock()
			e.lines = append(e.lines, sc.Text())
			e.mu.Unlock()
		}
	}()
	t.Cleanup(e.stop)
	testkit.Eventually(t, 20*time.Second, "the edge to listen", func() bool {
		c, err := net.DialTimeout("tcp", mqttAddr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return e
}

// stop ends the edge gracefully (SIGINT) and waits for it.
func (e *edgeProc) stop() {
	if e.stopped {
		return
	}
	e.stopped = true
	_ = e.cmd.Process.Signal(os.Interrupt)
	_ = e.cmd.Wait()
	<-e.logDone
}

// logged returns the first log line containing s, or "".
func (e *edgeProc) logged(s string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, l := range e.lines {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// waitSettled waits until count reaches want, or stops growing for 3 s (a
// loss then shows in the verdict rather than as a timeout).
func waitSettled(t *testing.T, count func() int64, want int64) {
	t.Helper()
	last, since := int64(-1), time.Now()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		n := count()
		if n >= want {
			return
		}
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) > 3*time.Second {
			return
		}
	}
}

// publishReadings publishes n QoS 1 readings of device dev-<stream> to
// <stream>/dev-<stream>/reading, pipelined, and waits for every PUBACK.
func publishReadings(addr, stream string, n int) error {
	dev := "dev-" + stream
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(dev).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).SetCleanSession(true)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("connect %s: %v", dev, tok.Error())
	}
	defer c.Disconnect(0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	toks := make([]paho.Token, 0, n)
	for i := range n {
		payload := fmt.Sprintf(`{"device":%q,"seq":%d,"ts":%d,"temp":21.5}`, dev, i, time.Now().UnixMilli())
		toks = append(toks, c.Publish(stream+"/"+dev+"/reading", 1, false, payload))
		if len(toks) >= 32 { // paho queues; keep the window like a device's
			if err := waitToken(ctx, toks[0]); err != nil {
				return fmt.Errorf("%s seq %d: %w", dev, i-len(toks)+1, err)
			}
			toks = toks[1:]
		}
	}
	for _, tok := range toks {
		if err := waitToken(ctx, tok); err != nil {
			return fmt.Errorf("%s: %w", dev, err)
		}
	}
	return nil
}

func waitToken(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Issue 12, scenario 2 on the edge: bit rot in a sealed segment of a stream
// the core has not had yet. Before, /healthz said 200, nothing was logged at
// ERROR and the bridge retried the damaged batch for ever, so every reading
// after it stayed on the edge. Now the scrubber finds the damage, /healthz
// answers 503 naming it until the bridge has declared the damaged batch's
// readings lost (counted in tributary_bridge_corrupt_records_total), and
// every other reading reaches the core exactly once.
func TestEdgeBinaryBitRotDeclaredLost(t *testing.T) {
	bin, coreAddr, core := bridge.EdgeBinaryTest(t)
	mqttAddr, httpAddr := testkit.FreeAddr(t), testkit.FreeAddr(t)
	dir := t.TempDir()
	cfgPath := writeEdgeConfig(t, dir, mqttAddr, httpAddr, coreAddr, `ingest:
  default_partitions: 1
scrub:
  interval: 100ms
  bytes_per_sec: 67108864
log:
  segment_bytes: 16384
  durability: {mode: interval, interval: 5ms}
`)
	const n = 1500
	edge := startEdgeProc(t, bin, cfgPath, mqttAddr)
	if err := publishReadings(mqttAddr, "rot", n); err != nil {
		t.Fatal(err)
	}
	edge.stop()
	segs, _ := filepath.Glob(filepath.Join(dir, "data", "logs", "rot-0", "*.log"))
	if len(segs) < 3 {
		t.Fatalf("want sealed segments, have %v", segs)
	}
	testkit.FlipByte(t, segs[1], 120) // a record of the second segment's first batch

	edge = startEdgeProc(t, bin, cfgPath, mqttAddr)
	var health edgeHealth
	testkit.Eventually(t, 20*time.Second, "/healthz to report the damage", func() bool {
		code, h := getEdgeHealth(t, httpAddr)
		health = h
		return code == http.StatusServiceUnavailable && len(h.Damaged) == 1 && !h.Damaged[0].DeclaredLost
	})
	if l := edge.logged("corrupt batch on disk"); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, segs[1]) {
		t.Errorf("no ERROR line naming %s: %q", segs[1], l)
	}
	dmg := health.Damaged[0]
	lost := dmg.To - dmg.From
	core.Start()
	waitSettled(t, func() int64 { return core.Records("rot") }, n-lost)
	testkit.Eventually(t, 20*time.Second, "/healthz to clear once the loss is declared", func() bool {
		code, h := getEdgeHealth(t, httpAddr)
		return code == http.StatusOK && len(h.Damaged) == 1 && h.Damaged[0].DeclaredLost
	})
	v := bridge.JudgeTopic(t, core, coreAddr, "rot", map[string]uint64{"dev-rot": n}, nil)
	if v.Lost() != uint64(lost) || v.Records() != int(n-lost) || !v.CleanButLost() {
		t.Fatalf("core: %+v; want exactly the %d readings of the damaged batch missing", v, lost)
	}
	if got := scrapeCounter(t, httpAddr, "tributary_bridge_corrupt_records_total"); got != float64(lost) {
		t.Errorf("tributary_bridge_corrupt_records_total = %v, want %d", got, lost)
	}
	t.Logf("damage at byte %d of %s: %d readings declared lost, %d forwarded", dmg.Position, dmg.Segment, lost, v.Records())
}

type edgeHealth struct {
	Damaged []struct {
		From         int64  `json:"from_offset"`
		To           int64  `json:"to_offset"`
		Segment      string `json:"segment"`
		Position     int64  `json:"position"`
		DeclaredLost bool   `json:"declared_lost"`
	} `json:"damaged"`
}

func getEdgeHealth(t *testing.T, addr string) (int, edgeHealth) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, edgeHealth{}
	}
	defer resp.Body.Close()
	var h edgeHealth
	_ = json.NewDecoder(resp.Body).Decode(&h)
	return resp.StatusCode, h
}

// scrapeCounter sums every series of a metric on an edge's /metrics.
func scrapeCounter(t *testing.T, addr, name string) float64 {
	t.Helper()
	var sum float64
	for line := range strings.Lines(testkit.Metrics(t, addr)) {
		if !strings.HasPrefix(line, name) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}
