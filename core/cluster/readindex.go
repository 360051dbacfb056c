package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tributary-io/tributary/internal/tick"
)

// A restarted broker must not act on its old copy of the metadata (lead a
// partition at an epoch the cluster has moved past) before it has caught up.
// "Applied everything committed" is not enough on its own: a follower's
// commit index only covers what its own log holds, so right after a restart
// it can look current while entries it has not received are committed. The
// Raft answer is a read index: ask the current leader where it stands (the
// leader confirms it still leads first) and wait until this node has applied
// up to there. Both sides count the state machine's own applied index, not
// Raft's: Raft's AppliedIndex moves when entries are handed to the FSM, before
// it has applied them, and it counts no-op and configuration entries the FSM
// never sees. The leader answers only after a Raft barrier: a leader elected
// after a full restart has the previous terms' entries in its log but has not
// applied them yet (its FSM may be at its last snapshot), and its bare FSM
// index would let every broker, itself included, act on a copy that lacks
// topics (the replica manager then deleted their local data as "deleted while
// down"). After the barrier the leader's FSM holds everything committed
// before it. The node learns the index once per leader.

const commitIndexPath = "/v1/commit-index"

type commitIndexResponse struct {
	NotLeader bool   `json:"not_leader,omitempty"`
	Index     uint64 `json:"index"`
}

// readIndex is the commit index learned from one leader.
type readIndex struct {
	mu     sync.Mutex
	leader raft.ServerID
	index  uint64
	known  bool
}

func (r *readIndex) get(leader raft.ServerID) (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.index, r.known && r.leader == leader
}

func (r *readIndex) set(leader raft.ServerID, index uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leader, r.index, r.known = leader, index, true
}

// serveCommitIndex answers GET /v1/commit-index on the leader.
func (n *Node) serveCommitIndex(w http.ResponseWriter, _ *http.Request) {
	var resp commitIndexResponse
	if idx, err := n.leaderReadIndex(); err != nil {
		resp.NotLeader = true
	} else {
		resp.Index = idx
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// leaderReadIndex is this leader's read index: its FSM's applied index once a
// barrier has made the FSM apply everything committed before it (which also
// confirms the leadership: the barrier commits only with a quorum).
func (n *Node) leaderReadIndex() (uint64, error) {
	if n.raft.State() != raft.Leader {
		return 0, raft.ErrNotLeader
	}
	if err := n.raft.Barrier(5 * time.Second).Error(); err != nil {
		return 0, fmt.Errorf("read index barrier: %w", err)
	}
	return n.fsm.AppliedIndex(), nil
}

// learnLoop keeps the read index of the current leader known, asking each
// new leader once.
func (n *Node) learnLoop(ctx context.Context) {
	for range tick.Every(ctx, 50*time.Millisecond) {
		_, leader := n.raft.LeaderWithID()
		if leader == "" {
			continue
		}
		if _, ok := n.readIdx.get(leader); ok {
			continue
		}
		idx, err := n.askCommitIndex(ctx, leader)
		if err != nil {
			n.logger.Debug("learning the leader's commit index", "leader", leader, "err", err)
			continue
		}
		n.readIdx.set(leader, idx)
	}
}

// askCommitIndex gets the commit index from leader (this node itself when
// it leads, after confirming it still does).
func (n *Node) askCommitIndex(ctx context.Context, leader raft.ServerID) (uint64, error) {
	if leader == serverID(n.cfg.BrokerID) {
		return n.leaderReadIndex()
	}
	id, ok := brokerOf(leader)
	if !ok {
		return 0, fmt.Errorf("leader id %q", leader)
	}
	addr, ok := n.memberRPCAddr(id)
	if !ok {
		return 0, fmt.Errorf("leader %d has no rpc address in serf yet", id)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, n.rpcScheme+addr+commitIndexPath, nil)
	if err != nil {
		return 0, err
	}
	hr, err := n.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer hr.Body.Close()
	var resp commitIndexResponse
	if err := json.NewDecoder(io.LimitReader(hr.Body, 4096)).Decode(&resp); err != nil {
		return 0, fmt.Errorf("decode: %w", err)
	}
	if resp.NotLeader {
		return 0, fmt.Errorf("broker %d no longer leads", id)
	}
	return resp.Index, nil
}
