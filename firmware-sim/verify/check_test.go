package verify

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tributary-io/tributary/firmware-sim/summary"
)

// stream builds observations for one device in one partition, offsets in order.
func stream(dev string, part int32, seqs ...uint64) []Observation {
	out := make([]Observation, len(seqs))
	for i, s := range seqs {
		out[i] = Observation{Device: dev, Seq: s, Partition: part, Offset: int64(i)}
	}
	return out
}

func seqs(from, to uint64) []uint64 { // [from, to)
	var s []uint64
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func check(s *summary.Summary, obs ...[]Observation) (*Checker, Report) {
	c := NewChecker(s)
	for _, o := range obs {
		for _, x := range o {
			c.Observe(x)
		}
	}
	return c, c.Report()
}

func twoDevices() *summary.Summary {
	return &summary.Summary{Devices: []summary.Device{
		{ID: "a", FirstSeq: 0, NextSeq: 100},
		{ID: "b", FirstSeq: 50, NextSeq: 80},
	}}
}

func TestCleanStreamPasses(t *testing.T) {
	t.Parallel()
	c, r := check(twoDevices(), stream("a", 0, seqs(0, 100)...), stream("b", 1, seqs(50, 80)...))
	if err := r.Verdict(false, true); err != nil {
		t.Fatal(err)
	}
	if !c.Complete() || r.Expected != 130 || r.Received != 130 || r.Lost != 0 {
		t.Fatalf("report %+v", r)
	}
}

func TestDetectsPlantedLoss(t *testing.T) {
	t.Parallel()
	a := append(seqs(0, 10), seqs(13, 99)...) // 10,11,12 and 99 missing
	c, r := check(twoDevices(), stream("a", 0, a...), stream("b", 1, seqs(50, 80)...))
	if c.Complete() || c.Missing() != 4 {
		t.Fatalf("complete %v, missing %d", c.Complete(), c.Missing())
	}
	if r.Lost != 4 || r.Devices[0].Lost != 4 {
		t.Fatalf("lost %d", r.Lost)
	}
	want := summary.Ranges{{From: 10, To: 12}, {From: 99, To: 99}}
	if got := r.Devices[0].LostSeqs; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("lost seqs %v, want %v", got, want)
	}
	if err := r.Verdict(false, false); err == nil || !strings.Contains(err.Error(), "4 lost") {
		t.Fatalf("verdict %v", err)
	}
	if err := r.Verdict(true, false); err != nil {
		t.Fatalf("loss allowed but verdict %v", err)
	}
}

func TestMissingDeviceIsAllLost(t *testing.T) {
	t.Parallel()
	_, r := check(twoDevices(), stream("a", 0, seqs(0, 100)...))
	if r.Lost != 30 || r.Devices[1].Device != "b" || r.Devices[1].Received != 0 {
		t.Fatalf("report %+v", r)
	}
}

func TestDroppedAndUnackedAreNotRequired(t *testing.T) {
	t.Parallel()
	s := &summary.Summary{Devices: []summary.Device{{ID: "a", FirstSeq: 0, NextSeq: 20,
		DroppedSeqs: summary.Ranges{{From: 3, To: 5}}, UnackedSeqs: summary.Ranges{{From: 19, To: 19}}}}}
	got := append(append(seqs(0, 3), seqs(6, 19)...), 4) // a dropped one may still arrive
	c, r := check(s, stream("a", 0, got...))
	if err := r.Verdict(false, false); err != nil || !c.Complete() {
		t.Fatalf("verdict %v, complete %v", err, c.Complete())
	}
}

func TestDetectsPlantedDuplicates(t *testing.T) {
	t.Parallel()
	a := append(seqs(0, 100), 7, 42) // resent after the fact
	_, r := check(twoDevices(), stream("a", 0, a...), stream("b", 1, seqs(50, 80)...))
	d := r.Devices[0]
	if r.Duplicated != 2 || d.Duplicated != 2 || r.Lost != 0 {
		t.Fatalf("report %+v", r)
	}
	if d.Duplicates[0].Seq != 7 || d.Duplicates[0].Offset != 100 || d.Duplicates[1].Seq != 42 {
		t.Fatalf("samples %+v", d.Duplicates)
	}
	// Duplicates fail even when loss is allowed.
	if err := r.Verdict(true, false); err == nil || !strings.Contains(err.Error(), "2 duplicated") {
		t.Fatalf("verdict %v", err)
	}
}

func TestDetectsPlantedReordering(t *testing.T) {
	t.Parallel()
	a := seqs(0, 100)
	a[10], a[11] = a[11], a[10] // 11 before 10: one reading out of order
	a[50], a[60] = a[60], a[50] // 60 early: 51..59 and 50 come after it
	_, r := check(twoDevices(), stream("a", 0, a...), stream("b", 1, seqs(50, 80)...))
	if r.Lost != 0 || r.Duplicated != 0 {
		t.Fatalf("report %+v", r)
	}
	if r.OutOfOrder != 1+10 {
		t.Fatalf("out of order %d, want 11", r.OutOfOrder)
	}
	if r.Devices[0].Reordered[0].Seq != 10 {
		t.Fatalf("first reorder sample %+v", r.Devices[0].Reordered[0])
	}
	if err := r.Verdict(false, false); err != nil {
		t.Fatalf("reordering alone failed the default verdict: %v", err)
	}
	if err := r.Verdict(false, true); err == nil {
		t.Fatal("strict order passed")
	}
}

func TestOrderIsPerPartition(t *testing.T) {
	t.Parallel()
	// The same device split across partitions: each partition in order.
	s := &summary.Summary{Devices: []summary.Device{{ID: "a", FirstSeq: 0, NextSeq: 6}}}
	_, r := check(s, stream("a", 1, 3, 4, 5), stream("a", 0, 0, 1, 2))
	if r.OutOfOrder != 0 || r.Lost != 0 {
		t.Fatalf("report %+v", r)
	}
	if p := r.Devices[0].Partitions; len(p) != 2 || p[0] != 0 || p[1] != 1 {
		t.Fatalf("partitions %v", p)
	}
}

func TestEarlierRunsAndStrangers(t *testing.T) {
	t.Parallel()
	s := &summary.Summary{Devices: []summary.Device{{ID: "a", FirstSeq: 100, NextSeq: 110}}}
	a := append(seqs(90, 110), 90, 200) // an earlier run (with a dup) and a later run
	_, r := check(s, stream("a", 0, a...), stream("zz", 0, 1, 1, 5))
	if r.Lost != 0 || r.Duplicated != 0 || r.Unexpected != 1 {
		t.Fatalf("report %+v", r)
	}
	if d := r.Devices[0]; d.Earlier != 11 || d.Later != 1 || d.Received != 10 || r.Earlier != 11 || r.Received != 10 {
		t.Fatalf("device %+v", d)
	}
	if err := r.Verdict(false, false); err != nil {
		t.Fatalf("other runs' readings failed the verdict: %v", err)
	}
	var buf bytes.Buffer
	r.Print(&buf, false)
	if strings.Contains(buf.String(), "zz") {
		t.Fatalf("a device outside the summary was listed:\n%s", buf.String())
	}
}

func TestWithoutSummaryJudgesContiguity(t *testing.T) {
	t.Parallel()
	c, r := check(nil, stream("a", 0, 5, 6, 8, 9, 9, 12), stream("b", 0, 0, 1, 2))
	if c.Complete() {
		t.Fatal("complete without a summary")
	}
	a := r.Devices[0]
	if a.Expected != 8 || a.Lost != 3 || a.Duplicated != 1 || r.Lost != 3 {
		t.Fatalf("device a %+v", a)
	}
	var buf bytes.Buffer
	r.Print(&buf, false)
	out := buf.String()
	if !strings.Contains(out, "lost-seqs 7,10-11") || strings.Contains(out, "\nb ") {
		t.Fatalf("printed:\n%s", out)
	}
}
