package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FindCoordinator v0-v4, for groups (key type 0) and transactional ids
// (key type 1). A transactional id is coordinated where a group of the same
// name would be: by the leader of its offsets-topic partition, whose log
// also holds the transaction state (txn.go).
func init() { register(10, 0, 4, (*Server).handleFindCoordinator) }

func (s *Server) handleFindCoordinator(_ context.Context, c *call,
	req *kmsg.FindCoordinatorRequest, resp *kmsg.FindCoordinatorResponse) (kmsg.Response, error) {
	var code int16
	var msg *string
	switch {
	case req.CoordinatorType > 1:
		code, msg = kerr.InvalidRequest.Code, strp("unknown coordinator type")
	case req.CoordinatorType == 0 && s.groups == nil:
		code, msg = kerr.CoordinatorNotAvailable.Code, strp("consumer groups are not enabled")
	}
	if req.Version < 4 {
		req.CoordinatorKeys = []string{req.CoordinatorKey}
	}
	for _, key := range req.CoordinatorKeys {
		co := kmsg.NewFindCoordinatorResponseCoordinator()
		co.Key = key
		co.NodeID, co.Host, co.Port, co.ErrorCode, co.ErrorMessage = -1, "", -1, code, msg
		if code == 0 {
			co.NodeID, co.Host, co.Port, co.ErrorCode, co.ErrorMessage = s.coordinator(c, key)
		}
		c.fail(co.ErrorCode)
		resp.Coordinators = append(resp.Coordinators, co)
	}
	if req.Version < 4 {
		co := resp.Coordinators[0]
		resp.Coordinators = nil
		resp.NodeID, resp.Host, resp.Port, resp.ErrorCode, resp.ErrorMessage = co.NodeID, co.Host, co.Port, co.ErrorCode, co.ErrorMessage
	}
	return resp, nil
}
