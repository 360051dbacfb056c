package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ApiVersions v0-v3. A too-new version is answered in handleFrame with the
// v0 fallback.
func init() { register(18, 0, 3, (*Server).handleApiVersions) }

func (s *Server) handleApiVersions(_ context.Context, _ *call, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ApiVersionsRequest)
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	resp.ApiKeys = s.versions
	return resp, nil
}
