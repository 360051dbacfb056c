package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"
)

// Bootstrapping a new cluster safely. Every broker of a new cluster computes the voter set as the
// BootstrapExpect lowest ids it sees alive in Serf, and one whose set holds itself bootstraps Raft
// with it. Views differ while gossip spreads: broker 2 may see {1,2,4} before broker 3 appears
// while broker 1 sees {1,2,3}. Bootstrapped as seen, brokers 1 and 3 hold a majority of
// {1,2,3} and brokers 2 and 4 one of {1,2,4}: two leaders, two clusters. So before bootstrapping, a broker asks every other member of its set
// (GET /v1/bootstrap) for their view: it bootstraps only when all of them compute the same set and
// none has Raft state yet; a member with state means a cluster exists, and this broker waits to
// be added by its leader instead.

const bootstrapPath = "/v1/bootstrap"

// bootstrapView is one broker's answer: whether it has Raft state and the voter set it computes
// (nil while it sees fewer than BootstrapExpect brokers).
type bootstrapView struct {
	HasState bool    `json:"has_state"`
	Voters   []int32 `json:"voters"`
}

// bootstrapSet is the voter set this broker computes from Serf, lowest ids first, or nil.
func (n *Node) bootstrapSet() []member {
	var alive []member
	for _, m := range n.members() {
		if m.Status == serf.StatusAlive {
			alive = append(alive, m)
		}
	}
	if len(alive) < n.cfg.BootstrapExpect {
		return nil
	}
	sort.Slice(alive, func(i, j int) bool { return alive[i].ID < alive[j].ID })
	return alive[:n.cfg.BootstrapExpect]
}

func memberIDs(ms []member) []int32 {
	ids := make([]int32, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}

// hasRaftState reports whether this broker's Raft has a configuration (bootstrapped or joined).
func (n *Node) hasRaftState() bool {
	f := n.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

func (n *Node) serveBootstrap(w http.ResponseWriter, _ *http.Request) {
	v := bootstrapView{HasState: n.hasRaftState()}
	if set := n.bootstrapSet(); set != nil {
		v.Voters = memberIDs(set)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// askBootstrapView asks member m for its view.
func (n *Node) askBootstrapView(ctx context.Context, m member) (bootstrapView, error) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, n.rpcScheme+m.RPCAddr+bootstrapPath, nil)
	if err != nil {
		return bootstrapView{}, err
	}
	hr, err := n.client.Do(req)
	if err != nil {
		return bootstrapView{}, err
	}
	defer hr.Body.Close()
	var v bootstrapView
	if err := json.NewDecoder(io.LimitReader(hr.Body, 4096)).Decode(&v); err != nil {
		return bootstrapView{}, fmt.Errorf("decode bootstrap view of broker %d: %w", m.ID, err)
	}
	return v, nil
}

// bootstrapVerdict decides from the peers' views of set: bootstrap now, stop trying (a cluster
// exists), or wait and ask again (why says what is missing).
func bootstrapVerdict(set []int32, views map[int32]bootstrapView) (bootstrap, done bool, why string) {
	for _, id := range set {
		if v, ok := views[id]; ok && v.HasState {
			return false, true, fmt.Sprintf("broker %d already has raft state: a cluster exists", id)
		}
	}
	for _, id := range set {
		v, ok := views[id]
		switch {
		case !ok:
			return false, false, fmt.Sprintf("broker %d did not answer", id)
		case !slices.Equal(v.Voters, set):
			return false, false, fmt.Sprintf("broker %d computes voters %v, this broker %v", id, v.Voters, set)
		}
	}
	return true, false, ""
}

// tryBootstrap bootstraps Raft once BootstrapExpect brokers are visible in Serf and every one of
// the chosen voters agrees on the set (see the top of this file). A broker outside the set waits
// to be added by the leader.
func (n *Node) tryBootstrap(ctx context.Context) (done bool) {
	set := n.bootstrapSet()
	if set == nil {
		return false
	}
	ids := memberIDs(set)
	if !slices.Contains(ids, n.cfg.BrokerID) {
		return true
	}
	views := map[int32]bootstrapView{n.cfg.BrokerID: {HasState: n.hasRaftState(), Voters: ids}}
	for _, m := range set {
		if m.ID == n.cfg.BrokerID {
			continue
		}
		if v, err := n.askBootstrapView(ctx, m); err == nil {
			views[m.ID] = v
		} else {
			n.logger.Debug("bootstrap view", "broker", m.ID, "err", err)
		}
	}
	bootstrap, done, why := bootstrapVerdict(ids, views)
	if !bootstrap {
		if done {
			n.logger.Info("not bootstrapping: joining the existing cluster", "why", why)
		} else {
			n.logger.Debug("not bootstrapping yet", "why", why)
		}
		return done
	}
	var conf raft.Configuration
	for _, m := range set {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: serverID(m.ID), Address: raft.ServerAddress(m.RaftAddr)})
	}
	err := n.raft.BootstrapCluster(conf).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		n.logger.Warn("raft bootstrap failed", "err", err)
		return false
	}
	n.logger.Info("bootstrapped raft", "voters", ids, "err", err)
	return true
}
