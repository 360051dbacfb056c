package server

import (
	"context"
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/groups"
	"github.com/tributary-io/tributary/storage/meta"
)

// handleGroup passes a consumer-group request to the coordinator. It may
// block (JoinGroup waits for the rebalance) but only its own connection waits.
func (s *Server) handleGroup(ctx context.Context, c *call, req kmsg.Request) (kmsg.Response, error) {
	if resp := s.notCoordinator(req); resp != nil {
		c.fail(kerr.NotCoordinator.Code)
		return resp, nil
	}
	host, _, err := net.SplitHostPort(c.conn.remote)
	if err != nil {
		host = c.conn.remote
	}
	// What deletions will remove, for their tombstones.
	var before map[string][]meta.TopicPartition
	if r, ok := req.(*kmsg.DeleteGroupsRequest); ok {
		before = map[string][]meta.TopicPartition{}
		for _, g := range r.Groups {
			before[g] = s.groupPartitions(g)
		}
	}
	resp, err := s.groups.Handle(groups.WithClient(ctx, c.conn.clientID, host), req)
	if err != nil {
		return nil, fmt.Errorf("group coordinator: %w", err)
	}
	if r, ok := req.(*kmsg.OffsetFetchRequest); ok { // transactions (txn.go)
		s.markUnstable(r, resp.(*kmsg.OffsetFetchResponse))
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.Replication.AckTimeout)
	switch r := req.(type) {
	case *kmsg.OffsetCommitRequest:
		s.replicateCommit(rctx, r, resp.(*kmsg.OffsetCommitResponse))
	case *kmsg.DeleteGroupsRequest, *kmsg.OffsetDeleteRequest:
		s.replicateDeletes(rctx, req, resp, before)
	}
	cancel()
	return resp, nil
}
