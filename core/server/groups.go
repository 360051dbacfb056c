package server

import (
	"context"
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/groups"
)

// handleGroup passes a consumer-group request to the coordinator. It may
// block (JoinGroup waits for the rebalance) but only its own connection waits.
func (s *Server) handleGroup(ctx context.Context, c *call, req kmsg.Request) (kmsg.Response, error) {
	if s.node != nil {
		if resp := s.notCoordinator(req); resp != nil {
			c.fail(kerr.NotCoordinator.Code)
			return resp, nil
		}
	}
	host, _, err := net.SplitHostPort(c.conn.remote)
	if err != nil {
		host = c.conn.remote
	}
	resp, err := s.groups.Handle(groups.WithClient(ctx, c.conn.clientID, host), req)
	if err != nil {
		return nil, fmt.Errorf("group coordinator: %w", err)
	}
	if s.node != nil {
		if cr, ok := req.(*kmsg.OffsetCommitRequest); ok {
			rctx, cancel := context.WithTimeout(ctx, s.cfg.Replication.AckTimeout)
			s.replicateCommit(rctx, cr, resp.(*kmsg.OffsetCommitResponse))
			cancel()
		}
	}
	return resp, nil
}
