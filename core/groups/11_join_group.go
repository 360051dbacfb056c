package groups

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// joinParams is a JoinGroup request after validation.
type joinParams struct {
	req              *kmsg.JoinGroupRequest
	instanceID       *string
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	client           clientInfo
}

func (c *Coordinator) joinGroup(ctx context.Context, req *kmsg.JoinGroupRequest) (kmsg.Response, error) {
	fail := func(code int16) (kmsg.Response, error) {
		r := req.ResponseKind().(*kmsg.JoinGroupResponse)
		r.ErrorCode = code
		r.MemberID = req.MemberID
		return r, nil
	}
	if req.Group == "" {
		return fail(kerr.InvalidGroupID.Code)
	}
	p := joinParams{
		req:            req,
		sessionTimeout: time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		client:         clientFrom(ctx),
	}
	if p.sessionTimeout < c.cfg.MinSessionTimeout || p.sessionTimeout > c.cfg.MaxSessionTimeout {
		return fail(kerr.InvalidSessionTimeout.Code)
	}
	// v0 has no rebalance timeout: the session timeout served as both.
	p.rebalanceTimeout = p.sessionTimeout
	if req.Version >= 1 && req.RebalanceTimeoutMillis > 0 {
		p.rebalanceTimeout = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	p.rebalanceTimeout = c.clampRebalance(p.rebalanceTimeout)
	if req.Version >= 5 && req.InstanceID != nil {
		if *req.InstanceID == "" {
			return fail(kerr.InvalidGroupID.Code) // Kafka refuses empty instance ids the same way
		}
		id := *req.InstanceID
		p.instanceID = &id
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fail(kerr.CoordinatorNotAvailable.Code)
	}
	g := c.groups[req.Group]
	if g == nil {
		if req.MemberID != "" {
			c.mu.Unlock()
			return fail(kerr.UnknownMemberID.Code)
		}
		g = newGroup(req.Group)
		c.groups[req.Group] = g
	}
	if !g.supportsProtocols(req.MemberID, req.ProtocolType, req.Protocols) {
		c.mu.Unlock()
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	now := c.now()
	var (
		resp *kmsg.JoinGroupResponse
		w    *joinWaiter
		code int16
	)
	if req.MemberID == "" {
		resp, w, code = c.joinNewMember(g, p, now)
	} else {
		resp, w, code = c.joinKnownMember(g, p, now)
	}
	c.mu.Unlock()
	switch {
	case code != 0:
		return fail(code)
	case resp != nil:
		return resp, nil
	}
	return c.awaitJoin(ctx, g, w)
}

// awaitJoin blocks until the join phase answers w. If the client goes
// away first the member stays but no longer counts as rejoined.
func (c *Coordinator) awaitJoin(ctx context.Context, g *group, w *joinWaiter) (kmsg.Response, error) {
	r, ok := awaitReply(ctx, c, w.ch, func() {
		for _, m := range g.members {
			if m.join == w {
				m.join = nil
			}
		}
	})
	if ok {
		return r, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("groups: join %q: %w", g.name, err)
	}
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.SetVersion(w.version)
	resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
	return resp, nil
}

// awaitReply waits for a join or sync reply on ch until ctx ends or the
// coordinator closes. Giving up, it runs forget under c.mu, so the member
// no longer waits, and then takes a reply sent meanwhile: the reply wins.
// ok is false when there is none.
func awaitReply[R any](ctx context.Context, c *Coordinator, ch <-chan R, forget func()) (r R, ok bool) {
	select {
	case r = <-ch:
		return r, true
	case <-ctx.Done():
	case <-c.ctx.Done():
	}
	c.mu.Lock()
	forget()
	c.mu.Unlock()
	select {
	case r = <-ch:
		return r, true
	default:
		return r, false
	}
}

func (c *Coordinator) newJoinWaiter(version int16) *joinWaiter {
	return &joinWaiter{version: version, ch: make(chan *kmsg.JoinGroupResponse, 1)}
}

func (c *Coordinator) full(g *group) bool {
	return c.cfg.MaxGroupSize > 0 && len(g.members)+len(g.pending) >= c.cfg.MaxGroupSize
}

func (c *Coordinator) newMember(id string, p joinParams, now time.Time) *member {
	m := &member{id: id, instanceID: p.instanceID}
	updateMember(m, p, now)
	return m
}

func updateMember(m *member, p joinParams, now time.Time) {
	m.clientID, m.clientHost = p.client.id, p.client.host
	m.protocolType = p.req.ProtocolType
	m.protocols = p.req.Protocols
	m.sessionTimeout = p.sessionTimeout
	m.rebalanceTimeout = p.rebalanceTimeout
	m.deadline = now.Add(p.sessionTimeout)
}

// joinNewMember handles a JoinGroup without a member id. It returns an
// immediate response, a waiter for the end of the join phase, or an error.
func (c *Coordinator) joinNewMember(g *group, p joinParams, now time.Time) (*kmsg.JoinGroupResponse, *joinWaiter, int16) {
	req := p.req
	if p.instanceID != nil {
		if oldID, ok := g.static[*p.instanceID]; ok {
			if old := g.members[oldID]; old != nil {
				return c.rejoinStatic(g, old, p, now)
			}
		}
	}
	if c.full(g) {
		return nil, nil, kerr.GroupMaxSizeReached.Code
	}
	prefix := p.client.id
	if p.instanceID != nil {
		prefix = *p.instanceID
	}
	id := newMemberID(prefix)
	if p.instanceID == nil && req.Version >= 4 {
		// KIP-394: hand out the id first, so a client that times out
		// and retries does not leave a ghost member behind.
		g.pending[id] = now.Add(p.sessionTimeout)
		r := req.ResponseKind().(*kmsg.JoinGroupResponse)
		r.ErrorCode = kerr.MemberIDRequired.Code
		r.MemberID = id
		return r, nil, 0
	}
	m := c.newMember(id, p, now)
	w := c.newJoinWaiter(req.Version)
	m.join = w
	c.addMember(g, m)
	c.newMemberJoined(g, now)
	return nil, w, 0
}

// rejoinStatic handles a static member coming back without its member id
// (a restarted process): it takes a fresh id, the old one is fenced, and
// if nothing it subscribes to changed the group keeps its assignment.
func (c *Coordinator) rejoinStatic(g *group, old *member, p joinParams, now time.Time) (*kmsg.JoinGroupResponse, *joinWaiter, int16) {
	old.replyJoin(kerr.FencedInstanceID.Code)
	old.replySync(kerr.FencedInstanceID.Code, nil)
	oldID := old.id
	newID := newMemberID(*p.instanceID)
	delete(g.members, oldID)
	old.id = newID
	g.members[newID] = old
	g.static[*p.instanceID] = newID
	if g.leader == oldID {
		g.leader = newID
	}
	if _, ok := g.pendingSync[oldID]; ok {
		delete(g.pendingSync, oldID)
		g.pendingSync[newID] = struct{}{}
	}
	changed := !sameProtocols(old.protocols, p.req.Protocols)
	updateMember(old, p, now)
	c.log.Info("static member rejoined", "group", g.name, "instance", *p.instanceID, "old", oldID, "new", newID)

	isLeader := g.leader == newID
	if g.state == stateStable && !changed && (!isLeader || p.req.Version >= 9) {
		// KIP-814: a v9 leader gets the members back but is told to
		// skip assigning; older leaders must rebalance to learn them.
		return g.joinResponse(p.req.Version, old, isLeader, isLeader), nil, 0
	}
	w := c.newJoinWaiter(p.req.Version)
	old.join = w
	if g.state == statePreparingRebalance {
		c.tryCompleteJoin(g, now)
	} else {
		c.prepareRebalance(g, now, "static member rejoined")
	}
	return nil, w, 0
}

// joinKnownMember handles a JoinGroup carrying a member id.
func (c *Coordinator) joinKnownMember(g *group, p joinParams, now time.Time) (*kmsg.JoinGroupResponse, *joinWaiter, int16) {
	req := p.req
	if _, ok := g.pending[req.MemberID]; ok {
		delete(g.pending, req.MemberID)
		m := c.newMember(req.MemberID, p, now)
		w := c.newJoinWaiter(req.Version)
		m.join = w
		c.addMember(g, m)
		c.newMemberJoined(g, now)
		return nil, w, 0
	}
	if g.fenced(p.instanceID, req.MemberID) {
		return nil, nil, kerr.FencedInstanceID.Code
	}
	m := g.members[req.MemberID]
	if m == nil {
		return nil, nil, kerr.UnknownMemberID.Code
	}
	changed := !sameProtocols(m.protocols, req.Protocols)
	switch g.state {
	case statePreparingRebalance:
		updateMember(m, p, now)
		// A retried JoinGroup replaces the earlier one; answer that
		// one so its goroutine does not wait for nothing.
		m.replyJoin(kerr.RebalanceInProgress.Code)
		w := c.newJoinWaiter(req.Version)
		m.join = w
		c.tryCompleteJoin(g, now)
		return nil, w, 0
	case stateCompletingRebalance:
		if !changed {
			// The member lost our response; send it again.
			m.deadline = now.Add(m.sessionTimeout)
			return g.joinResponse(req.Version, m, m.id == g.leader, false), nil, 0
		}
	case stateStable:
		if !changed && m.id != g.leader {
			m.deadline = now.Add(m.sessionTimeout)
			return g.joinResponse(req.Version, m, false, false), nil, 0
		}
	default:
		return nil, nil, kerr.UnknownMemberID.Code
	}
	// The leader rejoining from Stable or a changed subscription (for
	// cooperative clients, the partitions they gave up) needs a new
	// generation.
	updateMember(m, p, now)
	w := c.newJoinWaiter(req.Version)
	m.join = w
	reason := "member " + m.id + " rejoined"
	if req.Reason != nil { // v8+: the client says why (KIP-800)
		reason += ": " + *req.Reason
	}
	c.prepareRebalance(g, now, reason)
	return nil, w, 0
}
