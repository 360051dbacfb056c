package verify

import (
	"fmt"
	"testing"

	"github.com/tributary-io/tributary/firmware-sim/summary"
)

// BenchmarkObserve measures the checker on an in-order stream of 1,000
// devices, the shape a verify run sees.
func BenchmarkObserve(b *testing.B) {
	const devices = 1000
	s := &summary.Summary{}
	names := make([]string, devices)
	for i := range names {
		names[i] = fmt.Sprintf("dev-%06d", i)
		s.Devices = append(s.Devices, summary.Device{ID: names[i], NextSeq: uint64(b.N/devices + 1)})
	}
	c := NewChecker(s)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		c.Observe(Observation{Device: names[i%devices], Seq: uint64(i / devices), Partition: int32(i % 4), Offset: int64(i)})
	}
}
