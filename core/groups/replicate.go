package groups

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Snapshot is a Stable group's membership: what a new coordinator needs to
// carry on with the same generation, so that a coordinator move does not
// make every member rejoin (Kafka's GroupMetadata record). The broker
// replicates it (Config.OnStable) and hands it to the next coordinator
// (Restore).
type Snapshot struct {
	Group        string           `json:"group"`
	ProtocolType string           `json:"protocol_type"`
	Protocol     string           `json:"protocol"`
	Generation   int32            `json:"generation"`
	Leader       string           `json:"leader"`
	Members      []MemberSnapshot `json:"members"`
}

// MemberSnapshot is one member of a Snapshot.
type MemberSnapshot struct {
	ID                 string             `json:"id"`
	InstanceID         *string            `json:"instance_id,omitempty"`
	ClientID           string             `json:"client_id"`
	ClientHost         string             `json:"client_host"`
	SessionTimeoutMs   int64              `json:"session_timeout_ms"`
	RebalanceTimeoutMs int64              `json:"rebalance_timeout_ms"`
	Protocols          []ProtocolMetadata `json:"protocols"`
	Assignment         []byte             `json:"assignment"`
}

// ProtocolMetadata is one protocol a member supports, with its metadata.
type ProtocolMetadata struct {
	Name     string `json:"name"`
	Metadata []byte `json:"metadata"`
}

// snapshot captures g (c.mu held).
func (g *group) snapshot() Snapshot {
	s := Snapshot{Group: g.name, ProtocolType: g.protocolType, Protocol: g.protocol,
		Generation: g.generation, Leader: g.leader}
	for _, m := range g.sortedMembers() {
		ms := MemberSnapshot{ID: m.id, InstanceID: m.instanceID, ClientID: m.clientID, ClientHost: m.clientHost,
			SessionTimeoutMs: m.sessionTimeout.Milliseconds(), RebalanceTimeoutMs: m.rebalanceTimeout.Milliseconds(),
			Assignment: slices.Clone(m.assignment)}
		for _, p := range m.protocols {
			ms.Protocols = append(ms.Protocols, ProtocolMetadata{Name: p.Name, Metadata: slices.Clone(p.Metadata)})
		}
		s.Members = append(s.Members, ms)
	}
	return s
}

// Restore installs a replicated Snapshot as the group's Stable state, its
// members' sessions starting now, unless this coordinator already knows a
// later generation with members. A broker calls it when it becomes the
// group's coordinator, before it answers for the group.
func (c *Coordinator) Restore(s Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[s.Group]
	if g != nil && len(g.members) > 0 && g.generation >= s.Generation {
		return
	}
	if g == nil {
		g = newGroup(s.Group)
		c.groups[s.Group] = g
	}
	for _, m := range g.members { // waiting on state this broker no longer owns
		m.replyJoin(kerr.NotCoordinator.Code)
		m.replySync(kerr.NotCoordinator.Code, nil)
	}
	g.members, g.static, g.pending, g.pendingSync = map[string]*member{}, map[string]string{}, map[string]time.Time{}, nil
	g.protocolType, g.protocol, g.generation, g.leader = s.ProtocolType, s.Protocol, s.Generation, s.Leader
	g.state = stateEmpty
	now := c.now()
	for _, ms := range s.Members {
		m := &member{id: ms.ID, instanceID: ms.InstanceID, clientID: ms.ClientID, clientHost: ms.ClientHost,
			protocolType: s.ProtocolType, sessionTimeout: time.Duration(ms.SessionTimeoutMs) * time.Millisecond,
			rebalanceTimeout: time.Duration(ms.RebalanceTimeoutMs) * time.Millisecond, assignment: ms.Assignment}
		for _, p := range ms.Protocols {
			kp := kmsg.NewJoinGroupRequestProtocol()
			kp.Name, kp.Metadata = p.Name, p.Metadata
			m.protocols = append(m.protocols, kp)
		}
		m.deadline = now.Add(m.sessionTimeout)
		g.joinSeq++
		m.seq = g.joinSeq
		g.members[m.id] = m
		if m.instanceID != nil {
			g.static[*m.instanceID] = m.id
		}
	}
	if len(g.members) > 0 {
		g.state = stateStable
	}
	c.log.Info("group restored", "group", g.name, "generation", g.generation, "members", len(g.members))
}
