package stream

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// This file holds the reference test: seeded random input (out-of-order,
// late and bad records included), run through the engine in a random
// interleaving of partitions, compared with a straightforward computation
// over the same records for every window type and aggregate.

var refBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

// genInput makes per-partition record lists. Key k lives on partition
// k % parts, as a keyed producer would put it.
func genInput(seed uint64, parts, keys, perPart int, lateness time.Duration) [][]Record {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([][]Record, parts)
	for p := 0; p < parts; p++ {
		clock := refBase + rng.Int64N(5000)
		for i := 0; i < perPart; i++ {
			clock += rng.Int64N(1500)
			ts := clock
			if rng.IntN(5) == 0 { // out of order, some beyond the lateness
				ts -= rng.Int64N(3 * lateness.Milliseconds())
			}
			if rng.IntN(30) == 0 { // far behind
				ts -= rng.Int64N(90_000)
			}
			k := p + parts*rng.IntN(keys/parts)
			temp := math.Round((20+10*rng.Float64())*100) / 100
			hum := float64(rng.IntN(100))
			var value []byte
			var headers []Header
			m := map[string]any{"temp": temp, "hum": hum, "seq": i}
			switch rng.IntN(50) {
			case 0:
				delete(m, "temp")
				delete(m, "hum")
			case 1:
				m["temp"] = "warm"
				delete(m, "hum")
			case 2:
				ts = 1000 // 1970: absurd
			case 3:
				delete(m, "hum")
			}
			if rng.IntN(2) == 0 {
				value, _ = json.Marshal(m)
				headers = []Header{{Key: "content-type", Value: []byte("application/json")}}
			} else {
				value, _ = cbor.Marshal(m)
				if rng.IntN(2) == 0 {
					headers = []Header{{Key: "content-type", Value: []byte("application/cbor")}}
				}
			}
			out[p] = append(out[p], Record{Topic: "sensors", Partition: int32(p), Offset: int64(i),
				Key: []byte("dev-" + strconv.Itoa(k)), Value: value, Headers: headers, Timestamp: ts})
		}
	}
	return out
}

// interleave returns all records in a random order that keeps each
// partition's order.
func interleave(seed uint64, in [][]Record) []Record {
	rng := rand.New(rand.NewPCG(seed, 7))
	idx := make([]int, len(in))
	var out []Record
	for {
		var live []int
		for p := range in {
			if idx[p] < len(in[p]) {
				live = append(live, p)
			}
		}
		if len(live) == 0 {
			return out
		}
		p := live[rng.IntN(len(live))]
		n := 1 + rng.IntN(20) // runs, as fetches deliver them
		for ; n > 0 && idx[p] < len(in[p]); n-- {
			out = append(out, in[p][idx[p]])
			idx[p]++
		}
	}
}

// --- the straightforward computation ---

type refRec struct {
	at   pos
	vals map[string]float64
}

type refWindow struct {
	group      string
	start, end int64
	recs       []refRec
}

// refDecode reads fields the simple way: a full decode.
func refDecode(r Record, fields []string) map[string]float64 {
	var m map[string]any
	if json.Unmarshal(r.Value, &m) != nil {
		var cm map[string]any
		if cbor.Unmarshal(r.Value, &cm) != nil {
			return nil
		}
		m = cm
	}
	vals := map[string]float64{}
	for _, f := range fields {
		switch v := m[f].(type) {
		case float64:
			vals[f] = v
		case uint64:
			vals[f] = float64(v)
		case int64:
			vals[f] = float64(v)
		}
	}
	return vals
}

// reference computes the expected closed windows: each partition decides
// lateness by its own watermark; the final watermark is the minimum over
// partitions; a window is expected when its end is at or before it.
func reference(cfg *Aggregation, in [][]Record, now int64) map[string]*refWindow {
	L := cfg.Lateness.Milliseconds()
	var fields []string
	for _, f := range cfg.Fields {
		fields = append(fields, f.Name)
	}
	final := int64(math.MaxInt64)
	accepted := map[string][]refRec{} // group -> records (sessions)
	wins := map[string]*refWindow{}
	for _, part := range in {
		maxTs := int64(math.MinInt64)
		for _, r := range part {
			if r.Timestamp < DefaultMinTimestamp.UnixMilli() || r.Timestamp > now+DefaultMaxAhead.Milliseconds() {
				continue
			}
			maxTs = max(maxTs, r.Timestamp)
			vals := refDecode(r, fields)
			if len(vals) == 0 {
				continue
			}
			wm := maxTs - L
			rr := refRec{at: pos{r.Timestamp, r.Partition, r.Offset}, vals: vals}
			g := string(r.Key)
			w := cfg.Window
			switch w.Type {
			case Session:
				if r.Timestamp >= wm {
					accepted[g] = append(accepted[g], rr)
				}
			default:
				size, adv := w.Size.Milliseconds(), w.Advance.Milliseconds()
				for k := (r.Timestamp - size) / adv; k <= r.Timestamp/adv; k++ {
					s := k * adv
					if r.Timestamp >= s && r.Timestamp < s+size && s+size > wm {
						id := fmt.Sprintf("%s|%d|%d", g, s, s+size)
						if wins[id] == nil {
							wins[id] = &refWindow{group: g, start: s, end: s + size}
						}
						wins[id].recs = append(wins[id].recs, rr)
					}
				}
			}
		}
		final = min(final, maxTs-L)
	}
	for g, recs := range accepted {
		sort.Slice(recs, func(i, j int) bool { return recs[i].at.less(recs[j].at) })
		gap := cfg.Window.Gap.Milliseconds()
		var cur *refWindow
		for _, r := range recs {
			if cur == nil || r.at.ts >= cur.end {
				cur = &refWindow{group: g, start: r.at.ts}
				wins[fmt.Sprintf("%s|%d", g, r.at.ts)] = cur
			}
			cur.end = r.at.ts + gap
			cur.recs = append(cur.recs, r)
		}
	}
	for id, w := range wins {
		if w.end > final {
			delete(wins, id)
		}
	}
	out := map[string]*refWindow{}
	for _, w := range wins {
		out[fmt.Sprintf("%s|%d|%d", w.group, w.start, w.end)] = w
	}
	return out
}

// expect checks one output against its reference window.
func expect(t *testing.T, cfg *Aggregation, got map[string]any, w *refWindow) {
	t.Helper()
	if int64(got["count"].(float64)) != int64(len(w.recs)) {
		t.Errorf("%s [%d,%d): count %v, want %d", w.group, w.start, w.end, got["count"], len(w.recs))
	}
	for _, f := range cfg.Fields {
		// records in partition order: the engine sums in that order too
		recs := append([]refRec(nil), w.recs...)
		sort.Slice(recs, func(i, j int) bool { return recs[i].at.off < recs[j].at.off })
		var xs []float64
		var sum float64
		var first, last refRec
		for _, r := range recs {
			v, ok := r.vals[f.Name]
			if !ok {
				continue
			}
			if len(xs) == 0 || r.at.less(first.at) {
				first = r
			}
			if len(xs) == 0 || last.at.less(r.at) {
				last = r
			}
			xs = append(xs, v)
			sum += v
		}
		fm, _ := got[f.Name].(map[string]any)
		if fm == nil {
			t.Fatalf("%s: output lacks field %q: %v", w.group, f.Name, got)
		}
		if n := int(fm["count"].(float64)); n != len(xs) {
			t.Errorf("%s [%d,%d) %s: count %d, want %d", w.group, w.start, w.end, f.Name, n, len(xs))
			continue
		}
		if len(xs) == 0 {
			if len(fm) != 1 {
				t.Errorf("%s: empty field has aggregates %v", w.group, fm)
			}
			continue
		}
		n := float64(len(xs))
		mean := sum / n
		var ss float64
		for _, x := range xs {
			ss += (x - mean) * (x - mean)
		}
		sorted := append([]float64(nil), xs...)
		sort.Float64s(sorted)
		want := map[string]float64{
			"sum": sum, "min": sorted[0], "max": sorted[len(sorted)-1], "mean": mean,
			"first": first.vals[f.Name], "last": last.vals[f.Name], "stddev": math.Sqrt(ss / n),
		}
		for _, a := range cfg.Aggregates {
			s, _ := parseAggregate(a)
			g, ok := fm[a].(float64)
			if !ok {
				t.Errorf("%s %s: missing %s", w.group, f.Name, a)
				continue
			}
			switch s.kind {
			case aggCount:
			case aggQuantile:
				exact := sorted[int(math.Floor(s.q*(n-1)))]
				if math.Abs(g-exact) > cfg.QuantileAccuracy*math.Abs(exact)+1e-12 {
					t.Errorf("%s [%d,%d) %s %s = %v, exact %v: beyond the sketch's relative accuracy %v",
						w.group, w.start, w.end, f.Name, a, g, exact, cfg.QuantileAccuracy)
				}
			case aggSum, aggMin, aggMax, aggFirst, aggLast:
				if g != want[a] && !(s.kind == aggSum && math.Abs(g-want[a]) <= 1e-9*math.Abs(want[a])) {
					t.Errorf("%s [%d,%d) %s %s = %v, want %v", w.group, w.start, w.end, f.Name, a, g, want[a])
				}
			default:
				if math.Abs(g-want[a]) > 1e-9*math.Max(1, math.Abs(want[a])) {
					t.Errorf("%s [%d,%d) %s %s = %v, want %v", w.group, w.start, w.end, f.Name, a, g, want[a])
				}
			}
		}
	}
}

func refConfig(w Window, lateness time.Duration) *Aggregation {
	a := &Aggregation{
		Name: "ref", Source: "sensors",
		Fields:     []Field{{Name: "temp", Path: "temp"}, {Name: "hum", Path: "/hum"}},
		Window:     &w,
		Aggregates: []string{"count", "sum", "min", "max", "mean", "first", "last", "stddev", "p50", "p99", "p0", "p100"},
		Lateness:   lateness,
	}
	if err := a.Validate("test"); err != nil {
		panic(err)
	}
	return a
}

var refWindows = map[string]Window{
	"tumbling":        {Type: Tumbling, Size: 10 * time.Second},
	"hopping":         {Type: Hopping, Size: 10 * time.Second, Advance: 4 * time.Second},
	"hopping-aligned": {Type: Hopping, Size: 60 * time.Second, Advance: 15 * time.Second},
	"session":         {Type: Session, Gap: 3 * time.Second},
}

// runEngine feeds records and collects the final outputs by identity.
func runEngine(t *testing.T, cfg *Aggregation, recs []Record, parts int, now int64) (map[string]Output, []Output, Counters) {
	t.Helper()
	e, err := New(cfg, func() time.Time { return time.UnixMilli(now) })
	if err != nil {
		t.Fatal(err)
	}
	var ps []int32
	for p := 0; p < parts; p++ {
		ps = append(ps, int32(p))
	}
	e.Assign(ps)
	finals := map[string]Output{}
	var all []Output
	for i := range recs {
		e.Process(&recs[i], func(o Output) {
			all = append(all, o)
			if o.Topic != cfg.Output || o.ID[0] != 'f' {
				return
			}
			id := string(o.Key) + "|" + o.ID
			if _, dup := finals[id]; dup {
				t.Errorf("window %s emitted twice", id)
			}
			finals[id] = o
		})
	}
	return finals, all, e.Counters()
}

func TestReference(t *testing.T) {
	t.Parallel()
	now := refBase + 100*24*3600*1000
	for name, w := range refWindows {
		for _, seed := range []uint64{1, 2, 3} {
			t.Run(fmt.Sprintf("%s/seed%d", name, seed), func(t *testing.T) {
				cfg := refConfig(w, 2*time.Second)
				in := genInput(seed, 3, 12, 1500, cfg.Lateness)
				want := reference(cfg, in, now)
				finals, _, c := runEngine(t, cfg, interleave(seed, in), 3, now)
				t.Logf("%d windows, %d records, %d late, skipped %v", len(finals), c.Records, c.Late, c.Skipped)
				if c.Late == 0 || c.Skipped[ReasonTimestamp] == 0 || c.Skipped[ReasonMissing] == 0 || c.Skipped[ReasonNotNumber] == 0 {
					t.Errorf("the input lacks late or bad records: %+v", c)
				}
				if len(want) < 50 {
					t.Fatalf("only %d reference windows: the test input is too small", len(want))
				}
				if len(finals) != len(want) {
					t.Errorf("%d windows emitted, reference has %d", len(finals), len(want))
				}
				for _, o := range finals {
					var got map[string]any
					if err := json.Unmarshal(o.Value, &got); err != nil {
						t.Fatalf("output is not JSON: %v: %s", err, o.Value)
					}
					id := fmt.Sprintf("%s|%d|%d", got["group"], int64(got["window_start"].(float64)), int64(got["window_end"].(float64)))
					rw := want[id]
					if rw == nil {
						t.Errorf("unexpected window %s: %s", id, o.Value)
						continue
					}
					if o.Timestamp != rw.end || string(o.Key) != rw.group || got["final"] != true {
						t.Errorf("window %s: key %q timestamp %d final %v", id, o.Key, o.Timestamp, got["final"])
					}
					expect(t, cfg, got, rw)
				}
				// Another interleaving of the same partitions gives the same bytes.
				again, _, _ := runEngine(t, cfg, interleave(seed+100, in), 3, now)
				for id, o := range finals {
					if string(again[id].Value) != string(o.Value) {
						t.Fatalf("window %s differs between interleavings:\n%s\n%s", id, o.Value, again[id].Value)
					}
				}
			})
		}
	}
}
