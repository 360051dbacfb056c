package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/core/server"
	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/meta"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

const stream = "sensors"

// testCore is an in-process core broker that can be stopped and restarted
// on the same address and data directory.
type testCore struct {
	t          testing.TB
	dir        string
	addr       string
	advertised string
	maxBatch   int // core's max batch bytes; 0 for the default
	// configure, if set, adjusts the core's configuration (listeners, security).
	configure func(*server.Config)
	mu        sync.Mutex
	srv       *server.Server
}

func newCore(t testing.TB, addr, advertised string) *testCore {
	c := &testCore{t: t, dir: t.TempDir(), addr: addr, advertised: advertised}
	t.Cleanup(c.stop)
	return c
}

// startCore starts a core on a free loopback port and returns it with its
// address.
func startCore(t testing.TB) (*testCore, string) {
	addr := testkit.FreeAddr(t)
	c := newCore(t, addr, "")
	c.start()
	return c, addr
}

func (c *testCore) start() {
	c.t.Helper()
	cfg := server.Config{
		DataDir:           c.dir,
		KafkaAddr:         c.addr,
		AdvertisedAddr:    c.advertised,
		DefaultPartitions: 1,
		Log:               storage.LogConfig{SegmentBytes: 4 << 20, MaxBatchBytes: c.maxBatch},
	}
	if c.configure != nil {
		c.configure(&cfg)
	}
	var err error
	var srv *server.Server
	for i := 0; i < 50; i++ { // a restart reuses the port; the kernel may need a moment
		srv, err = server.Start(cfg, testkit.Logger(c.t), nil)
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("start core: %v", err)
	}
	c.mu.Lock()
	c.srv = srv
	c.mu.Unlock()
}

func (c *testCore) stop() {
	c.mu.Lock()
	srv := c.srv
	c.srv = nil
	c.mu.Unlock()
	if srv != nil {
		if err := srv.Close(); err != nil {
			c.t.Errorf("close core: %v", err)
		}
	}
}

// records is how many records the core's topic holds (all partitions).
func (c *testCore) records(topic string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv == nil {
		return -1
	}
	info, ok := c.srv.Topics().Get(topic)
	if !ok {
		return 0
	}
	var n int64
	for p := int32(0); p < info.Partitions; p++ {
		l, err := c.srv.Topics().Partition(topic, p)
		if err != nil {
			return -1
		}
		n += l.NextOffset()
	}
	return n
}

// testEdge is an edge's storage, written as the edge ingest does.
type testEdge struct {
	t          testing.TB
	dir        string
	store      *meta.Store
	topics     *storage.Topics
	partitions int32
}

func edgeLogConfig() storage.LogConfig {
	return storage.LogConfig{
		SegmentBytes: 256 << 10, // several segments per test, so reads cross them
		Durability:   storage.Durability{Mode: storage.SyncInterval, Interval: 20 * time.Millisecond},
	}
}

func openEdge(t testing.TB, dir string, partitions int32) *testEdge {
	t.Helper()
	return openEdgeWith(t, dir, partitions, storage.LogConfig{})
}

func openEdgeWith(t testing.TB, dir string, partitions int32, topicCfg storage.LogConfig) *testEdge {
	t.Helper()
	e, err := openEdgeDir(dir, partitions, topicCfg, testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	e.t = t
	t.Cleanup(e.close)
	return e
}

func openEdgeDir(dir string, partitions int32, topicCfg storage.LogConfig, logger *slog.Logger) (*testEdge, error) {
	store, err := meta.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		return nil, err
	}
	topics, err := storage.OpenTopics(filepath.Join(dir, "logs"), store, edgeLogConfig(), logger)
	if err != nil {
		store.Close()
		return nil, err
	}
	if err := topics.Create(stream, partitions, topicCfg); err != nil && !errors.Is(err, storage.ErrTopicExists) {
		topics.Close()
		store.Close()
		return nil, err
	}
	info, _ := topics.Get(stream)
	return &testEdge{dir: dir, store: store, topics: topics, partitions: info.Partitions}, nil
}

func (e *testEdge) close() {
	if e.topics != nil {
		e.topics.Close()
		e.store.Close()
		e.topics = nil
	}
}

type reading struct {
	Device string `json:"device"`
	Seq    uint64 `json:"seq"`
	TS     int64  `json:"ts"`
	Pad    string `json:"pad,omitempty"`
}

func devicePartition(device string, n int32) int32 {
	h := fnv.New32a()
	h.Write([]byte(device))
	return int32(h.Sum32() % uint32(n))
}

// appendReading appends one one-record batch, as the edge ingest does.
func (e *testEdge) appendReading(device string, seq uint64, pad int) error {
	ts := time.Now().UnixMilli()
	v, _ := json.Marshal(reading{Device: device, Seq: seq, TS: ts, Pad: strings.Repeat("x", pad)})
	rec := recordbatch.Record{
		Timestamp: ts,
		Key:       []byte(device),
		Value:     v,
		Headers: []recordbatch.RecordHeader{
			{Key: "content-type", Value: []byte("application/json")},
			{Key: "mqtt-topic", Value: []byte(stream + "/" + device + "/reading")},
			{Key: "device", Value: []byte(device)},
		},
	}
	batch, err := recordbatch.Build([]recordbatch.Record{rec}, recordbatch.NoProducer)
	if err != nil {
		return err
	}
	l, err := e.topics.Partition(stream, devicePartition(device, e.partitions))
	if err != nil {
		return err
	}
	_, err = l.Append(context.Background(), batch, storage.AppendOptions{LeaderEpoch: -1})
	return err
}

// ingester appends readings of a few devices at a steady rate.
type ingester struct {
	e        *testEdge
	devices  []string
	next     map[string]uint64
	appended atomic.Int64 // readings so far, for waitMore
	cancel   context.CancelFunc
	done     chan struct{}
	err      error
}

// startIngest appends perTick readings (round robin over devices) every tick.
func (e *testEdge) startIngest(devices []string, next map[string]uint64, perTick int, tick time.Duration) *ingester {
	ctx, cancel := context.WithCancel(context.Background())
	in := &ingester{e: e, devices: devices, next: map[string]uint64{}, cancel: cancel, done: make(chan struct{})}
	for _, d := range devices {
		in.next[d] = next[d]
	}
	go func() {
		defer close(in.done)
		tk := time.NewTicker(tick)
		defer tk.Stop()
		i := 0
		for {
			for k := 0; k < perTick; k++ {
				d := devices[i%len(devices)]
				i++
				if err := e.appendReading(d, in.next[d], 40); err != nil {
					in.err = err
					return
				}
				in.next[d]++
				in.appended.Add(1)
			}
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
		}
	}()
	return in
}

// waitMore waits until n more readings are appended, so a test lets ingest
// run on (a backlog grows, a fault lands mid-stream) by what happened rather
// than by the clock.
func (in *ingester) waitMore(t testing.TB, n int64) {
	t.Helper()
	want := in.appended.Load() + n
	testkit.Eventually(t, 30*time.Second, fmt.Sprintf("%d more readings ingested", n), func() bool {
		return in.appended.Load() >= want
	})
}

// waitForwarded waits until the core holds more of topic than it did.
func (c *testCore) waitForwarded(t testing.TB, topic string) {
	t.Helper()
	before := c.records(topic)
	testkit.Eventually(t, 30*time.Second, "the core to receive more of "+topic, func() bool {
		return c.records(topic) > before
	})
}

// restartCoreWhileIngesting stops and restarts the core times while the
// bridge forwards, each time once records reached it and a backlog built
// while it was down; then it stops ingest, waits for the bridge to catch
// up and returns the readings per device.
func restartCoreWhileIngesting(t testing.TB, core *testCore, in *ingester, rb *runningBridge, times int) map[string]uint64 {
	t.Helper()
	for range times {
		core.waitForwarded(t, stream)
		core.stop()
		in.waitMore(t, 100)
		core.start()
	}
	core.waitForwarded(t, stream)
	want := in.stop(t)
	rb.waitCaughtUp(t, 30*time.Second)
	return want
}

// stop ends ingest and returns how many readings each device has in total.
func (in *ingester) stop(t testing.TB) map[string]uint64 {
	t.Helper()
	in.cancel()
	<-in.done
	if in.err != nil {
		t.Fatalf("ingest: %v", in.err)
	}
	return in.next
}

func devices(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}

// testBridgeConfig is a bridge config with test-sized timeouts.
func testBridgeConfig(brokers ...string) Config {
	return Config{
		Brokers:        brokers,
		BackoffMin:     20 * time.Millisecond,
		BackoffMax:     300 * time.Millisecond,
		RequestTimeout: 3 * time.Second,
		ScanInterval:   200 * time.Millisecond,
		MaxBatchBytes:  64 << 10,
	}
}

// runningBridge is a bridge whose Run is owned by the test.
type runningBridge struct {
	*Bridge
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func startBridge(t testing.TB, cfg Config, e *testEdge) *runningBridge {
	t.Helper()
	reg := prometheus.NewRegistry()
	b, err := New(cfg, e.topics, e.store, reg, testkit.Logger(t))
	if err != nil {
		t.Fatalf("new bridge: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rb := &runningBridge{Bridge: b, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { rb.done <- b.Run(ctx) }()
	t.Cleanup(rb.stop)
	return rb
}

func (rb *runningBridge) stop() {
	if rb.cancel == nil {
		return
	}
	rb.cancel()
	<-rb.done
	rb.cancel = nil
}

// waitCaughtUp waits until every partition of the edge is acknowledged.
func (rb *runningBridge) waitCaughtUp(t testing.TB, timeout time.Duration) {
	t.Helper()
	testkit.Eventually(t, timeout, "the bridge to catch up", func() bool {
		st := rb.Status()
		return len(st.Partitions) > 0 && st.Backlog() == 0
	})
}

// verdict is the per-device judgement of what the core topic holds.
type verdict struct {
	records    int
	lost       uint64
	duplicated uint64
	outOfOrder uint64
	unexpected int
}

// verifyCore consumes the whole core topic with a Kafka client and judges
// every device against the readings it was given (0..want-1). It fails the
// test unless lost, duplicated and out-of-order are all 0.
func verifyCore(t testing.TB, core *testCore, brokers string, want map[string]uint64) verdict {
	t.Helper()
	v := judgeCore(t, core, brokers, want, nil)
	if v.lost != 0 || v.duplicated != 0 || v.outOfOrder != 0 || v.unexpected != 0 {
		t.Fatalf("core topic: lost=%d duplicated=%d out-of-order=%d unexpected=%d (records %d)",
			v.lost, v.duplicated, v.outOfOrder, v.unexpected, v.records)
	}
	t.Logf("verified %d records: lost=0 duplicated=0 out-of-order=0", v.records)
	return v
}

// judgeCore reads every record of the core topic; check, if set, sees each.
func judgeCore(t testing.TB, core *testCore, brokers string, want map[string]uint64, check func(*kgo.Record)) verdict {
	t.Helper()
	return judgeTopic(t, core, brokers, stream, want, check)
}

// judgeTopic is judgeCore for any core topic.
func judgeTopic(t testing.TB, core *testCore, brokers, topic string, want map[string]uint64, check func(*kgo.Record)) verdict {
	t.Helper()
	return judgeRecords(t, []string{brokers}, topic, core.records(topic), want, check)
}

// judgeRecords consumes the first total records of topic from any Kafka
// cluster and judges them against want.
func judgeRecords(t testing.TB, seeds []string, topic string, total int64, want map[string]uint64, check func(*kgo.Record)) verdict {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	j := newJudge(check)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for int64(j.v.records) < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before timeout", j.v.records, total)
		}
		for _, fe := range fs.Errors() {
			t.Logf("fetch error %s/%d: %v", fe.Topic, fe.Partition, fe.Err)
		}
		fs.EachRecord(j.add)
	}
	return j.finish(want)
}

// judge tells lost, duplicated and out-of-order readings apart.
type judge struct {
	v     verdict
	seen  map[string]map[uint64]bool
	last  map[string]int64
	check func(*kgo.Record)
}

func newJudge(check func(*kgo.Record)) *judge {
	return &judge{seen: map[string]map[uint64]bool{}, last: map[string]int64{}, check: check}
}

func (j *judge) add(r *kgo.Record) {
	j.v.records++
	if j.check != nil {
		j.check(r)
	}
	var rd reading
	if err := json.Unmarshal(r.Value, &rd); err != nil || rd.Device != string(r.Key) {
		j.v.unexpected++
		return
	}
	if j.seen[rd.Device] == nil {
		j.seen[rd.Device] = map[uint64]bool{}
		j.last[rd.Device] = -1
	}
	if j.seen[rd.Device][rd.Seq] {
		j.v.duplicated++
		return
	}
	j.seen[rd.Device][rd.Seq] = true
	if int64(rd.Seq) < j.last[rd.Device] {
		j.v.outOfOrder++
	}
	j.last[rd.Device] = max(j.last[rd.Device], int64(rd.Seq))
}

func (j *judge) finish(want map[string]uint64) verdict {
	v := j.v
	for d, n := range want {
		for s := uint64(0); s < n; s++ {
			if !j.seen[d][s] {
				v.lost++
			}
		}
	}
	for d := range j.seen {
		if _, ok := want[d]; !ok {
			v.unexpected++
		}
	}
	return v
}

// proxy is a TCP proxy between the bridge and the core that the test can
// make drop, stall or reset connections, including in the middle of a batch.
type proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}

	stalled   atomic.Bool
	holdBack  atomic.Bool   // stalls only the core's answers
	resetProb atomic.Uint32 // per 10,000 chunks
	chunks    atomic.Int64
	resets    atomic.Int64
}

// startProxiedCore starts a core behind a proxy that it advertises, so its
// clients (metadata and produce connections alike) only ever see px.
func startProxiedCore(t testing.TB) (core *testCore, px *proxy) {
	addr := testkit.FreeAddr(t)
	px = newProxy(t, addr)
	core = newCore(t, addr, px.addr())
	core.start()
	return core, px
}

func newProxy(t testing.TB, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up, false)
		go p.pipe(up, c, true)
	}
}

// pipe copies in small chunks so a reset can land inside a batch.
func (p *proxy) pipe(from, to net.Conn, answers bool) {
	defer p.wg.Done()
	defer func() {
		from.Close()
		to.Close()
		p.mu.Lock()
		delete(p.conns, from)
		delete(p.conns, to)
		p.mu.Unlock()
	}()
	buf := make([]byte, 2048)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			for p.stalled.Load() || answers && p.holdBack.Load() {
				time.Sleep(5 * time.Millisecond)
			}
			if c := p.chunks.Add(1); prob(c, p.resetProb.Load()) {
				// Forward half the chunk, then reset both sides.
				to.Write(buf[:n/2])
				p.resets.Add(1)
				resetConn(from)
				resetConn(to)
				return
			}
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// prob decides pseudo-randomly (by a mixed counter) with probability per10k/10,000.
func prob(c int64, per10k uint32) bool {
	if per10k == 0 {
		return false
	}
	x := uint64(c) * 0x9E3779B97F4A7C15
	x ^= x >> 29
	return uint32(x%10000) < per10k
}

func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0) // close sends RST instead of FIN
	}
	c.Close()
}

// resetAll resets every open connection.
func (p *proxy) resetAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		resetConn(c)
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.stalled.Store(false)
	p.holdBack.Store(false)
	p.resetAll()
	p.wg.Wait()
}

// TestMain lets the SIGKILL test re-run this binary as an edge process.
// Most tests wait on a core, an edge and their fsyncs: -short runs eight
// at a time.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChildEdge())
	}
	os.Exit(testkit.WaitBoundParallel(m, 8))
}
