package stream

import (
	"context"
	"errors"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// In-memory source, sink and store that can "crash" at chosen points, so
// the exactly-once protocol is tested over thousands of crashes in
// milliseconds; crash_test.go does the same with real processes and a real
// core.

var errCrash = errors.New("simulated crash")

type memSource struct {
	in     [][]Record
	pos    []int
	rng    *rand.Rand
	crash  func() bool
	cancel context.CancelFunc
}

func (s *memSource) Partitions(context.Context) ([]int32, error) {
	var ps []int32
	for p := range s.in {
		ps = append(ps, int32(p))
	}
	return ps, nil
}

func (s *memSource) Start(_ context.Context, _ []int32, from map[int32]int64) error {
	s.pos = make([]int, len(s.in))
	for p := range s.in {
		s.pos[p] = int(from[int32(p)])
	}
	return nil
}

func (s *memSource) Poll(ctx context.Context, ends map[int32]int64) ([]Record, error) {
	if s.crash() {
		return nil, errCrash
	}
	var live []int
	for p := range s.in {
		ends[int32(p)] = int64(len(s.in[p]))
		if s.pos[p] < len(s.in[p]) {
			live = append(live, p)
		}
	}
	if len(live) == 0 {
		s.cancel()
		return nil, ctx.Err()
	}
	p := live[s.rng.IntN(len(live))]
	n := min(1+s.rng.IntN(60), len(s.in[p])-s.pos[p])
	out := s.in[p][s.pos[p] : s.pos[p]+n]
	s.pos[p] += n
	return out, nil
}

func (s *memSource) Close() {}

type memSink struct {
	parts  int
	log    map[string][]Output // "topic/partition" -> records
	queue  []Output
	ends   map[string]int64
	rng    *rand.Rand
	crash  func() bool
	landed int
}

func (k *memSink) partition(o *Output) string {
	h := fnv.New32a()
	h.Write(o.Key)
	return o.Topic + "/" + strconv.Itoa(int(h.Sum32()%uint32(k.parts)))
}

func (k *memSink) land(n int) {
	for _, o := range k.queue[:n] {
		tp := k.partition(&o)
		k.log[tp] = append(k.log[tp], o)
		k.ends[tp] = int64(len(k.log[tp]))
		k.landed++
	}
	k.queue = k.queue[n:]
}

func (k *memSink) Write(_ context.Context, outs []Output) error {
	k.queue = append(k.queue, outs...)
	if len(k.queue) > 0 && k.rng.IntN(3) == 0 { // the client sends some early
		k.land(k.rng.IntN(len(k.queue) + 1))
	}
	return nil
}

func (k *memSink) Flush(context.Context) (map[string]int64, error) {
	if k.crash() {
		k.land(k.rng.IntN(len(k.queue) + 1)) // some made it out before the crash
		k.queue = nil
		return nil, errCrash
	}
	k.land(len(k.queue))
	e := k.ends
	k.ends = map[string]int64{}
	return e, nil
}

func (k *memSink) IDsSince(_ context.Context, topics []string, from map[string]int64) (map[string]struct{}, error) {
	ids := map[string]struct{}{}
	for tp, recs := range k.log {
		start := from[tp]
		for _, o := range recs[start:] {
			ids[outputKey(&o)] = struct{}{}
		}
	}
	return ids, nil
}

func (k *memSink) Close() { k.queue = nil; k.ends = map[string]int64{} }

type memStore struct {
	cp    *Checkpoint
	crash func() bool
}

func (m *memStore) Load() (Checkpoint, bool, error) {
	if m.cp == nil {
		return Checkpoint{}, false, nil
	}
	return *m.cp, true, nil
}

func (m *memStore) Save(cp Checkpoint) error {
	if m.crash() {
		return errCrash
	}
	m.cp = &cp
	return nil
}

func (m *memStore) Close() error { return nil }

// TestRunnerCrashes crashes the runner at random points (while polling,
// half way through a flush, before the checkpoint is saved) hundreds of
// times; the output log must hold each output exactly once, byte for byte
// what an uninterrupted engine emits.
func TestRunnerCrashes(t *testing.T) {
	t.Parallel()
	now := refBase + 100*24*3600*1000
	for name, w := range refWindows {
		t.Run(name, func(t *testing.T) {
			cfg := refConfig(w, 2*time.Second)
			cfg.SideTopic = "sensors.late"
			in := genInput(11, 3, 12, 2000, cfg.Lateness)
			_, all, _ := runEngine(t, cfg, interleave(11, in), 3, now)
			want := map[string]Output{}
			for _, o := range all {
				want[outputKey(&o)] = o
			}

			rng := rand.New(rand.NewPCG(5, 5))
			crashes := 0
			crash := func() bool {
				if rng.IntN(10) == 0 {
					crashes++
					return true
				}
				return false
			}
			clock := time.UnixMilli(now)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sink := &memSink{parts: 4, log: map[string][]Output{}, ends: map[string]int64{}, rng: rng, crash: crash}
			m := NewMetrics(prometheus.NewRegistry())
			r := &Runner{
				Metrics:  m,
				Agg:      cfg,
				Source:   &memSource{in: in, rng: rng, crash: crash, cancel: cancel},
				Sink:     sink,
				Store:    &memStore{crash: crash},
				Interval: time.Second,
				Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
				Now:      func() time.Time { clock = clock.Add(300 * time.Millisecond); return clock },
			}
			for ctx.Err() == nil {
				if err := r.runOnce(ctx); err != nil && !errors.Is(err, errCrash) {
					t.Fatal(err)
				}
			}
			if crashes < 20 {
				t.Fatalf("only %d crashes", crashes)
			}
			got := map[string]Output{}
			for _, recs := range sink.log {
				for _, o := range recs {
					k := outputKey(&o)
					if _, dup := got[k]; dup {
						t.Errorf("output %q written twice", k)
					}
					got[k] = o
				}
			}
			for k, o := range want {
				g, ok := got[k]
				if !ok {
					t.Errorf("output %q missing", k)
					continue
				}
				if string(g.Value) != string(o.Value) || g.Timestamp != o.Timestamp {
					t.Errorf("output %q differs:\n got %s\nwant %s", k, g.Value, o.Value)
				}
			}
			if len(got) != len(want) {
				t.Errorf("%d outputs written, want %d", len(got), len(want))
			}
			dedup := testutil.ToFloat64(m.deduplicated.WithLabelValues(cfg.Name))
			if dedup == 0 {
				t.Errorf("no output was ever re-derived and skipped: the crashes missed the window between write and checkpoint")
			}
			t.Logf("%d crashes, %d outputs, %v re-derived and skipped", crashes, len(got), dedup)
		})
	}
}

// TestBoltStore: a checkpoint round-trips, and a second process (here a
// second open) cannot run the same aggregation.
func TestBoltStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := OpenBoltStore(dir, "1m")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Load(); ok || err != nil {
		t.Fatalf("empty store: %v %v", ok, err)
	}
	cp := Checkpoint{State: []byte{1, 2, 3}, OutputEnds: map[string]int64{"sensors.1m/0": 42}, Pending: []string{"a\x00b\x00f/1/2"}, SavedAt: 7}
	if err := s.Save(cp); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBoltStore(dir, "1m"); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenBoltStore(dir, "1m")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, ok, err := s.Load()
	if !ok || err != nil || string(got.State) != string(cp.State) || got.OutputEnds["sensors.1m/0"] != 42 || got.Pending[0] != cp.Pending[0] {
		t.Errorf("loaded %+v %v %v", got, ok, err)
	}
}
