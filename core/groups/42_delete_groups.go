package groups

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (c *Coordinator) deleteGroups(req *kmsg.DeleteGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	// writeMu keeps a concurrent commit from landing between the
	// emptiness check and the removal of the offsets.
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	answerDelete(req, resp, c.deleteGroup)
	return resp
}

// answerDelete fills resp with every group req names, each with the error
// code code gives it (0: deleted).
func answerDelete(req *kmsg.DeleteGroupsRequest, resp *kmsg.DeleteGroupsResponse, code func(group string) int16) {
	for _, name := range req.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = name
		rg.ErrorCode = code(name)
		resp.Groups = append(resp.Groups, rg)
	}
}

func (c *Coordinator) deleteGroup(name string) int16 {
	if name == "" {
		return kerr.InvalidGroupID.Code
	}
	c.mu.Lock()
	g := c.groups[name]
	switch {
	case c.closed:
		c.mu.Unlock()
		return kerr.CoordinatorNotAvailable.Code
	case g == nil || g.state == stateDead:
		c.mu.Unlock()
		return kerr.GroupIDNotFound.Code
	case g.state != stateEmpty:
		c.mu.Unlock()
		return kerr.NonEmptyGroup.Code
	}
	g.state = stateDead
	delete(c.groups, name)
	hadOffsets := g.hasOffsets
	c.mu.Unlock()

	if hadOffsets && c.store != nil {
		if err := c.store.DeleteGroup(name); err != nil {
			c.log.Error("deleting group offsets", "group", name, "err", err)
			return kerr.UnknownServerError.Code
		}
	}
	c.log.Info("group deleted", "group", name)
	return 0
}
