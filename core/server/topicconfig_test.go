package server

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/tributary-io/tributary/storage"
)

// A millisecond config set to a count too large for a time.Duration (the
// Long.MAX_VALUE Kafka tools send for "never") must not wrap into a
// negative or short duration.
func TestMillisecondConfigsDoNotWrap(t *testing.T) {
	t.Parallel()
	huge := strconv.FormatInt(math.MaxInt64/2, 10)
	for _, name := range []string{"retention.ms", "segment.ms", "delete.retention.ms", "flush.ms"} {
		tc, ok := findTopicConfig(name)
		if !ok {
			t.Fatalf("%s: not a topic config", name)
		}
		var c storage.LogConfig
		if err := tc.set(&c, huge); err != nil {
			t.Fatalf("%s=%s: %v", name, huge, err)
		}
		for field, d := range map[string]time.Duration{
			"RetentionAge": c.RetentionAge, "SegmentAge": c.SegmentAge,
			"TombstoneRetention": c.TombstoneRetention, "Durability.Interval": c.Durability.Interval,
		} {
			if d < 0 || (d > 0 && d < 100*365*24*time.Hour) {
				t.Errorf("%s=%s: %s is %v", name, huge, field, d)
			}
		}
	}
	if got := msDuration(1500); got != 1500*time.Millisecond {
		t.Errorf("msDuration(1500) = %v", got)
	}
}
