package recordbatch

import "testing"

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
