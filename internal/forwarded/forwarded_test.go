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
}

func TestSequenceWraps(t *testing.T) {
	t.Parallel()
	if Sequence(42) != 42 || Sequence(1<<31) != 0 || Sequence(1<<31+5) != 5 {
		t.Fatal("sequence is the edge offset mod 2^31")
	}
}
