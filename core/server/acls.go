package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/auth"
)

// DescribeAcls (29), CreateAcls (30) and DeleteAcls (31): reading needs
// DESCRIBE on the cluster, changing needs ALTER. With ACLs off (no listener
// authenticates) they answer SECURITY_DISABLED, as Kafka without an
// authorizer does.
func init() {
	register(29, 0, 3, (*Server).handleDescribeAcls)
	register(30, 0, 3, (*Server).handleCreateAcls)
	register(31, 0, 3, (*Server).handleDeleteAcls)
}

// aclGate is the shared refusal: SECURITY_DISABLED or CLUSTER_AUTHORIZATION_FAILED.
func (s *Server) aclGate(c *call, op auth.Operation) int16 {
	if !s.authzActive() {
		return kerr.SecurityDisabled.Code
	}
	if !s.allowed(c, op, rtCluster, clusterName) {
		return codeClusterDenied
	}
	return 0
}

func (s *Server) handleDescribeAcls(_ context.Context, c *call,
	req *kmsg.DescribeACLsRequest, resp *kmsg.DescribeACLsResponse) (kmsg.Response, error) {
	if code := s.aclGate(c, opDescribe); code != 0 {
		resp.ErrorCode = code
		c.fail(code)
		return resp, nil
	}
	f := auth.Filter{ResourceType: req.ResourceType, ResourceName: req.ResourceName, PatternType: aclPatternType(req.Version, req.ResourcePatternType),
		Principal: req.Principal, Host: req.Host, Operation: req.Operation, Permission: req.PermissionType}
	type key struct {
		rt   auth.ResourceType
		name string
		pt   auth.PatternType
	}
	idx := map[key]int{}
	for _, a := range s.sec.authz.List(f) {
		k := key{a.ResourceType, a.ResourceName, a.PatternType}
		i, ok := idx[k]
		if !ok {
			r := kmsg.NewDescribeACLsResponseResource()
			r.ResourceType, r.ResourceName, r.ResourcePatternType = a.ResourceType, a.ResourceName, a.PatternType
			resp.Resources = append(resp.Resources, r)
			i = len(resp.Resources) - 1
			idx[k] = i
		}
		ra := kmsg.NewDescribeACLsResponseResourceACL()
		ra.Principal, ra.Host, ra.Operation, ra.PermissionType = a.Principal, a.Host, a.Operation, a.Permission
		resp.Resources[i].ACLs = append(resp.Resources[i].ACLs, ra)
	}
	return resp, nil
}

func (s *Server) handleCreateAcls(_ context.Context, c *call,
	req *kmsg.CreateACLsRequest, resp *kmsg.CreateACLsResponse) (kmsg.Response, error) {
	var added []auth.ACL
	s.changeACLs(c, "added", func(gate int16) bool {
		for _, cr := range req.Creations {
			r := kmsg.NewCreateACLsResponseResult()
			a := auth.ACL{ResourceType: cr.ResourceType, ResourceName: cr.ResourceName, PatternType: aclPatternType(req.Version, cr.ResourcePatternType),
				Principal: cr.Principal, Host: cr.Host, Operation: cr.Operation, Permission: cr.PermissionType}
			if gate != 0 {
				r.ErrorCode = gate
			} else if err := a.Validate(); err != nil {
				r.ErrorCode, r.ErrorMessage = kerr.InvalidRequest.Code, strp(err.Error())
			} else {
				added = append(added, a)
			}
			c.fail(r.ErrorCode)
			resp.Results = append(resp.Results, r)
		}
		if len(added) == 0 {
			return false
		}
		s.sec.authz.Add(added...)
		return true
	})
	if len(added) > 0 {
		s.logger.Info("ACLs created", "count", len(added), "by", c.conn.principal)
	}
	return resp, nil
}

func (s *Server) handleDeleteAcls(_ context.Context, c *call,
	req *kmsg.DeleteACLsRequest, resp *kmsg.DeleteACLsResponse) (kmsg.Response, error) {
	s.changeACLs(c, "deleted", func(gate int16) bool {
		changed := false
		for _, df := range req.Filters {
			r := kmsg.NewDeleteACLsResponseResult()
			if gate != 0 {
				r.ErrorCode = gate
				c.fail(gate)
				resp.Results = append(resp.Results, r)
				continue
			}
			f := auth.Filter{ResourceType: df.ResourceType, ResourceName: df.ResourceName, PatternType: aclPatternType(req.Version, df.ResourcePatternType),
				Principal: df.Principal, Host: df.Host, Operation: df.Operation, Permission: df.PermissionType}
			for _, a := range s.sec.authz.Delete(f) {
				changed = true
				m := kmsg.NewDeleteACLsResponseResultMatchingACL()
				m.ResourceType, m.ResourceName, m.ResourcePatternType = a.ResourceType, a.ResourceName, a.PatternType
				m.Principal, m.Host, m.Operation, m.PermissionType = a.Principal, a.Host, a.Operation, a.Permission
				r.MatchingACLs = append(r.MatchingACLs, m)
			}
			resp.Results = append(resp.Results, r)
		}
		return changed
	})
	return resp, nil
}

// changeACLs runs a CreateAcls or DeleteAcls change and, when change
// reports that it changed something, its save as one step, so a
// replicated update applied meanwhile (syncSecurity) can neither undo nor
// overtake it. change gets aclGate's refusal for ALTER (0 when allowed).
func (s *Server) changeACLs(c *call, done string, change func(gate int16) (changed bool)) {
	s.secMu.Lock()
	defer s.secMu.Unlock()
	if change(s.aclGate(c, opAlter)) {
		if err := s.saveSecurityStateLocked(); err != nil {
			s.logger.Error("ACLs "+done+" but not stored", "err", err)
		}
	}
}

// aclPatternType is a request's resource pattern type: v0 has none and
// means literal.
func aclPatternType(version int16, pt kmsg.ACLResourcePatternType) kmsg.ACLResourcePatternType {
	if version == 0 {
		return kmsg.ACLResourcePatternTypeLiteral
	}
	return pt
}
