package sparkplug

import (
	"strings"
	"testing"
	"time"
)

func TestBuilder(t *testing.T) {
	t.Parallel()
	b := NewBuilder("g", "n", 7)
	b.Now = func() time.Time { return time.UnixMilli(42) }
	dec := func(topic string, raw []byte, err error) (string, *Payload) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		p, err := Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		return topic, p
	}
	topic, p := dec(b.NBirth(MustMetric("x", DataType_Double, 1.0)))
	if topic != "spBv1.0/g/NBIRTH/n" || p.GetSeq() != 0 || !p.HasSeq() || bdSeqOf(p) != 7 || p.GetTimestamp() != 42 {
		t.Fatalf("NBIRTH %s %v", topic, p)
	}
	topic, p = dec(b.DBirth("d"))
	if topic != "spBv1.0/g/DBIRTH/n/d" || p.GetSeq() != 1 {
		t.Fatalf("DBIRTH %s %v", topic, p)
	}
	b.SetSeq(255)
	_, p = dec(b.DData("d"))
	_, p2 := dec(b.NData())
	if p.GetSeq() != 255 || p2.GetSeq() != 0 {
		t.Fatalf("wrap: %d then %d", p.GetSeq(), p2.GetSeq())
	}
	topic, p = dec(b.NDeath())
	if topic != "spBv1.0/g/NDEATH/n" || p.HasSeq() || bdSeqOf(p) != 7 {
		t.Fatalf("NDEATH %s %v", topic, p)
	}
}

func TestNewMetricTypes(t *testing.T) {
	t.Parallel()
	if _, err := NewMetric("x", DataType_Int32, "seven"); err == nil || !strings.Contains(err.Error(), `metric "x"`) {
		t.Fatalf("string as Int32: %v", err)
	}
	if _, err := NewMetric("x", DataType_PropertySet, 1); err == nil {
		t.Fatal("PropertySet value accepted")
	}
	if _, err := AliasMetric(3, DataType_Unknown, struct{}{}); err == nil {
		t.Fatal("struct value accepted")
	}
	m := MustMetric("neg", DataType_Int8, int8(-1))
	if m.GetIntValue() != 0xFFFFFFFF {
		t.Fatalf("Int8 -1 stored as %#x", m.GetIntValue())
	}
	m = MustMetric("when", DataType_DateTime, time.UnixMilli(1700000000000))
	if m.GetLongValue() != 1700000000000 {
		t.Fatalf("DateTime stored as %d", m.GetLongValue())
	}
	m, _ = AliasMetric(5, DataType_Unknown, 2.5)
	if m.HasDatatype() || m.HasName() || m.GetAlias() != 5 || m.GetDoubleValue() != 2.5 {
		t.Fatalf("alias metric %v", m)
	}
}
