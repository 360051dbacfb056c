package server

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tributary-io/tributary/internal/testkit"
)

func TestHWCheckpointRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if got, err := readHWCheckpoint(dir); err != nil || len(got) != 0 {
		t.Fatalf("missing file: %v %v, want empty", got, err)
	}
	want := map[hwKey]int64{{"a", "0f", 0}: 12, {"a", "0f", 1}: 0, {"old", "", 3}: 7}
	if err := writeHWCheckpoint(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := readHWCheckpoint(dir)
	if err != nil || len(got) != len(want) {
		t.Fatalf("read back %v %v, want %v", got, err, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%v = %d, want %d", k, got[k], v)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, hwCheckpointFile), []byte("1\na 0f zero 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readHWCheckpoint(dir); err == nil {
		t.Fatal("a damaged checkpoint read without error")
	}
}

// TestRestartedLeaderStartsAtCheckpointedHW: after a full restart without
// one in-sync follower, the leader cannot raise its HW (that follower has
// not fetched), yet it serves everything committed before the restart at
// once, because it starts at its checkpointed HW rather than 0.
func TestRestartedLeaderStartsAtCheckpointedHW(t *testing.T) {
	t.Parallel()
	tb := startTestClusterWith(t, 3, func(_ int, cfg *Config) {
		cfg.Replication.LagTimeMax = time.Minute // keep the absent follower in the ISR
		cfg.Cluster.AbsentGrace = time.Minute    // and registered alive
	})
	tb.createTopic("ckpt", 1, 3, 1)
	st, _ := tb.srvs[0].Cluster().PartitionState("ckpt", 0)
	leader := tb.byID(st.Leader)
	produceValues(t, leader.Addr(), "ckpt", 20, 10)
	tb.waitFor("the HW on every replica", 10*time.Second, func() bool {
		for _, s := range tb.srvs {
			r, err := s.replicas.lookup("ckpt", 0)
			if err != nil || r.highWatermark() != 20 {
				return false
			}
		}
		return true
	})
	for _, s := range tb.srvs {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Restart all but one follower.
	logger := clusterTestLogger(t)
	skip := 0 // the first follower
	for tb.srvs[skip] == leader {
		skip++
	}
	var up []*Server
	for i := range tb.srvs {
		if i == skip {
			continue
		}
		srv, err := Start(tb.cfgs[i], logger, nil)
		if err != nil {
			t.Fatalf("restart broker %d: %v", i+1, err)
		}
		t.Cleanup(func() { _ = srv.Close() })
		up = append(up, srv)
	}
	for _, s := range up {
		if s.cfg.NodeID != st.Leader {
			continue
		}
		var r *replica
		testkit.Eventually(t, 30*time.Second, "the leader leading again", func() bool {
			var err error
			r, err = s.replicas.lookup("ckpt", 0)
			return err == nil && r.isLeader()
		})
		if hw := r.highWatermark(); hw != 20 {
			t.Fatalf("restarted leader's HW %d, want the checkpointed 20", hw)
		}
	}
}
