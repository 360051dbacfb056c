package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/server"
	"github.com/tributary-io/tributary/internal/stream"
	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/internal/testkit/coretest"
	"github.com/tributary-io/tributary/storage"
)

// TestMain lets a test re-run this binary as tributary-stream itself, so
// the crash test can SIGKILL a real processor process.
func TestMain(m *testing.M) {
	if os.Getenv("TRIBUTARY_STREAM_AS_MAIN") == "1" {
		// main, plus a file that says the signal handler is in place
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		err := run(ctx, strings.Fields(os.Getenv("TRIBUTARY_STREAM_ARGS")), os.Stderr, func(string) {
			_ = os.WriteFile(os.Getenv("TRIBUTARY_STREAM_READY"), nil, 0o644)
		})
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "tributary-stream:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestExampleConfigLoads(t *testing.T) {
	cfg, _, err := loadConfig([]string{"-config", filepath.Join("..", "..", "..", "deploy", "stream.example.yaml")}, io.Discard)
	if err != nil {
		t.Fatalf("load example config: %v", err)
	}
	d := stream.DefaultConfig()
	if cfg.DataDir != d.DataDir || cfg.HTTPAddr != d.HTTPAddr || cfg.CheckpointInterval != d.CheckpointInterval || len(cfg.Aggregations) != 2 {
		t.Errorf("example config differs from the defaults it documents: %+v", cfg)
	}
	if a := cfg.Aggregations[0]; a.Output != "sensors.1m" || a.Window.Size != time.Minute || a.Lateness != 10*time.Second {
		t.Errorf("first aggregation not parsed: %+v", a)
	}
}

func TestConfigMistakesNameTheField(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"window.advance": "aggregations:\n- {name: a, source: s, fields: [{path: x}], window: {type: hopping, size: 1m, advance: 2m}, aggregates: [count]}\n",
		"aggregates[1]":  "aggregations:\n- {name: a, source: s, fields: [{path: x}], window: {type: tumbling, size: 1m}, aggregates: [count, median]}\n",
		"window.type":    "aggregations:\n- {name: a, source: s, fields: [{path: x}], window: {type: sliding, size: 1m}, aggregates: [count]}\n",
		"fields":         "aggregations:\n- {name: a, source: s, window: {type: tumbling, size: 1m}, aggregates: [count]}\n",
		"source":         "aggregations:\n- {name: a, fields: [{path: x}], window: {type: tumbling, size: 1m}, aggregates: [count]}\n",
		"field winodw":   "aggregations:\n- {name: a, source: s, fields: [{path: x}], winodw: {type: tumbling, size: 1m}, aggregates: [count]}\n",
		"deadband":       "aggregations:\n- {name: a, source: s, fields: [{path: x}], window: {type: tumbling, size: 1m}, deadband: {delta: 1}}\n",
		"fields[0].path": "aggregations:\n- {name: a, source: s, fields: [{path: a..b}], window: {type: tumbling, size: 1m}, aggregates: [count]}\n",
	}
	for want, yml := range cases {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(yml), 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err := loadConfig([]string{"-config", p}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v does not name it", want, err)
		}
	}
	if _, _, err := loadConfig(nil, io.Discard); err == nil || !strings.Contains(err.Error(), "-config") {
		t.Errorf("no config: %v", err)
	}
}

const crashConfig = `brokers: [%s]
data_dir: %s
http_addr: ""
checkpoint_interval: 700ms
aggregations:
  - name: 5s
    source: sensors
    side_topic: sensors.5s.rejected
    fields: [{name: temp, path: temp}, {name: hum, path: /env/hum}]
    window: {type: tumbling, size: 5s}
    aggregates: [count, sum, min, max, mean, first, last, stddev, p50, p99]
    lateness: 1s
  - name: sessions
    source: sensors
    output_format: cbor
    fields: [{name: temp, path: temp}]
    window: {type: session, gap: 400ms}
    aggregates: [count, mean, max, p90]
    lateness: 500ms
`

// genBatch makes n readings; the event clock runs 10 ms per reading, some
// readings are out of order, late or bad.
func genBatch(rng *rand.Rand, clock *int64, n int) []*kgo.Record {
	var out []*kgo.Record
	for i := 0; i < n; i++ {
		*clock += 10
		ts := *clock
		switch {
		case rng.IntN(5) == 0:
			ts -= rng.Int64N(1500)
		case rng.IntN(40) == 0:
			ts -= rng.Int64N(20_000)
		}
		m := map[string]any{"temp": float64(rng.IntN(4000)) / 100, "env": map[string]any{"hum": rng.IntN(100)}}
		if rng.IntN(50) == 0 {
			delete(m, "temp")
			delete(m, "env")
		}
		v, _ := json.Marshal(m)
		out = append(out, &kgo.Record{Topic: "sensors", Key: []byte(fmt.Sprintf("dev-%02d", rng.IntN(20))), Value: v,
			Timestamp: time.UnixMilli(ts), Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}}})
	}
	return out
}

// TestCrashExactlyOnce runs tributary-stream as a real process against a
// real core, SIGKILLs it 25 times while readings flow, then lets it finish:
// every output topic must hold each (group, window) once, byte for byte what
// an uninterrupted engine computes from the same input.
func TestCrashExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test starts processes")
	}
	dir := t.TempDir()
	addr := startCore(t, dir, 1<<20)
	cfgPath := filepath.Join(dir, "stream.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(crashConfig, addr, filepath.Join(dir, "stream"))), 0o644); err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation(), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	ctx := testkit.Context(t, 4*time.Minute)

	logPath := filepath.Join(dir, "stream.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	readyPath := filepath.Join(dir, "ready")
	start := func() *exec.Cmd {
		_ = os.Remove(readyPath)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "TRIBUTARY_STREAM_AS_MAIN=1", "TRIBUTARY_STREAM_ARGS=-config "+cfgPath+" -log-level info",
			"TRIBUTARY_STREAM_READY="+readyPath)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	dumpLog := func() {
		b, _ := os.ReadFile(logPath)
		if len(b) > 8000 {
			b = b[len(b)-8000:]
		}
		t.Logf("processor log (tail):\n%s", b)
	}

	rng := rand.New(rand.NewPCG(42, 42))
	clock := time.Now().Add(-time.Hour).UnixMilli()
	produced := 0
	produce := func(n int) {
		if err := prod.ProduceSync(ctx, genBatch(rng, &clock, n)...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		produced += n
	}
	produce(300) // creates the topic

	// starts counts the processor's "aggregation starting" lines: it logs
	// one once it has loaded its checkpoint.
	starts := func() int {
		b, _ := os.ReadFile(logPath)
		return strings.Count(string(b), "aggregation starting")
	}
	const kills = 25
	for i := 0; i < kills; i++ {
		before := starts()
		cmd := start()
		// Kill only a processor that has reached its checkpoint: on a loaded
		// machine a kill 200 ms after the start could land before it, and
		// then exercised nothing.
		if !testkit.Poll(30*time.Second, func() bool { return starts() > before }) {
			_ = cmd.Process.Kill()
			dumpLog()
			t.Fatalf("kill %d: the processor did not start within 30 s", i)
		}
		produce(300 + rng.IntN(300))
		select {
		case <-time.After(time.Duration(200+rng.IntN(1300)) * time.Millisecond): // the moment of the kill
		case <-ctx.Done():
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
	}

	// Expected: an uninterrupted engine over the input as stored.
	input := readTopic(t, ctx, addr, "sensors")
	n := 0
	for _, p := range input {
		n += len(p)
	}
	if n != produced {
		t.Fatalf("read back %d inputs, produced %d", n, produced)
	}
	cfg, _, err := loadConfig([]string{"-config", cfgPath}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]stream.Output{}
	for i := range cfg.Aggregations {
		e, err := stream.New(&cfg.Aggregations[i], nil)
		if err != nil {
			t.Fatal(err)
		}
		e.Assign([]int32{0, 1, 2})
		for _, part := range input {
			for j := range part {
				e.Process(&part[j], func(o stream.Output) { want[o.Topic+"\x00"+string(o.Key)+"\x00"+o.ID] = o })
			}
		}
	}
	wantPerTopic := map[string]int{}
	for _, o := range want {
		wantPerTopic[o.Topic]++
	}
	t.Logf("%d inputs; expected outputs per topic: %v", n, wantPerTopic)

	// Let a last run finish the backlog, then stop it gracefully.
	cmd := start()
	deadline := time.Now().Add(2 * time.Minute)
	// waitFor polls cond until the deadline; past it the processor is
	// killed and the test fails with its log.
	waitFor := func(what string, cond func() bool) {
		if !testkit.Poll(time.Until(deadline), cond) {
			_ = cmd.Process.Kill()
			dumpLog()
			t.Fatalf("the processor did not %s within 2 minutes", what)
		}
	}
	waitFor("start", func() bool {
		_, err := os.Stat(readyPath)
		return err == nil
	})
	waitFor("catch up", func() bool {
		for topic, n := range wantPerTopic {
			if countTopic(t, ctx, addr, topic) < n {
				return false
			}
		}
		return true
	})
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		dumpLog()
		t.Fatalf("processor exit: %v", err)
	}

	got := map[string][]stream.Record{}
	for topic := range wantPerTopic {
		for _, part := range readTopic(t, ctx, addr, topic) {
			for _, r := range part {
				var id string
				for _, h := range r.Headers {
					if h.Key == stream.HeaderID {
						id = string(h.Value)
					}
				}
				k := topic + "\x00" + string(r.Key) + "\x00" + id
				got[k] = append(got[k], r)
			}
		}
	}
	var bad []string
	for k, o := range want {
		rs := got[k]
		switch {
		case len(rs) == 0:
			bad = append(bad, "missing "+k)
		case len(rs) > 1:
			bad = append(bad, fmt.Sprintf("%d copies of %s", len(rs), k))
		case !bytes.Equal(rs[0].Value, o.Value) || rs[0].Timestamp != o.Timestamp:
			bad = append(bad, fmt.Sprintf("%s differs:\n got %q\nwant %q", k, rs[0].Value, o.Value))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			bad = append(bad, "unexpected "+k)
		}
	}
	// The kills must have hit between writing outputs and checkpointing.
	logText, _ := os.ReadFile(logPath)
	resumed := strings.Count(string(logText), "resumed=true")
	skipped := 0
	for _, m := range regexp.MustCompile(`outputs_to_skip=([0-9]+)`).FindAllStringSubmatch(string(logText), -1) {
		n, _ := strconv.Atoi(m[1])
		skipped += n
	}
	t.Logf("%d resumptions from a checkpoint; %d outputs found written past a checkpoint", resumed, skipped)
	if resumed < kills || skipped == 0 {
		bad = append(bad, "the kills did not exercise recovery")
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		dumpLog()
		t.Fatalf("%d problems, first ones:\n%s", len(bad), strings.Join(bad[:min(len(bad), 20)], "\n"))
	}
}

// countTopic counts the records in a topic (sum of end offsets).
func countTopic(t *testing.T, ctx context.Context, addr, topic string) int {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := endOffsets(ctx, cl, topic)
	if err != nil {
		return 0 // not created yet
	}
	n := 0
	for _, e := range ends {
		n += int(e)
	}
	return n
}

func endOffsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := int32(0); p < 3; p++ {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = p, -1, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	ends := map[int32]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return nil, fmt.Errorf("partition %d: error %d", p.Partition, p.ErrorCode)
			}
			ends[p.Partition] = p.Offset
		}
	}
	return ends, nil
}

// readTopic reads a 3-partition topic to its end, per partition in order.
func readTopic(t *testing.T, ctx context.Context, addr, topic string) [][]stream.Record {
	t.Helper()
	admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	ends, err := endOffsets(ctx, admin, topic)
	admin.Close()
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	offs := map[int32]kgo.Offset{}
	remaining := 0
	for p, e := range ends {
		if e > 0 {
			offs[p] = kgo.NewOffset().AtStart()
			remaining += int(e)
		}
	}
	out := make([][]stream.Record, 3)
	if remaining == 0 {
		return out
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for remaining > 0 {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v", topic, ctx.Err())
		}
		f.EachRecord(func(r *kgo.Record) {
			if r.Offset >= ends[r.Partition] {
				return
			}
			rec := stream.Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp.UnixMilli()}
			for _, h := range r.Headers {
				rec.Headers = append(rec.Headers, stream.Header{Key: h.Key, Value: h.Value})
			}
			out[r.Partition] = append(out[r.Partition], rec)
			remaining--
		})
	}
	return out
}

// TestRunServesMetricsAndHealth runs the command in-process against a core
// and finds its counters in /metrics and its detail in /healthz.
func TestRunServesMetricsAndHealth(t *testing.T) {
	dir := t.TempDir()
	coreAddr := startCore(t, dir, 0)
	prod, err := kgo.NewClient(kgo.SeedBrokers(coreAddr), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	ctx := testkit.Context(t, time.Minute)
	rng := rand.New(rand.NewPCG(1, 1))
	clock := time.Now().Add(-time.Hour).UnixMilli()
	batch := genBatch(rng, &clock, 500)
	batch = append(batch, &kgo.Record{Topic: "sensors", Key: []byte("dev-x"), Value: []byte(`{"temp":"hot"}`), Timestamp: time.UnixMilli(clock)},
		&kgo.Record{Topic: "sensors", Key: []byte("dev-x"), Value: []byte(`{"temp":1}`), Timestamp: time.UnixMilli(1000)})
	if err := prod.ProduceSync(ctx, batch...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "stream.yaml")
	yml := strings.Replace(fmt.Sprintf(crashConfig, coreAddr, filepath.Join(dir, "stream")), `http_addr: ""`, "http_addr: 127.0.0.1:0", 1)
	if err := os.WriteFile(cfgPath, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	addrc := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- run(runCtx, []string{"-config", cfgPath, "-log-level", "warn"}, io.Discard, func(a string) { addrc <- a })
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-errc:
		t.Fatalf("run: %v", err)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	want := []string{
		`tributary_stream_records_total{aggregation="5s"} 502`,
		`tributary_stream_records_skipped_total{aggregation="5s",reason="absurd_timestamp"} 1`,
		`tributary_stream_records_skipped_total{aggregation="5s",reason="not_a_number"} 1`,
		`tributary_stream_checkpoints_total{aggregation="5s"}`,
		`tributary_stream_windows_open{aggregation="sessions"}`,
		`tributary_stream_input_lag_records{aggregation="5s"} 0`,
	}
	var code int
	var health, missing string
	if !testkit.Poll(30*time.Second, func() bool {
		code, health = get("/healthz")
		_, metrics := get("/metrics")
		missing = ""
		for _, w := range want {
			if !strings.Contains(metrics, w) {
				missing = w
			}
		}
		return code == http.StatusOK && missing == ""
	}) {
		t.Fatalf("healthz %d %s; metrics lack %q", code, health, missing)
	}
	if !strings.Contains(health, `"checkpoint_age_seconds"`) || !strings.Contains(health, `"sessions"`) {
		t.Errorf("healthz lacks detail: %s", health)
	}
	stop()
	if err := <-errc; err != nil {
		t.Fatalf("run: %v", err)
	}
}

// TestIdleTimeoutClosesWindows: readings on one partition of three; the
// two silent partitions stop holding windows open after idle_timeout.
func TestIdleTimeoutClosesWindows(t *testing.T) {
	dir := t.TempDir()
	addr := startCore(t, dir, 0)
	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	ctx := testkit.Context(t, time.Minute)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	var batch []*kgo.Record
	for i := 0; i < 100; i++ {
		batch = append(batch, &kgo.Record{Topic: "sensors", Partition: 0, Key: []byte("dev-1"), Value: []byte(`{"temp":1}`),
			Timestamp: base.Add(time.Duration(i) * 100 * time.Millisecond)})
	}
	if err := prod.ProduceSync(ctx, batch...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "stream.yaml")
	yml := fmt.Sprintf(`brokers: [%s]
data_dir: %s
http_addr: ""
checkpoint_interval: 100ms
aggregations:
  - {name: 1s, source: sensors, fields: [{path: temp}], window: {type: tumbling, size: 1s}, aggregates: [count], idle_timeout: 1s}
`, addr, filepath.Join(dir, "stream"))
	if err := os.WriteFile(cfgPath, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- run(runCtx, []string{"-config", cfgPath, "-log-level", "warn"}, io.Discard, nil) }()
	outputs := 0
	if !testkit.Poll(30*time.Second, func() bool {
		outputs = countTopic(t, ctx, addr, "sensors.1s")
		return outputs >= 9 // 10 windows; the last stays open
	}) {
		t.Fatalf("windows did not close with two idle partitions: %d outputs", outputs)
	}
	stop()
	if err := <-errc; err != nil {
		t.Fatalf("run: %v", err)
	}
}

// startCore starts a single core broker with 3 default partitions under
// dir/core (segmentBytes 0: the default segment size), closed when the
// test ends, and returns its address.
func startCore(tb testing.TB, dir string, segmentBytes int64) string {
	tb.Helper()
	return coretest.Start(tb, server.Config{
		DataDir: filepath.Join(dir, "core"), KafkaAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DefaultPartitions: 3,
		Log: storage.LogConfig{SegmentBytes: segmentBytes},
	}, nil).Addr()
}
