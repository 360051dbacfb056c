package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/internal/testkit"
)

// TestPlacementSurvivesKills runs three broker processes with an RF=1 and
// an RF=2 topic of 6 partitions. Each broker's data dir holds exactly the
// partitions the metadata assigns to it; after all three are SIGKILLed and
// restarted no other partition appears on any of them, not even while they
// catch up; and a topic deleted while a broker is down leaves no directory
// on it once it is back.
func TestPlacementSurvivesKills(t *testing.T) {
	bs, addrs := startProcCluster(t)
	ctx := testkit.Context(t, 3*time.Minute)
	topics := []string{"one", "two"}
	for i, topic := range topics {
		if err := testkit.CreateClusterTopic(ctx, addrs, topic, 6, int16(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	assigned := waitPlacement(ctx, t, bs, addrs, topics...)
	for _, topic := range topics {
		n := 0
		for _, parts := range assigned[topic] {
			n += len(parts)
		}
		if want := 6 * (slices.Index(topics, topic) + 1); n != want {
			t.Fatalf("%s: %d replicas stored over the brokers, want %d: %v", topic, n, want, assigned[topic])
		}
	}

	for _, b := range bs {
		b.Stop(syscall.SIGKILL)
	}
	for _, b := range bs {
		b.Start(t)
	}
	// While the brokers recover and catch up, none stores what is not its.
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, b := range bs {
			for _, topic := range topics {
				for _, p := range partitionDirs(t, b.DataDir, topic) {
					if !slices.Contains(assigned[topic][b.ID], p) {
						t.Fatalf("after the restart broker %d stores %s-%d, assigned only %v", b.ID, topic, p, assigned[topic][b.ID])
					}
				}
			}
		}
	}
	waitPlacement(ctx, t, bs, addrs, topics...)

	down := bs[2]
	down.Stop(syscall.SIGKILL)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs[:2]...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	testkit.Eventually(t, 30*time.Second, "deleting topic two with broker 3 down", func() bool {
		resp, err := kadm.NewClient(cl).DeleteTopics(ctx, "two")
		return err == nil && resp["two"].Err == nil
	})
	down.Start(t)
	testkit.Eventually(t, 30*time.Second, "every broker to drop topic two's partitions", func() bool {
		for _, b := range bs {
			if len(partitionDirs(t, b.DataDir, "two")) > 0 {
				return false
			}
		}
		return true
	})
	waitPlacement(ctx, t, bs, addrs, "one")
}

// partitionDirs lists the partitions of topic with a directory in a
// broker's data dir.
func partitionDirs(t *testing.T, dataDir, topic string) []int32 {
	return testkit.PartitionDirs(t, filepath.Join(dataDir, "logs"), topic)
}

// waitPlacement waits until every broker stores exactly the partitions of
// topics that Metadata says it replicates, and returns that assignment:
// topic → broker id → partitions.
func waitPlacement(ctx context.Context, t *testing.T, bs []*testkit.CoreProc, addrs []string, topics ...string) map[string]map[int32][]int32 {
	t.Helper()
	var assigned map[string]map[int32][]int32
	mismatch := "no metadata answered"
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ok := testkit.PollContext(ctx, func() bool {
		assigned = map[string]map[int32][]int32{}
		for _, topic := range topics {
			st, err := testkit.PartitionStates(ctx, addrs, topic)
			if err != nil {
				return false // brokers still starting: keep the last mismatch
			}
			assigned[topic] = map[int32][]int32{}
			for _, b := range bs {
				want := []int32{}
				for p, ps := range st {
					if slices.Contains(ps.Replicas, b.ID) {
						want = append(want, p)
					}
				}
				slices.Sort(want)
				assigned[topic][b.ID] = want
				if got := partitionDirs(t, b.DataDir, topic); !slices.Equal(got, want) {
					mismatch = fmt.Sprintf("broker %d stores %s partitions %v, assigned %v", b.ID, topic, got, want)
					return false
				}
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("partition dirs never matched the assignment: %s", mismatch)
	}
	return assigned
}
