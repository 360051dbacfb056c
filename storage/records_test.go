package storage

import (
	"slices"
	"testing"
)

// TestReadRecordsStepsOverDamage: ReadRecords returns the records of a
// range, less the batch whose bytes rotted, and nothing past its end.
func TestReadRecordsStepsOverDamage(t *testing.T) {
	t.Parallel()
	l, base := rottedLog(t)
	from, to := base-4, base+6
	recs, err := ReadRecords(l, from, to)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, r := range recs {
		got = append(got, r.Offset)
	}
	want := []int64{base - 4, base - 3, base - 2, base - 1, base + 2, base + 3, base + 4, base + 5}
	if !slices.Equal(got, want) {
		t.Fatalf("offsets %v, want %v", got, want)
	}
}
