package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"
)

// controllerLoop runs for the node's lifetime. Until Raft has state it tries to bootstrap a new
// cluster; afterwards, whenever this node is the Raft leader, it reconciles Serf membership with the
// metadata on every Serf event and every ReconcileInterval (the tick catches events that arrived
// while another node was leader).
func (n *Node) controllerLoop(ctx context.Context, needBootstrap bool) {
	tick := time.NewTicker(n.cfg.ReconcileInterval)
	defer tick.Stop()
	var leaderSince time.Time
	downSince := map[int32]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-n.poke:
		}
		if needBootstrap {
			needBootstrap = !n.tryBootstrap(ctx)
		}
		if n.raft.State() != raft.Leader {
			leaderSince = time.Time{}
			clear(downSince)
			continue
		}
		if leaderSince.IsZero() {
			// A new leader may not have applied everything its predecessor committed; the
			// barrier makes the metadata it reconciles against current.
			if err := n.raft.Barrier(5 * time.Second).Error(); err != nil {
				n.logger.Warn("controller barrier failed", "err", err)
				continue
			}
			leaderSince = time.Now()
			n.logger.Info("this broker is now the controller")
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := n.reconcile(rctx, downSince); err != nil && ctx.Err() == nil {
			// Retried on the next tick, not at once: a persistent failure must not spin.
			n.logger.Warn("controller reconcile failed", "err", err)
		}
		cancel()
	}
}

// reconcile makes the metadata and the Raft configuration follow Serf: alive brokers are registered
// (and added to Raft, as voters up to MaxVoters), failed or departed ones are marked down, which
// moves their partition leadership within the ISR.
func (n *Node) reconcile(ctx context.Context, downSince map[int32]time.Time) error {
	md := n.fsm.Metadata()
	members := n.members()
	seen := map[int32]bool{}
	var errs []error
	for _, m := range members {
		seen[m.ID] = true
		if m.Status == serf.StatusAlive {
			delete(downSince, m.ID)
		} else if _, ok := downSince[m.ID]; !ok {
			downSince[m.ID] = time.Now()
		}
		reg, known := md.Brokers[m.ID]
		switch m.Status {
		case serf.StatusAlive:
			if err := n.ensureRaftMember(m); err != nil {
				errs = append(errs, err)
			}
			if !known || !reg.Alive || reg.KafkaAddr != m.KafkaAddr || reg.RaftAddr != m.RaftAddr || reg.RPCAddr != m.RPCAddr {
				b := m.Broker
				if _, err := n.propose(ctx, command{Op: opRegisterBroker, Broker: &b}); err != nil {
					errs = append(errs, fmt.Errorf("register broker %d: %w", m.ID, err))
				} else {
					n.logger.Info("broker registered", "id", m.ID, "kafka", m.KafkaAddr)
				}
			}
		case serf.StatusFailed, serf.StatusLeft, serf.StatusLeaving:
			if known && reg.Alive {
				if err := n.markDown(ctx, m.ID, m.Status.String()); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	// Registered brokers that Serf does not know at all (e.g. not yet back after a full restart):
	// give them AbsentGrace to rejoin, then move their partitions.
	for id, b := range md.Brokers {
		if seen[id] || !b.Alive {
			continue
		}
		first, ok := downSince[id]
		if !ok {
			first = time.Now()
			downSince[id] = first
		}
		if time.Since(first) >= n.cfg.AbsentGrace {
			if err := n.markDown(ctx, id, "absent from serf"); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := n.replaceDeadVoters(members, downSince); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// replaceDeadVoters removes a voter that has been down for AbsentGrace when an alive non-voter can
// take its place (the next reconcile promotes it), so a second failure does not cost the quorum.
// Without a spare it stays: removing it would only make the quorum depend on fewer brokers, and a
// restarted broker keeps its vote.
func (n *Node) replaceDeadVoters(members []member, downSince map[int32]time.Time) error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("raft configuration: %w", err)
	}
	alive := map[raft.ServerID]bool{}
	for _, m := range members {
		if m.Status == serf.StatusAlive {
			alive[serverID(m.ID)] = true
		}
	}
	spares := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter && alive[s.ID] {
			spares++
		}
	}
	for _, s := range f.Configuration().Servers {
		if spares == 0 {
			return nil
		}
		if s.Suffrage != raft.Voter || alive[s.ID] {
			continue
		}
		id, err := strconv.ParseInt(string(s.ID), 10, 32)
		if err != nil {
			continue
		}
		since, ok := downSince[int32(id)]
		if !ok {
			downSince[int32(id)] = time.Now() // a voter Serf has never shown us
			continue
		}
		if time.Since(since) < n.cfg.AbsentGrace {
			continue
		}
		if err := n.raft.RemoveServer(s.ID, 0, 5*time.Second).Error(); err != nil {
			return fmt.Errorf("remove dead voter %s: %w", s.ID, err)
		}
		n.logger.Warn("dead raft voter removed; a live non-voter will be promoted", "id", s.ID, "down_for", time.Since(since).Round(time.Millisecond))
		spares--
		n.wake()
	}
	return nil
}

func (n *Node) markDown(ctx context.Context, id int32, why string) error {
	if _, err := n.propose(ctx, command{Op: opBrokerDown, BrokerID: id}); err != nil {
		return fmt.Errorf("mark broker %d down: %w", id, err)
	}
	n.logger.Warn("broker marked down; its partitions move within their ISR", "id", id, "reason", why)
	return nil
}

// ensureRaftMember adds an alive broker to the Raft configuration (or fixes its address).
func (n *Node) ensureRaftMember(m member) error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("raft configuration: %w", err)
	}
	servers := f.Configuration().Servers
	id := serverID(m.ID)
	voters := 0
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	i := slices.IndexFunc(servers, func(s raft.Server) bool { return s.ID == id })
	if i >= 0 && servers[i].Address == raft.ServerAddress(m.RaftAddr) {
		if servers[i].Suffrage == raft.Voter || voters >= n.cfg.MaxVoters {
			return nil
		}
	}
	var fut raft.IndexFuture
	kind := "voter"
	switch {
	case i >= 0 && servers[i].Suffrage == raft.Voter:
		fut = n.raft.AddVoter(id, raft.ServerAddress(m.RaftAddr), 0, 5*time.Second) // address change
	case voters < n.cfg.MaxVoters:
		fut = n.raft.AddVoter(id, raft.ServerAddress(m.RaftAddr), 0, 5*time.Second)
	default:
		kind = "non-voter"
		fut = n.raft.AddNonvoter(id, raft.ServerAddress(m.RaftAddr), 0, 5*time.Second)
	}
	if err := fut.Error(); err != nil {
		return fmt.Errorf("add broker %d to raft as %s: %w", m.ID, kind, err)
	}
	n.logger.Info("broker added to raft", "id", m.ID, "as", kind, "addr", m.RaftAddr)
	return nil
}
