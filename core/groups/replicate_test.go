package groups

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestRestoreKeepsGeneration: the membership a coordinator publishes when a
// rebalance completes, restored on another coordinator (after a JSON round
// trip, as the broker replicates it), lets the members heartbeat there in
// the same generation and resync their assignments without rejoining.
func TestRestoreKeepsGeneration(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var published []Snapshot
	cfg := testConfig()
	cfg.OnStable = func(s Snapshot) { mu.Lock(); published = append(published, s); mu.Unlock() }
	a, _ := newTestCoordinator(t, cfg)
	ids, gen := stableGroup(t, a, "g", 2, 10*time.Second)
	mu.Lock()
	if len(published) != 1 || published[0].Generation != gen || len(published[0].Members) != 2 {
		t.Fatalf("published %+v, want generation %d with 2 members", published, gen)
	}
	b, err := json.Marshal(published[0])
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	var snap Snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		t.Fatal(err)
	}

	fresh, _ := newTestCoordinator(t, testConfig())
	wantCode(t, "heartbeat before restore", heartbeat(t, fresh, "g", ids[0], gen), kerr.UnknownMemberID)
	fresh.Restore(snap)
	for _, id := range ids {
		wantCode(t, "heartbeat after restore", heartbeat(t, fresh, "g", id, gen), nil)
		r := do[*kmsg.SyncGroupResponse](t, fresh, syncReq("g", id, gen, nil))
		wantCode(t, "resync after restore", r.ErrorCode, nil)
		if string(r.MemberAssignment) != "assignment-"+id {
			t.Fatalf("member %s assignment %q after restore", id, r.MemberAssignment)
		}
	}
	if d := describeGroup(t, fresh, "g"); d.State != "Stable" || len(d.Members) != 2 {
		t.Fatalf("restored group %+v, want Stable with 2 members", d)
	}
	// An older membership never replaces a later generation.
	snap.Generation--
	fresh.Restore(snap)
	wantCode(t, "heartbeat after a stale restore", heartbeat(t, fresh, "g", ids[1], gen), nil)
}
