package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tributary-io/tributary/internal/testkit"
)

// Helpers shared by the e2e, drain and cluster sections, which run the real
// tributary-core and tributary-edge binaries as child processes.

// child is a daemon started in its own process group, so kill takes
// anything it started with it. Every live child is registered, so an
// interrupted harness (killChildren) leaves none behind.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

var (
	childrenMu sync.Mutex
	children   = map[*child]bool{}
)

func startChild(name, logPath, bin string, args ...string) (*child, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: open log: %w", name, err)
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childSysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	childrenMu.Lock()
	children[c] = true
	childrenMu.Unlock()
	return c, nil
}

// kill SIGKILLs the child's process group and waits (at most 10 s) for it.
func (c *child) kill() {
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
	}
	childrenMu.Lock()
	delete(children, c)
	childrenMu.Unlock()
}

func (c *child) exited() bool { return closed(c.done) }

// closed reports, without waiting, whether ch is closed.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// reserveAddrs reserves n loopback addresses for children to listen on.
func reserveAddrs(n int) ([]string, error) {
	addrs := make([]string, n)
	for i := range addrs {
		a, err := testkit.ReserveAddr()
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	return addrs, nil
}

// cpuTime is the CPU time (user + system) the child's process has used so
// far, from /proc (0 where there is none).
func (c *child) cpuTime() time.Duration { return procCPUTime(c.cmd.Process.Pid) }

// procCPUTime is the CPU time (user + system) process pid has used so far,
// from /proc (0 where there is none).
func procCPUTime(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name (which may hold spaces) in ")".
	i := bytes.LastIndexByte(data, ')')
	f := strings.Fields(string(data[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// procSyscalls is how many read and write system calls process pid has
// made so far (/proc/PID/io; 0 where there is none).
func procSyscalls(pid int) (reads, writes int64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "syscr: "); ok {
			reads, _ = strconv.ParseInt(v, 10, 64)
		} else if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			writes, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return reads, writes
}

// tail is the last n lines of the child's log, for error messages.
func (c *child) tail(n int) string {
	data, err := os.ReadFile(c.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// killChildren kills every child still running (on SIGINT/SIGTERM).
func killChildren() {
	childrenMu.Lock()
	cs := make([]*child, 0, len(children))
	for c := range children {
		cs = append(cs, c)
	}
	childrenMu.Unlock()
	for _, c := range cs {
		c.kill()
	}
}

// scratchDir creates a data directory under dir for one section, removed
// by the returned function or, if the harness is interrupted, by
// removeScratch.
func scratchDir(dir, pattern string) (string, func(), error) {
	d, err := os.MkdirTemp(dir, pattern)
	if err != nil {
		return "", nil, fmt.Errorf("scratch dir: %w", err)
	}
	childrenMu.Lock()
	scratch[d] = true
	childrenMu.Unlock()
	return d, func() {
		os.RemoveAll(d)
		childrenMu.Lock()
		delete(scratch, d)
		childrenMu.Unlock()
	}, nil
}

var scratch = map[string]bool{}

// removeScratch removes every scratch directory still in use (after
// killChildren, on SIGINT/SIGTERM).
func removeScratch() {
	childrenMu.Lock()
	defer childrenMu.Unlock()
	for d := range scratch {
		os.RemoveAll(d)
	}
}

// productBin returns a tributary binary ("tributary-core" or
// "tributary-edge"), built once per run from the product module into a
// directory under -dir (removed by removeBuilt), the way the release is
// built. $TRIBUTARY_CORE_BIN and
// $TRIBUTARY_EDGE_BIN name prebuilt ones instead.
func productBin(dir, name string) (string, error) {
	envs := map[string]string{"tributary-core": "TRIBUTARY_CORE_BIN", "tributary-edge": "TRIBUTARY_EDGE_BIN"}
	pkgs := map[string]string{"tributary-core": "./core/cmd/tributary-core", "tributary-edge": "./edge/cmd/tributary-edge"}
	if p := os.Getenv(envs[name]); p != "" {
		return p, nil
	}
	builtMu.Lock()
	defer builtMu.Unlock()
	if p, ok := built[name]; ok {
		return p, nil
	}
	if builtDir == "" {
		d, err := os.MkdirTemp(dir, "tributary-bench-bin-")
		if err != nil {
			return "", fmt.Errorf("binary directory: %w", err)
		}
		builtDir = d
	}
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tributary-io/tributary").Output()
	if err != nil {
		return "", fmt.Errorf("find the tributary module: %w", err)
	}
	bin := filepath.Join(builtDir, name)
	// As `make cross` builds what a gateway runs: static, stripped.
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkgs[name])
	build.Dir = strings.TrimSpace(string(root))
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", name, err, out)
	}
	built[name] = bin
	return bin, nil
}

var (
	builtMu  sync.Mutex
	built    = map[string]string{}
	builtDir string
)

func removeBuilt() {
	builtMu.Lock()
	defer builtMu.Unlock()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
}

// waitHealthy polls url until it answers 200, c exits or timeout passes.
func waitHealthy(c *child, url string, timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		if c.exited() {
			return fmt.Errorf("%s exited during start-up:\n%s", c.name, c.tail(8))
		}
		resp, err := hc.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("%s not healthy at %s after %v:\n%s", c.name, url, timeout, c.tail(8))
}

// waitListening dials addr until it accepts, c exits or timeout passes.
func waitListening(c *child, addr string, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		if c.exited() {
			return fmt.Errorf("%s exited during start-up:\n%s", c.name, c.tail(8))
		}
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			return nil
		}
	}
	return fmt.Errorf("%s did not listen on %s within %v:\n%s", c.name, addr, timeout, c.tail(8))
}

// startCore runs a single-node tributary-core with its data under dir and
// waits (30 s at most) until /healthz answers.
func startCore(bin, dir, kafkaAddr, httpAddr string) (*child, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("core dir: %w", err)
	}
	c, err := startChild("tributary-core", filepath.Join(dir, "core.log"), bin,
		"-data-dir", filepath.Join(dir, "data"), "-kafka-addr", kafkaAddr, "-http-addr", httpAddr,
		"-node-id", "1", "-log-level", "warn")
	if err != nil {
		return nil, err
	}
	if err := waitHealthy(c, "http://"+httpAddr+"/healthz", 30*time.Second); err != nil {
		c.kill()
		return nil, err
	}
	return c, nil
}

// edgeNode is a tributary-edge bridged to a core.
type edgeNode struct {
	*child
	mqtt, http string
}

// startBridgedEdge runs tributary-edge with its bridge pointed at brokers
// (which need not be up yet) and waits (30 s at most) until it serves MQTT.
// The bridge retries every 50–250 ms instead of backing off to 30 s, so a
// core that comes up is found at once.
func startBridgedEdge(bin, dir string, brokers []string) (*edgeNode, error) {
	return startBridgedEdgeWith(bin, dir, brokers, false)
}

// startBridgedEdgeWith is startBridgedEdge, serving net/http/pprof when
// pprof is set.
func startBridgedEdgeWith(bin, dir string, brokers []string, pprof bool) (*edgeNode, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("edge dir: %w", err)
	}
	addrs, err := reserveAddrs(2)
	if err != nil {
		return nil, err
	}
	mqttAddr, httpAddr := addrs[0], addrs[1]
	cfg := fmt.Sprintf(`data_dir: %s
edge_id: bench-edge
log_level: warn
mqtt:
  address: %s
http:
  address: %s
  pprof: %t
auth:
  allow_anonymous: true
bridge:
  brokers: [%s]
  backoff_min: 50ms
  backoff_max: 250ms
`, filepath.Join(dir, "data"), mqttAddr, httpAddr, pprof, strings.Join(brokers, ", "))
	// $TRIBUTARY_BRIDGE_CONFIG adds settings to the bridge section (a
	// setting to measure, e.g. "max_in_flight: 16").
	for _, line := range strings.Split(strings.TrimSpace(os.Getenv("TRIBUTARY_BRIDGE_CONFIG")), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			cfg += "  " + line + "\n"
		}
	}
	path := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("edge config: %w", err)
	}
	c, err := startChild("tributary-edge", filepath.Join(dir, "edge.log"), bin, "-config", path)
	if err != nil {
		return nil, err
	}
	if err := waitHealthy(c, "http://"+httpAddr+"/healthz", 30*time.Second); err != nil {
		c.kill()
		return nil, err
	}
	if err := waitListening(c, mqttAddr, 10*time.Second); err != nil {
		c.kill()
		return nil, err
	}
	return &edgeNode{child: c, mqtt: mqttAddr, http: httpAddr}, nil
}

// scrape reads a Prometheus text page into series ("name{labels}") → value.
func scrape(url string) (map[string]float64, error) {
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		line := s.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return out, nil
}

// series returns the series of metric name (any labels).
func series(m map[string]float64, name string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			out[k] = v
		}
	}
	return out
}

func sumSeries(m map[string]float64, name string) float64 {
	var s float64
	for _, v := range series(m, name) {
		s += v
	}
	return s
}

// pacedFleet is devices MQTT clients each publishing QoS 1 readings at a
// fixed rate, stamped with the wall clock (ms) at send time. Each keeps at
// most mqttWindow publishes unacknowledged; a device whose window is full
// waits, so a slow edge shows as a lower achieved rate, not as a backlog
// in the generator.
type pacedFleet struct {
	conns       []net.Conn
	stopc       chan struct{}
	wg          sync.WaitGroup
	sent, acked atomic.Int64
	start       time.Time
	// sentAt[device][seq] is when the reading was written to the socket
	// (unix ns), for latency to the microsecond: the reading's own ts is
	// whole milliseconds. Only the first len(sentAt[device]) are kept.
	sentAt [][]atomic.Int64
	// ackedAt[device][seq] is when its PUBACK was read (unix ns): the
	// edge acknowledges a connection's publishes in order, so the n-th
	// PUBACK is reading n's.
	ackedAt [][]atomic.Int64

	mu  sync.Mutex
	err error
}

func startPacedFleet(addr, prefix string, devices, perDevice int) (*pacedFleet, error) {
	return startTrackedFleet(addr, prefix, devices, perDevice, 0)
}

// startTrackedFleet is startPacedFleet keeping each reading's send time
// for the first `track` of the run.
func startTrackedFleet(addr, prefix string, devices, perDevice int, track time.Duration) (*pacedFleet, error) {
	f := &pacedFleet{conns: make([]net.Conn, devices), stopc: make(chan struct{}),
		sentAt: make([][]atomic.Int64, devices), ackedAt: make([][]atomic.Int64, devices)}
	if keep := int(track.Seconds()) * perDevice; keep > 0 {
		for i := range f.sentAt {
			f.sentAt[i] = make([]atomic.Int64, keep)
			f.ackedAt[i] = make([]atomic.Int64, keep)
		}
	}
	// Connect 16 at a time.
	var cwg sync.WaitGroup
	next := atomic.Int64{}
	var cerr atomic.Value
	for range 16 {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= devices || cerr.Load() != nil {
					return
				}
				c, err := mqttConnect(addr, fmt.Sprintf("%s-c%d", prefix, i))
				if err != nil {
					cerr.Store(fmt.Errorf("connect device %d: %w", i, err))
					return
				}
				f.conns[i] = c
			}
		}()
	}
	cwg.Wait()
	if err, ok := cerr.Load().(error); ok {
		f.closeConns()
		return nil, err
	}
	interval := time.Second / time.Duration(perDevice)
	f.start = time.Now()
	for i, c := range f.conns {
		f.wg.Add(1)
		go f.device(c, i, fmt.Sprintf("%s-%06d", prefix, i), time.Duration(i)*interval/time.Duration(devices), interval)
	}
	return f, nil
}

func (f *pacedFleet) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

func (f *pacedFleet) stopping() bool { return closed(f.stopc) }

func (f *pacedFleet) device(c net.Conn, idx int, dev string, offset, interval time.Duration) {
	defer f.wg.Done()
	p := newMQTTPublisher(dev, 1)
	credit := make(chan struct{}, mqttWindow)
	for range mqttWindow {
		credit <- struct{}{}
	}
	var acked atomic.Int64
	go func() {
		r := bufio.NewReaderSize(c, 256)
		var ack [4]byte
		for {
			if _, err := io.ReadFull(r, ack[:]); err != nil {
				if !f.stopping() {
					f.fail(fmt.Errorf("%s: read puback: %w", dev, err))
				}
				return
			}
			if ack[0] != 0x40 || ack[1] != 2 {
				f.fail(fmt.Errorf("%s: want puback, got % x", dev, ack))
				return
			}
			if n := acked.Add(1) - 1; n < int64(len(f.ackedAt[idx])) {
				f.ackedAt[idx][n].Store(time.Now().UnixNano())
			}
			f.acked.Add(1)
			credit <- struct{}{}
		}
	}()
	var sent int64
	defer func() {
		// Wait (5 s at most) for the acknowledgements of what was sent.
		for deadline := time.Now().Add(5 * time.Second); acked.Load() < sent && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
	}()
	select {
	case <-time.After(offset):
	case <-f.stopc:
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for seq := uint32(0); ; seq++ {
		select {
		case <-tick.C:
		case <-f.stopc:
			return
		}
		select {
		case <-credit:
		case <-f.stopc:
			return
		}
		pk := p.next(seq)
		now := time.Now()
		putTs(pk[p.tsAt:], now.UnixMilli())
		if int(seq) < len(f.sentAt[idx]) {
			f.sentAt[idx][seq].Store(now.UnixNano())
		}
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(pk); err != nil {
			f.fail(fmt.Errorf("%s: publish: %w", dev, err))
			return
		}
		sent++
		f.sent.Add(1)
	}
}

// stop ends publishing, waits for outstanding acknowledgements (bounded)
// and closes the connections; it returns the first error seen.
func (f *pacedFleet) stop() error {
	close(f.stopc)
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		f.fail(fmt.Errorf("fleet did not stop within 15 s"))
	}
	f.closeConns()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *pacedFleet) closeConns() {
	for _, c := range f.conns {
		if c != nil {
			c.Close()
		}
	}
}

func putTs(b []byte, ms int64) {
	for i := 7; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
}

// seqKey is the CBOR "seq" key followed by a uint32 head.
var seqKey = []byte{0x63, 's', 'e', 'q', 0x1a}

// readingSeq finds the seq of a reading the edge stored unchanged.
func readingSeq(v []byte) (uint32, bool) {
	i := bytes.Index(v, seqKey)
	if i < 0 || i+len(seqKey)+4 > len(v) {
		return 0, false
	}
	return binary.BigEndian.Uint32(v[i+len(seqKey):]), true
}

// sentTime is when device dev (named "<prefix>-NNNNNN") sent reading seq,
// if it was tracked.
func (f *pacedFleet) sentTime(dev string, seq uint32) (time.Time, bool) {
	idx, ok := f.deviceIndex(dev)
	if !ok {
		return time.Time{}, false
	}
	return f.sentAtIndex(idx, seq)
}

// deviceIndex is the fleet's index of device dev ("<prefix>-NNNNNN").
func (f *pacedFleet) deviceIndex(dev string) (int, bool) {
	i := strings.LastIndexByte(dev, '-')
	idx, err := strconv.Atoi(dev[i+1:])
	return idx, i >= 0 && err == nil && idx >= 0 && idx < len(f.sentAt)
}

// sentAtIndex and ackedAtIndex are when the device at idx sent reading
// seq and read its PUBACK, if they were tracked and happened.
func (f *pacedFleet) sentAtIndex(idx int, seq uint32) (time.Time, bool) {
	return trackedTime(f.sentAt, idx, seq)
}

func (f *pacedFleet) ackedAtIndex(idx int, seq uint32) (time.Time, bool) {
	return trackedTime(f.ackedAt, idx, seq)
}

func trackedTime(at [][]atomic.Int64, idx int, seq uint32) (time.Time, bool) {
	if idx < 0 || idx >= len(at) || int(seq) >= len(at[idx]) {
		return time.Time{}, false
	}
	ns := at[idx][seq].Load()
	return time.Unix(0, ns), ns != 0
}

// percentile of sorted durations, in ms.
func pctMs(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(len(sorted)-1, int(float64(len(sorted))*q))
	return float64(sorted[i].Microseconds()) / 1000
}
