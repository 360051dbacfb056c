package sparkplug

import (
	"reflect"
	"testing"
)

// session drives a Builder and a Tracker together: each step builds a
// message, decodes it as the edge would and observes it.
type session struct {
	t  *testing.T
	b  *Builder
	tr *Tracker
}

func newSession(t *testing.T, tr *Tracker, group, node string, bdSeq uint64) *session {
	t.Helper()
	b := NewBuilder(group, node, bdSeq)
	return &session{t: t, b: b, tr: tr}
}

// decode parses and decodes a built message.
func (s *session) decode(topic string, p []byte, err error) (Topic, *Payload) {
	s.t.Helper()
	if err != nil {
		s.t.Fatal(err)
	}
	top, err := ParseTopic(topic)
	if err != nil {
		s.t.Fatal(err)
	}
	pl, err := Decode(p)
	if err != nil {
		s.t.Fatalf("%s: %v", topic, err)
	}
	return top, pl
}

func (s *session) observe(topic string, p []byte, err error) Result {
	s.t.Helper()
	top, pl := s.decode(topic, p, err)
	return s.tr.Observe(top, pl)
}

func (s *session) clean(topic string, p []byte, err error) {
	s.t.Helper()
	if r := s.observe(topic, p, err); !r.Clean() {
		s.t.Fatalf("%s: flagged %v", topic, r.Headers())
	}
}

func alias(t *testing.T, a uint64, dt DataType, v any) *Payload_Metric {
	t.Helper()
	m, err := AliasMetric(a, dt, v)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func named(name string, a uint64, dt DataType, v any) *Payload_Metric {
	m := MustMetric(name, dt, v)
	m.SetAlias(a)
	return m
}

func TestTrackerCleanSession(t *testing.T) {
	t.Parallel()
	tr := NewTracker(10)
	s := newSession(t, tr, "plant1", "gw7", 3)
	s.clean(s.b.NBirth(named("temp", 1, DataType_Double, 20.0), named("count", 2, DataType_Int32, int32(-4))))
	s.clean(s.b.NData(alias(t, 1, DataType_Unknown, 21.5)))
	s.clean(s.b.DBirth("pump", named("rpm", 10, DataType_UInt32, uint32(1200))))
	s.clean(s.b.DData("pump", alias(t, 10, DataType_Unknown, uint32(1300)), alias(t, 1, DataType_Unknown, 1.5)))
	s.clean(s.b.DDeath("pump"))
	s.clean(s.b.NDeath())
	c := tr.Counters()
	if c.Messages != 6 || c.SeqGaps != 0 || c.BeforeBirth != 0 || c.Nodes != 1 {
		t.Fatalf("counters %+v", c)
	}
	if name, dt, ok := tr.Resolve(Topic{Group: "plant1", Type: DDATA, Node: "gw7", Device: "pump"}, 10); !ok || name != "rpm" || dt != DataType_UInt32 {
		t.Fatalf("Resolve = %q %v %v", name, dt, ok)
	}
}

func TestResultHeaders(t *testing.T) {
	t.Parallel()
	r := Result{
		SeqGap: true, ExpectedSeq: 5, GotSeq: 7, BeforeBirth: true,
		UnknownAliases: []uint64{12, 40}, UnknownAliasCount: 2,
		BdSeqMismatch: true, BirthBdSeq: 3, DeathBdSeq: -1,
	}
	want := [][2]string{
		{"sparkplug-seq-gap", "expected 5 got 7"},
		{"sparkplug-before-birth", "true"},
		{"sparkplug-unknown-alias", "12,40"},
		{"sparkplug-bdseq-mismatch", "birth 3 death none"},
	}
	if got := r.Headers(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Headers() = %q, want %q", got, want)
	}
	if got, want := r.Anomalies(), []string{"seq_gap", "before_birth", "unknown_alias", "bdseq_mismatch"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Anomalies() = %q, want %q", got, want)
	}
	if (Result{}).Headers() != nil || (Result{}).Anomalies() != nil {
		t.Fatal("clean result has headers")
	}
}

func topicOf(t *testing.T, s string) Topic {
	t.Helper()
	top, err := ParseTopic(s)
	if err != nil {
		t.Fatal(err)
	}
	return top
}

// payloadWithSeq builds a bare payload; seq < 0 leaves it out.
func payloadWithSeq(seq int, metrics ...*Payload_Metric) *Payload {
	p := &Payload{}
	if seq >= 0 {
		p.SetSeq(uint64(seq))
	}
	p.SetMetrics(metrics)
	return p
}

func TestTrackerFlags(t *testing.T) {
	t.Parallel()
	birth := func(seq int, bdSeq uint64, metrics ...*Payload_Metric) *Payload {
		bd := MustMetric("bdSeq", DataType_Int64, bdSeq)
		return payloadWithSeq(seq, append([]*Payload_Metric{bd}, metrics...)...)
	}
	death := func(bdSeq int64) *Payload {
		if bdSeq < 0 {
			return payloadWithSeq(-1)
		}
		return payloadWithSeq(-1, MustMetric("bdSeq", DataType_Int64, bdSeq))
	}
	a := func(al uint64) *Payload_Metric { return alias(t, al, DataType_Unknown, 1.0) }
	type step struct {
		topic string
		p     *Payload
		want  [][2]string // headers; nil = clean
	}
	const (
		nb = "spBv1.0/g/NBIRTH/n"
		nd = "spBv1.0/g/NDATA/n"
		nx = "spBv1.0/g/NDEATH/n"
		db = "spBv1.0/g/DBIRTH/n/d"
		dd = "spBv1.0/g/DDATA/n/d"
		dx = "spBv1.0/g/DDEATH/n/d"
	)
	gap := func(want, got string) [][2]string {
		return [][2]string{{HeaderSeqGap, "expected " + want + " got " + got}}
	}
	before := [][2]string{{HeaderBeforeBirth, "true"}}
	tests := []struct {
		name  string
		steps []step
	}{
		{"seq gap then resync", []step{
			{nb, birth(0, 1, named("x", 1, DataType_Double, 0.0)), nil},
			{nd, payloadWithSeq(1, a(1)), nil},
			{nd, payloadWithSeq(4, a(1)), gap("2", "4")},
			{nd, payloadWithSeq(5, a(1)), nil},
		}},
		{"seq missing", []step{
			{nb, birth(0, 1), nil},
			{nd, payloadWithSeq(-1), gap("1", "none")},
			{nd, payloadWithSeq(2), nil},
		}},
		{"seq out of range", []step{
			{nb, birth(0, 1), nil},
			{nd, payloadWithSeq(256), gap("1", "256")},
			{nd, payloadWithSeq(2), nil},
		}},
		{"NBIRTH may start anywhere and restarts the count", []step{
			{nb, birth(200, 1), nil},
			{nd, payloadWithSeq(201), nil},
			{nb, birth(7, 2), nil},
			{nd, payloadWithSeq(8), nil},
		}},
		{"seq runs across node and device messages", []step{
			{nb, birth(0, 1), nil},
			{db, payloadWithSeq(1), nil},
			{nd, payloadWithSeq(2), nil},
			{dd, payloadWithSeq(3), nil},
			{dx, payloadWithSeq(4), nil},
			{nd, payloadWithSeq(6), gap("5", "6")},
		}},
		{"commands and STATE are not sequenced", []step{
			{nb, birth(0, 1), nil},
			{"spBv1.0/g/NCMD/n", payloadWithSeq(-1, MustMetric("Node Control/Rebirth", DataType_Boolean, true)), nil},
			{"spBv1.0/g/DCMD/n/d", payloadWithSeq(-1), nil},
			{nd, payloadWithSeq(1), nil},
		}},
		{"data before any birth", []step{
			{nd, payloadWithSeq(5), before},
			{dd, payloadWithSeq(6), before},
			{nx, death(1), before},
		}},
		{"device data before its DBIRTH", []step{
			{nb, birth(0, 1), nil},
			{dd, payloadWithSeq(1), before},
			{db, payloadWithSeq(2), nil},
			{dd, payloadWithSeq(3), nil},
		}},
		{"device data after DDEATH", []step{
			{nb, birth(0, 1), nil},
			{db, payloadWithSeq(1), nil},
			{dx, payloadWithSeq(2), nil},
			{dd, payloadWithSeq(3), before},
			{db, payloadWithSeq(4), nil},
			{dd, payloadWithSeq(5), nil},
		}},
		{"a new NBIRTH needs new DBIRTHs", []step{
			{nb, birth(0, 1), nil},
			{db, payloadWithSeq(1), nil},
			{nb, birth(0, 2), nil},
			{dd, payloadWithSeq(1), before},
		}},
		{"DBIRTH before NBIRTH", []step{
			{db, payloadWithSeq(0), before},
		}},
		{"NDEATH with the birth's bdSeq ends the session", []step{
			{nb, birth(0, 3), nil},
			{nx, death(3), nil},
			{nd, payloadWithSeq(1), before},
			{dd, payloadWithSeq(2), before},
		}},
		{"NDEATH of an earlier session leaves the node alive", []step{
			{nb, birth(0, 3), nil},
			{nx, death(2), [][2]string{{HeaderBdSeqMismatch, "birth 3 death 2"}}},
			{nd, payloadWithSeq(1), nil},
		}},
		{"NDEATH without bdSeq", []step{
			{nb, birth(0, 3), nil},
			{nx, death(-1), [][2]string{{HeaderBdSeqMismatch, "birth 3 death none"}}},
		}},
		{"NBIRTH without bdSeq", []step{
			{nb, payloadWithSeq(0), nil},
			{nx, death(0), [][2]string{{HeaderBdSeqMismatch, "birth none death 0"}}},
		}},
		{"unknown aliases", []step{
			{nb, birth(0, 1, named("x", 1, DataType_Double, 0.0)), nil},
			{nd, payloadWithSeq(1, a(1), a(12)), [][2]string{{HeaderUnknownAlias, "12"}}},
			{nd, payloadWithSeq(2, a(1), a(2), a(3), a(4), a(5), a(6), a(7), a(8), a(9), a(10), a(11)),
				[][2]string{{HeaderUnknownAlias, "2,3,4,5,6,7,8,9,+2 more"}}},
			{db, payloadWithSeq(3, named("y", 20, DataType_Double, 0.0)), nil},
			{dd, payloadWithSeq(4, a(20), a(1)), nil}, // device alias and node alias
			{nd, payloadWithSeq(5, a(20)), [][2]string{{HeaderUnknownAlias, "20"}}},
		}},
		{"metrics with names need no alias", []step{
			{nb, birth(0, 1), nil},
			{nd, payloadWithSeq(1, MustMetric("free", DataType_Double, 1.0)), nil},
		}},
		{"several flags at once", []step{
			{nb, birth(0, 1), nil},
			{nx, death(1), nil},
			{nd, payloadWithSeq(9, a(4)), [][2]string{
				{HeaderSeqGap, "expected 1 got 9"}, {HeaderBeforeBirth, "true"}, {HeaderUnknownAlias, "4"},
			}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker(10)
			for i, st := range tc.steps {
				got := tr.Observe(topicOf(t, st.topic), st.p).Headers()
				if !reflect.DeepEqual(got, st.want) {
					t.Fatalf("step %d (%s): headers %q, want %q", i, st.topic, got, st.want)
				}
				checkAccounting(t, tr)
			}
		})
	}
}

func TestTrackerSeqWraps(t *testing.T) {
	t.Parallel()
	tr := NewTracker(1)
	s := newSession(t, tr, "g", "n", 0)
	s.clean(s.b.NBirth())
	for i := 1; i < 600; i++ { // through 255 → 0 twice
		s.clean(s.b.NData(MustMetric("x", DataType_Int32, i)))
	}
	r := tr.Observe(topicOf(t, "spBv1.0/g/NDATA/n"), payloadWithSeq(0))
	want := [][2]string{{HeaderSeqGap, "expected 88 got 0"}} // 599 % 256 = 87
	if got := r.Headers(); !reflect.DeepEqual(got, want) {
		t.Fatalf("headers %q, want %q", got, want)
	}
	// A node that wrongly restarts at 0 after 255, or goes 255 → 1, is a gap.
	tr = NewTracker(1)
	top := topicOf(t, "spBv1.0/g/NDATA/n")
	tr.Observe(topicOf(t, "spBv1.0/g/NBIRTH/n"), payloadWithSeq(254))
	if r := tr.Observe(top, payloadWithSeq(255)); !r.Clean() {
		t.Fatal(r.Headers())
	}
	if r := tr.Observe(top, payloadWithSeq(1)); !r.SeqGap || r.ExpectedSeq != 0 || r.GotSeq != 1 {
		t.Fatalf("255 → 1: %+v", r)
	}
	c := tr.Counters()
	if c.SeqGaps != 1 || c.Messages != 3 {
		t.Fatalf("counters %+v", c)
	}
}

// TestTrackerRestore replays stored births into a fresh tracker, as the edge
// does at start-up, and checks that data after the restart resolves and is
// not flagged.
func TestTrackerRestore(t *testing.T) {
	t.Parallel()
	type rec struct {
		topic string
		p     []byte
	}
	var log []rec
	keep := func(topic string, p []byte, err error) (string, []byte, error) {
		log = append(log, rec{topic, p})
		return topic, p, err
	}
	before := NewTracker(10)
	s := newSession(t, before, "plant1", "gw7", 5)
	s.clean(keep(s.b.NBirth(named("temp", 1, DataType_Double, 20.0))))
	s.clean(keep(s.b.DBirth("pump", named("rpm", 2, DataType_Int16, -3))))
	s.clean(keep(s.b.DBirth("fan", named("on", 3, DataType_Boolean, false))))
	s.clean(keep(s.b.DDeath("fan")))
	for i := 0; i < 40; i++ { // data the store has but replay skips
		s.clean(s.b.NData(alias(t, 1, DataType_Unknown, 21.0)))
	}

	after := NewTracker(10)
	for _, r := range log {
		top, p := s.decode(r.topic, r.p, nil)
		after.Restore(top, p)
	}
	if c := after.Counters(); c.Restored != 4 || c.Messages != 0 || c.SeqGaps+c.BeforeBirth != 0 {
		t.Fatalf("counters after restore %+v", c)
	}
	s.tr = after
	s.clean(s.b.NData(alias(t, 1, DataType_Unknown, 22.0)))              // seq 44: sets the expectation
	s.clean(s.b.DData("pump", alias(t, 2, DataType_Unknown, int32(-7)))) // device alias restored
	if r := s.observe(s.b.DData("fan", alias(t, 3, DataType_Unknown, true))); !r.BeforeBirth {
		t.Fatalf("fan died before the restart: %v", r.Headers())
	}
	s.b.SetSeq(s.b.seq + 1)
	if r := s.observe(s.b.NData()); !r.SeqGap {
		t.Fatalf("gap after restore not seen: %v", r.Headers())
	}

	top, pl := s.decode(s.b.DData("pump", alias(t, 2, DataType_Unknown, int32(-7))))
	js, err := RenderJSON(top, pl, after)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"name":"rpm","alias":2,"timestamp":null,"datatype":"Int16","value":-7`; !contains(js, want) {
		t.Fatalf("rendering after restore lacks %s:\n%s", want, js)
	}

	// Replay across partitions can meet a DBIRTH before its NBIRTH: the
	// device's aliases survive.
	split := NewTracker(10)
	for _, i := range []int{1, 0, 2} { // DBIRTH pump, NBIRTH, DBIRTH fan
		top, p := s.decode(log[i].topic, log[i].p, nil)
		split.Restore(top, p)
	}
	if name, _, ok := split.Resolve(topicOf(t, "spBv1.0/plant1/DDATA/gw7/pump"), 2); !ok || name != "rpm" {
		t.Fatalf("device alias lost to replay order: %q %v", name, ok)
	}
	if name, _, ok := split.Resolve(topicOf(t, "spBv1.0/plant1/NDATA/gw7"), 1); !ok || name != "temp" {
		t.Fatalf("node alias: %q %v", name, ok)
	}
	checkAccounting(t, split)
	checkAccounting(t, after)

	// Restore ignores data messages.
	after.Restore(topicOf(t, "spBv1.0/plant1/NDATA/gw7"), payloadWithSeq(200))
	if c := after.Counters(); c.Restored != 4 {
		t.Fatalf("restore counted a data message: %+v", c)
	}
}

func TestTrackerLimits(t *testing.T) {
	t.Parallel()
	nb := func(node string) Topic { return Topic{Group: "g", Type: NBIRTH, Node: node} }
	ndata := func(node string) Topic { return Topic{Group: "g", Type: NDATA, Node: node} }

	t.Run("nodes: least recently seen is forgotten", func(t *testing.T) {
		tr := NewTracker(2)
		tr.Observe(nb("a"), payloadWithSeq(0))
		tr.Observe(nb("b"), payloadWithSeq(0))
		tr.Observe(ndata("a"), payloadWithSeq(1)) // a is now more recent than b
		tr.Observe(nb("c"), payloadWithSeq(0))
		if r := tr.Observe(ndata("a"), payloadWithSeq(2)); !r.Clean() {
			t.Fatalf("a forgotten: %v", r.Headers())
		}
		if r := tr.Observe(ndata("b"), payloadWithSeq(1)); !r.BeforeBirth {
			t.Fatalf("b kept: %v", r.Headers())
		}
		if c := tr.Counters(); c.Nodes != 2 || c.NodesForgotten != 1 {
			t.Fatalf("counters %+v", c)
		}
	})
	t.Run("aliases per node", func(t *testing.T) {
		tr := NewTrackerLimits(TrackerLimits{MaxAliasesPerNode: 2})
		r := tr.Observe(nb("a"), payloadWithSeq(0,
			named("x", 1, DataType_Double, 0.0), named("y", 2, DataType_Double, 0.0), named("z", 3, DataType_Double, 0.0)))
		if got, want := r.Headers(), [][2]string{{HeaderAliasLimit, "1"}}; !reflect.DeepEqual(got, want) {
			t.Fatalf("headers %q, want %q", got, want)
		}
		dev := Topic{Group: "g", Type: DBIRTH, Node: "a", Device: "d"}
		if r := tr.Observe(dev, payloadWithSeq(1, named("w", 4, DataType_Double, 0.0))); r.AliasesRefused != 1 {
			t.Fatalf("device alias over the node's budget kept: %+v", r)
		}
		// A rebirth frees the budget.
		if r := tr.Observe(nb("a"), payloadWithSeq(0, named("x", 1, DataType_Double, 0.0))); !r.Clean() {
			t.Fatal(r.Headers())
		}
		if r := tr.Observe(dev, payloadWithSeq(1, named("w", 4, DataType_Double, 0.0))); !r.Clean() {
			t.Fatal(r.Headers())
		}
		if c := tr.Counters(); c.AliasesRefused != 2 {
			t.Fatalf("counters %+v", c)
		}
		checkAccounting(t, tr)
	})
	t.Run("devices per node", func(t *testing.T) {
		tr := NewTrackerLimits(TrackerLimits{MaxDevicesPerNode: 1})
		tr.Observe(nb("a"), payloadWithSeq(0))
		tr.Observe(Topic{Group: "g", Type: DBIRTH, Node: "a", Device: "d1"}, payloadWithSeq(1))
		r := tr.Observe(Topic{Group: "g", Type: DBIRTH, Node: "a", Device: "d2"}, payloadWithSeq(2))
		if got, want := r.Headers(), [][2]string{{HeaderDeviceLimit, "true"}}; !reflect.DeepEqual(got, want) {
			t.Fatalf("headers %q, want %q", got, want)
		}
		// d1 is still known; d2 is not.
		if r := tr.Observe(Topic{Group: "g", Type: DDATA, Node: "a", Device: "d1"}, payloadWithSeq(3)); !r.Clean() {
			t.Fatal(r.Headers())
		}
		if r := tr.Observe(Topic{Group: "g", Type: DDATA, Node: "a", Device: "d2"}, payloadWithSeq(4)); !r.BeforeBirth {
			t.Fatal(r.Headers())
		}
	})
	t.Run("bytes: other nodes go first, then aliases are refused", func(t *testing.T) {
		tr := NewTrackerLimits(TrackerLimits{MaxBytes: 2000})
		tr.Observe(nb("old"), payloadWithSeq(0, named("x", 1, DataType_Double, 0.0)))
		big := make([]*Payload_Metric, 30)
		for i := range big {
			big[i] = named(string(rune('a'+i))+"-long-enough-name", uint64(i), DataType_Double, 0.0)
		}
		r := tr.Observe(nb("new"), payloadWithSeq(0, big...))
		c := tr.Counters()
		if c.NodesForgotten != 1 || c.Nodes != 1 || r.AliasesRefused == 0 || c.Bytes > 2000 {
			t.Fatalf("result %+v counters %+v", r, c)
		}
		checkAccounting(t, tr)
		// Accounting returns to the node's base cost after a rebirth without aliases.
		tr.Observe(nb("new"), payloadWithSeq(0))
		if c := tr.Counters(); c.Bytes != costNode+len("g")+len("new") {
			t.Fatalf("bytes after rebirth %d", c.Bytes)
		}
	})
}

func TestTrackerConcurrent(t *testing.T) {
	t.Parallel()
	tr := NewTracker(4)
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			node := string(rune('a' + g))
			b := NewBuilder("g", node, 1)
			for i := 0; i < 200; i++ {
				var topic string
				var p []byte
				var err error
				if i%50 == 0 {
					topic, p, err = b.NBirth(named("x", 1, DataType_Double, 0.0))
				} else {
					topic, p, err = b.NData(alias(t, 1, DataType_Unknown, float64(i)))
				}
				if err != nil {
					t.Error(err)
					return
				}
				top, _ := ParseTopic(topic)
				pl, err := Decode(p)
				if err != nil {
					t.Error(err)
					return
				}
				if r := tr.Observe(top, pl); !r.Clean() {
					t.Errorf("%s: %v", topic, r.Headers())
				}
				if _, err := RenderJSON(top, pl, tr); err != nil {
					t.Error(err)
				}
				_ = tr.Counters()
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
	if c := tr.Counters(); c.Messages != 800 || c.Nodes != 4 {
		t.Fatalf("counters %+v", c)
	}
	checkAccounting(t, tr)
}

func contains(b []byte, s string) bool { return bytesContains(b, s) }

// checkAccounting recomputes the tracker's byte and alias bookkeeping from
// its tables and compares it with the running totals.
func checkAccounting(t *testing.T, tr *Tracker) {
	t.Helper()
	tr.mu.RLock()
	defer tr.mu.RUnlock()
	total := 0
	for _, n := range tr.nodes {
		cost := costNode + len(n.key.group) + len(n.key.node)
		aliases := len(n.aliases)
		for _, e := range n.aliases {
			cost += costAlias + len(e.name)
		}
		for name, d := range n.devices {
			dc := costDevice + len(name)
			for _, e := range d.aliases {
				dc += costAlias + len(e.name)
			}
			if dc != d.cost {
				t.Fatalf("device %s cost %d, recount %d", name, d.cost, dc)
			}
			cost += dc
			aliases += len(d.aliases)
		}
		if cost != n.cost || aliases != n.nAlias {
			t.Fatalf("node %v cost %d aliases %d, recount %d / %d", n.key, n.cost, n.nAlias, cost, aliases)
		}
		total += cost
	}
	if total != tr.bytes || tr.lru.Len() != len(tr.nodes) {
		t.Fatalf("bytes %d, recount %d; lru %d nodes %d", tr.bytes, total, tr.lru.Len(), len(tr.nodes))
	}
}
