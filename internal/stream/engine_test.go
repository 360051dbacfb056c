package stream

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func mustAgg(t *testing.T, a *Aggregation) *Aggregation {
	t.Helper()
	if err := a.Validate("test"); err != nil {
		t.Fatal(err)
	}
	return a
}

func rec(p int32, off int64, key string, ts int64, value string, headers ...Header) *Record {
	return &Record{Topic: "sensors", Partition: p, Offset: off, Key: []byte(key), Value: []byte(value), Timestamp: ts, Headers: headers}
}

// TestDeadband compares report-by-exception with the rule computed by hand
// over a random walk: emit when moved by more than delta since the last
// emitted reading of the group, or heartbeat after it.
func TestDeadband(t *testing.T) {
	t.Parallel()
	cfg := mustAgg(t, &Aggregation{Name: "db", Source: "sensors", Fields: []Field{{Name: "temp", Path: "temp"}},
		Deadband: &Deadband{Delta: 0.5, Heartbeat: 10 * time.Second}})
	e, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Assign([]int32{0})
	var got []Output
	v := 20.0
	type reading struct {
		ts  int64
		val float64
	}
	var want []reading
	var last *reading
	for i := 0; i < 2000; i++ {
		v += math.Sin(float64(i)*0.37) * 0.3
		ts := refBase + int64(i)*700
		if last == nil || math.Abs(v-last.val) > 0.5 || ts-last.ts >= 10_000 {
			want = append(want, reading{ts, v})
			last = &want[len(want)-1]
		}
		b, _ := json.Marshal(map[string]float64{"temp": v})
		e.Process(rec(0, int64(i), "dev-1", ts, string(b)), func(o Output) { got = append(got, o) })
	}
	if len(got) != len(want) || len(want) < 100 || len(want) > 1500 {
		t.Fatalf("%d outputs, want %d (of 2000 readings)", len(got), len(want))
	}
	for i, o := range got {
		var m map[string]any
		if err := json.Unmarshal(o.Value, &m); err != nil {
			t.Fatal(err)
		}
		if o.Timestamp != want[i].ts || m["temp"] != want[i].val || int64(m["time"].(float64)) != want[i].ts || m["group"] != "dev-1" {
			t.Fatalf("output %d: %s at %d, want %v", i, o.Value, o.Timestamp, want[i])
		}
	}
	// state survives a snapshot
	snap, err := e.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	e2, _ := New(cfg, nil)
	if err := e2.Restore(snap); err != nil {
		t.Fatal(err)
	}
	n := 0
	e2.Process(rec(0, 2000, "dev-1", refBase+2000*700, `{"temp":`+jsonFloat(last.val+0.1)+`}`), func(Output) { n++ })
	if n != 0 {
		t.Errorf("restored deadband emitted a reading within the band")
	}
}

func jsonFloat(f float64) string { b, _ := json.Marshal(f); return string(b) }

// TestGroupByFieldAndHeader: groups are "<key>/<value>", or the value
// alone with key: false; a record without the field or header is skipped.
func TestGroupByFieldAndHeader(t *testing.T) {
	t.Parallel()
	f := false
	for name, gb := range map[string]GroupBy{
		"field":  {Field: "site"},
		"header": {Header: "mqtt-topic", Key: &f},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := mustAgg(t, &Aggregation{Name: "g", Source: "sensors", Fields: []Field{{Path: "v"}}, GroupBy: gb,
				Window: &Window{Type: Tumbling, Size: time.Second}, Aggregates: []string{"count", "sum"}})
			e, _ := New(cfg, nil)
			e.Assign([]int32{0})
			groups := map[string]string{}
			emit := func(o Output) { groups[string(o.Key)] = string(o.Value) }
			h := func(v string) Header { return Header{Key: "mqtt-topic", Value: []byte(v)} }
			e.Process(rec(0, 0, "d1", refBase, `{"v":1,"site":"north"}`, h("a/b")), emit)
			e.Process(rec(0, 1, "d2", refBase+10, `{"v":2,"site":"north"}`, h("a/b")), emit)
			e.Process(rec(0, 2, "d1", refBase+20, `{"v":4,"site":"south"}`, h("a/c")), emit)
			e.Process(rec(0, 3, "d1", refBase+30, `{"v":8}`), emit)
			e.Process(rec(0, 4, "d1", refBase+5000, `{"v":0,"site":"x"}`, h("x")), emit)
			want := map[string]string{"d1/north": "1", "d2/north": "2", "d1/south": "4"}
			if name == "header" {
				want = map[string]string{"a/b": "3", "a/c": "4"}
			}
			if len(groups) != len(want) {
				t.Fatalf("groups %v, want %v", groups, want)
			}
			for g, sum := range want {
				if !strings.Contains(groups[g], `"sum":`+sum+`}`) {
					t.Errorf("group %q: %s, want sum %s", g, groups[g], sum)
				}
			}
			if c := e.Counters(); c.Skipped[ReasonMissing] != 1 {
				t.Errorf("record without the group value not counted as skipped: %v", c.Skipped)
			}
		})
	}
}

// TestIdlePartition: a partition without records holds windows open until
// it is marked idle; a record on it afterwards for a closed window is late.
func TestIdlePartition(t *testing.T) {
	t.Parallel()
	cfg := mustAgg(t, &Aggregation{Name: "i", Source: "sensors", Fields: []Field{{Path: "v"}},
		Window: &Window{Type: Tumbling, Size: time.Second}, Aggregates: []string{"count"}})
	e, _ := New(cfg, nil)
	e.Assign([]int32{0, 1})
	var out []Output
	emit := func(o Output) { out = append(out, o) }
	for i := int64(0); i < 5; i++ {
		e.Process(rec(0, i, "d", refBase+i*1000, `{"v":1}`), emit)
	}
	if len(out) != 0 {
		t.Fatalf("windows closed while partition 1 had not spoken: %d", len(out))
	}
	e.SetIdle(1, true, emit)
	if len(out) != 4 {
		t.Fatalf("%d windows closed after partition 1 went idle, want 4", len(out))
	}
	e.Process(rec(1, 0, "d", refBase+500, `{"v":1}`), emit)
	if c := e.Counters(); c.Late != 1 || len(out) != 4 {
		t.Errorf("record for a closed window on a formerly idle partition: late %d, outputs %d", c.Late, len(out))
	}
}

// TestEarlyResults: every update emits final:false; finals are unchanged.
func TestEarlyResults(t *testing.T) {
	t.Parallel()
	now := refBase + 100*24*3600*1000
	cfg := refConfig(refWindows["hopping"], 2*time.Second)
	in := genInput(3, 3, 12, 500, cfg.Lateness)
	finals, _, _ := runEngine(t, cfg, interleave(3, in), 3, now)
	early := *cfg
	early.EarlyResults = true
	finals2, all, _ := runEngine(t, &early, interleave(3, in), 3, now)
	if len(finals) != len(finals2) {
		t.Fatalf("%d finals with early results, %d without", len(finals2), len(finals))
	}
	for k, o := range finals {
		if string(finals2[k].Value) != string(o.Value) {
			t.Fatalf("final %s differs with early results", k)
		}
	}
	partial := 0
	for _, o := range all {
		if strings.HasPrefix(o.ID, "e/") {
			partial++
			if !strings.Contains(string(o.Value), `"final":false`) {
				t.Fatalf("early result without final:false: %s", o.Value)
			}
		}
	}
	if partial < 2*len(finals) {
		t.Errorf("only %d early results for %d windows", partial, len(finals))
	}
}

// TestRestoreRefusesOtherConfig: a checkpoint of another configuration is
// an error, not misread state.
func TestRestoreRefusesOtherConfig(t *testing.T) {
	t.Parallel()
	a := refConfig(refWindows["tumbling"], time.Second)
	e, _ := New(a, nil)
	e.Process(rec(0, 0, "d", refBase, `{"temp":1}`), func(Output) {})
	snap, _ := e.Snapshot()
	b := refConfig(refWindows["session"], time.Second)
	e2, _ := New(b, nil)
	if err := e2.Restore(snap); err == nil || !strings.Contains(err.Error(), "different configuration") {
		t.Errorf("restore into another config: %v", err)
	}
	if err := e2.Restore([]byte("garbage")); err == nil {
		t.Errorf("garbage restored")
	}
}
