package recordbatch

import (
	"fmt"
	"strings"
	"testing"
)

func TestMarkerRoundTrip(t *testing.T) {
	t.Parallel()
	for _, commit := range []bool{false, true} {
		b, err := BuildMarker(42, 3, commit, 7, 1000)
		if err != nil {
			t.Fatal(err)
		}
		h, err := Validate(b)
		if err != nil {
			t.Fatal(err)
		}
		if !h.IsControl() || !h.IsTransactional() || h.ProducerID != 42 || h.ProducerEpoch != 3 {
			t.Fatalf("header %+v", h)
		}
		typ, err := ParseControl(b)
		if want := map[bool]int16{false: ControlAbort, true: ControlCommit}[commit]; err != nil || typ != want {
			t.Fatalf("ParseControl = %d, %v; want %d", typ, err, want)
		}
	}
	plain, _ := Build([]Record{{Value: []byte("v")}}, NoProducer)
	if _, err := ParseControl(plain); err != ErrNotControl {
		t.Fatalf("plain batch: %v", err)
	}
}

// ParseControl reads batches from disk and from replicas: it must fail
// cleanly on anything.
func FuzzParseControl(f *testing.F) {
	b, _ := BuildMarker(1, 0, true, 0, 0)
	f.Add(b)
	f.Add(b[:len(b)-3])
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseControl(b)
	})
}

// RecordsFrom steps over a marker and the records before from in the
// first batch, and ends past the last batch, marker included.
func TestRecordsFromSkipsMarkers(t *testing.T) {
	t.Parallel()
	opts := NoProducer
	first := mustBuild(t, []Record{{Value: []byte("a")}, {Value: []byte("b")}, {Value: []byte("c")}}, opts)
	marker, err := BuildMarker(42, 3, true, 7, 1000)
	if err != nil {
		t.Fatal(err)
	}
	SetBaseOffset(marker, 3)
	opts.BaseOffset = 4
	last := mustBuild(t, []Record{{Value: []byte("d")}}, opts)
	var got []string
	next, err := RecordsFrom(append(append(first, marker...), last...), 1, func(r Record) {
		got = append(got, fmt.Sprintf("%d:%s", r.Offset, r.Value))
	})
	if err != nil || next != 5 || strings.Join(got, " ") != "1:b 2:c 4:d" {
		t.Fatalf("RecordsFrom = %q, next %d, %v; want [1:b 2:c 4:d], next 5", got, next, err)
	}
	if next, err := RecordsFrom(nil, 9, func(Record) { t.Fatal("record in an empty read") }); err != nil || next != 9 {
		t.Fatalf("RecordsFrom(nil, 9) = %d, %v; want 9", next, err)
	}
}
