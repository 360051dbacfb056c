package forwarded

import (
	"testing"

	"github.com/tributary-io/tributary/storage"
)

func TestProducerID(t *testing.T) {
	t.Parallel()
	pid := ProducerID("edge-a", 3)
	if !IsProducerID(pid) || IsProducerID(12345) || IsProducerID(-1) || pid == ProducerID("edge-a", 4) || pid == ProducerID("edge-b", 3) {
		t.Fatalf("forwarded producer ids: %d", pid)
	}
	if pid != ProducerID("edge-a", 3) {
		t.Fatal("producer id is not stable")
	}
	if Sequences(pid) != storage.SequenceFromSource || Sequences(12345) != storage.SequencePerBatch {
		t.Fatal("forwarded ids must append by source offset, others per batch")
	}
	// Storage's stand-in for a core that names no mode must agree.
	for _, id := range []int64{pid, ProducerID("x", 0), 1, 12345, -1} {
		if storage.IsForwardedProducer(id) != IsProducerID(id) {
			t.Fatalf("storage and forwarded disagree on %d", id)
		}
	}
}

func TestSequenceWraps(t *testing.T) {
	t.Parallel()
	if Sequence(42) != 42 || Sequence(1<<31) != 0 || Sequence(1<<31+5) != 5 {
		t.Fatal("sequence is the edge offset mod 2^31")
	}
}
