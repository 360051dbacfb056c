package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary-io/tributary/internal/testkit"
)

// edgeVsMosquitto runs the tributary-edge binary and Debian's mosquitto (no
// persistence) under the same MQTT load: 100-byte CBOR readings over 100 and
// 1,000 connections at QoS 0 and QoS 1, then the edge's peak RSS at 1,000
// devices × 10 QoS 1 readings/s. The load generator writes MQTT by hand over
// net.Conn, pipelined (QoS 1: up to 32 unacknowledged publishes per
// connection, the edge's receive maximum), so it costs far less CPU than
// either broker. Every reading has its own seq and ts, so the edge stores
// every one (its re-send window does not take them for duplicates).
//
// $TRIBUTARY_EDGE_BIN names a tributary-edge binary to measure (an older
// build, for before/after figures); unset builds one from the working tree
// as a release is built (productBin).
// $TRIBUTARY_EDGE_CONFIG is YAML added to the edge's config (a setting to
// measure). $TRIBUTARY_EDGE_PROFILE=PREFIX serves pprof from the edge, runs each load
// 10× longer and saves PREFIX-<phase>-cpu.pprof (3 s during each throughput
// phase) and PREFIX-rss-{heap,goroutine}.pprof after the RSS run.
func edgeVsMosquitto(dir string, quick bool) ([]row, error) {
	mosq, edgeBin, err := mosquittoAndEdge(dir)
	if err != nil {
		return nil, err
	}
	profile := os.Getenv("TRIBUTARY_EDGE_PROFILE")
	perConn := map[int]int{100: 10000, 1000: 1000}
	rssSeconds := 10
	if quick {
		perConn = map[int]int{100: 1000, 1000: 100}
		rssSeconds = 5
	}
	if profile != "" {
		for k := range perConn {
			perConn[k] *= 10
		}
	}
	var rows []row
	for _, conns := range []int{100, 1000} {
		for _, qos := range []byte{0, 1} {
			var rates [2]float64
			var rss [2]float64
			for i, kind := range []string{"edge", "mosquitto"} {
				b, err := startMQTTBroker(dir, kind, edgeBin, mosq, profileConfig(profile))
				if err != nil {
					return rows, err
				}
				waitProfile := func() {}
				if profile != "" && kind == "edge" {
					waitProfile = b.profileCPU(fmt.Sprintf("%s-%dconns-qos%d-cpu.pprof", profile, conns, qos))
				}
				rate, err := mqttLoad(b.addr, conns, perConn[conns], qos)
				waitProfile()
				rss[i] = b.peakRSS()
				b.stop()
				if err != nil {
					return rows, fmt.Errorf("%s, %d conns, QoS %d: %w", kind, conns, qos, err)
				}
				rates[i] = rate
			}
			target := "≥ 1.5×"
			if qos == 1 {
				target = "≥ 1×"
			}
			rows = append(rows, row{
				Name:   fmt.Sprintf("edge MQTT ingest, %d conns, QoS %d, 100 B (vs mosquitto)", conns, qos),
				Ours:   fmt.Sprintf("%.0f msgs/s (RSS %.0f MB)", rates[0], rss[0]),
				Peer:   fmt.Sprintf("%.0f msgs/s (RSS %.0f MB)", rates[1], rss[1]),
				Ratio:  rates[0] / rates[1],
				Target: target,
			})
		}
	}
	b, err := startMQTTBroker(dir, "edge", edgeBin, mosq, profileConfig(profile))
	if err != nil {
		return rows, err
	}
	heap, stack, err := mqttSteadyLoad(b, 1000, 10, rssSeconds, func() {
		if profile != "" { // while the devices are still connected
			b.saveProfile("heap", profile+"-rss-heap.pprof")
			b.saveProfile("goroutine", profile+"-rss-goroutine.pprof")
		}
	})
	rss := b.peakRSS()
	b.stop()
	if err != nil {
		return rows, fmt.Errorf("edge RSS run: %w", err)
	}
	// The same load on mochi alone: what the MQTT layer costs before the
	// edge decodes or stores anything.
	m, err := startMQTTBroker(dir, "bare-mochi", edgeBin, mosq, "")
	if err != nil {
		return rows, err
	}
	mHeap, mStack, err := mqttSteadyLoad(m, 1000, 10, rssSeconds, func() {})
	mRSS := m.peakRSS()
	m.stop()
	if err != nil {
		return rows, fmt.Errorf("bare mochi RSS run: %w", err)
	}
	rows = append(rows, row{
		Name:   fmt.Sprintf("edge peak RSS, 1,000 devices × 10 QoS 1 msgs/s for %d s (peer: unpatched mochi-mqtt alone, allow-all hook, no storage)", rssSeconds),
		Ours:   fmt.Sprintf("%.1f MB (heap %.1f, stacks %.1f)", rss, heap, stack),
		Peer:   fmt.Sprintf("%.1f MB (heap %.1f, stacks %.1f)", mRSS, mHeap, mStack),
		Target: "≤ 40 MB",
	})
	// Idle connections: what a connection costs while it sends nothing,
	// edge and mochi alone in turn.
	const idle = 5000
	var idleRSS, idleHeap, idleStack [2]float64
	for i, kind := range []string{"edge", "bare-mochi"} {
		extra := ""
		if kind == "edge" {
			extra = profileConfig(profile)
		}
		b, err := startMQTTBroker(dir, kind, edgeBin, mosq, extra)
		if err != nil {
			return rows, err
		}
		idleHeap[i], idleStack[i], err = mqttIdleLoad(b, idle, 2*time.Second)
		idleRSS[i] = b.peakRSS()
		b.stop()
		if err != nil {
			return rows, fmt.Errorf("%s, %d idle connections: %w", kind, idle, err)
		}
	}
	rows = append(rows, row{
		Name:   fmt.Sprintf("edge peak RSS, %d idle connections (peer: unpatched mochi-mqtt alone)", idle),
		Ours:   fmt.Sprintf("%.1f MB (heap %.1f, stacks %.1f)", idleRSS[0], idleHeap[0], idleStack[0]),
		Peer:   fmt.Sprintf("%.1f MB (heap %.1f, stacks %.1f)", idleRSS[1], idleHeap[1], idleStack[1]),
		Target: "≤ 64 MB",
	})
	return rows, nil
}

// mqttIdleLoad connects n clients (8 at a time) that send nothing after
// CONNECT, holds them for hold while sampling the broker's heap and stack
// peaks, then closes them.
func mqttIdleLoad(b *mqttBroker, n int, hold time.Duration) (heap, stack float64, err error) {
	cs := make([]net.Conn, n)
	defer func() {
		for _, c := range cs {
			if c != nil {
				c.Close()
			}
		}
	}()
	const dialers = 8
	errs := make(chan error, dialers)
	var wg sync.WaitGroup
	for w := range dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += dialers {
				c, err := mqttConnect(b.addr, fmt.Sprintf("idle-%d", i))
				if err != nil {
					errs <- fmt.Errorf("connect %d: %w", i, err)
					return
				}
				cs[i] = c
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, 0, err
	}
	for end := time.Now().Add(hold); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		h, s := testkit.GoMem(b.httpAddr)
		heap, stack = max(heap, h), max(stack, s)
	}
	return heap, stack, nil
}

// mosquittoAndEdge finds mosquitto and builds (or takes, see productBin)
// the tributary-edge binary: the two brokers the edge and ingest sections
// measure side by side.
func mosquittoAndEdge(dir string) (mosq, edgeBin string, err error) {
	mosq, err = exec.LookPath("mosquitto")
	if err != nil {
		return "", "", fmt.Errorf("mosquitto not installed (apt-get install -y mosquitto): %w", err)
	}
	edgeBin, err = productBin(dir, "tributary-edge")
	return mosq, edgeBin, err
}

type mqttBroker struct {
	cmd      *exec.Cmd
	addr     string
	httpAddr string
	dir      string
}

// startMQTTBroker starts kind ("edge" or "mosquitto"); extra is YAML
// appended to the edge's config.
func startMQTTBroker(dir, kind, edgeBin, mosq, extra string) (*mqttBroker, error) {
	bdir, err := os.MkdirTemp(dir, "edge-bench-")
	if err != nil {
		return nil, err
	}
	addr, err := testkit.ReserveAddr()
	if err != nil {
		return nil, err
	}
	b := &mqttBroker{addr: addr, dir: bdir}
	switch kind {
	case "edge":
		if b.httpAddr, err = testkit.ReserveAddr(); err != nil {
			return nil, err
		}
		cfg := fmt.Sprintf("data_dir: %s\nlog_level: error\nmqtt:\n  address: %s\nauth:\n  allow_anonymous: true\nhttp:\n  address: %s\n%s",
			filepath.Join(bdir, "data"), addr, b.httpAddr, extra)
		path := filepath.Join(bdir, "edge.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		b.cmd = exec.Command(edgeBin, "-config", path)
	case "bare-mochi":
		if b.httpAddr, err = testkit.ReserveAddr(); err != nil {
			return nil, err
		}
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find own binary: %w", err)
		}
		b.cmd = exec.Command(self, "-serve-bare-mochi", addr+","+b.httpAddr)
		b.cmd.Stderr = os.Stderr
	default:
		port := addr[strings.LastIndexByte(addr, ':')+1:]
		path := filepath.Join(bdir, "mosquitto.conf")
		conf := "listener " + port + " 127.0.0.1\nallow_anonymous true\npersistence false\nmax_connections -1\n"
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		b.cmd = exec.Command(mosq, "-c", path)
	}
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; {
		if c, err := mqttConnect(addr, "probe"); err == nil {
			c.Close()
			return b, nil
		}
		if time.Now().After(deadline) {
			b.stop()
			return nil, fmt.Errorf("%s did not listen on %s", kind, addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// profileConfig is what the benchmark adds to the edge's config: pprof
// when profiling, then $TRIBUTARY_EDGE_CONFIG (top-level YAML, e.g.
// "memory_limit_mb: 64") to measure a setting.
func profileConfig(profile string) string {
	extra := ""
	if profile != "" {
		extra = "  pprof: true\n" // continues the http: section startMQTTBroker writes last
	}
	if c := os.Getenv("TRIBUTARY_EDGE_CONFIG"); c != "" {
		extra += strings.TrimSuffix(c, "\n") + "\n"
	}
	return extra
}

// saveProfile fetches /debug/pprof/<what> from the edge into path.
func (b *mqttBroker) saveProfile(what, path string) { savePprof(b.httpAddr, what, path) }

// profileCPU saves 3 s of the edge's CPU profile into path in the
// background, while a load runs; wait blocks until it is saved.
func (b *mqttBroker) profileCPU(path string) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.saveProfile("profile?seconds=3", path)
	}()
	return func() { <-done }
}

// savePprof fetches /debug/pprof/<what> from the HTTP server at addr into
// path; a failure is reported on stderr, the benchmark goes on.
func savePprof(addr, what, path string) {
	resp, err := http.Get("http://" + addr + "/debug/pprof/" + what)
	if err != nil {
		fmt.Fprintf(os.Stderr, "   profile %s: %v\n", what, err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "   profile %s: %v\n", what, err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		fmt.Fprintf(os.Stderr, "   profile %s: %v\n", what, err)
	}
}

func (b *mqttBroker) stop() {
	_ = b.cmd.Process.Kill()
	_ = b.cmd.Wait()
	os.RemoveAll(b.dir)
}

// peakRSS is the broker's high-water resident set (VmHWM) in MB.
func (b *mqttBroker) peakRSS() float64 { return testkit.PeakRSS(b.cmd.Process.Pid) }

// mqttConnect opens an MQTT 3.1.1 session (clean, keepalive 60 s).
func mqttConnect(addr, clientID string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60}
	body = binary.BigEndian.AppendUint16(body, uint16(len(clientID)))
	body = append(body, clientID...)
	pk := append([]byte{0x10}, mqttRemLen(len(body))...)
	if _, err := c.Write(append(pk, body...)); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ack [4]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("connack: %w", err)
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		c.Close()
		return nil, fmt.Errorf("connack refused: % x", ack)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, nil
}

func mqttRemLen(n int) []byte {
	var b []byte
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// mqttPublisher encodes one device's PUBLISH packets into a reused buffer,
// patching seq, ts and the packet id in a template.
type mqttPublisher struct {
	pkt         []byte
	seqAt, tsAt int
	idAt        int // -1 for QoS 0
	baseTs      int64
	qos         byte
	nextID      uint16
}

// mqttReading100 is a 100-byte CBOR reading map with fixed-width seq (uint32)
// and ts (uint64) so they can be patched in place.
func mqttReading100(dev string) (p []byte, seqAt, tsAt int) {
	if len(dev) > 23 {
		panic("device id too long for the template")
	}
	text := func(s string) { p = append(p, 0x60+byte(len(s))); p = append(p, s...) }
	f64 := func(v float64) { p = append(p, 0xfb); p = binary.BigEndian.AppendUint64(p, math.Float64bits(v)) }
	p = append(p, 0xa7)
	text("device")
	text(dev)
	text("seq")
	p = append(p, 0x1a)
	seqAt = len(p)
	p = append(p, 0, 0, 0, 0)
	text("ts")
	p = append(p, 0x1b)
	tsAt = len(p)
	p = append(p, 0, 0, 0, 0, 0, 0, 0, 0)
	text("temp")
	f64(21.5)
	text("hum")
	f64(40.25)
	text("vib")
	f64(0.01)
	text("fw")
	text(strings.Repeat("x", max(0, min(23, 100-len(p)-1))))
	return p, seqAt, tsAt
}

func newMQTTPublisher(dev string, qos byte) *mqttPublisher {
	payload, seqAt, tsAt := mqttReading100(dev)
	topic := "sensors/" + dev + "/reading"
	var vh []byte
	vh = binary.BigEndian.AppendUint16(vh, uint16(len(topic)))
	vh = append(vh, topic...)
	idAt := -1
	if qos > 0 {
		idAt = len(vh)
		vh = append(vh, 0, 0)
	}
	hdr := append([]byte{0x30 | qos<<1}, mqttRemLen(len(vh)+len(payload))...)
	pkt := append(append(hdr, vh...), payload...)
	off := len(hdr) + len(vh)
	p := &mqttPublisher{pkt: pkt, seqAt: off + seqAt, tsAt: off + tsAt, qos: qos, baseTs: time.Now().UnixMilli()}
	if idAt >= 0 {
		p.idAt = len(hdr) + idAt
	} else {
		p.idAt = -1
	}
	return p
}

// next returns the packet for reading seq (valid until the next call).
func (p *mqttPublisher) next(seq uint32) []byte {
	binary.BigEndian.PutUint32(p.pkt[p.seqAt:], seq)
	binary.BigEndian.PutUint64(p.pkt[p.tsAt:], uint64(p.baseTs+int64(seq)))
	if p.idAt >= 0 {
		p.nextID++
		if p.nextID == 0 {
			p.nextID = 1
		}
		binary.BigEndian.PutUint16(p.pkt[p.idAt:], p.nextID)
	}
	return p.pkt
}

// mqttWindow is how many QoS 1 publishes a connection keeps unacknowledged.
const mqttWindow = 32

// mqttLoad connects conns clients, has each send per readings at qos as fast
// as the broker takes them, and returns the aggregate msgs/s. QoS 0 ends
// with a QoS 1 publish per connection whose PUBACK (a connection's packets
// are handled in order) proves every reading before it was processed.
func mqttLoad(addr string, conns, per int, qos byte) (float64, error) {
	cs, err := mqttConnectAll(addr, "bench", conns)
	if err != nil {
		return 0, err
	}
	defer closeConns(cs)
	return timeLoad(cs, per, func(i int, c net.Conn) error {
		dev := fmt.Sprintf("dev-%06d", i)
		return sendLoad(c, per, qos, newMQTTPublisher(dev, qos).next, newMQTTPublisher(dev, 1).next(uint32(per)))
	})
}

// mqttConnectAll opens n connections with the client IDs prefix-0, prefix-1,
// …; when one fails it closes those it opened.
func mqttConnectAll(addr, prefix string, n int) ([]net.Conn, error) {
	cs := make([]net.Conn, n)
	for i := range cs {
		c, err := mqttConnect(addr, fmt.Sprintf("%s-%d", prefix, i))
		if err != nil {
			closeConns(cs)
			return nil, fmt.Errorf("connect %d: %w", i, err)
		}
		cs[i] = c
	}
	return cs, nil
}

func closeConns(cs []net.Conn) {
	for _, c := range cs {
		if c != nil {
			c.Close()
		}
	}
}

// timeLoad runs load on every connection at once and returns the aggregate
// msgs/s of per messages each; a connection whose load fails is closed.
func timeLoad(cs []net.Conn, per int, load func(i int, c net.Conn) error) (float64, error) {
	var wg sync.WaitGroup
	errs := make(chan error, len(cs))
	start := time.Now()
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := load(i, c); err != nil {
				errs <- err
				c.Close()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(len(cs)*per) / elapsed.Seconds(), nil
}

// sendLoad sends the packets next makes for seq 0 to per-1 on c as fast as
// the broker takes them, and returns once it took them all. QoS 1 keeps
// mqttWindow publishes unacknowledged; QoS 0 ends with fence, a QoS 1
// publish whose PUBACK proves every publish before it was taken.
func sendLoad(c net.Conn, per int, qos byte, next func(seq uint32) []byte, fence []byte) error {
	_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
	if qos == 0 {
		w := bufio.NewWriterSize(c, 16<<10)
		for s := 0; s < per; s++ {
			if _, err := w.Write(next(uint32(s))); err != nil {
				return err
			}
		}
		if _, err := w.Write(fence); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		return mqttReadAcks(c, 1)
	}
	return testkit.PublishWindow(c, per, mqttWindow, func(s int) []byte { return next(uint32(s)) })
}

func mqttReadAcks(c net.Conn, n int) error { return testkit.ReadPubacks(c, n, nil) }

// mqttSteadyLoad has devices publish rate QoS 1 readings/s each for seconds and
// samples the edge's heap and stack peaks meanwhile; atEnd runs after the
// last reading, before the connections close.
func mqttSteadyLoad(b *mqttBroker, devices, rate, seconds int, atEnd func()) (heap, stack float64, err error) {
	// The throughput phases leave this process (the load generator) a large
	// heap; collect it first, so that its collector does not pause the
	// devices and bunch their readings during the measurement.
	runtime.GC()
	debug.FreeOSMemory()
	cs, err := mqttConnectAll(b.addr, "rss", devices)
	if err != nil {
		return 0, 0, err
	}
	defer closeConns(cs)
	var failed atomic.Value
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := newMQTTPublisher(fmt.Sprintf("dev-%06d", i), 1)
			r := bufio.NewReaderSize(c, 64)
			// Spread the devices over the first interval, as a fleet would be.
			time.Sleep(time.Duration(i) * time.Second / time.Duration(rate*devices))
			tick := time.NewTicker(time.Second / time.Duration(rate))
			defer tick.Stop()
			_ = c.SetDeadline(time.Now().Add(time.Duration(seconds+30) * time.Second))
			var ack [4]byte
			for s := 0; s < rate*seconds; s++ {
				<-tick.C
				if _, err := c.Write(p.next(uint32(s))); err != nil {
					failed.Store(err)
					return
				}
				if _, err := io.ReadFull(r, ack[:]); err != nil || ack[0] != 0x40 {
					failed.Store(fmt.Errorf("puback: %v % x", err, ack))
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for sampling := true; sampling; {
		select {
		case <-done:
			sampling = false
		case <-time.After(500 * time.Millisecond):
			h, s := testkit.GoMem(b.httpAddr)
			heap, stack = max(heap, h), max(stack, s)
		}
	}
	atEnd()
	if e, ok := failed.Load().(error); ok {
		return heap, stack, e
	}
	return heap, stack, nil
}
