package server

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleGroup passes a consumer-group request to the coordinator. It may
// block (JoinGroup waits for the rebalance) but only its own connection waits.
func (s *Server) handleGroup(ctx context.Context, _ *call, req kmsg.Request) (kmsg.Response, error) {
	resp, err := s.groups.Handle(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("group coordinator: %w", err)
	}
	return resp, nil
}
