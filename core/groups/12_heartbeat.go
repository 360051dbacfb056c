package groups

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (c *Coordinator) heartbeat(req *kmsg.HeartbeatRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	var instanceID *string
	if req.Version >= 3 {
		instanceID = req.InstanceID
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[req.Group]
	switch {
	case c.closed:
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
	case g == nil:
		resp.ErrorCode = kerr.UnknownMemberID.Code
	case g.fenced(instanceID, req.MemberID):
		resp.ErrorCode = kerr.FencedInstanceID.Code
	case g.members[req.MemberID] == nil:
		resp.ErrorCode = kerr.UnknownMemberID.Code
	case req.Generation != g.generation:
		resp.ErrorCode = kerr.IllegalGeneration.Code
	default:
		m := g.members[req.MemberID]
		m.deadline = c.now().Add(m.sessionTimeout)
		// A heartbeat during the join phase is how members learn they
		// must rejoin; once the join phase is over all is well.
		if g.state == statePreparingRebalance {
			resp.ErrorCode = kerr.RebalanceInProgress.Code
		}
	}
	return resp
}
