package bridge_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tributary-io/tributary/bridge"
)

// Issue 12, scenario 1: the real edge binary with tiny retention (32 KiB,
// 16 KiB segments, retention every 200 ms) and the core down takes 1,500
// QoS 1 readings into each of 4 new streams. Before the retention hold, the
// bridge's forwarders were created by its 2 s scan and retention removed
// most of each new stream first, silently: the core ended with ~185 of 1,500
// per stream. Now every acknowledged reading reaches the core once the core
// is back.
func TestEdgeBinaryRetentionKeepsUnforwarded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the edge binary")
	}
	t.Parallel()
	bin := buildBinary(t, "edge/cmd/tributary-edge")
	coreAddr := bridge.FreeAddr(t)
	core := bridge.NewTestCore(t, coreAddr, "") // started only after ingest
	mqttAddr := bridge.FreeAddr(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "edge.yaml")
	cfg := fmt.Sprintf(`data_dir: %s
mqtt:
  address: %s
http:
  address: "-"
auth:
  allow_anonymous: true
maintain_interval: 200ms
log:
  segment_bytes: 16384
  retention_bytes: 32768
  durability: {mode: interval, interval: 5ms}
bridge:
  brokers: [%s]
  backoff_min: 20ms
  backoff_max: 200ms
  request_timeout: 3s
`, filepath.Join(dir, "data"), mqttAddr, coreAddr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", cfgPath, "-log-level", "info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logMu sync.Mutex
	var logLines []string
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			logLines = append(logLines, sc.Text())
			logMu.Unlock()
		}
	}()
	stopped := false
	stopEdge := func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Signal(os.Interrupt)
			_ = cmd.Wait()
			<-logDone
		}
	}
	t.Cleanup(stopEdge)

	bridge.WaitFor(t, 20*time.Second, "the edge to listen", func() bool {
		c, err := net.DialTimeout("tcp", mqttAddr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

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
	bridge.WaitFor(t, 10*time.Second, "retention after forwarding", func() bool {
		logMu.Lock()
		defer logMu.Unlock()
		for _, l := range logLines {
			if strings.Contains(l, "retention removed records") {
				return true
			}
		}
		return false
	})
	stopEdge()
	for _, l := range logLines {
		if strings.Contains(l, "dropped on the edge before they were forwarded") {
			t.Errorf("edge reported a loss: %s", l)
		}
	}
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
