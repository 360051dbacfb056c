package groups

import (
	"bytes"
	"cmp"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type groupState int8

const (
	stateEmpty groupState = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
	stateDead
)

// String gives the state names Kafka's DescribeGroups and ListGroups use.
func (s groupState) String() string {
	switch s {
	case stateEmpty:
		return "Empty"
	case statePreparingRebalance:
		return "PreparingRebalance"
	case stateCompletingRebalance:
		return "CompletingRebalance"
	case stateStable:
		return "Stable"
	default:
		return "Dead"
	}
}

var allStates = []groupState{stateEmpty, statePreparingRebalance, stateCompletingRebalance, stateStable, stateDead}

// group is one consumer group's membership. All fields are guarded by
// Coordinator.mu.
type group struct {
	name         string
	state        groupState
	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*member
	// pending holds member ids handed out with MEMBER_ID_REQUIRED that
	// have not joined yet, with the time they are forgotten.
	pending map[string]time.Time
	// static maps group.instance.id to the member id currently holding it.
	static  map[string]string
	joinSeq uint64

	// PreparingRebalance: the join phase ends at joinDeadline, or when
	// every member has rejoined. While delayUntil is set the initial
	// rebalance delay holds the phase open; it never passes delayCap.
	joinDeadline time.Time
	delayUntil   time.Time
	delayCap     time.Time

	// CompletingRebalance and Stable: members that got their JoinGroup
	// response but have not sent SyncGroup by syncDeadline are removed.
	pendingSync  map[string]struct{}
	syncDeadline time.Time

	// hasOffsets keeps an idle group listed (and deletable) while it has
	// committed offsets; emptySince and lastCommit start its retention.
	hasOffsets bool
	emptySince time.Time
	lastCommit time.Time
}

type member struct {
	id               string
	instanceID       *string
	clientID         string
	clientHost       string
	protocolType     string
	protocols        []kmsg.JoinGroupRequestProtocol
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	deadline         time.Time // session expiry; ignored while join or sync waits
	seq              uint64    // join order, for a stable leader choice
	assignment       []byte

	join *joinWaiter
	sync *syncWaiter
}

type joinWaiter struct {
	version int16
	ch      chan *kmsg.JoinGroupResponse // buffered 1: replies never block
}

type syncWaiter struct {
	version int16
	ch      chan *kmsg.SyncGroupResponse // buffered 1
}

func newGroup(name string) *group {
	return &group{
		name:    name,
		members: make(map[string]*member),
		pending: make(map[string]time.Time),
		static:  make(map[string]string),
	}
}

func (m *member) metadataFor(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

func (m *member) supports(protocol string) bool {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return true
		}
	}
	return false
}

func sameProtocols(a, b []kmsg.JoinGroupRequestProtocol) bool {
	return slices.EqualFunc(a, b, func(x, y kmsg.JoinGroupRequestProtocol) bool {
		return x.Name == y.Name && bytes.Equal(x.Metadata, y.Metadata)
	})
}

// replyJoin answers a blocked JoinGroup with an error.
func (m *member) replyJoin(code int16) {
	if m.join == nil {
		return
	}
	r := kmsg.NewPtrJoinGroupResponse()
	r.SetVersion(m.join.version)
	r.ErrorCode = code
	r.MemberID = m.id
	m.join.ch <- r
	m.join = nil
}

// replySync answers a blocked SyncGroup.
func (m *member) replySync(code int16, g *group) {
	if m.sync == nil {
		return
	}
	r := kmsg.NewPtrSyncGroupResponse()
	r.SetVersion(m.sync.version)
	r.ErrorCode = code
	if code == 0 && g != nil {
		pt, p := g.protocolType, g.protocol
		r.ProtocolType, r.Protocol = &pt, &p
		r.MemberAssignment = m.assignment
	}
	m.sync.ch <- r
	m.sync = nil
}

// joinResponse is a successful JoinGroup answer for the current
// generation; the leader's carries every member's metadata.
func (g *group) joinResponse(version int16, m *member, withMembers, skipAssignment bool) *kmsg.JoinGroupResponse {
	r := kmsg.NewPtrJoinGroupResponse()
	r.SetVersion(version)
	pt, p := g.protocolType, g.protocol
	r.Generation = g.generation
	r.ProtocolType = &pt
	r.Protocol = &p
	r.LeaderID = g.leader
	r.MemberID = m.id
	r.SkipAssignment = skipAssignment
	if withMembers {
		for _, om := range g.sortedMembers() {
			rm := kmsg.NewJoinGroupResponseMember()
			rm.MemberID = om.id
			rm.InstanceID = om.instanceID
			rm.ProtocolMetadata = om.metadataFor(g.protocol)
			r.Members = append(r.Members, rm)
		}
	}
	return r
}

func (g *group) sortedMembers() []*member {
	ms := make([]*member, 0, len(g.members))
	for _, m := range g.members {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *member) int { return cmp.Compare(a.seq, b.seq) })
	return ms
}

// fenced reports whether instanceID belongs to a member other than
// memberID: an older incarnation of a static member (FENCED_INSTANCE_ID).
func (g *group) fenced(instanceID *string, memberID string) bool {
	if instanceID == nil {
		return false
	}
	id, ok := g.static[*instanceID]
	return ok && id != memberID
}

// supportsProtocols reports whether a member joining with these protocols
// can be in the group: same protocol type, and at least one protocol that
// every other member also supports.
func (g *group) supportsProtocols(memberID, protocolType string, protocols []kmsg.JoinGroupRequestProtocol) bool {
	others := 0
	for id := range g.members {
		if id != memberID {
			others++
		}
	}
	if others == 0 {
		return true
	}
	if protocolType != g.protocolType {
		return false
	}
	for _, p := range protocols {
		all := true
		for id, m := range g.members {
			if id != memberID && !m.supports(p.Name) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// selectProtocol picks the protocol every member supports that most
// members list first, as Kafka does; ties go to the leader's preference.
func (g *group) selectProtocol() string {
	ms := g.sortedMembers()
	var candidates []string
	for _, p := range ms[0].protocols {
		all := true
		for _, m := range ms[1:] {
			if !m.supports(p.Name) {
				all = false
				break
			}
		}
		if all {
			candidates = append(candidates, p.Name)
		}
	}
	if len(candidates) == 0 {
		// Not reachable while joins are checked by supportsProtocols.
		return ms[0].protocols[0].Name
	}
	votes := make(map[string]int)
	for _, m := range ms {
		for _, p := range m.protocols {
			if slices.Contains(candidates, p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	order := candidates
	if l := g.members[g.leader]; l != nil {
		order = nil
		for _, p := range l.protocols {
			if slices.Contains(candidates, p.Name) {
				order = append(order, p.Name)
			}
		}
	}
	best := order[0]
	for _, name := range order[1:] {
		if votes[name] > votes[best] {
			best = name
		}
	}
	return best
}

func (c *Coordinator) clampRebalance(d time.Duration) time.Duration {
	return min(d, c.cfg.MaxRebalanceTimeout)
}

func (g *group) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

// addMember puts a new member in the group; it becomes leader if there is
// none, and the first member fixes the group's protocol type.
func (c *Coordinator) addMember(g *group, m *member) {
	if len(g.members) == 0 {
		g.protocolType = m.protocolType
	}
	g.joinSeq++
	m.seq = g.joinSeq
	g.members[m.id] = m
	if m.instanceID != nil {
		g.static[*m.instanceID] = m.id
	}
	if g.leader == "" {
		g.leader = m.id
	}
}

// newMemberJoined moves the group into (or keeps it in) a rebalance after
// a member was added with its JoinGroup waiting.
func (c *Coordinator) newMemberJoined(g *group, now time.Time) {
	switch g.state {
	case statePreparingRebalance:
		if !g.delayUntil.IsZero() {
			// Each newcomer during the initial delay buys the others
			// another delay, up to the rebalance timeout.
			g.delayUntil = minTime(now.Add(c.cfg.InitialRebalanceDelay), g.delayCap)
		}
		c.tryCompleteJoin(g, now)
	default:
		c.prepareRebalance(g, now, "member joined")
	}
}

// removeMember drops m; its blocked requests are answered with code.
func (c *Coordinator) removeMember(g *group, m *member, code int16) {
	m.replyJoin(code)
	m.replySync(code, nil)
	delete(g.members, m.id)
	delete(g.pendingSync, m.id)
	if m.instanceID != nil && g.static[*m.instanceID] == m.id {
		delete(g.static, *m.instanceID)
	}
	if g.leader == m.id {
		g.leader = ""
		if ms := g.sortedMembers(); len(ms) > 0 {
			g.leader = ms[0].id
			// Prefer a member already rejoined: it can receive the
			// leader's JoinGroup response in this round.
			for _, om := range ms {
				if om.join != nil {
					g.leader = om.id
					break
				}
			}
		}
	}
}

// membersLeft reacts to removals: a running join phase may now be
// complete; otherwise the rest must rebalance.
func (c *Coordinator) membersLeft(g *group, now time.Time, reason string) {
	switch g.state {
	case statePreparingRebalance:
		c.tryCompleteJoin(g, now)
	case stateCompletingRebalance, stateStable:
		c.prepareRebalance(g, now, reason)
	}
}

// prepareRebalance starts a join phase: members learn of it from
// Heartbeat (REBALANCE_IN_PROGRESS) and rejoin.
func (c *Coordinator) prepareRebalance(g *group, now time.Time, reason string) {
	if g.state == stateCompletingRebalance {
		// The leader's assignment will not come for this generation.
		for _, m := range g.members {
			m.assignment = nil
			if m.sync != nil {
				// It could not heartbeat while its SyncGroup waited: its
				// session starts again now, as Kafka reschedules it, or a
				// session that ran out meanwhile would expire it before it
				// can rejoin.
				m.deadline = now.Add(m.sessionTimeout)
				m.replySync(kerr.RebalanceInProgress.Code, nil)
			}
		}
	}
	wasEmpty := g.state == stateEmpty
	g.state = statePreparingRebalance
	g.pendingSync = nil
	rt := g.maxRebalanceTimeout()
	g.joinDeadline = now.Add(rt)
	g.delayUntil, g.delayCap = time.Time{}, time.Time{}
	if wasEmpty && c.cfg.InitialRebalanceDelay > 0 && rt > 0 {
		g.delayCap = now.Add(rt)
		g.delayUntil = minTime(now.Add(c.cfg.InitialRebalanceDelay), g.delayCap)
	}
	c.metrics.rebalances.Inc()
	c.log.Info("preparing rebalance", "group", g.name, "generation", g.generation,
		"members", len(g.members), "reason", reason)
	c.tryCompleteJoin(g, now)
}

func (c *Coordinator) tryCompleteJoin(g *group, now time.Time) {
	if g.state != statePreparingRebalance || !g.delayUntil.IsZero() || len(g.pending) > 0 {
		return
	}
	for _, m := range g.members {
		if m.join == nil {
			return
		}
	}
	c.completeJoin(g, now)
}

// completeJoin ends the join phase: members that did not rejoin are out,
// the generation advances, and every waiting JoinGroup is answered (the
// leader's with the member list it needs to compute assignments).
func (c *Coordinator) completeJoin(g *group, now time.Time) {
	for _, m := range g.members {
		if m.join == nil {
			c.log.Info("member did not rejoin in time", "group", g.name, "member", m.id)
			c.removeMember(g, m, kerr.UnknownMemberID.Code)
		}
	}
	g.delayUntil, g.delayCap = time.Time{}, time.Time{}
	g.generation++
	if len(g.members) == 0 {
		g.state = stateEmpty
		g.emptySince = now
		g.protocol = ""
		g.leader = ""
		c.log.Info("group is empty", "group", g.name, "generation", g.generation)
		return
	}
	if g.members[g.leader] == nil {
		g.leader = g.sortedMembers()[0].id
	}
	g.protocol = g.selectProtocol()
	g.state = stateCompletingRebalance
	g.pendingSync = make(map[string]struct{}, len(g.members))
	g.syncDeadline = now.Add(g.maxRebalanceTimeout())
	for _, m := range g.members {
		g.pendingSync[m.id] = struct{}{}
		m.assignment = nil
		m.deadline = now.Add(m.sessionTimeout)
		r := g.joinResponse(m.join.version, m, m.id == g.leader, false)
		m.join.ch <- r
		m.join = nil
	}
	c.log.Info("join phase complete", "group", g.name, "generation", g.generation,
		"protocol", g.protocol, "leader", g.leader, "members", len(g.members))
}

// completeSync stores the leader's assignment and answers every waiting
// SyncGroup; the group is Stable from here.
func (c *Coordinator) completeSync(g *group, now time.Time, assignments []kmsg.SyncGroupRequestGroupAssignment) {
	byID := make(map[string][]byte, len(assignments))
	for _, a := range assignments {
		byID[a.MemberID] = a.MemberAssignment
	}
	for _, m := range g.members {
		a := byID[m.id]
		if len(a) == 0 && g.protocolType == "consumer" {
			// Some clients cannot decode a zero-length assignment; an
			// encoded empty one means the same.
			a = emptyConsumerAssignment
		}
		m.assignment = a
	}
	g.state = stateStable
	for _, m := range g.members {
		if m.sync != nil {
			m.deadline = now.Add(m.sessionTimeout)
			m.replySync(0, g)
		}
	}
	c.log.Info("group stable", "group", g.name, "generation", g.generation, "members", len(g.members))
}

var emptyConsumerAssignment = func() []byte {
	a := kmsg.NewConsumerMemberAssignment()
	return a.AppendTo(nil)
}()

// checkTimeouts applies every deadline of g that has passed.
func (c *Coordinator) checkTimeouts(g *group, now time.Time) {
	expiredPending := false
	for id, until := range g.pending {
		if !now.Before(until) {
			delete(g.pending, id)
			expiredPending = true
		}
	}

	var expired []*member
	for _, m := range g.members {
		// A member blocked in JoinGroup or SyncGroup cannot heartbeat;
		// the rebalance and sync deadlines cover it instead.
		if m.join == nil && m.sync == nil && !now.Before(m.deadline) {
			expired = append(expired, m)
		}
	}
	for _, m := range expired {
		c.log.Info("member session expired", "group", g.name, "member", m.id, "session_timeout", m.sessionTimeout)
		c.metrics.expirations.Inc()
		c.removeMember(g, m, kerr.UnknownMemberID.Code)
	}
	if len(expired) > 0 {
		c.membersLeft(g, now, "session timeout")
	} else if expiredPending {
		c.tryCompleteJoin(g, now)
	}

	switch g.state {
	case statePreparingRebalance:
		if !g.delayUntil.IsZero() {
			if !now.Before(g.delayUntil) {
				c.completeJoin(g, now)
			}
		} else if !now.Before(g.joinDeadline) {
			c.completeJoin(g, now)
		}
	case stateCompletingRebalance, stateStable:
		if len(g.pendingSync) > 0 && !now.Before(g.syncDeadline) {
			var late []*member
			for id := range g.pendingSync {
				if m := g.members[id]; m != nil {
					late = append(late, m)
				}
			}
			g.pendingSync = nil
			for _, m := range late {
				c.log.Info("member did not sync in time", "group", g.name, "member", m.id)
				c.removeMember(g, m, kerr.UnknownMemberID.Code)
			}
			if len(late) > 0 {
				c.membersLeft(g, now, "sync timeout")
			}
		}
	}
}

func (g *group) offsetsExpired(now time.Time, retention time.Duration) bool {
	return g.state == stateEmpty && g.hasOffsets && len(g.pending) == 0 &&
		now.Sub(maxTime(g.emptySince, g.lastCommit)) >= retention
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
