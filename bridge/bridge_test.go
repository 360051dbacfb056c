package bridge

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// Core down for a while during steady ingest, then back: nothing is lost or
// doubled, the backlog shows while it is down, and the records carry their
// edge identity.
func TestCoreDownDuringIngestThenBack(t *testing.T) {
	t.Parallel()
	addr := testkit.FreeAddr(t)
	core := newCore(t, addr, "")
	e := openEdge(t, t.TempDir(), 3)
	cfg := testBridgeConfig(addr)
	cfg.EdgeID = "edge-a"
	rb := startBridge(t, cfg, e)

	devs := devices("dev", 12)
	in := e.startIngest(devs, nil, 30, 5*time.Millisecond)
	testkit.Eventually(t, 10*time.Second, "a backlog and retries while the core is down", func() bool {
		return rb.Status().Backlog() > 0 && len(rb.Status().Partitions) == 3 &&
			testutil.ToFloat64(rb.m.retries.WithLabelValues(stream, "metadata")) > 0
	})
	st := rb.Status()
	for _, p := range st.Partitions {
		if p.BacklogRecords > 0 && p.LastAckAge <= 0 {
			t.Errorf("partition %d has backlog %d but last-ack age %v", p.Partition, p.BacklogRecords, p.LastAckAge)
		}
		if p.BacklogRecords > 0 && p.BacklogBytes <= 0 {
			t.Errorf("partition %d has backlog %d records but %d bytes", p.Partition, p.BacklogRecords, p.BacklogBytes)
		}
	}
	core.start()
	core.waitForwarded(t, stream)
	in.waitMore(t, 300) // ingest goes on while the bridge catches up
	want := in.stop(t)
	rb.waitCaughtUp(t, 30*time.Second)

	// Cursors are saved and are the retention floor.
	for p := int32(0); p < 3; p++ {
		cur, ok, err := e.store.Cursor(CursorName(stream, p))
		l, _ := e.topics.Partition(stream, p)
		if err != nil || !ok || cur != l.NextOffset() {
			t.Errorf("partition %d: cursor %d (ok %v, err %v), log end %d", p, cur, ok, err, l.NextOffset())
		}
	}
	var bad error
	var mu sync.Mutex
	v := judgeCore(t, core, addr, want, func(r *kgo.Record) {
		mu.Lock()
		defer mu.Unlock()
		id, _ := header(r, HeaderEdgeID)
		off, ok := header(r, HeaderEdgeOffset)
		dev, _ := header(r, "device")
		ct, _ := header(r, "content-type")
		if _, err := strconv.ParseInt(off, 10, 64); bad == nil && (id != "edge-a" || !ok || err != nil || dev != string(r.Key) || ct != "application/json") {
			bad = errors.New("record headers: " + id + " " + off + " " + dev + " " + ct)
		}
	})
	if bad != nil {
		t.Fatal(bad)
	}
	if v.lost != 0 || v.duplicated != 0 || v.outOfOrder != 0 || v.unexpected != 0 {
		t.Fatalf("lost=%d duplicated=%d out-of-order=%d unexpected=%d", v.lost, v.duplicated, v.outOfOrder, v.unexpected)
	}
	if got := testutil.ToFloat64(rb.m.records.WithLabelValues(stream)); int(got) != v.records {
		t.Errorf("forwarded records metric %v, core holds %d", got, v.records)
	}
	// The core topic was created with the edge's partition count.
	if info, ok := core.srv.Topics().Get(stream); !ok || info.Partitions != 3 {
		t.Errorf("core topic: %+v, %v; want 3 partitions", info, ok)
	}
	// Scraping works and reports zero backlog now.
	mfs, err := rb.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, mf := range mfs {
		if mf.GetName() == "tributary_bridge_backlog_records" {
			for _, m := range mf.GetMetric() {
				found++
				if m.GetGauge().GetValue() != 0 {
					t.Errorf("backlog gauge %v after catching up", m)
				}
			}
		}
	}
	if found != 3 {
		t.Errorf("%d backlog gauges, want 3", found)
	}
}

// A TCP proxy between bridge and core resets connections in the middle of
// batches and stalls them; every reading still arrives exactly once.
func TestConnectionFaultsMidBatch(t *testing.T) {
	t.Parallel()
	core, px := startProxiedCore(t)
	e := openEdge(t, t.TempDir(), 2)
	cfg := testBridgeConfig(px.addr())
	cfg.RequestTimeout = 500 * time.Millisecond
	cfg.MaxBatchBytes = 16 << 10
	cfg.Compression = "lz4"
	rb := startBridge(t, cfg, e)

	devs := devices("dev", 8)
	in := e.startIngest(devs, nil, 20, 5*time.Millisecond)
	px.resetProb.Store(150) // 1.5% of 2 KiB chunks: many resets mid-batch
	// Each fault twice. -short sees each once and leaves out the stall,
	// which costs the bridge's 5 s grace on top of the request timeout;
	// the full suite runs all eight rounds.
	rounds := 8
	if testing.Short() {
		rounds = 4
	}
	for i := range rounds {
		core.waitForwarded(t, stream) // each fault lands mid-stream
		switch i % 4 {
		case 1: // stall until a request times out
			if testing.Short() {
				continue
			}
			px.stalled.Store(true)
			retries := totalRetries(rb.Status())
			testkit.Eventually(t, 30*time.Second, "a retry while the proxy stalls", func() bool {
				return totalRetries(rb.Status()) > retries
			})
			px.stalled.Store(false)
		case 3:
			px.resetAll()
		}
	}
	// The resets are random: keep the stream going until a few happened.
	testkit.Eventually(t, 30*time.Second, "the proxy to reset connections mid-stream", func() bool {
		return px.resets.Load() >= 3
	})
	want := in.stop(t)
	px.resetProb.Store(0)
	rb.waitCaughtUp(t, 30*time.Second)
	t.Logf("proxy resets mid-chunk: %d, bridge retries: %d", px.resets.Load(), totalRetries(rb.Status()))
	verifyCore(t, core, px.addr(), want)
}

func totalRetries(st Status) int64 {
	var n int64
	for _, p := range st.Partitions {
		n += p.Retries
	}
	return n
}

// The core restarts several times while the bridge forwards.
func TestCoreRestartWhileForwarding(t *testing.T) {
	t.Parallel()
	core, addr := startCore(t)
	e := openEdge(t, t.TempDir(), 2)
	rb := startBridge(t, testBridgeConfig(addr), e)
	in := e.startIngest(devices("dev", 6), nil, 20, 5*time.Millisecond)
	want := restartCoreWhileIngesting(t, core, in, rb, 3)
	verifyCore(t, core, addr, want)
}

// Several edges forward into the same core topic; each edge's records keep
// their own producer identity and none is taken for another's re-send.
func TestSeveralEdgesOneTopic(t *testing.T) {
	t.Parallel()
	core, addr := startCore(t)
	want := map[string]uint64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var bridges []*runningBridge
	var ins []*ingester
	for i := 0; i < 3; i++ {
		e := openEdge(t, t.TempDir(), 2)
		cfg := testBridgeConfig(addr)
		cfg.EdgeID = "edge-" + strconv.Itoa(i)
		if i == 2 {
			cfg.Compression = "none"
		}
		bridges = append(bridges, startBridge(t, cfg, e))
		ins = append(ins, e.startIngest(devices(cfg.EdgeID, 4), nil, 10, 5*time.Millisecond))
	}
	for _, in := range ins {
		in.waitMore(t, 300)
	}
	core.waitForwarded(t, stream)
	for i := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := ins[i].stop(t)
			mu.Lock()
			for d, n := range w {
				want[d] = n
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, rb := range bridges {
		rb.waitCaughtUp(t, 30*time.Second)
	}
	verifyCore(t, core, addr, want)
}

// Against a plain Kafka target the same records and headers arrive, with
// no producer id (at-least-once).
func TestKafkaTarget(t *testing.T) {
	t.Parallel()
	core, addr := startCore(t)
	e := openEdge(t, t.TempDir(), 1)
	cfg := testBridgeConfig(addr)
	cfg.Target = TargetKafka
	cfg.TopicPrefix = "edge."
	rb := startBridge(t, cfg, e)
	for s := uint64(0); s < 200; s++ {
		if err := e.appendReading("k-1", s, 10); err != nil {
			t.Fatal(err)
		}
	}
	rb.waitCaughtUp(t, 20*time.Second)
	l, err := core.srv.Topics().Partition("edge."+stream, 0)
	if err != nil {
		t.Fatal(err)
	}
	if l.NextOffset() != 200 {
		t.Fatalf("core holds %d records, want 200", l.NextOffset())
	}
	b, err := l.Read(0, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	h, err := recordbatch.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.ProducerID != -1 {
		t.Errorf("kafka target sent producer id %d, want -1", h.ProducerID)
	}
}

// Unforwarded segments survive retention; forwarded ones do not.
func TestRetentionFloorKeepsUnforwarded(t *testing.T) {
	t.Parallel()
	addr := testkit.FreeAddr(t)
	core := newCore(t, addr, "")
	e := openEdgeWith(t, t.TempDir(), 1, storage.LogConfig{SegmentBytes: 64 << 10, RetentionBytes: 1})
	rb := startBridge(t, testBridgeConfig(addr), e)
	l, _ := e.topics.Partition(stream, 0)
	for s := uint64(0); s < 3000; s++ {
		if err := e.appendReading("r-1", s, 200); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, 10*time.Second, "the forwarder to start", func() bool { return len(rb.Status().Partitions) == 1 })
	n, err := l.ApplyRetention()
	if err != nil || n != 0 || l.StartOffset() != 0 {
		t.Fatalf("retention with the core down removed %d records (start %d, err %v)", n, l.StartOffset(), err)
	}
	core.start()
	rb.waitCaughtUp(t, 20*time.Second)
	n, err = l.ApplyRetention()
	if err != nil || n == 0 {
		t.Fatalf("retention after forwarding removed %d records (err %v)", n, err)
	}
	if l.StartOffset() == 0 {
		t.Fatal("log start did not move")
	}
	verifyCore(t, core, addr, map[string]uint64{"r-1": 3000})
}

// The generated edge id is stored and reused; a configured one wins.
func TestEdgeIDStable(t *testing.T) {
	t.Parallel()
	e := openEdge(t, t.TempDir(), 1)
	b1, err := New(Config{Brokers: []string{"127.0.0.1:1"}}, e.topics, e.store, nil, testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	b2, err := New(Config{Brokers: []string{"127.0.0.1:1"}}, e.topics, e.store, nil, testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if b1.EdgeID() == "" || b1.EdgeID() != b2.EdgeID() || !strings.HasPrefix(b1.EdgeID(), "edge-") {
		t.Fatalf("edge ids %q and %q", b1.EdgeID(), b2.EdgeID())
	}
	b3, _ := New(Config{Brokers: []string{"127.0.0.1:1"}, EdgeID: "site-7"}, e.topics, e.store, nil, testkit.Logger(t))
	if b3.EdgeID() != "site-7" {
		t.Fatalf("configured edge id ignored: %q", b3.EdgeID())
	}
	for _, b := range []*Bridge{b1, b2, b3} {
		b.admin.close()
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []Config{
		{},
		{Brokers: []string{"nohost"}},
		{Brokers: []string{"127.0.0.1:9092"}, Target: "pulsar"},
		{Brokers: []string{"127.0.0.1:9092"}, Compression: "brotli"},
		{Brokers: []string{"127.0.0.1:9092"}, MaxInFlight: 100},
		{Brokers: []string{"127.0.0.1:9092"}, BandwidthBytesPerSec: -1},
	} {
		if err := c.WithDefaults().Validate(); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
	if err := (Config{Brokers: []string{"127.0.0.1:9092"}}).WithDefaults().Validate(); err != nil {
		t.Errorf("minimal config refused: %v", err)
	}
}

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	b := backoff{min: 10 * time.Millisecond, max: 200 * time.Millisecond}
	var sawSpread bool
	for i := 0; i < 50; i++ {
		d := b.next()
		if d < b.min || d > b.max {
			t.Fatalf("attempt %d: %v outside [%v, %v]", i, d, b.min, b.max)
		}
		if i > 5 && d != b.min && d != b.max {
			sawSpread = true
		}
	}
	if !sawSpread {
		t.Error("no jitter")
	}
	b.reset()
	if d := b.next(); d != b.min {
		t.Errorf("after reset: %v, want %v", d, b.min)
	}
}

// Segments the edge drops under the drop-oldest disk policy before they were
// forwarded are counted, and forwarding goes on after them.
func TestDropOldestCountsUnforwarded(t *testing.T) {
	t.Parallel()
	addr := testkit.FreeAddr(t)
	core := newCore(t, addr, "")
	e := openEdgeWith(t, t.TempDir(), 1, storage.LogConfig{SegmentBytes: 32 << 10})
	rb := startBridge(t, testBridgeConfig(addr), e)
	l, _ := e.topics.Partition(stream, 0)
	for s := uint64(0); s < 2000; s++ {
		if err := e.appendReading("d-1", s, 100); err != nil {
			t.Fatal(err)
		}
	}
	var dropped int64
	for i := 0; i < 2; i++ {
		d, err := l.DropOldestSegment()
		if err != nil || d.Records == 0 {
			t.Fatalf("drop oldest: %+v, %v", d, err)
		}
		dropped += d.Records
	}
	core.start()
	rb.waitCaughtUp(t, 20*time.Second)
	st := rb.Status().Partitions[0]
	if st.Dropped != dropped {
		t.Errorf("status counts %d dropped, edge dropped %d", st.Dropped, dropped)
	}
	if got := testutil.ToFloat64(rb.m.skipped.WithLabelValues(stream)); int64(got) != dropped {
		t.Errorf("dropped metric %v, edge dropped %d", got, dropped)
	}
	v := judgeCore(t, core, addr, map[string]uint64{"d-1": 2000}, nil)
	if v.lost != uint64(dropped) || v.duplicated != 0 || v.outOfOrder != 0 || int64(v.records) != 2000-dropped {
		t.Fatalf("core: %+v; want exactly the %d dropped readings missing", v, dropped)
	}
}

// The bandwidth cap holds the long-run rate (a lower bound on time, which a
// slow machine cannot break).
func TestBandwidthCap(t *testing.T) {
	t.Parallel()
	core, addr := startCore(t)
	e := openEdge(t, t.TempDir(), 1)
	for s := uint64(0); s < 3000; s++ {
		if err := e.appendReading("bw-1", s, 200); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testBridgeConfig(addr)
	cfg.Compression = "none"
	cfg.MaxBatchBytes = 16 << 10
	cfg.BandwidthBytesPerSec = 800 << 10
	start := time.Now()
	rb := startBridge(t, cfg, e)
	rb.waitCaughtUp(t, 20*time.Second)
	took := time.Since(start)
	sent := testutil.ToFloat64(rb.m.bytes.WithLabelValues(stream))
	burst := float64(max(int64(cfg.MaxBatchBytes), cfg.BandwidthBytesPerSec/10))
	min := time.Duration((sent - burst - 16<<10) / float64(cfg.BandwidthBytesPerSec) * float64(time.Second))
	if took < min {
		t.Fatalf("sent %.0f bytes in %v; a cap of %d B/s needs at least %v", sent, took, cfg.BandwidthBytesPerSec, min)
	}
	t.Logf("sent %.0f bytes in %v under a %d B/s cap", sent, took, cfg.BandwidthBytesPerSec)
	verifyCore(t, core, addr, map[string]uint64{"bw-1": 3000})
}

// A record larger than the core accepts is skipped and counted instead of
// stalling the partition; the records around it arrive, with batches kept
// under the core's limit.
func TestTooLargeRecordSkipped(t *testing.T) {
	t.Parallel()
	addr := testkit.FreeAddr(t)
	core := newCore(t, addr, "")
	core.maxBatch = 8 << 10
	core.start()
	e := openEdge(t, t.TempDir(), 1)
	for s := uint64(0); s < 300; s++ {
		pad := 60
		if s == 150 {
			pad = 20 << 10 // JSON padding of 20 KiB: over the core's 8 KiB
		}
		if err := e.appendReading("big-1", s, pad); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testBridgeConfig(addr)
	cfg.Compression = "none"
	cfg.MaxBatchBytes = 6 << 10
	rb := startBridge(t, cfg, e)
	rb.waitCaughtUp(t, 20*time.Second)
	if st := rb.Status().Partitions[0]; st.TooLarge != 1 {
		t.Errorf("status: %+v; want one too-large record", st)
	}
	v := judgeCore(t, core, addr, map[string]uint64{"big-1": 300}, nil)
	if v.lost != 1 || v.duplicated != 0 || v.outOfOrder != 0 || v.records != 299 {
		t.Fatalf("core: %+v; want all but the oversized reading", v)
	}
}

// Edge batches of several records (the edge combines concurrent publishes)
// are split across forwarded batches mid-batch without loss or repeats.
func TestMultiRecordEdgeBatchesSplit(t *testing.T) {
	t.Parallel()
	core, addr := startCore(t)
	e := openEdge(t, t.TempDir(), 1)
	l, _ := e.topics.Partition(stream, 0)
	seq := map[string]uint64{}
	for b := 0; b < 200; b++ {
		var recs []recordbatch.Record
		for k := 0; k < 7; k++ {
			d := "multi-" + strconv.Itoa(k%3)
			v := []byte(`{"device":"` + d + `","seq":` + strconv.FormatUint(seq[d], 10) + `,"pad":"` + strings.Repeat("y", 50+b%40) + `"}`)
			seq[d]++
			recs = append(recs, recordbatch.Record{Timestamp: time.Now().UnixMilli(), Key: []byte(d), Value: v})
		}
		batch, err := recordbatch.Build(recs, recordbatch.NoProducer)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(t.Context(), batch, storage.AppendOptions{LeaderEpoch: -1}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testBridgeConfig(addr)
	cfg.MaxBatchBytes = 1500 // cuts most edge batches in the middle
	rb := startBridge(t, cfg, e)
	rb.waitCaughtUp(t, 20*time.Second)
	verifyCore(t, core, addr, seq)
}

// A core topic that already exists with fewer partitions than the edge
// stream takes edge partition p on core partition p mod n; the edge
// partitions sharing a core partition keep separate producer identities.
func TestFewerCorePartitions(t *testing.T) {
	t.Parallel()
	core, addr := startCore(t)
	// Created through the Kafka API, as an operator would: the core's
	// cluster metadata, not its storage, says which topics exist.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	_, err = kadm.NewClient(cl).CreateTopic(t.Context(), 2, 1, nil, stream)
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}
	e := openEdge(t, t.TempDir(), 5)
	rb := startBridge(t, testBridgeConfig(addr), e)
	in := e.startIngest(devices("few", 10), nil, 10, 5*time.Millisecond)
	in.waitMore(t, 300)
	want := in.stop(t)
	rb.waitCaughtUp(t, 20*time.Second)
	for _, p := range rb.Status().Partitions {
		if p.CorePartition != p.Partition%2 {
			t.Errorf("edge partition %d went to core partition %d", p.Partition, p.CorePartition)
		}
	}
	if info, _ := core.srv.Topics().Get(stream); info.Partitions != 2 {
		t.Errorf("core topic has %d partitions, want the existing 2", info.Partitions)
	}
	verifyCore(t, core, addr, want)
}

// A log's retention is held from its first record once a bridge exists, and
// records the disk budget drops before the partition's forwarder starts are
// still reported as lost (the forwarder of a partition without a cursor
// starts at offset 0, not where the log happens to start).
func TestHoldFromBirthAndDropsBeforeForwarderCounted(t *testing.T) {
	t.Parallel()
	addr := testkit.FreeAddr(t)
	core := newCore(t, addr, "")
	e := openEdgeWith(t, t.TempDir(), 1, storage.LogConfig{SegmentBytes: 16 << 10, RetentionBytes: 1})
	b, err := New(testBridgeConfig(addr), e.topics, e.store, prometheus.NewRegistry(), testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	for s := uint64(0); s < 1000; s++ {
		if err := e.appendReading("h-1", s, 100); err != nil {
			t.Fatal(err)
		}
	}
	l, _ := e.topics.Partition(stream, 0)
	e.topics.MaintainOnce()
	if l.StartOffset() != 0 {
		t.Fatalf("retention removed unforwarded records before the forwarder started (log starts at %d)", l.StartOffset())
	}
	d, err := l.DropOldestSegment()
	if err != nil || d.Records == 0 || d.From != 0 {
		t.Fatalf("drop oldest: %+v, %v", d, err)
	}
	defer testkit.Run(t, "bridge", b.Run)()
	core.start()
	rb := &runningBridge{Bridge: b}
	rb.waitCaughtUp(t, 20*time.Second)
	if st := b.Status().Partitions[0]; st.Dropped != d.Records {
		t.Errorf("status counts %d dropped, the budget dropped %d", st.Dropped, d.Records)
	}
	v := judgeCore(t, core, addr, map[string]uint64{"h-1": 1000}, nil)
	if v.lost != uint64(d.Records) || v.duplicated != 0 || v.outOfOrder != 0 {
		t.Fatalf("core: %+v; want exactly the %d dropped readings missing", v, d.Records)
	}
}

// Issue 12, scenario 3: the core loses the torn tail of a partition it had
// acknowledged (a crash mid-write). The bridge's cursor is then past the
// core's last sequence and every batch it sends is refused as out of order;
// before, it retried for ever and new readings stayed on the edge. Now it
// asks the core where its copy ends (DescribeProducers), re-sends the lost
// tail from the edge, and goes on: 0 lost, 0 duplicated.
func TestBridgeResendsTailTheCoreLost(t *testing.T) {
	t.Parallel()
	core, addr := startCore(t)
	e := openEdge(t, t.TempDir(), 1)
	rb := startBridge(t, testBridgeConfig(addr), e)
	for s := uint64(0); s < 1000; s++ {
		if err := e.appendReading("t-1", s, 50); err != nil {
			t.Fatal(err)
		}
	}
	rb.waitCaughtUp(t, 20*time.Second)
	core.stop()
	segs, _ := filepath.Glob(filepath.Join(core.dir, "logs", stream+"-0", "*.log"))
	if len(segs) == 0 {
		t.Fatal("no core segment found")
	}
	last := segs[len(segs)-1]
	fi, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	// Cut into the last batches, as a crash between write and fsync does.
	if err := os.Truncate(last, fi.Size()-3000); err != nil {
		t.Fatal(err)
	}
	core.start()
	lost := 1000 - core.records(stream)
	if lost <= 0 {
		t.Fatalf("the core lost nothing at recovery (holds %d)", core.records(stream))
	}
	for s := uint64(1000); s < 1500; s++ {
		if err := e.appendReading("t-1", s, 50); err != nil {
			t.Fatal(err)
		}
	}
	rb.waitCaughtUp(t, 20*time.Second)
	testkit.Eventually(t, 20*time.Second, "the core to hold all 1,500 readings", func() bool { return core.records(stream) >= 1500 })
	verifyCore(t, core, addr, map[string]uint64{"t-1": 1500})
	if got := testutil.ToFloat64(rb.m.rewound.WithLabelValues(stream)); int64(got) != lost {
		t.Errorf("rewound metric %v, the core lost %d", got, lost)
	}
	t.Logf("the core lost %d acknowledged records at recovery; the bridge re-sent them", lost)
}
