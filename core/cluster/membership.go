package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/tributary-io/tributary/internal/tick"
)

// Serf tags published by every broker. The role tag keeps foreign Serf agents that happen to join
// the same gossip pool out of the metadata.
const (
	tagRole     = "role"
	roleBroker  = "tributary-broker"
	tagID       = "id"
	tagKafka    = "kafka"
	tagRaft     = "raft"
	tagRPC      = "rpc"
	memberIDFmt = "broker-%d"
)

// member is a Serf member that is a Tributary broker.
type member struct {
	Broker
	Status serf.MemberStatus
}

func parseMember(m serf.Member) (member, bool) {
	if m.Tags[tagRole] != roleBroker {
		return member{}, false
	}
	id, err := strconv.ParseInt(m.Tags[tagID], 10, 32)
	if err != nil || id < 0 {
		return member{}, false
	}
	return member{
		Broker: Broker{ID: int32(id), KafkaAddr: m.Tags[tagKafka], RaftAddr: m.Tags[tagRaft], RPCAddr: m.Tags[tagRPC]},
		Status: m.Status,
	}, true
}

func (n *Node) startSerf() error {
	host, portStr, err := net.SplitHostPort(n.cfg.SerfAddr)
	if err != nil {
		return fmt.Errorf("serf address %q: %w", n.cfg.SerfAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("serf address %q: %w", n.cfg.SerfAddr, err)
	}
	logw := logBridge{logger: n.logger} // its lines name their subsystem

	ml := memberlist.DefaultLocalConfig()
	ml.BindAddr, ml.BindPort = host, port
	ml.AdvertiseAddr, ml.AdvertisePort = host, port
	ml.LogOutput = logw
	g := n.cfg.Gossip
	setPositive(&ml.ProbeInterval, g.ProbeInterval)
	setPositive(&ml.ProbeTimeout, g.ProbeTimeout)
	setPositive(&ml.GossipInterval, g.GossipInterval)
	setPositive(&ml.SuspicionMult, g.SuspicionMult)
	setPositive(&ml.SuspicionMaxTimeoutMult, g.SuspicionMaxTimeoutMult)
	if port == 0 {
		ml.AdvertisePort = 0
	}
	if n.cfg.Faults != nil {
		if port == 0 {
			return errors.New("fault injection needs a fixed serf port")
		}
		if ml.Transport, err = newFaultGossip(n.cfg.Faults, n.cfg.BrokerID, host, port, logw); err != nil {
			return err
		}
	}

	if ml.Keyring, err = n.cfg.Security.keyring(); err != nil {
		return err
	}
	sc := serf.DefaultConfig()
	sc.NodeName = fmt.Sprintf(memberIDFmt, n.cfg.BrokerID)
	sc.MemberlistConfig = ml
	sc.LogOutput = logw
	sc.EventCh = n.serfEvents
	setPositive(&sc.ReconnectInterval, g.ReconnectInterval)
	// The snapshot remembers peers, so a restarted broker finds the cluster even if the
	// configured join addresses are gone.
	sc.SnapshotPath = filepath.Join(n.cfg.DataDir, "serf.snapshot")
	sc.Tags = map[string]string{
		tagRole:  roleBroker,
		tagID:    strconv.Itoa(int(n.cfg.BrokerID)),
		tagKafka: n.cfg.KafkaAddr,
		tagRaft:  string(n.trans.LocalAddr()),
		tagRPC:   n.rpcLn.Addr().String(),
	}
	s, err := serf.Create(sc)
	if err != nil {
		return fmt.Errorf("serf on %s: %w", n.cfg.SerfAddr, err)
	}
	n.serf = s
	return nil
}

// members returns the brokers Serf knows, in any status.
func (n *Node) members() []member {
	var out []member
	for _, m := range n.serf.Members() {
		if bm, ok := parseMember(m); ok {
			out = append(out, bm)
		}
	}
	return out
}

// memberRPCAddr finds the forwarding address of broker id from Serf tags (the metadata may not have
// registered it yet, e.g. while a new cluster bootstraps). The callers ask for the Raft leader,
// which Raft has just heard from, so a member Serf holds as failed still gets its last known
// address: on a loaded machine gossip can mark a live leader failed for longer than a proposal
// waits (a rolling-restart test under stress-ng saw 90 s), and a wrong address only costs a
// refused dial and a retry.
func (n *Node) memberRPCAddr(id int32) (string, bool) {
	last := ""
	for _, m := range n.members() {
		if m.ID != id || m.RPCAddr == "" {
			continue
		}
		if m.Status == serf.StatusAlive {
			return m.RPCAddr, true
		}
		last = m.RPCAddr
	}
	return last, last != ""
}

// serfEventLoop drains Serf's event channel (Serf blocks when it is full) and wakes the controller
// loop on membership changes.
func (n *Node) serfEventLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-n.serfEvents:
			me, ok := e.(serf.MemberEvent)
			if !ok {
				continue
			}
			for _, m := range me.Members {
				n.logger.Debug("serf member event", "event", me.Type.String(), "member", m.Name, "status", m.Status.String())
			}
			n.wake()
		}
	}
}

func (n *Node) wake() {
	select {
	case n.poke <- struct{}{}:
	default:
	}
}

// joinLoop joins the configured peers, retrying with backoff until one answers: at a full cluster
// restart the first broker up has nobody to join yet.
func (n *Node) joinLoop(ctx context.Context) {
	// Every broker may share one join list; joining ourselves would count as success.
	var peers []string
	for _, a := range n.cfg.Join {
		if a != n.cfg.SerfAddr {
			peers = append(peers, a)
		}
	}
	if len(peers) == 0 {
		return
	}
	backoff := 100 * time.Millisecond
	for {
		joined, err := n.serf.Join(peers, true)
		if joined > 0 {
			n.logger.Info("joined cluster", "peers", joined)
			n.wake()
			return
		}
		n.logger.Debug("serf join failed, retrying", "join", peers, "err", err, "in", backoff)
		if !tick.Sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}
