package cluster

import "testing"

// alter_config replaces a topic's whole config map, leaves placement alone,
// and refuses an unknown topic.
func TestAlterTopicConfig(t *testing.T) {
	t.Parallel()
	h := newFSMHarness(t, 1, 2)
	h.must(command{Op: opCreateTopic, Topic: "t", Partitions: 2, RF: 2, Config: map[string]string{"retention.ms": "1000", "segment.bytes": "4096"}})
	before := h.f.Metadata().Topics["t"].Partitions
	h.must(command{Op: opAlterConfig, Topic: "t", Config: map[string]string{"retention.ms": "5000"}})
	got := h.f.Metadata().Topics["t"]
	if len(got.Config) != 1 || got.Config["retention.ms"] != "5000" {
		t.Fatalf("config after alter: %v", got.Config)
	}
	if len(got.Partitions) != len(before) || got.Partitions[0].Leader != before[0].Leader {
		t.Fatalf("placement changed: %v -> %v", before, got.Partitions)
	}
	h.must(command{Op: opAlterConfig, Topic: "t"})
	if c := h.f.Metadata().Topics["t"].Config; len(c) != 0 {
		t.Fatalf("config after clearing: %v", c)
	}
	h.refused(command{Op: opAlterConfig, Topic: "nope", Config: map[string]string{"a": "b"}}, ErrUnknownTopic)
}
