package groups

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupOperations is the READ, DELETE and DESCRIBE bits of Kafka's ACL
// operation set: with no ACLs here every client may do all three.
const groupOperations = 1<<3 | 1<<6 | 1<<8

func (c *Coordinator) describeGroups(req *kmsg.DescribeGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range req.Groups {
		sg := kmsg.NewDescribeGroupsResponseGroup()
		sg.Group = name
		if req.IncludeAuthorizedOperations {
			sg.AuthorizedOperations = groupOperations
		}
		g := c.groups[name]
		switch {
		case c.closed:
			sg.ErrorCode = kerr.CoordinatorNotAvailable.Code
		case g == nil:
			// Kafka describes an unknown group as Dead; v6 made it an error.
			sg.State = stateDead.String()
			if req.Version >= 6 {
				sg.ErrorCode = kerr.GroupIDNotFound.Code
				msg := "group " + name + " not found"
				sg.ErrorMessage = &msg
			}
		default:
			describe(g, &sg)
		}
		resp.Groups = append(resp.Groups, sg)
	}
	return resp
}

// describe fills sg from g. Member metadata and assignments are only
// meaningful (and only shown, as in Kafka) once the group is Stable.
func describe(g *group, sg *kmsg.DescribeGroupsResponseGroup) {
	sg.State = g.state.String()
	sg.ProtocolType = g.protocolType
	stable := g.state == stateStable
	if stable {
		sg.Protocol = g.protocol
	}
	for _, m := range g.sortedMembers() {
		sm := kmsg.NewDescribeGroupsResponseGroupMember()
		sm.MemberID = m.id
		sm.InstanceID = m.instanceID
		sm.ClientID = m.clientID
		sm.ClientHost = m.clientHost
		if stable {
			sm.ProtocolMetadata = m.metadataFor(g.protocol)
			sm.MemberAssignment = m.assignment
		}
		sg.Members = append(sg.Members, sm)
	}
}
