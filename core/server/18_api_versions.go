package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ApiVersions v0-v3. A too-new version is answered in handleFrame with the
// v0 fallback.
func init() { register(18, 0, 3, (*Server).handleApiVersions) }

func (s *Server) handleApiVersions(_ context.Context, _ *call,
	req *kmsg.ApiVersionsRequest, resp *kmsg.ApiVersionsResponse) (kmsg.Response, error) {
	resp.ApiKeys = s.versions
	return resp, nil
}
