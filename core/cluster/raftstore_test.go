package cluster

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tributary-io/tributary/internal/testkit"
)

func openTestStore(t *testing.T, dir string) *RaftStore {
	t.Helper()
	s, err := OpenRaftStore(filepath.Join(dir, "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testLog(i uint64) *raft.Log {
	return &raft.Log{
		Index:      i,
		Term:       i/3 + 1,
		Type:       raft.LogCommand,
		Data:       []byte{byte(i), 'x'},
		Extensions: []byte("ext"),
		AppendedAt: time.Unix(1700000000, int64(i)),
	}
}

// TestRaftStoreLogConformance checks what raft expects of a LogStore: zero indexes when empty,
// ErrLogNotFound (unwrapped) for a missing entry, batch stores, inclusive DeleteRange (which raft
// uses both to compact the head and to drop a conflicting tail), and persistence across a reopen.
func TestRaftStoreLogConformance(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTestStore(t, dir)

	if first, err := s.FirstIndex(); err != nil || first != 0 {
		t.Fatalf("empty FirstIndex = %d, %v", first, err)
	}
	if last, err := s.LastIndex(); err != nil || last != 0 {
		t.Fatalf("empty LastIndex = %d, %v", last, err)
	}
	var out raft.Log
	if err := s.GetLog(1, &out); err != raft.ErrLogNotFound {
		t.Fatalf("GetLog on empty store: %v, want raft.ErrLogNotFound", err)
	}

	if err := s.StoreLog(testLog(1)); err != nil {
		t.Fatal(err)
	}
	var batch []*raft.Log
	for i := uint64(2); i <= 10; i++ {
		batch = append(batch, testLog(i))
	}
	if err := s.StoreLogs(batch); err != nil {
		t.Fatal(err)
	}
	if first, _ := s.FirstIndex(); first != 1 {
		t.Fatalf("FirstIndex = %d, want 1", first)
	}
	if last, _ := s.LastIndex(); last != 10 {
		t.Fatalf("LastIndex = %d, want 10", last)
	}
	for i := uint64(1); i <= 10; i++ {
		var got raft.Log
		if err := s.GetLog(i, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		want := testLog(i)
		if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
			!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) ||
			!got.AppendedAt.Equal(want.AppendedAt) {
			t.Fatalf("GetLog(%d) = %+v, want %+v", i, got, *want)
		}
	}

	// Head compaction (what raft does after a snapshot).
	if err := s.DeleteRange(1, 4); err != nil {
		t.Fatal(err)
	}
	if first, _ := s.FirstIndex(); first != 5 {
		t.Fatalf("FirstIndex after head delete = %d, want 5", first)
	}
	if err := s.GetLog(4, &out); err != raft.ErrLogNotFound {
		t.Fatalf("GetLog(4) after delete: %v", err)
	}
	// Tail truncation (a follower dropping a conflicting suffix).
	if err := s.DeleteRange(8, 10); err != nil {
		t.Fatal(err)
	}
	if last, _ := s.LastIndex(); last != 7 {
		t.Fatalf("LastIndex after tail delete = %d, want 7", last)
	}
	// Overwrite with a new term, as after a leader change.
	repl := testLog(8)
	repl.Term = 99
	repl.Data = nil
	repl.Extensions = nil
	repl.AppendedAt = time.Time{}
	if err := s.StoreLogs([]*raft.Log{repl}); err != nil {
		t.Fatal(err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, dir)
	defer s.Close()
	if first, _ := s.FirstIndex(); first != 5 {
		t.Fatalf("FirstIndex after reopen = %d, want 5", first)
	}
	if last, _ := s.LastIndex(); last != 8 {
		t.Fatalf("LastIndex after reopen = %d, want 8", last)
	}
	var got raft.Log
	if err := s.GetLog(8, &got); err != nil {
		t.Fatal(err)
	}
	if got.Term != 99 || got.Data != nil || !got.AppendedAt.IsZero() {
		t.Fatalf("entry 8 after reopen = %+v", got)
	}
}

func TestRaftStoreStable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTestStore(t, dir)

	if _, err := s.Get([]byte("missing")); err == nil || err.Error() != "not found" {
		// raft recognises a missing key by this exact message.
		t.Fatalf("Get(missing) err = %v, want \"not found\"", err)
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" || v != 0 {
		t.Fatalf("GetUint64(missing) = %d, %v", v, err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("node-1")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 43); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, dir)
	defer s.Close()
	v, err := s.Get([]byte("LastVoteCand"))
	if err != nil || string(v) != "node-1" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	n, err := s.GetUint64([]byte("CurrentTerm"))
	if err != nil || n != 43 {
		t.Fatalf("GetUint64 = %d, %v", n, err)
	}
	if _, err := s.GetUint64([]byte("LastVoteCand")); err == nil {
		t.Fatal("GetUint64 of a non-number value should fail")
	}
}

// TestRaftStoreUnderRaft runs a single-node raft over the store, applies commands, restarts it on
// the same files and checks that the applied state is replayed: the store works with the library,
// not only with our reading of the interface.
func TestRaftStoreUnderRaft(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	run := func(bootstrap bool, apply []string) []string {
		store := openTestStore(t, dir)
		defer store.Close()
		snaps := raft.NewInmemSnapshotStore()
		_, trans := raft.NewInmemTransport("n1")
		defer trans.Close()
		conf := raft.DefaultConfig()
		conf.LocalID = "n1"
		conf.HeartbeatTimeout = 100 * time.Millisecond
		conf.ElectionTimeout = 100 * time.Millisecond
		conf.LeaderLeaseTimeout = 50 * time.Millisecond
		conf.Logger = nil
		conf.LogOutput = discard{}
		fsm := &listFSM{}
		r, err := raft.NewRaft(conf, fsm, store, store, snaps, trans)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := r.Shutdown().Error(); err != nil {
				t.Error(err)
			}
		}()
		if bootstrap {
			cfg := raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: trans.LocalAddr()}}}
			if err := r.BootstrapCluster(cfg).Error(); err != nil {
				t.Fatal(err)
			}
		}
		if !testkit.Poll(10*time.Second, func() bool { return r.State() == raft.Leader }) {
			t.Fatal("no leader within 10s")
		}
		for _, a := range apply {
			if err := r.Apply([]byte(a), 5*time.Second).Error(); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Barrier(5 * time.Second).Error(); err != nil {
			t.Fatal(err)
		}
		return fsm.get()
	}
	if got := run(true, []string{"a", "b", "c"}); len(got) != 3 {
		t.Fatalf("first run applied %v", got)
	}
	got := run(false, []string{"d"})
	if want := []string{"a", "b", "c", "d"}; len(got) != len(want) || got[0] != "a" || got[3] != "d" {
		t.Fatalf("after restart applied %v, want %v", got, want)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

var errNoSnapshot = errors.New("listFSM does not snapshot")
