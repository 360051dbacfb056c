package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tributary-io/tributary/internal/tick"
)

// Proposals made on a follower travel to the leader over a small HTTP/JSON RPC on RPCAddr
// (POST /v1/propose with the encoded command). The leader answers with the Raft index and the
// state machine's result; the follower then waits until it has applied that index itself.

const proposePath = "/v1/propose"

type proposeResponse struct {
	// NotLeader asks the caller to look up the leader again and retry.
	NotLeader bool        `json:"not_leader,omitempty"`
	Index     uint64      `json:"index,omitempty"`
	Result    applyResult `json:"result"`
	Error     string      `json:"error,omitempty"`
}

func (n *Node) rpcHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+commitIndexPath, n.serveCommitIndex)
	mux.HandleFunc("GET "+bootstrapPath, n.serveBootstrap)
	mux.HandleFunc("POST "+proposePath, func(w http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var resp proposeResponse
		if err != nil {
			resp.Error = fmt.Sprintf("read proposal: %v", err)
		} else if n.raft.State() != raft.Leader {
			resp.NotLeader = true
		} else {
			var c command
			if err := json.Unmarshal(data, &c); err != nil {
				resp.Error = fmt.Sprintf("decode proposal: %v", err)
			} else {
				f := n.raft.Apply(data, applyTimeout(r.Context()))
				switch err := f.Error(); {
				case isNotLeader(err):
					resp.NotLeader = true
				case err != nil:
					resp.Error = err.Error()
				default:
					resp.Index = f.Index()
					resp.Result, _ = f.Response().(applyResult)
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(resp); err != nil {
			n.logger.Debug("write propose response", "err", err)
		}
	})
	return mux
}

func isNotLeader(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
		errors.Is(err, raft.ErrLeadershipTransferInProgress)
}

func applyTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return 10 * time.Second
}

// propose commits c through Raft, on this node if it leads, else through the leader, retrying
// while there is no leader until ctx ends. A proposal whose leader was lost mid-way may have been
// applied anyway; the commands are written so a retry is refused harmlessly (topic exists, stale
// epoch) or is a no-op (register, broker down).
func (n *Node) propose(ctx context.Context, c command) (applyResult, error) {
	if !n.started.Load() {
		return applyResult{}, fmt.Errorf("propose %s: node not started", c.Op)
	}
	data, err := encodeCommand(c)
	if err != nil {
		return applyResult{}, err
	}
	backoff := 20 * time.Millisecond
	var lastErr error
	for {
		if n.isClosed() {
			return applyResult{}, ErrClosed
		}
		res, retry, err := n.proposeOnce(ctx, data)
		if !retry {
			switch {
			case err != nil:
				n.m.proposals.WithLabelValues("error").Inc()
				return applyResult{}, fmt.Errorf("propose %s: %w", c.Op, err)
			case res.Err != nil:
				n.m.proposals.WithLabelValues("refused").Inc()
				return res, res.Err
			default:
				n.m.proposals.WithLabelValues("ok").Inc()
				return res, nil
			}
		}
		lastErr = err
		if !tick.Sleep(ctx, backoff) {
			n.m.proposals.WithLabelValues("error").Inc()
			if lastErr == nil {
				lastErr = ErrNoLeader
			}
			return applyResult{}, fmt.Errorf("propose %s: %w (last: %w)", c.Op, ctx.Err(), lastErr)
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

func (n *Node) proposeOnce(ctx context.Context, data []byte) (res applyResult, retry bool, err error) {
	if n.raft.State() == raft.Leader {
		f := n.raft.Apply(data, applyTimeout(ctx))
		if err := f.Error(); err != nil {
			if isNotLeader(err) || errors.Is(err, raft.ErrEnqueueTimeout) {
				return applyResult{}, true, err
			}
			return applyResult{}, false, err
		}
		res, _ = f.Response().(applyResult)
		return res, false, nil
	}
	_, leaderID := n.raft.LeaderWithID()
	if leaderID == "" {
		return applyResult{}, true, ErrNoLeader
	}
	id, ok := n.Controller()
	if !ok {
		return applyResult{}, true, ErrNoLeader
	}
	addr, ok := n.memberRPCAddr(id)
	if !ok {
		return applyResult{}, true, fmt.Errorf("leader %d has no rpc address in serf yet: %w", id, ErrNoLeader)
	}
	n.m.forwarded.Inc()
	rctx, cancel := context.WithTimeout(ctx, applyTimeout(ctx))
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, n.rpcScheme+addr+proposePath, bytes.NewReader(data))
	if err != nil {
		return applyResult{}, false, fmt.Errorf("forward to leader %d: %w", id, err)
	}
	req.Header.Set("Content-Type", "application/json")
	hr, err := n.client.Do(req)
	if err != nil {
		return applyResult{}, true, fmt.Errorf("forward to leader %d at %s: %w", id, addr, err)
	}
	defer hr.Body.Close()
	var pr proposeResponse
	if err := json.NewDecoder(io.LimitReader(hr.Body, 1<<20)).Decode(&pr); err != nil {
		return applyResult{}, true, fmt.Errorf("forward to leader %d: decode response: %w", id, err)
	}
	switch {
	case pr.NotLeader:
		return applyResult{}, true, fmt.Errorf("broker %d is no longer leader: %w", id, ErrNoLeader)
	case pr.Error != "":
		return applyResult{}, false, fmt.Errorf("leader %d: %s", id, pr.Error)
	}
	if err := n.waitApplied(ctx, pr.Index); err != nil {
		return applyResult{}, false, err
	}
	return pr.Result, false, nil
}

// waitApplied blocks until this node's state machine has applied index.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	for {
		w := n.fsm.Watch()
		if n.fsm.AppliedIndex() >= index {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for local apply of index %d: %w", index, ctx.Err())
		case <-w:
		}
	}
}
