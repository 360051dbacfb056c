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
