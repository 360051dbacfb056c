package aggregate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary-io/tributary/edge/topicmap"
	"github.com/tributary-io/tributary/internal/stream"
	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/meta"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

type edgeStore struct {
	store  *meta.Store
	topics *storage.Topics
}

func openStore(t *testing.T) *edgeStore {
	t.Helper()
	dir := t.TempDir()
	store, err := meta.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	topics, err := storage.OpenTopics(filepath.Join(dir, "logs"), store, storage.LogConfig{
		SegmentBytes: 64 << 10,
		Durability:   storage.Durability{Mode: storage.SyncInterval, Interval: 10 * time.Millisecond},
	}, testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { topics.Close(); store.Close() })
	return &edgeStore{store: store, topics: topics}
}

// appendReadings writes n readings of 10 devices into stream (2
// partitions, device-keyed), event times 100 ms apart from base.
func (e *edgeStore) appendReadings(t *testing.T, name string, from, n int, base int64) {
	t.Helper()
	for i := from; i < from+n; i++ {
		dev := fmt.Sprintf("dev-%d", i%10)
		v, _ := json.Marshal(map[string]any{"temp": float64(i%37) + 0.5, "seq": i})
		rec := recordbatch.Record{Timestamp: base + int64(i)*100, Key: []byte(dev), Value: v,
			Headers: []recordbatch.RecordHeader{{Key: "content-type", Value: []byte("application/json")}}}
		b, err := recordbatch.Build([]recordbatch.Record{rec}, recordbatch.NoProducer)
		if err != nil {
			t.Fatal(err)
		}
		l, err := e.topics.Partition(name, topicmap.Partition(rec.Key, 2))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(context.Background(), b, storage.AppendOptions{LeaderEpoch: -1}); err != nil {
			t.Fatal(err)
		}
	}
}

func testAgg(t *testing.T) []stream.Aggregation {
	t.Helper()
	aggs := []stream.Aggregation{{
		Name: "1s", Source: "sensors",
		Fields:     []stream.Field{{Name: "temp", Path: "temp"}},
		Window:     &stream.Window{Type: stream.Tumbling, Size: time.Second},
		Aggregates: []string{"count", "min", "max", "mean", "p99"},
	}}
	if err := Validate(aggs, 0); err != nil {
		t.Fatal(err)
	}
	return aggs
}

type outRec struct {
	partition int32
	key, id   string
	value     []byte
	ts        int64
}

// readStream returns every record of a stream with its stream-id header.
func readStream(t *testing.T, topics *storage.Topics, name string) []outRec {
	t.Helper()
	info, ok := topics.Get(name)
	if !ok {
		return nil
	}
	var out []outRec
	for p := int32(0); p < info.Partitions; p++ {
		l, _ := topics.Partition(name, p)
		for _, r := range testkit.LogRecords(t, l) {
			o := outRec{partition: p, key: string(r.Key), value: r.Value, ts: r.Timestamp}
			for _, hd := range r.Headers {
				if hd.Key == stream.HeaderID {
					o.id = string(hd.Value)
				}
			}
			out = append(out, o)
		}
	}
	return out
}

// reference runs a fresh engine over the source stream as stored.
func reference(t *testing.T, topics *storage.Topics, agg *stream.Aggregation) map[string][]byte {
	t.Helper()
	eng, err := stream.New(agg, nil)
	if err != nil {
		t.Fatal(err)
	}
	eng.Assign([]int32{0, 1})
	want := map[string][]byte{}
	for p := int32(0); p < 2; p++ {
		l, _ := topics.Partition(agg.Source, p)
		for _, r := range testkit.LogRecords(t, l) {
			rec := stream.Record{Topic: agg.Source, Partition: p, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
			eng.Process(&rec, func(o stream.Output) { want[string(o.Key)+" "+o.ID] = bytes.Clone(o.Value) })
		}
	}
	return want
}

// check compares the output stream with the reference: every (group,
// window) exactly once, byte for byte, on its key's partition, stamped with
// the window end.
func check(t *testing.T, e *edgeStore, agg *stream.Aggregation, want map[string][]byte) {
	t.Helper()
	got := readStream(t, e.topics, agg.Output)
	seen := map[string]bool{}
	for _, o := range got {
		k := o.key + " " + o.id
		if seen[k] {
			t.Errorf("duplicate output %s", k)
			continue
		}
		seen[k] = true
		if !bytes.Equal(o.value, want[k]) {
			t.Errorf("output %s = %s, want %s", k, o.value, want[k])
		}
		if p := topicmap.Partition([]byte(o.key), 2); p != o.partition {
			t.Errorf("output %s on partition %d, want %d", k, o.partition, p)
		}
		var v struct {
			WindowEnd int64 `json:"window_end"`
		}
		if err := json.Unmarshal(o.value, &v); err != nil || v.WindowEnd != o.ts {
			t.Errorf("output %s: timestamp %d, window_end %d (%v)", k, o.ts, v.WindowEnd, err)
		}
	}
	for k := range want {
		if !seen[k] {
			t.Errorf("missing output %s", k)
		}
	}
}

// TestEdgeAggregation: records appended to an edge stream (including a
// stream created after the aggregation started) come out as one record per
// (device, window) in <source>.<name>, equal to an engine run over the
// stored input; a graceful stop and restart continues without repeating or
// skipping a window; the checkpoint is in meta.db.
func TestEdgeAggregation(t *testing.T) {
	t.Parallel()
	e := openStore(t)
	aggs := testAgg(t)
	set, err := New(aggs, 50*time.Millisecond, e.topics, e.store, nil, testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	r := set.Runners()[0]
	stop := testkit.Run(t, "aggregation", r.Run)
	// The source is created after the runner started: it waits for it.
	time.Sleep(50 * time.Millisecond)
	if err := e.topics.Create("sensors", 2, storage.LogConfig{}); err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour).Truncate(time.Second).UnixMilli()
	e.appendReadings(t, "sensors", 0, 500, base)
	want := reference(t, e.topics, &aggs[0])
	if len(want) < 400 {
		t.Fatalf("reference has %d windows; the input should close ~490", len(want))
	}
	testkit.Eventually(t, 10*time.Second, "outputs of the first part", func() bool { return len(readStream(t, e.topics, aggs[0].Output)) >= len(want) })
	stop()
	if _, ok, err := (&MetaStore{Store: e.store, Name: "1s"}).Load(); !ok || err != nil {
		t.Fatalf("no checkpoint in meta.db after a stop: %v", err)
	}

	e.appendReadings(t, "sensors", 500, 500, base)
	want = reference(t, e.topics, &aggs[0])
	stop = testkit.Run(t, "aggregation", r.Run)
	testkit.Eventually(t, 10*time.Second, "outputs after the restart", func() bool { return len(readStream(t, e.topics, aggs[0].Output)) >= len(want) })
	testkit.Eventually(t, 5*time.Second, "a checkpoint", func() bool { return !r.Status().LastCheckpoint.IsZero() })
	stop()
	check(t, e, &aggs[0], want)
	if st := set.Status(); len(st) != 1 || st[0].Name != "1s" || st[0].Output != "sensors.1s" || st[0].Processed == 0 {
		t.Errorf("status = %+v", st)
	}
}

var errCrash = errors.New("simulated crash")

// crashingSource fails a poll at random (a crash while consuming, with
// outputs appended since the last checkpoint and not yet fsynced).
type crashingSource struct {
	stream.Source
	crash func() bool
}

func (c *crashingSource) Poll(ctx context.Context, ends map[int32]int64) ([]stream.Record, error) {
	if c.crash() {
		return nil, errCrash
	}
	return c.Source.Poll(ctx, ends)
}

// crashingStore fails a save at random: outputs flushed (fsynced in the
// output log), checkpoint not saved — the gap exactly-once must close.
type crashingStore struct {
	stream.CheckpointStore
	crash func() bool
	dead  *atomic.Bool
}

// deadSink refuses writes once the process is "dead", so the runner's
// stop path (a last write and checkpoint) cannot turn a crash into a
// graceful stop.
type deadSink struct {
	stream.Sink
	dead *atomic.Bool
}

func (d *deadSink) Write(ctx context.Context, outs []stream.Output) error {
	if d.dead.Load() {
		return errCrash
	}
	return d.Sink.Write(ctx, outs)
}

func (c *crashingStore) Save(cp stream.Checkpoint) error {
	if c.dead.Load() || c.crash() {
		return errCrash
	}
	return c.CheckpointStore.Save(cp)
}

// TestEdgeAggregationCrashes: input flows while the aggregation "crashes"
// ~60 times at random points (mid-consume, and between the outputs'
// fsync and the checkpoint), each life a fresh runner restoring from
// meta.db; afterwards the output stream holds every (group, window)
// exactly once, equal to an uninterrupted engine, and outputs written past
// a checkpoint were found and skipped.
func TestEdgeAggregationCrashes(t *testing.T) {
	t.Parallel()
	e := openStore(t)
	if err := e.topics.Create("sensors", 2, storage.LogConfig{}); err != nil {
		t.Fatal(err)
	}
	aggs := testAgg(t)
	agg := &aggs[0]
	base := time.Now().Add(-time.Hour).Truncate(time.Second).UnixMilli()
	const total = 6000
	var mu sync.Mutex
	written := 0
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		for i := 0; i < total; i += 100 {
			e.appendReadings(t, "sensors", i, 100, base)
			mu.Lock()
			written = i + 100
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	rng := rand.New(rand.NewPCG(1, 2))
	var rngMu sync.Mutex
	chance := func(per1000 int) func() bool {
		return func() bool { rngMu.Lock(); defer rngMu.Unlock(); return rng.IntN(1000) < per1000 }
	}
	crashes, deduped := 0, 0
	for life := 0; ; life++ {
		mu.Lock()
		fed := written
		mu.Unlock()
		last := fed == total && crashes >= 60
		set, err := New(aggs, 20*time.Millisecond, e.topics, e.store, nil, testkit.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		r := set.Runners()[0]
		src, store := r.Source, r.Store
		ctx, cancel := context.WithCancel(context.Background())
		crashed := make(chan struct{}, 1)
		dead := &atomic.Bool{}
		trip := func(c func() bool) func() bool {
			return func() bool {
				if !last && c() {
					dead.Store(true)
					select {
					case crashed <- struct{}{}:
					default:
					}
					cancel()
					return true
				}
				return false
			}
		}
		r.Source = &crashingSource{Source: src, crash: trip(chance(40))}
		r.Store = &crashingStore{CheckpointStore: store, crash: trip(chance(300)), dead: dead}
		r.Sink = &deadSink{Sink: r.Sink, dead: dead}
		var logs bytes.Buffer
		var logMu sync.Mutex
		r.Logger = slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, nil))
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		if last {
			want := reference(t, e.topics, agg)
			testkit.Eventually(t, 20*time.Second, "the last run to catch up", func() bool {
				return len(readStream(t, e.topics, agg.Output)) >= len(want)
			})
			cancel()
			<-done
			break
		}
		select {
		case <-crashed:
			crashes++
		case <-time.After(30 * time.Second): // polls crash at 4%: only a hang misses
			t.Fatalf("life %d: no crash in 30s", life)
		}
		<-done
		logMu.Lock()
		if bytes.Contains(logs.Bytes(), []byte("outputs_to_skip")) {
			var n int
			for _, line := range bytes.Split(logs.Bytes(), []byte("\n")) {
				if i := bytes.Index(line, []byte("outputs_to_skip=")); i >= 0 {
					fmt.Sscanf(string(line[i+len("outputs_to_skip="):]), "%d", &n)
					deduped += n
				}
			}
		}
		logMu.Unlock()
		if life > 2000 {
			t.Fatal("too many lives")
		}
	}
	<-feedDone
	check(t, e, agg, reference(t, e.topics, agg))
	t.Logf("%d crashes; %d outputs found written past a checkpoint at restarts", crashes, deduped)
	if deduped == 0 {
		t.Error("no restart found outputs written past its checkpoint: the crashes missed the gap")
	}
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestHoldRetention: on a source the set holds (a stream kept local), the
// retention floor follows the aggregation's checkpoint, so records it has
// not covered survive the stream's retention while it is stopped; a source
// not held keeps whatever floor it had.
func TestHoldRetention(t *testing.T) {
	t.Parallel()
	e := openStore(t)
	small := storage.LogConfig{SegmentBytes: 4 << 10, RetentionBytes: 8 << 10}
	for _, name := range []string{"sensors", "other"} {
		if err := e.topics.Create(name, 2, small); err != nil {
			t.Fatal(err)
		}
	}
	aggs := append(testAgg(t), stream.Aggregation{
		Name: "o", Source: "other", Fields: []stream.Field{{Name: "temp", Path: "temp"}},
		Window: &stream.Window{Type: stream.Tumbling, Size: time.Second}, Aggregates: []string{"count"},
	})
	set, err := New(aggs, 20*time.Millisecond, e.topics, e.store, nil, testkit.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	set.HoldRetention("sensors")
	base := time.Now().Add(-time.Hour).Truncate(time.Second).UnixMilli()
	e.appendReadings(t, "sensors", 0, 300, base)
	e.appendReadings(t, "other", 0, 300, base)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, r := range set.Runners() {
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.Run(ctx) }()
	}
	testkit.Eventually(t, 10*time.Second, "both aggregations to cover the input", func() bool {
		for _, st := range set.Status() {
			if st.Processed < 300 || st.LastCheckpoint.IsZero() {
				return false
			}
		}
		return true
	})
	cancel()
	wg.Wait()
	for p := int32(0); p < 2; p++ {
		l, _ := e.topics.Partition("sensors", p)
		if f := l.RetentionFloor(); f != l.NextOffset() {
			t.Errorf("sensors-%d: floor %d, want the checkpointed next offset %d", p, f, l.NextOffset())
		}
		if l, _ := e.topics.Partition("other", p); l.RetentionFloor() != math.MaxInt64 {
			t.Errorf("other-%d: floor %d; the set does not hold it", p, l.RetentionFloor())
		}
	}
	// Stopped, the aggregation falls behind: retention keeps what it has
	// not covered on the held source, and trims the other one.
	floors := map[int32]int64{}
	for p := int32(0); p < 2; p++ {
		l, _ := e.topics.Partition("sensors", p)
		floors[p] = l.RetentionFloor()
	}
	e.appendReadings(t, "sensors", 300, 600, base)
	e.appendReadings(t, "other", 300, 600, base)
	e.topics.MaintainOnce()
	for p := int32(0); p < 2; p++ {
		l, _ := e.topics.Partition("sensors", p)
		if l.StartOffset() > floors[p] {
			t.Errorf("sensors-%d: retention trimmed to %d past the aggregation's %d", p, l.StartOffset(), floors[p])
		}
		if l, _ := e.topics.Partition("other", p); l.StartOffset() == 0 {
			t.Errorf("other-%d: retention trimmed nothing (size %d)", p, l.Size())
		}
	}
}
