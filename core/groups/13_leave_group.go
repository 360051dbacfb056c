package groups

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (c *Coordinator) leaveGroup(req *kmsg.LeaveGroupRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	leaving := req.Members
	if req.Version < 3 {
		lm := kmsg.NewLeaveGroupRequestMember()
		lm.MemberID = req.MemberID
		leaving = []kmsg.LeaveGroupRequestMember{lm}
	}
	codes := make([]int16, len(leaving))

	c.mu.Lock()
	g := c.groups[req.Group]
	switch {
	case req.Group == "":
		resp.ErrorCode = kerr.InvalidGroupID.Code
	case c.closed:
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
	case g == nil:
		for i := range codes {
			codes[i] = kerr.UnknownMemberID.Code
		}
	default:
		now := c.now()
		removed := false
		for i, lm := range leaving {
			var ok bool
			codes[i], ok = c.leaveOne(g, lm)
			removed = removed || ok
		}
		if removed {
			c.membersLeft(g, now, "member left")
		}
	}
	c.mu.Unlock()

	if req.Version < 3 {
		if resp.ErrorCode == 0 {
			resp.ErrorCode = codes[0]
		}
		return resp
	}
	if resp.ErrorCode != 0 {
		return resp
	}
	for i, lm := range leaving {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID = lm.MemberID
		rm.InstanceID = lm.InstanceID
		rm.ErrorCode = codes[i]
		resp.Members = append(resp.Members, rm)
	}
	return resp
}

// leaveOne removes one leaving member; removed reports whether a full
// member (not just a pending id) left, which makes the group rebalance.
func (c *Coordinator) leaveOne(g *group, lm kmsg.LeaveGroupRequestMember) (code int16, removed bool) {
	id := lm.MemberID
	if lm.InstanceID != nil {
		sid, ok := g.static[*lm.InstanceID]
		if !ok {
			return kerr.UnknownMemberID.Code, false
		}
		if id != "" && id != sid {
			return kerr.FencedInstanceID.Code, false
		}
		id = sid
	}
	if _, ok := g.pending[id]; ok {
		delete(g.pending, id)
		c.tryCompleteJoin(g, c.now())
		return 0, false
	}
	m := g.members[id]
	if m == nil {
		return kerr.UnknownMemberID.Code, false
	}
	reason := ""
	if lm.Reason != nil {
		reason = *lm.Reason
	}
	c.log.Info("member leaving", "group", g.name, "member", id, "reason", reason)
	c.removeMember(g, m, kerr.UnknownMemberID.Code)
	return 0, true
}
