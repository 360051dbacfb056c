package summary

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestRangesAddMergesInAnyOrder(t *testing.T) {
	t.Parallel()
	var rs Ranges
	for _, s := range []uint64{5, 6, 7, 1, 3, 2, 10, 9, 6, 20} {
		rs.Add(s)
	}
	want := Ranges{{1, 3}, {5, 7}, {9, 10}, {20, 20}}
	if !reflect.DeepEqual(rs, want) {
		t.Fatalf("got %v, want %v", rs, want)
	}
	if rs.Count() != 9 {
		t.Errorf("count = %d", rs.Count())
	}
	for s, in := range map[uint64]bool{0: false, 1: true, 3: true, 4: false, 8: false, 9: true, 20: true, 21: false} {
		if rs.Contains(s) != in {
			t.Errorf("Contains(%d) = %v", s, !in)
		}
	}
}

func TestRequired(t *testing.T) {
	t.Parallel()
	d := Device{FirstSeq: 10, NextSeq: 20, DroppedSeqs: Ranges{{12, 13}}, UnackedSeqs: Ranges{{19, 19}}}
	if d.RequiredCount() != 7 {
		t.Errorf("required count = %d, want 7", d.RequiredCount())
	}
	for s, want := range map[uint64]bool{9: false, 10: true, 12: false, 14: true, 18: true, 19: false, 20: false} {
		if d.Required(s) != want {
			t.Errorf("Required(%d) = %v", s, !want)
		}
	}
}

func TestSummaryAndStateFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := &Summary{Start: time.Unix(1700000000, 0).UTC(), Stream: "sensors", QoS: 1,
		Devices: []Device{{ID: "d1", FirstSeq: 0, NextSeq: 5, Generated: 5, UnackedSeqs: Ranges{{4, 4}}}}}
	s.Total()
	if s.Totals.Required != 4 || s.Totals.Unacked != 1 {
		t.Fatalf("totals = %+v", s.Totals)
	}
	p := filepath.Join(dir, "sum.json")
	if err := s.Write(p); err != nil {
		t.Fatal(err)
	}
	got, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("read back %+v, want %+v", got, s)
	}

	sp := filepath.Join(dir, "state.json")
	st, err := ReadState(sp)
	if err != nil || len(st.Next) != 0 {
		t.Fatalf("missing state: %v, %v", st, err)
	}
	st.Next["d1"] = 42
	if err := st.Write(sp); err != nil {
		t.Fatal(err)
	}
	if st, err = ReadState(sp); err != nil || st.Next["d1"] != 42 {
		t.Fatalf("state read back: %v, %v", st, err)
	}
}
