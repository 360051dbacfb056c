package groups

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (c *Coordinator) syncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	fail := func(code int16) (kmsg.Response, error) {
		resp.ErrorCode = code
		return resp, nil
	}
	if req.Group == "" {
		return fail(kerr.InvalidGroupID.Code)
	}
	var instanceID *string
	if req.Version >= 3 {
		instanceID = req.InstanceID
	}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fail(kerr.CoordinatorNotAvailable.Code)
	}
	g := c.groups[req.Group]
	code := c.checkSync(g, req, instanceID)
	if code != 0 {
		c.mu.Unlock()
		return fail(code)
	}
	now := c.now()
	m := g.members[req.MemberID]
	delete(g.pendingSync, m.id)
	m.deadline = now.Add(m.sessionTimeout)
	if g.state == stateStable {
		// Assignment already made; this member was just slower.
		pt, p := g.protocolType, g.protocol
		resp.ProtocolType, resp.Protocol = &pt, &p
		resp.MemberAssignment = m.assignment
		c.mu.Unlock()
		return resp, nil
	}
	// CompletingRebalance: wait for the leader's assignment.
	m.replySync(kerr.RebalanceInProgress.Code, nil) // a retried sync replaces the old one
	w := &syncWaiter{version: req.Version, ch: make(chan *kmsg.SyncGroupResponse, 1)}
	m.sync = w
	var stable *Snapshot
	if m.id == g.leader {
		c.completeSync(g, now, req.GroupAssignment)
		if c.cfg.OnStable != nil {
			s := g.snapshot()
			stable = &s
		}
	}
	c.mu.Unlock()
	if stable != nil {
		c.cfg.OnStable(*stable)
	}

	r, ok := awaitReply(ctx, c, w.ch, func() {
		for _, om := range g.members {
			if om.sync == w {
				om.sync = nil
				// Still owes a sync: the pending-sync deadline applies again.
				if g.pendingSync != nil {
					g.pendingSync[om.id] = struct{}{}
				}
			}
		}
	})
	if ok {
		return r, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("groups: sync %q: %w", req.Group, err)
	}
	return fail(kerr.CoordinatorNotAvailable.Code)
}

// checkSync validates a SyncGroup in Kafka's order of checks.
func (c *Coordinator) checkSync(g *group, req *kmsg.SyncGroupRequest, instanceID *string) int16 {
	switch {
	case g == nil:
		return kerr.UnknownMemberID.Code
	case g.fenced(instanceID, req.MemberID):
		return kerr.FencedInstanceID.Code
	case g.members[req.MemberID] == nil:
		return kerr.UnknownMemberID.Code
	case req.Generation != g.generation:
		return kerr.IllegalGeneration.Code
	case req.ProtocolType != nil && *req.ProtocolType != g.protocolType:
		return kerr.InconsistentGroupProtocol.Code
	case req.Protocol != nil && *req.Protocol != g.protocol:
		return kerr.InconsistentGroupProtocol.Code
	}
	switch g.state {
	case statePreparingRebalance:
		return kerr.RebalanceInProgress.Code
	case stateCompletingRebalance, stateStable:
		return 0
	}
	return kerr.UnknownMemberID.Code
}
